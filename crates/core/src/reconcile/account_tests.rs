//! Every transition of the account state machine.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::account::*;
use super::ownership::Owner;
use super::reasons as r;
use super::sharing::{Peer, PeerList};
use super::spec_drift;
use crate::api::conditions::{
    self, ACCOUNT_CREATED, IDENTITY_GRANTED, READY, ROTATION_TRACKED, VAULT_READY,
};
use crate::api::*;

const FP: &str = "fp-principal";
const UA_ID: &str = "/subscriptions/00000000-0000-0000-0000-00000000c0de/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1";
const KEY: &str = "https://vault.example/keys/k1";
const VAULT: &str = "/subscriptions/00000000-0000-0000-0000-00000000c0de/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v";

pub(super) fn spec(identity: IdentityType) -> CosmosAccountCMKSpec {
    let example = include_str!("../../../../deploy/examples/10-account-first-party.yaml");
    let obj: CosmosAccountCMK = serde_saphyr::from_str(example).expect("example parses");
    let mut spec = obj.spec;
    // The example's Azure Policy settings and tags are settings_drift_tests'
    // subject; here the account facts carry none of them.
    spec.tags.clear();
    spec.public_network_access = None;
    spec.disable_local_auth = None;
    spec.identity.type_ = identity;
    if identity == IdentityType::UserAssigned {
        spec.identity.user_assigned_identity_id = Some(UA_ID.to_owned());
    }
    spec
}

fn t0() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

fn ready_binding() -> BindingState {
    BindingState::Ready {
        vault_id: VAULT.to_owned(),
        key_uri: KEY.to_owned(),
        model: PermissionModel::AccessPolicy,
    }
}

pub(super) fn me() -> Owner {
    Owner {
        cluster: "c1".into(),
        namespace: "team-a".into(),
        name: "orders".into(),
        uid: "u1".into(),
    }
}

/// An account this resource owns (its owner tags name it).
pub(super) fn account(default_identity: &str) -> AccountFacts {
    AccountFacts {
        tags: me().tags(),
        id: "/subscriptions/x/resourceGroups/rg/providers/Microsoft.DocumentDB/databaseAccounts/a"
            .to_owned(),
        provisioning_state: "Succeeded".to_owned(),
        document_endpoint: Some("https://a.documents.azure.com:443/".to_owned()),
        key_vault_key_uri: Some(KEY.to_owned()),
        key_version_in_use: Some("v1".to_owned()),
        default_identity: Some(default_identity.to_owned()),
        ..Default::default()
    }
}

pub(super) struct World {
    pub(super) spec: CosmosAccountCMKSpec,
    pub(super) status: CosmosAccountCMKStatus,
    pub(super) binding: BindingState,
    pub(super) provider: bool,
    pub(super) ua_principal: Option<String>,
    pub(super) granted: Vec<String>,
    pub(super) account: AccountState,
    pub(super) operation: Option<OperationState>,
    pub(super) now: Timestamp,
    pub(super) recreate: Option<String>,
    pub(super) confirm_owner: Option<String>,
    pub(super) previous_cluster: Option<&'static str>,
    pub(super) restorable_deleted: Option<Result<Vec<String>, String>>,
    pub(super) peers: Vec<Peer>,
    pub(super) peer_grants: Vec<Grant>,
    pub(super) restore: Option<RestoreFacts>,
}

impl World {
    pub(super) fn new(identity: IdentityType) -> Self {
        World {
            spec: spec(identity),
            status: CosmosAccountCMKStatus::default(),
            binding: ready_binding(),
            provider: true,
            ua_principal: Some("ua-principal".to_owned()),
            granted: vec![FP.to_owned(), "ua-principal".to_owned()],
            account: AccountState::NotFound,
            operation: None,
            now: t0(),
            recreate: None,
            confirm_owner: None,
            previous_cluster: None,
            // Azure remembers no deleted account of this name.
            restorable_deleted: Some(Ok(Vec::new())),
            peers: Vec::new(),
            peer_grants: Vec::new(),
            restore: None,
        }
    }
    pub(super) fn decide(&self) -> Decision {
        let peers = PeerList {
            peers: &self.peers,
            grants: &self.peer_grants,
        };
        let o = Observed {
            spec: &self.spec,
            generation: Some(1),
            status: &self.status,
            binding: self.binding.clone(),
            provider_registered: self.provider,
            first_party_principal: FP,
            user_assigned_principal: self.ua_principal.clone(),
            granted: &self.granted,
            account: self.account.clone(),
            operation: self.operation.clone(),
            now: self.now,
            me: me(),
            previous_cluster: self.previous_cluster,
            recreate: self.recreate.clone(),
            confirm_owner: self.confirm_owner.clone(),
            restorable_deleted: self.restorable_deleted.clone(),
            peers: &peers,
            restore: self.restore.clone(),
        };
        decide(&o)
    }
}

pub(super) fn reason(d: &Decision, type_: &str) -> String {
    conditions::find(&d.status.conditions, type_)
        .map(|c| format!("{}/{}", c.status, c.reason))
        .unwrap_or_default()
}

#[test]
fn missing_binding_waits_and_leaves_later_stages_unknown() {
    let mut w = World::new(IdentityType::FirstParty);
    w.binding = BindingState::Missing;
    let d = w.decide();
    assert_eq!(reason(&d, VAULT_READY), "False/BindingNotFound");
    assert_eq!(reason(&d, IDENTITY_GRANTED), "Unknown/Waiting");
    assert_eq!(reason(&d, READY), "False/BindingNotFound");
    assert_eq!((d.status.phase, d.action), (Phase::Waiting, None));
}

#[test]
fn a_binding_catching_up_with_its_spec_is_progress_not_a_wait() {
    // A key change: the binding's spec moved, its status has not yet. Phase
    // Waiting would publish a Warning for an ordinary rotation.
    let mut w = World::new(IdentityType::FirstParty);
    w.binding = BindingState::Updating;
    let d = w.decide();
    assert_eq!(reason(&d, VAULT_READY), "False/BindingNotReady");
    assert_eq!(d.status.phase, Phase::Provisioning);
}

