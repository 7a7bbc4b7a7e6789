//! Every transition of the binding state machine.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::binding::*;
use crate::api::conditions::{self, READY};
use crate::api::*;

fn spec() -> KeyVaultBindingSpec {
    let example = include_str!("../../../../deploy/examples/00-binding-access-policy.yaml");
    serde_saphyr::from_str::<KeyVaultBinding>(example)
        .expect("example parses")
        .spec
}

fn vault() -> VaultFacts {
    VaultFacts {
        vault_uri: "https://v.vault.azure.net/".into(),
        soft_delete: true,
        purge_protection: true,
        public_network_access: true,
        firewall_deny_by_default: false,
        bypass_azure_services: true,
        rbac_authorization: false,
    }
}

fn run(
    spec: &KeyVaultBindingSpec,
    vault: Option<VaultFacts>,
    key: Option<KeyFacts>,
) -> BindingDecision {
    let status = KeyVaultBindingStatus::default();
    let now = Time(Timestamp::from_second(1_800_000_000).unwrap());
    decide(&BindingObserved {
        spec,
        generation: Some(3),
        status: &status,
        vault,
        key,
        now,
    })
}

fn ready(d: &BindingDecision) -> (String, String, String) {
    let c = conditions::find(&d.status.conditions, READY).expect("Ready is always set");
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

fn present(enabled: bool) -> Option<KeyFacts> {
    Some(KeyFacts::Present {
        version: "abc123".into(),
        enabled,
        key_type: "RSA".into(),
        created: None,
        expires: None,
    })
}

#[test]
fn missing_vault_fails() {
    assert_eq!(ready(&run(&spec(), None, None)).1, "VaultNotFound");
}

#[test]
fn preflight_failures_name_the_property_and_the_fix() {
    type Breaker = fn(&mut VaultFacts);
    let cases: [(Breaker, &str, &str); 4] = [
        (
            |v| v.soft_delete = false,
            "SoftDeleteDisabled",
            "enable-soft-delete",
        ),
        (
            |v| v.purge_protection = false,
            "PurgeProtectionDisabled",
            "enable-purge-protection",
        ),
        (
            |v| v.public_network_access = false,
            "VaultNetworkClosed",
            "private endpoints",
        ),
        (
            |v| (v.firewall_deny_by_default, v.bypass_azure_services) = (true, false),
            "VaultNetworkClosed",
            "AzureServices",
        ),
    ];
    for (break_it, reason, hint) in cases {
        let mut v = vault();
        break_it(&mut v);
        let d = run(&spec(), Some(v), present(true));
        let (status, got, message) = ready(&d);
        assert_eq!((status.as_str(), got.as_str()), ("False", reason));
        assert!(message.contains(hint), "{message}");
        assert_eq!(d.status.preflight.unwrap().failure, Some(message));
        assert_eq!(d.action, None);
    }
}

#[test]
fn firewall_with_trusted_services_bypass_passes() {
    let mut v = vault();
    v.firewall_deny_by_default = true;
    assert_eq!(ready(&run(&spec(), Some(v), present(true))).1, "KeyReady");
}

#[test]
fn forced_model_must_match_the_vault() {
    let mut s = spec();
    s.permission_model = PermissionModel::Rbac;
    assert_eq!(
        ready(&run(&s, Some(vault()), present(true))).1,
        "PermissionModelMismatch"
    );
}

#[test]
fn auto_follows_the_vault() {
    let mut v = vault();
    v.rbac_authorization = true;
    let d = run(&spec(), Some(v), present(true));
    assert_eq!(d.status.permission_model, Some(PermissionModel::Rbac));
}

#[test]
fn missing_key_is_created_and_small_keys_are_flagged() {
    let mut s = spec();
    s.key.size = 2048;
    let d = run(&s, Some(vault()), Some(KeyFacts::Missing));
    assert_eq!(
        d.action,
        Some(BindingAction::CreateKey {
            name: "cosmos-orders".into(),
            key_type: KeyType::Rsa,
            size: 2048,
            small: true
        })
    );
    assert_eq!(ready(&d).1, "CreatingKey");
}

#[test]
fn missing_key_without_create_fails() {
    let mut s = spec();
    s.key.create_if_missing = false;
    assert_eq!(
        ready(&run(&s, Some(vault()), Some(KeyFacts::Missing))).1,
        "KeyNotFound"
    );
}

#[test]
fn disabled_latest_version_is_revocation() {
    let d = run(&spec(), Some(vault()), present(false));
    assert_eq!(
        (ready(&d).1.as_str(), d.status.phase),
        ("KeyDisabled", Phase::Revoked)
    );
}

#[test]
fn non_rsa_key_is_refused() {
    let key = Some(KeyFacts::Present {
        version: "v".into(),
        enabled: true,
        key_type: "EC".into(),
        created: None,
        expires: None,
    });
    assert_eq!(ready(&run(&spec(), Some(vault()), key)).1, "KeyNotRsa");
}

#[test]
fn ready_binding_reports_versionless_uri_and_version() {
    let d = run(&spec(), Some(vault()), present(true));
    assert_eq!(ready(&d).0, "True");
    assert_eq!(
        d.status.key_uri.as_deref(),
        Some("https://v.vault.azure.net/keys/cosmos-orders")
    );
    assert_eq!(d.status.key_version.as_deref(), Some("abc123"));
    assert_eq!(
        (d.status.phase, d.status.observed_generation),
        (Phase::Ready, Some(3))
    );
}

#[test]
fn only_the_key_the_spec_names_is_the_bindings() {
    let mut s = spec();
    s.vault_resource_id =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/team-a-kv".into();
    s.key.name = "orders".into();
    for (uri, ok) in [
        ("https://team-a-kv.vault.azure.net/keys/orders", true),
        ("https://TEAM-A-KV.vault.azure.net/keys/orders/", true),
        (
            "https://team-a-kv.vault.azure.net/keys/orders/0123abcd",
            true,
        ),
        (
            "https://team-a-kv.vault.usgovcloudapi.net:443/keys/orders",
            true,
        ),
        ("https://team-b-kv.vault.azure.net/keys/orders", false),
        ("https://team-a-kv.vault.azure.net/keys/payments", false),
        ("https://team-a-kv.vault.azure.net/secrets/orders", false),
        (
            "https://team-a-kv.vault.azure.net/keys/orders/v/extra",
            false,
        ),
        ("http://team-a-kv.vault.azure.net/keys/orders", false),
        ("", false),
    ] {
        assert_eq!(spec_names_key(&s, uri), ok, "{uri}");
    }
}
