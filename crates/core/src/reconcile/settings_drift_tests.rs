//! The settings Azure Policy looks at and the user's tags: written at
//! creation, converged in one PATCH, left alone where the spec is silent.

use super::account::*;
use super::account_tests::{World, account, reason};
use super::ownership;
use super::reasons as r;
use super::settings_drift::{self, SettingsUpdate};
use crate::api::conditions::{ACCOUNT_CREATED, READY};
use crate::api::*;

/// An owned, settled first-party account reporting Azure's defaults.
fn found(w: &mut World) {
    let mut a = account("FirstPartyIdentity");
    a.settings = AccountSettings {
        public_network_access: Some(PublicNetworkAccess::Enabled),
        ip_rules: Some(vec![]),
        virtual_network_rules: Some(vec![]),
        is_virtual_network_filter_enabled: Some(false),
        network_acl_bypass: Some(NetworkAclBypass::None),
        network_acl_bypass_resource_ids: Some(vec![]),
        disable_local_auth: Some(false),
        minimal_tls_version: Some(MinimalTlsVersion::Tls12),
    };
    w.account = AccountState::Found(a);
}

fn facts(w: &mut World) -> &mut AccountFacts {
    match &mut w.account {
        AccountState::Found(a) => a,
        AccountState::NotFound => panic!("no account"),
    }
}

#[test]
fn creation_carries_the_settings_and_the_tags_with_the_owner_tags_winning() {
    let mut w = World::new(IdentityType::FirstParty);
    w.spec.public_network_access = Some(PublicNetworkAccess::Disabled);
    w.spec.disable_local_auth = Some(true);
    w.spec.tags = [
        ("costCenter".to_owned(), "42".to_owned()),
        // Past the API server (CEL refuses it): must still never win.
        ("cosmoscmk.io-uid".to_owned(), "forged".to_owned()),
    ]
    .into();
    let Some(Action::CreateAccount(c)) = w.decide().action else {
        panic!("expected a create");
    };
    assert_eq!(
        c.settings.public_network_access,
        Some(PublicNetworkAccess::Disabled)
    );
    assert_eq!(c.settings.disable_local_auth, Some(true));
    assert_eq!(c.settings.minimal_tls_version, None, "unset stays Azure's");
    assert_eq!(c.tags.get("costCenter").map(String::as_str), Some("42"));
    assert_eq!(
        c.tags.get(ownership::TAG_UID).map(String::as_str),
        Some("u1")
    );
    assert!(!c.tags.values().any(|v| v == "forged"), "{:?}", c.tags);
}

#[test]
fn settings_the_spec_leaves_unset_are_never_compared() {
    let mut w = World::new(IdentityType::FirstParty);
    found(&mut w);
    // An adopted account's own choices, none named in the spec.
    let a = facts(&mut w);
    a.settings.public_network_access = Some(PublicNetworkAccess::Disabled);
    a.settings.ip_rules = Some(vec![IpRule {
        ip_address_or_range: "10.0.0.1".into(),
    }]);
    a.tags.insert("team".into(), "payments".into());
    let d = w.decide();
    assert_eq!(d.action, None);
    assert_eq!(reason(&d, READY), "True/Ready");
}

#[test]
fn drift_of_set_fields_converges_in_one_patch_before_any_other_change() {
    let mut w = World::new(IdentityType::FirstParty);
    found(&mut w);
    w.spec.public_network_access = Some(PublicNetworkAccess::Disabled);
    w.spec.minimal_tls_version = Some(MinimalTlsVersion::Tls12);
    w.spec.disable_local_auth = Some(true);
    w.spec.tags = [("env".to_owned(), "prod".to_owned())].into();
    // The key differs too: the settings still go first.
    facts(&mut w).key_vault_key_uri = Some("https://vault.example/keys/other".into());
    let d = w.decide();
    let Some(Action::UpdateSettings(u)) = d.action.clone() else {
        panic!("expected a settings update, got {:?}", d.action);
    };
    assert_eq!(
        u,
        SettingsUpdate {
            settings: AccountSettings {
                public_network_access: Some(PublicNetworkAccess::Disabled),
                disable_local_auth: Some(true),
                ..Default::default()
            },
            tags: [("env".to_owned(), "prod".to_owned())].into(),
            owner: None,
        }
    );
    assert_eq!(
        reason(&d, ACCOUNT_CREATED),
        format!("False/{}", r::UPDATING_ACCOUNT_SETTINGS)
    );
    let msg = &d
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == ACCOUNT_CREATED)
        .unwrap()
        .message;
    assert!(
        msg.contains("publicNetworkAccess is Enabled in Azure, the spec says Disabled"),
        "{msg}"
    );
}