#[test]
fn binding_not_ready_waits_with_its_message() {
    let mut w = World::new(IdentityType::FirstParty);
    w.binding = BindingState::NotReady {
        message: "purge protection is disabled".into(),
    };
    let d = w.decide();
    assert_eq!(reason(&d, VAULT_READY), "False/BindingNotReady");
    assert!(
        conditions::find(&d.status.conditions, READY)
            .unwrap()
            .message
            .contains("purge protection")
    );
    assert_eq!(d.action, None);
}

#[test]
fn unregistered_provider_is_reported() {
    let mut w = World::new(IdentityType::FirstParty);
    w.provider = false;
    let d = w.decide();
    assert_eq!(reason(&d, VAULT_READY), "True/VaultReady");
    assert_eq!(reason(&d, IDENTITY_GRANTED), "False/ProviderNotRegistered");
    assert_eq!(d.action, None);
}

#[test]
fn first_party_without_grant_is_granted_and_recorded() {
    let mut w = World::new(IdentityType::FirstParty);
    w.granted.clear();
    let d = w.decide();
    assert_eq!(
        d.action,
        Some(Action::Grant {
            vault_id: VAULT.into(),
            model: PermissionModel::AccessPolicy,
            principal_id: FP.into()
        })
    );
    assert_eq!(reason(&d, IDENTITY_GRANTED), "False/GrantingAccess");
    assert!(
        d.status.grants.is_empty(),
        "recorded by the controller once Azure made it (with its vault and assignment id)"
    );
}

#[test]
fn observe_only_never_grants() {
    let mut w = World::new(IdentityType::FirstParty);
    w.granted.clear();
    w.spec.reconcile_policy = ReconcilePolicy::ObserveOnly;
    let d = w.decide();
    assert_eq!(
        reason(&d, IDENTITY_GRANTED),
        "False/WaitingForIdentityGrant"
    );
    assert_eq!(d.action, None);
}

#[test]
fn missing_user_assigned_identity_fails_clearly() {
    let mut w = World::new(IdentityType::UserAssigned);
    w.ua_principal = None;
    let d = w.decide();
    assert_eq!(reason(&d, IDENTITY_GRANTED), "False/IdentityNotFound");
    assert_eq!(d.status.phase, Phase::Failed);
}

#[test]
fn user_assigned_account_is_created_with_its_default_identity() {
    let w = World::new(IdentityType::UserAssigned);
    let d = w.decide();
    assert_eq!(
        d.action,
        Some(Action::CreateAccount(CreateAccount {
            key_uri: KEY.into(),
            default_identity: format!("UserAssignedIdentity={UA_ID}"),
            user_assigned_identity: Some(UA_ID.into()),
            tags: super::ownership::with_owner(&w.spec.tags, &me()),
            settings: w.spec.settings(),
        }))
    );
    assert_eq!(reason(&d, ACCOUNT_CREATED), "False/CreatingAccount");
    assert!(d.status.created_by_operator);
    assert_eq!(d.requeue, Requeue::Soon);
}

#[test]
fn system_assigned_account_is_created_with_the_first_party_identity() {
    let w = World::new(IdentityType::SystemAssigned);
    let d = w.decide();
    let Some(Action::CreateAccount(c)) = d.action else {
        panic!("expected a create, got {:?}", d.action)
    };
    assert_eq!(
        (c.default_identity.as_str(), c.user_assigned_identity),
        ("FirstPartyIdentity", None)
    );
}

#[test]
fn observe_only_creates_nothing() {
    let mut w = World::new(IdentityType::FirstParty);
    w.spec.reconcile_policy = ReconcilePolicy::ObserveOnly;
    let d = w.decide();
    assert_eq!(reason(&d, ACCOUNT_CREATED), "False/AccountMissing");
    assert_eq!(d.action, None);
}

#[test]
fn pending_operation_in_progress_polls_without_acting() {
    let mut w = World::new(IdentityType::FirstParty);
    w.operation = Some(OperationState::InProgress);
    let d = w.decide();
    assert_eq!(
        (d.action, d.requeue, d.status.phase),
        (None, Requeue::Soon, Phase::Provisioning)
    );
}

/// A creation Azure is still working on stays CreatingAccount (no new
/// reason, so no new event); another operation reads UpdatingAccount.
#[test]
fn a_creation_in_progress_keeps_its_reason() {
    let mut w = World::new(IdentityType::FirstParty);
    w.operation = Some(OperationState::InProgress);
    for (kind, want) in [
        (OperationKind::CreateAccount, "False/CreatingAccount"),
        (OperationKind::SetKeyUri, "False/UpdatingAccount"),
    ] {
        w.status.pending_operation = Some(PendingOperation {
            kind,
            poll_url: "https://x/op".into(),
            started_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t0()),
            retry_after_ms: None,
        });
        assert_eq!(reason(&w.decide(), READY), want, "{kind:?}");
    }
}

#[test]
fn failed_operation_is_reported_and_cleared() {
    let mut w = World::new(IdentityType::FirstParty);
    w.status.pending_operation = Some(PendingOperation {
        kind: OperationKind::CreateAccount,
        poll_url: "https://x/op".into(),
        started_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t0()),
        retry_after_ms: None,
    });
    w.operation = Some(OperationState::Failed(AzureErrorRecord {
        operation: "CreateAccount".into(),
        http_status: 400,
        code: Some("BadRequest".into()),
        ..Default::default()
    }));
    let d = w.decide();
    assert_eq!(
        reason(&d, ACCOUNT_CREATED),
        "False/AccountProvisioningFailed"
    );
    assert!(d.status.pending_operation.is_none());
    assert_eq!(d.status.last_azure_error.unwrap().http_status, 400);
}

#[test]
fn succeeded_operation_clears_pending_and_continues() {
    let mut w = World::new(IdentityType::FirstParty);
    w.status.created_by_operator = true;
    w.operation = Some(OperationState::Succeeded);
    w.account = AccountState::Found(account("FirstPartyIdentity"));
    let d = w.decide();
    assert!(d.status.pending_operation.is_none());
    assert_eq!(reason(&d, READY), "True/Ready");
}

#[test]
fn account_still_provisioning_waits_and_failed_account_is_reported() {
    let mut w = World::new(IdentityType::FirstParty);
    let mut a = account("FirstPartyIdentity");
    a.provisioning_state = "Creating".into();
    w.account = AccountState::Found(a.clone());
    assert_eq!(w.decide().requeue, Requeue::Soon);
    a.provisioning_state = "Failed".into();
    w.account = AccountState::Found(a);
    assert_eq!(
        reason(&w.decide(), ACCOUNT_CREATED),
        "False/AccountProvisioningFailed"
    );
}

/// Adoption's owner tags wait while Azure holds the account (`Creating`,
/// `Updating`): a write then would meet a 412 (found by the e2e test
/// azure_answers::accounts_azure_reports_creating_or_updating_are_waited_for).
#[test]
fn an_account_azure_still_holds_is_not_tagged_until_it_settles() {
    let mut w = World::new(IdentityType::FirstParty);
    w.spec.adopt_existing_account = true;
    let mut a = account("FirstPartyIdentity");
    a.tags.clear();
    for state in ["Creating", "Updating"] {
        a.provisioning_state = state.into();
        w.account = AccountState::Found(a.clone());
        let d = w.decide();
        assert_eq!((&d.action, d.requeue), (&None, Requeue::Soon), "{state}");
        assert_eq!(reason(&d, READY), "False/UpdatingAccount", "{state}");
    }
    a.provisioning_state = "Succeeded".into();
    w.account = AccountState::Found(a);
    assert_eq!(w.decide().action, Some(Action::TagAccount(me())));
}

#[test]
fn existing_account_without_cmk_is_only_adopted_when_asked() {
    let mut w = World::new(IdentityType::FirstParty);
    let mut a = account("FirstPartyIdentity");
    a.key_vault_key_uri = None;
    a.tags.clear();
    w.account = AccountState::Found(a.clone());
    w.granted.clear();
    let d = w.decide();
    assert_eq!(reason(&d, ACCOUNT_CREATED), "False/AccountExistsWithoutCmk");
    assert_eq!(d.action, None, "not even a grant");
    w.spec.adopt_existing_account = true;
    assert_eq!(w.decide().action, Some(Action::TagAccount(me())));
    a.tags = me().tags();
    w.account = AccountState::Found(a);
    w.granted = vec![FP.to_owned()];
    assert_eq!(w.decide().action, Some(Action::SetKeyUri(KEY.into())));
}

#[test]
fn system_assigned_walks_the_seed_two_step() {
    let mut w = World::new(IdentityType::SystemAssigned);
    w.spec.identity.remove_first_party_grant = true;
    w.status.created_by_operator = true;
    w.status.grants = vec![Grant {
        model: PermissionModel::AccessPolicy,
        principal_id: FP.into(),
        vault_id: None,
        role_assignment_id: None,
        entry_found: false,
    }];
    // 1. created with the first party: enable the system identity.
    w.account = AccountState::Found(account("FirstPartyIdentity"));
    assert_eq!(w.decide().action, Some(Action::EnableSystemIdentity));
    // 2. the system principal exists: grant it.
    let mut a = account("FirstPartyIdentity");
    a.system_principal_id = Some("sys-principal".into());
    w.account = AccountState::Found(a.clone());
    let d = w.decide();
    assert!(
        matches!(d.action, Some(Action::Grant { ref principal_id, .. }) if principal_id == "sys-principal")
    );
    // 3. granted: switch the default identity.
    w.granted.push("sys-principal".into());
    assert_eq!(
        w.decide().action,
        Some(Action::SetDefaultIdentity("SystemAssignedIdentity".into()))
    );
    // 4. switched: drop the first-party grant the operator made.
    a.default_identity = Some("SystemAssignedIdentity".into());
    w.account = AccountState::Found(a);
    let d = w.decide();
    assert!(
        matches!(d.action, Some(Action::RevokeGrant { ref grant, .. }) if grant.principal_id == FP)
    );
    // 5. done.
    w.status = d.status;
    let d = w.decide();
    assert_eq!((reason(&d, READY).as_str(), d.action), ("True/Ready", None));
    assert_eq!(
        d.status.identity_principal_id.as_deref(),
        Some("sys-principal")
    );
}

#[test]
fn first_party_grant_made_by_someone_else_is_never_removed() {
    let mut w = World::new(IdentityType::SystemAssigned);
    w.spec.identity.remove_first_party_grant = true;
    let mut a = account("SystemAssignedIdentity");
    a.system_principal_id = Some("sys".into());
    w.granted.push("sys".into());
    w.account = AccountState::Found(a);
    let d = w.decide();
    assert_eq!((reason(&d, READY).as_str(), d.action), ("True/Ready", None));
}

#[test]
fn user_assigned_identity_missing_on_account_is_added_first() {
    let mut w = World::new(IdentityType::UserAssigned);
    w.account = AccountState::Found(account("FirstPartyIdentity"));
    assert_eq!(
        w.decide().action,
        Some(Action::AddUserAssignedIdentity(UA_ID.into()))
    );
    let mut a = account("FirstPartyIdentity");
    a.user_assigned_ids = vec![UA_ID.to_lowercase()];
    w.account = AccountState::Found(a);
    assert_eq!(
        w.decide().action,
        Some(Action::SetDefaultIdentity(format!(
            "UserAssignedIdentity={UA_ID}"
        )))
    );
}