#[test]
fn lists_compare_as_sets_and_ids_ignore_case() {
    let mut w = World::new(IdentityType::FirstParty);
    found(&mut w);
    let subnet = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/a";
    w.spec.ip_rules = Some(vec![
        IpRule {
            ip_address_or_range: "10.0.0.2".into(),
        },
        IpRule {
            ip_address_or_range: "10.0.0.1".into(),
        },
    ]);
    w.spec.virtual_network_rules = Some(vec![VirtualNetworkRule {
        id: subnet.into(),
        ignore_missing_vnet_service_endpoint: false,
    }]);
    let a = facts(&mut w);
    a.settings.ip_rules = Some(vec![
        IpRule {
            ip_address_or_range: "10.0.0.1".into(),
        },
        IpRule {
            ip_address_or_range: "10.0.0.2".into(),
        },
    ]);
    a.settings.virtual_network_rules = Some(vec![VirtualNetworkRule {
        id: subnet.to_ascii_lowercase(),
        ignore_missing_vnet_service_endpoint: false,
    }]);
    assert_eq!(w.decide().action, None);
}

#[test]
fn a_field_azure_did_not_report_is_left_alone() {
    let mut w = World::new(IdentityType::FirstParty);
    found(&mut w);
    w.spec.disable_local_auth = Some(true);
    facts(&mut w).settings.disable_local_auth = None;
    assert_eq!(w.decide().action, None);
}

#[test]
fn observe_only_names_the_settings_drift_and_writes_nothing() {
    let mut w = World::new(IdentityType::FirstParty);
    found(&mut w);
    w.spec.reconcile_policy = ReconcilePolicy::ObserveOnly;
    w.spec.public_network_access = Some(PublicNetworkAccess::Disabled);
    let d = w.decide();
    assert_eq!(d.action, None);
    assert_eq!(reason(&d, READY), format!("False/{}", r::DRIFT_DETECTED));
}

#[test]
fn user_tags_never_include_an_owner_tag_name() {
    let mut w = World::new(IdentityType::FirstParty);
    w.spec.tags = [
        ("COSMOSCMK.IO-name".to_owned(), "x".to_owned()),
        ("env".to_owned(), "prod".to_owned()),
    ]
    .into();
    let tags = settings_drift::user_tags(&w.spec);
    assert_eq!(tags.keys().collect::<Vec<_>>(), ["env"]);
}

#[test]
fn adoption_writes_the_owner_tags_with_the_settings_the_spec_sets() {
    let mut w = World::new(IdentityType::FirstParty);
    found(&mut w);
    w.spec.adopt_existing_account = true;
    w.spec.public_network_access = Some(PublicNetworkAccess::Disabled);
    facts(&mut w).tags.clear();
    let d = w.decide();
    let Some(Action::UpdateSettings(u)) = d.action.clone() else {
        panic!("expected one write with the owner tags, got {:?}", d.action);
    };
    assert_eq!(u.owner, Some(super::account_tests::me()));
    assert_eq!(
        u.settings.public_network_access,
        Some(PublicNetworkAccess::Disabled)
    );
    assert_eq!(
        reason(&d, ACCOUNT_CREATED),
        format!("False/{}", r::ADOPTING_ACCOUNT)
    );
    // Nothing to set: the owner tags alone, as before.
    w.spec.public_network_access = None;
    assert_eq!(
        w.decide().action,
        Some(Action::TagAccount(super::account_tests::me()))
    );
}