#[test]
fn revoked_account_is_reported_and_left_alone() {
    let mut w = World::new(IdentityType::FirstParty);
    let mut a = account("FirstPartyIdentity");
    a.key_vault_key_uri = Some("https://other/keys/x".into()); // even with drift, nothing is written
    a.revoked = Some(AzureErrorRecord {
        operation: "GetAccount".into(),
        http_status: 403,
        sub_status: Some(4002),
        ..Default::default()
    });
    w.account = AccountState::Found(a);
    let d = w.decide();
    assert_eq!((d.status.phase, &d.action), (Phase::Revoked, &None));
    assert_eq!(reason(&d, READY), "False/KeyRevoked");
    assert!(
        conditions::find(&d.status.conditions, READY)
            .unwrap()
            .message
            .contains("4002")
    );
    assert_eq!(reason(&d, IDENTITY_GRANTED), "Unknown/KeyRevoked");
    assert_eq!(reason(&d, VAULT_READY), "True/VaultReady");
    // Seen again later, with a new time from the adapter: no status change.
    w.status = d.status.clone();
    w.now = t0() + SignedDuration::from_hours(1);
    if let AccountState::Found(a) = &mut w.account {
        a.revoked.as_mut().unwrap().time = Some("later".into());
    }
    assert_eq!(w.decide().status, d.status, "no status write per resync");
}

#[test]
fn key_uri_drift_is_corrected_or_only_reported() {
    let mut w = World::new(IdentityType::FirstParty);
    let mut a = account("FirstPartyIdentity");
    a.key_vault_key_uri = Some("https://vault.example/keys/old".into());
    w.account = AccountState::Found(a);
    assert_eq!(w.decide().action, Some(Action::SetKeyUri(KEY.into())));
    w.spec.reconcile_policy = ReconcilePolicy::ObserveOnly;
    let d = w.decide();
    assert_eq!(
        (reason(&d, ACCOUNT_CREATED).as_str(), d.action),
        ("False/DriftDetected", None)
    );
}

#[test]
fn default_identity_drift_is_corrected() {
    let mut w = World::new(IdentityType::FirstParty);
    w.account = AccountState::Found(account("SystemAssignedIdentity"));
    assert_eq!(
        w.decide().action,
        Some(Action::SetDefaultIdentity("FirstPartyIdentity".into()))
    );
}

#[test]
fn key_uri_comparison_ignores_case_and_trailing_slash() {
    let mut w = World::new(IdentityType::FirstParty);
    let mut a = account("FirstPartyIdentity");
    a.key_vault_key_uri = Some(format!("{}/", KEY.to_uppercase()));
    w.account = AccountState::Found(a);
    assert_eq!(w.decide().action, None);
}

#[test]
fn a_new_key_version_is_tracked_with_its_safe_time() {
    let mut w = World::new(IdentityType::FirstParty);
    w.account = AccountState::Found(account("FirstPartyIdentity"));
    let d = w.decide();
    assert_eq!(reason(&d, ROTATION_TRACKED), "True/KeyVersionTracked");
    w.status = d.status;
    let mut a = account("FirstPartyIdentity");
    a.key_version_in_use = Some("v2".into());
    w.account = AccountState::Found(a);
    w.now = t0() + SignedDuration::from_mins(5);
    let d = w.decide();
    assert_eq!(reason(&d, ROTATION_TRACKED), "True/KeyRotated");
    assert_eq!(d.status.key_version_in_use.as_deref(), Some("v2"));
    assert_eq!(d.status.previous_key_version.as_deref(), Some("v1"));
    assert_eq!(d.status.last_rotation_time.as_ref().unwrap().0, w.now);
    assert_eq!(
        d.status
            .previous_version_safe_to_disable_after
            .as_ref()
            .unwrap()
            .0,
        w.now + SignedDuration::from_hours(24)
    );
    assert_eq!(d.action, None, "disabling the previous version is opt-in");
}

#[test]
fn previous_version_is_disabled_only_when_asked_and_never_early() {
    let mut w = World::new(IdentityType::FirstParty);
    w.spec.rotation.disable_previous_version = true;
    w.status.key_version_in_use = Some("v1".into());
    let mut a = account("FirstPartyIdentity");
    a.key_version_in_use = Some("v2".into());
    w.account = AccountState::Found(a);
    let d = w.decide();
    assert_eq!(d.action, None);
    w.status = d.status;
    w.now = t0() + SignedDuration::from_hours(23);
    assert_eq!(
        w.decide().action,
        None,
        "23 h after the rotation is too early"
    );
    w.now = t0() + SignedDuration::from_hours(24);
    let d = w.decide();
    assert_eq!(
        d.action,
        Some(Action::DisableKeyVersion {
            key_uri: KEY.into(),
            version: "v1".into()
        })
    );
    assert_eq!(reason(&d, ROTATION_TRACKED), "True/PreviousVersionDisabled");
    w.status = d.status;
    assert_eq!(w.decide().action, None, "disabled once");
}

#[test]
fn steady_state_decides_the_same_status_again() {
    let mut w = World::new(IdentityType::UserAssigned);
    let mut a = account(&format!("UserAssignedIdentity={UA_ID}"));
    a.user_assigned_ids = vec![UA_ID.into()];
    w.account = AccountState::Found(a);
    let first = w.decide();
    assert_eq!(
        (reason(&first, READY).as_str(), first.status.phase),
        ("True/Ready", Phase::Ready)
    );
    w.status = first.status.clone();
    w.now = t0() + SignedDuration::from_hours(1);
    let second = w.decide();
    assert_eq!(
        second.status, first.status,
        "no change means no status write"
    );
    assert_eq!((second.action, second.requeue), (None, Requeue::Resync));
}

#[test]
fn principals_to_check_follow_the_identity() {
    let s = spec(IdentityType::SystemAssigned);
    assert_eq!(
        principals_to_check(&s, &AccountState::NotFound, FP, None),
        vec![FP.to_owned()]
    );
    let mut a = account("FirstPartyIdentity");
    a.system_principal_id = Some("sys".into());
    assert_eq!(
        principals_to_check(&s, &AccountState::Found(a), FP, None),
        vec![FP.to_owned(), "sys".to_owned()]
    );
    let u = spec(IdentityType::UserAssigned);
    assert_eq!(
        principals_to_check(&u, &AccountState::NotFound, FP, Some("ua")),
        vec![FP.to_owned(), "ua".to_owned()]
    );
}

#[test]
fn a_finished_create_proves_the_grant_of_the_identity_it_used() {
    let fp = spec(IdentityType::FirstParty);
    assert_eq!(
        proven_grant(OperationKind::CreateAccount, &fp, FP, None),
        Some(FP.to_owned())
    );
    let u = spec(IdentityType::UserAssigned);
    assert_eq!(
        proven_grant(OperationKind::CreateAccount, &u, FP, Some("ua")),
        Some("ua".to_owned())
    );
    let s = spec(IdentityType::SystemAssigned);
    assert_eq!(
        proven_grant(OperationKind::CreateAccount, &s, FP, None),
        None
    );
    assert_eq!(
        proven_grant(OperationKind::SetDefaultIdentity, &fp, FP, None),
        None
    );
}

#[test]
fn reasons_are_camel_case_words() {
    for reason in [
        r::BINDING_NOT_FOUND,
        r::KEY_REVOKED,
        r::ACCOUNT_EXISTS_WITHOUT_CMK,
        r::DRIFT_DETECTED,
    ] {
        assert!(
            reason.chars().next().unwrap().is_ascii_uppercase()
                && reason.chars().all(|c| c.is_ascii_alphanumeric())
        );
    }
}

#[test]
fn revocation_is_reported_even_when_the_binding_is_not_ready() {
    let mut w = World::new(IdentityType::FirstParty);
    w.binding = BindingState::NotReady {
        message: "the latest version is disabled".into(),
    };
    let mut a = account("FirstPartyIdentity");
    a.revoked = Some(AzureErrorRecord {
        operation: "GetAccount".into(),
        http_status: 403,
        sub_status: Some(4002),
        ..Default::default()
    });
    w.account = AccountState::Found(a);
    let d = w.decide();
    assert_eq!(
        (reason(&d, READY).as_str(), d.status.phase, d.action),
        ("False/KeyRevoked", Phase::Revoked, None)
    );
}

#[test]
fn a_rotation_to_another_key_disables_the_old_keys_version() {
    let mut w = World::new(IdentityType::FirstParty);
    w.spec.rotation.disable_previous_version = true;
    w.status.key_version_in_use = Some("v1".into());
    w.status.key_vault_key_uri = Some("https://vault.example/keys/old".into());
    let mut a = account("FirstPartyIdentity");
    a.key_version_in_use = Some("w1".into());
    w.account = AccountState::Found(a);
    let d = w.decide();
    assert_eq!(
        d.status.previous_key_uri.as_deref(),
        Some("https://vault.example/keys/old")
    );
    w.status = d.status;
    w.now = t0() + SignedDuration::from_hours(25);
    assert_eq!(
        w.decide().action,
        Some(Action::DisableKeyVersion {
            key_uri: "https://vault.example/keys/old".into(),
            version: "v1".into()
        })
    );
}

fn fp_grant(vault: &str) -> Grant {
    Grant {
        model: PermissionModel::AccessPolicy,
        principal_id: FP.into(),
        vault_id: Some(vault.into()),
        role_assignment_id: None,
        entry_found: false,
    }
}

fn first_party_peer(vault: &str) -> Peer {
    Peer {
        vaults: vec![vault.into()],
        principals: vec![FP.into()],
        live: true,
        ..Default::default()
    }
}

#[test]
fn an_account_owned_by_another_resource_gets_no_write_at_all() {
    let mut w = World::new(IdentityType::FirstParty);
    w.spec.deletion_policy = DeletionPolicy::Delete;
    let mut a = account("FirstPartyIdentity");
    a.key_vault_key_uri = Some("https://vault.example/keys/other".into());
    a.tags = Owner {
        name: "payments".into(),
        ..me()
    }
    .tags();
    w.account = AccountState::Found(a);
    w.granted.clear();
    let d = w.decide();
    assert_eq!(d.action, None, "no grant, no PATCH");
    assert_eq!(reason(&d, READY), "False/OwnedByAnotherResource");
    let msg = conditions::find(&d.status.conditions, READY)
        .unwrap()
        .message
        .clone();
    assert!(msg.contains("team-a/payments"), "{msg}");
}

#[test]
fn an_unowned_cmk_account_is_not_touched_without_adoption() {
    let mut w = World::new(IdentityType::FirstParty);
    let mut a = account("FirstPartyIdentity");
    a.key_vault_key_uri = Some("https://vault.example/keys/other".into());
    a.tags.clear();
    w.account = AccountState::Found(a);
    // A status claiming the operator created it is a record, not an authority.
    w.status.created_by_operator = true;
    let d = w.decide();
    assert_eq!(
        (reason(&d, READY).as_str(), d.action),
        ("False/AccountNotOwned", None)
    );
    w.spec.reconcile_policy = ReconcilePolicy::ObserveOnly;
    let d = w.decide();
    assert_eq!(
        reason(&d, READY),
        "False/DriftDetected",
        "observing reports the other key"
    );
    assert_eq!(d.action, None);
}

#[test]
fn adopting_another_key_or_identity_needs_consent_and_keeps_the_old_version() {
    let mut w = World::new(IdentityType::UserAssigned);
    w.spec.adopt_existing_account = true;
    let mut a = account("FirstPartyIdentity");
    a.key_vault_key_uri = Some("https://vault.example/keys/other".into());
    a.key_version_in_use = Some("o7".into());
    a.tags.clear();
    w.account = AccountState::Found(a);
    let d = w.decide();
    assert_eq!(
        (reason(&d, READY).as_str(), d.action.clone()),
        ("False/AdoptionNeedsConsent", None)
    );
    let msg = conditions::find(&d.status.conditions, READY)
        .unwrap()
        .message
        .clone();
    assert!(
        msg.contains("replaceKey") && msg.contains("replaceIdentity"),
        "{msg}"
    );
    w.spec.adoption_consent.replace_key = true;
    assert_eq!(
        w.decide().action,
        None,
        "the identity change is not consented yet"
    );
    w.spec.adoption_consent.replace_identity = true;
    let d = w.decide();
    assert_eq!(d.action, Some(Action::TagAccount(me())));
    let kept = &d.status.retained_key_versions;
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (kept[0].key_uri.as_str(), kept[0].version.as_str()),
        ("https://vault.example/keys/other", "o7")
    );
}

#[test]
fn a_missing_account_is_reported_and_recreated_once_per_annotation_value() {
    let mut w = World::new(IdentityType::FirstParty);
    w.status.account_id = Some("/subscriptions/x/.../databaseAccounts/a".into());
    w.status.created_by_operator = true;
    let d = w.decide();
    assert_eq!(
        (reason(&d, READY).as_str(), d.action.clone(), d.status.phase),
        ("False/AccountMissing", None, Phase::Failed)
    );
    w.recreate = Some("2026-12-01".into());
    let d = w.decide();
    let Some(Action::CreateAccount(c)) = &d.action else {
        panic!("re-created when asked: {:?}", d.action)
    };
    assert_eq!(c.tags, me().tags(), "created with its owner tags");
    assert_eq!(d.status.recreate_token.as_deref(), Some("2026-12-01"));
    // Gone again later: the same annotation value does not re-create twice.
    w.status = d.status;
    w.status.account_id = Some("/subscriptions/x/.../databaseAccounts/a".into());
    assert_eq!(w.decide().action, None);
}

#[test]
fn the_first_party_grant_stays_while_another_resource_needs_it() {
    let mut w = World::new(IdentityType::SystemAssigned);
    w.spec.identity.remove_first_party_grant = true;
    w.status.grants = vec![fp_grant(VAULT)];
    let mut a = account("SystemAssignedIdentity");
    a.system_principal_id = Some("sys".into());
    w.granted.push("sys".into());
    w.account = AccountState::Found(a);
    w.peers = vec![first_party_peer(VAULT)];
    let d = w.decide();
    assert_eq!(
        (reason(&d, READY).as_str(), d.action.clone()),
        ("True/Ready", None)
    );
    assert_eq!(
        d.status.grants.len(),
        1,
        "the record stays: whoever goes last removes it"
    );
    w.peers = vec![first_party_peer(
        "/subscriptions/x/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/other",
    )];
    assert!(
        matches!(w.decide().action, Some(Action::RevokeGrant { .. })),
        "needed on another vault only"
    );
    w.status.grants[0].entry_found = true;
    assert_eq!(
        w.decide().action,
        None,
        "an entry found in place is never removed"
    );
}

#[test]
fn a_grant_made_for_another_resource_is_recorded_as_shared() {
    let mut w = World::new(IdentityType::FirstParty);
    w.account = AccountState::Found(account("FirstPartyIdentity"));
    w.peer_grants = vec![fp_grant(VAULT), fp_grant("/other/vault")];
    let d = w.decide();
    assert_eq!(d.status.grants, vec![fp_grant(VAULT)]);
}

#[test]
fn switching_an_existing_account_to_system_assigned_never_grants_the_first_party() {
    let mut w = World::new(IdentityType::SystemAssigned);
    let mut a = account(&format!("UserAssignedIdentity={UA_ID}"));
    a.user_assigned_ids = vec![UA_ID.into()];
    w.account = AccountState::Found(a);
    w.granted = vec!["ua-principal".into()];
    let d = w.decide();
    assert_eq!(d.action, Some(Action::EnableSystemIdentity));
    assert_eq!(
        reason(&d, IDENTITY_GRANTED),
        "False/WaitingForSystemIdentity"
    );
}

#[test]
fn every_earlier_version_is_tracked_and_one_in_use_elsewhere_stays_enabled() {
    let mut w = World::new(IdentityType::FirstParty);
    w.spec.rotation.disable_previous_version = true;
    w.spec.backup_policy.type_ = BackupPolicyType::Continuous;
    w.spec.backup_policy.continuous_tier = Some(ContinuousTier::Continuous7Days);
    w.status.key_version_in_use = Some("v1".into());
    w.status.key_vault_key_uri = Some(KEY.into());
    for (i, v) in ["v2", "v3"].iter().enumerate() {
        let mut a = account("FirstPartyIdentity");
        a.key_version_in_use = Some((*v).into());
        w.account = AccountState::Found(a);
        w.now = t0() + SignedDuration::from_hours(i as i64);
        let d = w.decide();
        w.status = d.status;
    }
    let kept: Vec<&str> = w
        .status
        .retained_key_versions
        .iter()
        .map(|r| r.version.as_str())
        .collect();
    assert_eq!(kept, ["v1", "v2"], "v1 is not forgotten after v2 -> v3");
    // Seven days of continuous backup outweigh the 24 h grace period.
    w.now = t0() + SignedDuration::from_hours(7 * 24 - 1);
    assert_eq!(w.decide().action, None);
    w.now = t0() + SignedDuration::from_hours(7 * 24 + 2);
    w.peers = vec![Peer {
        versions: vec![(KEY.into(), "v1".into())],
        ..Default::default()
    }];
    let d = w.decide();
    assert_eq!(
        d.action,
        Some(Action::DisableKeyVersion {
            key_uri: KEY.into(),
            version: "v2".into()
        }),
        "v1 is used by another resource: v2 goes first"
    );
    w.peers.clear();
    w.status = d.status;
    assert_eq!(
        w.decide().action,
        Some(Action::DisableKeyVersion {
            key_uri: KEY.into(),
            version: "v1".into()
        })
    );
}

#[test]
fn periodic_retention_counts_when_longer_than_the_grace_period() {
    let mut w = World::new(IdentityType::FirstParty);
    w.spec.backup_policy.periodic_retention_hours = Some(48);
    w.status.key_version_in_use = Some("v1".into());
    let mut a = account("FirstPartyIdentity");
    a.key_version_in_use = Some("v2".into());
    w.account = AccountState::Found(a);
    let d = w.decide();
    assert_eq!(
        d.status.retained_key_versions[0].safe_to_disable_after.0,
        t0() + SignedDuration::from_hours(48)
    );
}

#[test]
fn a_restore_reusing_the_source_identity_or_a_disabled_version_is_refused() {
    let mut w = World::new(IdentityType::UserAssigned);
    w.spec.restore = Some(RestoreSource {
        source_account_id: Some("/subscriptions/s/providers/Microsoft.DocumentDB/locations/eastus/restorableDatabaseAccounts/i".into()),
        timestamp: Some("2026-11-01T12:00:00Z".into()),
    });
    w.restore = Some(RestoreFacts {
        source_name: Some("cmk-demo-ledger".into()),
        source_identities: vec![UA_ID.to_uppercase()],
        key_at_time: None,
    });
    let d = w.decide();
    assert_eq!(
        (reason(&d, READY).as_str(), d.action),
        ("False/RestoreReusesSourceIdentity", None)
    );
    w.restore = Some(RestoreFacts {
        source_name: Some("cmk-demo-ledger".into()),
        source_identities: vec![],
        key_at_time: Some((KEY.into(), "v1".into(), Some(false))),
    });
    let d = w.decide();
    assert_eq!(
        (reason(&d, READY).as_str(), d.action),
        ("False/RestoreKeyVersionDisabled", None)
    );
    w.restore.as_mut().unwrap().key_at_time = Some((KEY.into(), "v1".into(), Some(true)));
    assert!(matches!(w.decide().action, Some(Action::CreateAccount(_))));
}

#[test]
fn the_version_in_use_at_a_time_comes_from_the_tracked_history() {
    let at = |h: i64| Time(t0() + SignedDuration::from_hours(h));
    let kept = |v: &str, h: i64| RetainedKeyVersion {
        key_uri: "https://vault.example/keys/old".into(),
        version: v.into(),
        reason: String::new(),
        retired_at: Some(at(h)),
        safe_to_disable_after: at(h + 24),
        disabled: false,
        kept_because: None,
    };
    let status = CosmosAccountCMKStatus {
        key_vault_key_uri: Some(KEY.into()),
        key_version_in_use: Some("v3".into()),
        retained_key_versions: vec![kept("v1", 10), kept("v2", 20)],
        ..Default::default()
    };
    let version = |h: i64| version_in_use_at(&status, at(h).0).map(|(_, v)| v);
    assert_eq!(version(5).as_deref(), Some("v1"));
    assert_eq!(version(15).as_deref(), Some("v2"));
    assert_eq!(version(25).as_deref(), Some("v3"));
}

#[test]
fn a_version_kept_at_adoption_is_disabled_without_a_rotation_here() {
    let mut w = World::new(IdentityType::FirstParty);
    w.spec.rotation.disable_previous_version = true;
    w.account = AccountState::Found(account("FirstPartyIdentity"));
    w.status.retained_key_versions = vec![RetainedKeyVersion {
        key_uri: "https://vault.example/keys/theirs".into(),
        version: "o7".into(),
        reason: "in use when the account was adopted".into(),
        retired_at: Some(Time(t0())),
        safe_to_disable_after: Time(t0() + SignedDuration::from_hours(24)),
        disabled: false,
        kept_because: None,
    }];
    assert_eq!(w.decide().action, None, "not before its time");
    w.now = t0() + SignedDuration::from_hours(25);
    assert_eq!(
        w.decide().action,
        Some(Action::DisableKeyVersion {
            key_uri: "https://vault.example/keys/theirs".into(),
            version: "o7".into()
        })
    );
    w.spec.rotation.disable_previous_version = false;
    assert_eq!(w.decide().action, None, "opt-in");
}

fn message(d: &Decision, type_: &str) -> String {
    conditions::find(&d.status.conditions, type_)
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

#[test]
fn observe_only_reports_every_difference_not_just_the_first() {
    let mut w = World::new(IdentityType::FirstParty);
    w.spec.reconcile_policy = ReconcilePolicy::ObserveOnly;
    w.granted.clear();
    let mut a = account("SystemAssignedIdentity");
    a.key_vault_key_uri = None;
    a.locations = vec![Location {
        location_name: "West Europe".into(),
        failover_priority: 0,
        is_zone_redundant: false,
    }];
    w.account = AccountState::Found(a);
    let d = w.decide();
    assert_eq!(d.action, None);
    assert_eq!(reason(&d, READY), "False/DriftDetected");
    let msg = message(&d, READY);
    for part in [
        "holds no Get/WrapKey/UnwrapKey grant",
        "defaultIdentity is",
        "has no customer-managed key",
        "region",
    ] {
        assert!(msg.contains(part), "{part:?} missing from {msg}");
    }
    assert!(!msg.contains("keyVaultKeyUri is \"\""), "{msg}");
    assert_eq!(
        reason(&d, IDENTITY_GRANTED),
        "False/WaitingForIdentityGrant"
    );
    assert!(
        d.status.account_id.is_some() && d.status.default_identity.is_some(),
        "the account is still reported"
    );
}

#[test]
fn a_refused_difference_stops_every_write_even_the_key() {
    // Adopting a continuous account without CMK, with the first-party identity:
    // enabling CMK would be irreversible and Azure does not support it.
    let mut w = World::new(IdentityType::FirstParty);
    w.spec.adopt_existing_account = true;
    let mut a = account("FirstPartyIdentity");
    a.key_vault_key_uri = None;
    a.backup = Some(spec_drift::BackupFacts {
        type_: BackupPolicyType::Continuous,
        continuous_tier: None,
        periodic_interval_minutes: None,
        periodic_retention_hours: None,
        migrating: false,
    });
    w.account = AccountState::Found(a);
    let d = w.decide();
    assert_eq!(d.action, None);
    assert_eq!(reason(&d, READY), "False/ChangeRefused");
    assert_eq!(d.status.phase, Phase::Failed);
    assert!(message(&d, READY).contains("first-party"));
}

#[test]
fn a_backup_migration_in_progress_is_waited_for() {
    let mut w = World::new(IdentityType::UserAssigned);
    let mut a = account(&format!("UserAssignedIdentity={UA_ID}"));
    a.user_assigned_ids = vec![UA_ID.to_owned()];
    a.backup = Some(spec_drift::BackupFacts {
        type_: BackupPolicyType::Periodic,
        continuous_tier: None,
        periodic_interval_minutes: Some(240),
        periodic_retention_hours: Some(8),
        migrating: true,
    });
    w.account = AccountState::Found(a);
    let d = w.decide();
    assert_eq!(d.action, None);
    assert_eq!(d.requeue, Requeue::Soon);
    assert_eq!(reason(&d, READY), "False/MigratingToContinuousBackup");
    assert_eq!(d.status.phase, Phase::Provisioning);
}

#[test]
fn a_region_change_is_one_action_with_the_remaining_count() {
    let mut w = World::new(IdentityType::FirstParty);
    w.spec.locations = vec![
        Location {
            location_name: "eastus".into(),
            failover_priority: 0,
            is_zone_redundant: false,
        },
        Location {
            location_name: "westus".into(),
            failover_priority: 1,
            is_zone_redundant: false,
        },
        Location {
            location_name: "northeurope".into(),
            failover_priority: 2,
            is_zone_redundant: false,
        },
    ];
    let mut a = account("FirstPartyIdentity");
    a.locations = vec![Location {
        location_name: "East US".into(),
        failover_priority: 0,
        is_zone_redundant: false,
    }];
    w.account = AccountState::Found(a);
    let d = w.decide();
    assert!(matches!(d.action, Some(Action::SetLocations(ref l)) if l.len() == 2));
    assert_eq!(reason(&d, ACCOUNT_CREATED), "False/AddingRegion");
    assert!(
        message(&d, READY).contains("1 more change"),
        "{}",
        message(&d, READY)
    );
}

#[test]
fn an_account_another_cluster_owns_gets_no_write_at_all() {
    let mut w = World::new(IdentityType::FirstParty);
    let mut a = account("FirstPartyIdentity");
    // The same manifest synced into another cluster (same namespace and name).
    a.tags = Owner {
        cluster: "c2".into(),
        uid: "u-c2".into(),
        ..me()
    }
    .tags();
    w.account = AccountState::Found(a);
    w.granted.clear();
    let d = w.decide();
    assert_eq!(d.action, None, "no grant, no PATCH");
    assert_eq!(reason(&d, READY), "False/OwnedByAnotherCluster");
}

#[test]
fn a_restored_resource_manages_its_account_and_confirms_by_annotation() {
    let mut w = World::new(IdentityType::FirstParty);
    let mut a = account("FirstPartyIdentity");
    a.tags = Owner {
        uid: "u-before-restore".into(),
        ..me()
    }
    .tags();
    w.account = AccountState::Found(a);
    let d = w.decide();
    assert_eq!((reason(&d, READY).as_str(), d.action), ("True/Ready", None));
    let msg = &conditions::find(&d.status.conditions, READY)
        .unwrap()
        .message;
    assert!(
        msg.contains("cosmoscmk.io/confirm-owner=u-before-restore"),
        "{msg}"
    );
    w.confirm_owner = Some("u-wrong".into());
    assert_eq!(w.decide().action, None, "only the tagged uid confirms");
    w.confirm_owner = Some("u-before-restore".into());
    let d = w.decide();
    assert_eq!(d.action, Some(Action::TagAccount(me())));
    assert_eq!(reason(&d, READY), "False/UpdatingOwnerTags");
}

#[test]
fn tags_under_the_previous_cluster_id_move_to_the_current_one() {
    let mut w = World::new(IdentityType::FirstParty);
    let mut a = account("FirstPartyIdentity");
    a.tags = Owner {
        cluster: "default".into(),
        ..me()
    }
    .tags();
    w.account = AccountState::Found(a);
    assert_eq!(
        reason(&w.decide(), READY),
        "False/OwnedByAnotherCluster",
        "not without --previous-cluster-id"
    );
    w.previous_cluster = Some("default");
    assert_eq!(w.decide().action, Some(Action::TagAccount(me())));
}

#[test]
fn adoption_is_judged_before_the_account_is_claimed() {
    // The guide forbids the first party on a continuous-backup account.
    let mut w = World::new(IdentityType::FirstParty);
    w.spec.adopt_existing_account = true;
    let mut a = account("FirstPartyIdentity");
    a.tags.clear();
    a.backup = Some(spec_drift::BackupFacts {
        type_: BackupPolicyType::Continuous,
        continuous_tier: Some(ContinuousTier::Continuous7Days),
        periodic_interval_minutes: None,
        periodic_retention_hours: None,
        migrating: false,
    });
    w.account = AccountState::Found(a);
    w.granted.clear();
    let d = w.decide();
    assert_eq!(d.action, None, "neither tagged nor granted");
    assert_eq!(reason(&d, READY), "False/ChangeRefused");
    // A missing user-assigned identity is refused before the claim too.
    let mut w = World::new(IdentityType::UserAssigned);
    w.spec.adopt_existing_account = true;
    w.ua_principal = None;
    let mut a = account(&format!("UserAssignedIdentity={UA_ID}"));
    a.tags.clear();
    w.account = AccountState::Found(a);
    let d = w.decide();
    assert_eq!(
        (reason(&d, READY).as_str(), d.action),
        ("False/ChangeRefused", None)
    );
}

#[test]
fn a_name_azure_remembers_as_deleted_is_not_reused_without_asking() {
    let mut w = World::new(IdentityType::FirstParty);
    // Status lost (re-applied from Git, restored by a backup tool).
    w.restorable_deleted = Some(Ok(vec!["deleted at 2026-12-01T00:00:00Z".into()]));
    let d = w.decide();
    assert_eq!(
        (reason(&d, READY).as_str(), d.action.clone()),
        ("False/AccountMissing", None)
    );
    w.restorable_deleted = Some(Err("403".into()));
    assert_eq!(w.decide().action, None, "unreadable: nothing created");
    w.restorable_deleted = None;
    assert_eq!(w.decide().action, None, "not read: nothing created");
    w.restorable_deleted = Some(Ok(vec!["deleted".into()]));
    w.recreate = Some("1".into());
    assert!(matches!(w.decide().action, Some(Action::CreateAccount(_))));
}
