//! The observe stage of an account's reconcile: what the state machine needs
//! to see, read from the shared caches first and from Azure only as far as
//! the situation needs (one poll while Azure works, one account read when
//! settled, the grant check only before a change).

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::account::{account_ref, binding_state, owner_of, poll};
use super::cache_peers::CachePeers;
use super::context::Context;
use super::error::Error;
use super::grant_gate::Turn;
use crate::api::{
    CONFIRM_OWNER_ANNOTATION, CosmosAccountCMK, CosmosAccountCMKStatus, Phase, RECREATE_ANNOTATION,
    ReconcilePolicy,
};
use crate::azure::AzurePort;
use crate::reconcile::account::{
    AccountState, BindingState, Observed, OperationState, RestoreFacts, principals_to_check,
    proven_grant,
};

/// Everything one reconcile saw, owned; `observed` lends it to `decide`.
pub(super) struct Seen {
    pub status: CosmosAccountCMKStatus,
    pub binding: BindingState,
    pub operation: Option<OperationState>,
    pub provider_registered: bool,
    pub user_assigned_principal: Option<String>,
    pub account: AccountState,
    /// Of the principals the account needs, those holding the grant.
    pub granted: Vec<String>,
    /// The binding's vault, whose grant cache the act stage keeps current.
    pub grants_vault: Option<String>,
    /// This account's turn at its vault's grants, held only while a grant
    /// may follow (one account at a time per vault).
    pub turn: Option<Turn>,
    pub now: Timestamp,
    pub peers: CachePeers,
    pub restore: Option<RestoreFacts>,
    /// Deleted accounts of this name Azure keeps restorable, read before a create.
    pub restorable_deleted: Option<Result<Vec<String>, String>>,
}

impl Seen {
    /// The state machine's view of what was seen.
    pub fn observed<'a, A>(
        &'a self,
        obj: &'a CosmosAccountCMK,
        ctx: &'a Context<A>,
    ) -> Observed<'a> {
        Observed {
            spec: &obj.spec,
            generation: obj.metadata.generation,
            status: &self.status,
            binding: self.binding.clone(),
            provider_registered: self.provider_registered,
            first_party_principal: &ctx.settings.first_party_principal,
            user_assigned_principal: self.user_assigned_principal.clone(),
            granted: &self.granted,
            account: self.account.clone(),
            operation: self.operation.clone(),
            now: self.now,
            me: owner_of(obj, ctx),
            previous_cluster: ctx.settings.previous_cluster_id.as_deref(),
            recreate: obj.annotations().get(RECREATE_ANNOTATION).cloned(),
            confirm_owner: obj.annotations().get(CONFIRM_OWNER_ANNOTATION).cloned(),
            restorable_deleted: self.restorable_deleted.clone(),
            peers: &self.peers,
            restore: self.restore.clone(),
        }
    }
}

pub(super) async fn observe<A: AzurePort>(
    obj: &CosmosAccountCMK,
    ctx: &Context<A>,
    azure: &A,
) -> Result<Seen, Error> {
    let status = obj.status.clone().unwrap_or_default();
    let target = account_ref(obj);
    let binding = binding_state(obj, ctx).await?;
    let ready_binding = matches!(binding, BindingState::Ready { .. });

    // Settled at this generation: one GET of the account is enough to see drift,
    // rotation and revocation (Azure reports a lost grant on the account itself).
    let settled = status.phase == Phase::Ready
        && status.observed_generation == obj.metadata.generation
        && status.pending_operation.is_none()
        && ready_binding;

    let operation = match &status.pending_operation {
        Some(op) => Some(poll(ctx, azure, op).await?),
        None => None,
    };
    // While Azure is still working on an operation the state machine only waits
    // (it looks at nothing else): one poll is the whole reconcile.
    let waiting = operation == Some(OperationState::InProgress);
    let settled = settled || waiting;
    let provider_registered =
        settled || !ready_binding || azure.provider_registered(&target.subscription_id).await?;
    let user_assigned_principal = match (&obj.spec.identity.user_assigned_identity_id, settled) {
        (Some(_), true) => status.identity_principal_id.clone(),
        (Some(id), false) if ready_binding => azure.user_assigned_principal(id).await?,
        _ => None,
    };
    // Until the binding is Ready the state machine only waits; the account is
    // read then only to report a revocation of one it has seen before.
    let nothing_to_see = !ready_binding && status.account_id.is_none();
    let account = match waiting || nothing_to_see {
        true => AccountState::NotFound,
        false => match azure.get_account(&target).await? {
            Some(a) => AccountState::Found(a),
            None => AccountState::NotFound,
        },
    };
    // An account creation that just succeeded proved its identity's grant.
    let proven = match (&operation, &status.pending_operation) {
        (Some(OperationState::Succeeded), Some(op)) => proven_grant(
            op.kind,
            &obj.spec,
            &ctx.settings.first_party_principal,
            user_assigned_principal.as_deref(),
        ),
        _ => None,
    };
    let mut turn = None;
    let grants_vault = match &binding {
        BindingState::Ready { vault_id, .. } => Some(vault_id.clone()),
        _ => None,
    };
    let granted = match (&binding, settled, proven) {
        (BindingState::Ready { .. }, true, _) => {
            status.identity_principal_id.iter().cloned().collect()
        }
        (BindingState::Ready { .. }, false, Some(principal)) => vec![principal],
        (
            BindingState::Ready {
                vault_id, model, ..
            },
            false,
            None,
        ) => {
            let wanted = principals_to_check(
                &obj.spec,
                &account,
                &ctx.settings.first_party_principal,
                user_assigned_principal.as_deref(),
            );
            turn = Some(ctx.grants.enter(vault_id).await);
            let (mut known, unknown) = ctx.grants.split(vault_id, &wanted);
            if !unknown.is_empty() {
                let found = azure.granted_principals(vault_id, *model, &unknown).await?;
                ctx.grants.confirm(vault_id, &found);
                known.extend(found);
            }
            known
        }
        _ => Vec::new(),
    };

    let now = ctx.settings.clock.now();
    let peers = CachePeers::new(ctx, obj, now);
    let restore = match (&obj.spec.restore, &account, ready_binding) {
        (Some(r), AccountState::NotFound, true) if status.account_id.is_none() && !waiting => {
            Some(restore_facts(ctx, azure, r).await?)
        }
        _ => None,
    };
    // About to create: Azure's memory of a deleted account of this name
    // decides, not the status (which a re-apply or a backup tool may drop).
    let creating = ready_binding
        && !waiting
        && matches!(account, AccountState::NotFound)
        && status.account_id.is_none()
        && obj.spec.reconcile_policy == ReconcilePolicy::Manage;
    let restorable_deleted = match creating {
        false => None,
        // A refused read is reported like any Azure error (an
        // AuthorizationFailed names the missing action); nothing is created.
        true => Some(Ok(azure
            .restorable_accounts(&target.subscription_id)
            .await?
            .into_iter()
            .filter(|r| {
                r.deletion_time.is_some() && r.account_name.eq_ignore_ascii_case(&target.name)
            })
            .map(|r| format!("deleted at {}", r.deletion_time.unwrap_or_default()))
            .collect())),
    };
    Ok(Seen {
        restorable_deleted,
        status,
        binding,
        operation,
        provider_registered,
        user_assigned_principal,
        account,
        granted,
        grants_vault,
        turn,
        now,
        peers,
        restore,
    })
}

/// What the restore's source looked like: its name (from Azure), the identities
/// it has (in Azure, and the one its resource names, when it is in the cluster),
/// and the key version it used at the restore time with its state in Key Vault
/// (when the operator tracked the source).
async fn restore_facts<A: AzurePort>(
    ctx: &Context<A>,
    azure: &A,
    restore: &crate::api::RestoreSource,
) -> Result<RestoreFacts, Error> {
    let mut facts = RestoreFacts::default();
    let Some(source_id) = &restore.source_account_id else {
        return Ok(facts);
    };
    facts.source_name = azure.restorable_account_name(source_id).await?;
    let Some(name) = &facts.source_name else {
        return Ok(facts);
    };
    let source = ctx
        .accounts
        .state()
        .into_iter()
        .find(|a| a.spec.account_name.eq_ignore_ascii_case(name));
    let Some(source) = source else {
        // A source made outside this cluster (by hand, Terraform, another
        // cluster): its identities are read from Azure, where account names
        // are unique, in the restorable source's subscription.
        if let Some(sub) = source_id.split('/').nth(2) {
            let live = azure.accounts_in_subscription(sub).await?;
            if let Some(a) = live.into_iter().find(|a| {
                a.id.rsplit('/')
                    .next()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            }) {
                facts.source_identities.extend(a.user_assigned_ids);
            }
        }
        return Ok(facts);
    };
    facts
        .source_identities
        .extend(source.spec.identity.user_assigned_identity_id.clone());
    if let Some(a) = azure.get_account(&account_ref(&source)).await? {
        facts.source_identities.extend(a.user_assigned_ids);
    }
    let when = restore
        .timestamp
        .as_deref()
        .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok());
    if let (Some(when), Some(status)) = (when, &source.status)
        && let Some((uri, version)) = crate::reconcile::account::version_in_use_at(status, when)
    {
        let enabled = azure.key_version_enabled(&uri, &version).await?;
        facts.key_at_time = Some((uri, version, enabled));
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::runtime::reflector::{self, Store};
    use kube::runtime::watcher;

    use super::*;
    use crate::api::conditions::{self, READY};
    use crate::api::{KeyVaultBinding, KeyVaultBindingStatus, PendingOperation, PermissionModel};
    use crate::controller::context::Settings;
    use crate::controller::fake_azure::FakeAzure;
    use crate::controller::listed::listed;
    use crate::reconcile::account::AccountFacts;

    const NS: &str = "team-a";
    const VAULT: &str = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv";

    fn account(status: Option<CosmosAccountCMKStatus>) -> CosmosAccountCMK {
        let mut obj: CosmosAccountCMK = serde_saphyr::from_str(include_str!(
            "../../deploy/examples/10-account-first-party.yaml"
        ))
        .expect("example parses");
        obj.metadata.namespace = Some(NS.into());
        obj.metadata.generation = Some(1);
        obj.metadata.uid = Some("uid-orders".into());
        obj.status = status;
        obj
    }

    fn ready_binding(name: &str) -> KeyVaultBinding {
        let now = Time(Timestamp::now());
        let mut b: KeyVaultBinding = serde_saphyr::from_str(include_str!(
            "../../deploy/examples/00-binding-access-policy.yaml"
        ))
        .expect("example parses");
        b.metadata.name = Some(name.into());
        b.metadata.namespace = Some(NS.into());
        b.metadata.generation = Some(1);
        b.spec.vault_resource_id = VAULT.into();
        b.spec.key.name = "cmk".into();
        b.status = Some(KeyVaultBindingStatus {
            conditions: vec![conditions::condition(
                READY,
                "True",
                "KeyReady",
                "",
                Some(1),
                now,
            )],
            observed_generation: Some(1),
            permission_model: Some(PermissionModel::AccessPolicy),
            key_uri: Some("https://kv.vault.azure.net/keys/cmk".into()),
            ..Default::default()
        });
        b
    }

    /// A context over `azure` whose binding cache holds `bindings` (no API
    /// server: the client is only called on a cache miss, which fails here).
    fn context(azure: FakeAzure, bindings: Vec<KeyVaultBinding>) -> Context<FakeAzure> {
        context_over(azure, bindings, "http://127.0.0.1:9")
    }

    /// An API server on loopback that answers a GET of `in_api` (a binding
    /// the cache has not shown yet) and 404 for anything else: the narrow
    /// stand-in for the confirm-on-miss read.
    async fn api_holding(in_api: Option<KeyVaultBinding>) -> String {
        use axum::http::StatusCode;
        let answer = move |uri: axum::http::Uri| {
            let found = in_api.clone().filter(|b| {
                uri.path().ends_with(&format!(
                    "/namespaces/{NS}/keyvaultbindings/{}",
                    b.metadata.name.as_deref().unwrap_or_default()
                ))
            });
            async move {
                match found {
                    Some(b) => (StatusCode::OK, axum::Json(serde_json::json!(b))),
                    None => (
                        StatusCode::NOT_FOUND,
                        axum::Json(serde_json::json!({
                            "kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Failure", "reason": "NotFound", "code": 404,
                            "message": "not found",
                        })),
                    ),
                }
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let app = axum::Router::new().fallback(answer);
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn context_over(
        azure: FakeAzure,
        bindings: Vec<KeyVaultBinding>,
        api: &str,
    ) -> Context<FakeAzure> {
        let config = kube::Config::new(api.parse().expect("url"));
        let client = kube::Client::try_from(config).expect("client");
        let (reader, mut writer) = reflector::store();
        for b in bindings {
            writer.apply_watcher_event(&watcher::Event::Apply(b));
        }
        let accounts: Store<CosmosAccountCMK> = reflector::store().0;
        let settings = Settings {
            first_party_principal: "first-party".into(),
            ..Settings::default()
        };
        let listed = [listed().1, listed().1];
        Context::new(
            client,
            azure,
            settings,
            reader,
            accounts,
            listed,
            Arc::default(),
        )
    }

    fn found() -> AccountFacts {
        AccountFacts {
            id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DocumentDB/databaseAccounts/a".into(),
            provisioning_state: "Succeeded".into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_settled_account_costs_one_account_read() {
        let obj = account(Some(CosmosAccountCMKStatus {
            phase: Phase::Ready,
            observed_generation: Some(1),
            identity_principal_id: Some("first-party".into()),
            ..Default::default()
        }));
        let ctx = context(
            FakeAzure {
                account: Some(found()),
                ..Default::default()
            },
            vec![ready_binding(&obj.spec.key_vault_binding_ref.name)],
        );
        let seen = observe(&obj, &ctx, &ctx.azure).await.expect("observed");
        assert_eq!(ctx.azure.calls(), ["get_account"]);
        assert_eq!(
            seen.granted,
            ["first-party"],
            "the grant the status records"
        );
        assert!(seen.turn.is_none(), "no grant turn taken when settled");
    }

    #[tokio::test]
    async fn an_operation_in_flight_costs_one_poll() {
        let obj = account(Some(CosmosAccountCMKStatus {
            pending_operation: Some(PendingOperation {
                kind: crate::api::OperationKind::CreateAccount,
                poll_url: "https://management.azure.com/op".into(),
                started_at: Time(Timestamp::now()),
                retry_after_ms: None,
            }),
            ..Default::default()
        }));
        let ctx = context(
            FakeAzure {
                operation: Some(OperationState::InProgress),
                ..Default::default()
            },
            vec![ready_binding(&obj.spec.key_vault_binding_ref.name)],
        );
        let seen = observe(&obj, &ctx, &ctx.azure).await.expect("observed");
        assert_eq!(ctx.azure.calls(), ["poll"]);
        assert_eq!(seen.account, AccountState::NotFound);
    }

    #[tokio::test]
    async fn a_binding_status_naming_another_key_than_its_spec_is_not_used() {
        let obj = account(None);
        let mut b = ready_binding(&obj.spec.key_vault_binding_ref.name);
        // A /status patch aiming the account at another team's key.
        b.status.as_mut().expect("status").key_uri =
            Some("https://team-b-kv.vault.azure.net/keys/payroll".into());
        let ctx = context(FakeAzure::default(), vec![b]);
        let seen = observe(&obj, &ctx, &ctx.azure).await.expect("observed");
        let BindingState::NotReady { message } = &seen.binding else {
            panic!("not used: {:?}", seen.binding)
        };
        assert!(message.contains("not the key its spec names"), "{message}");
        assert!(ctx.azure.calls().is_empty(), "{:?}", ctx.azure.calls());
    }

    #[tokio::test]
    async fn a_new_account_without_its_binding_reads_nothing_in_azure() {
        let obj = account(None);
        let api = api_holding(None).await;
        let ctx = context_over(FakeAzure::default(), vec![], &api);
        let seen = observe(&obj, &ctx, &ctx.azure).await.expect("observed");
        assert!(ctx.azure.calls().is_empty(), "{:?}", ctx.azure.calls());
        assert_eq!(seen.binding, BindingState::Missing);
    }

    /// Applied together, the account can be reconciled before the bindings'
    /// watch shows its binding: a miss is confirmed by a GET, so the account
    /// waits for a binding being set up instead of warning it is missing.
    #[tokio::test]
    async fn a_binding_the_cache_has_not_shown_yet_is_read_not_reported_missing() {
        let obj = account(None);
        let mut just_applied = ready_binding(&obj.spec.key_vault_binding_ref.name);
        just_applied.status = None;
        let api = api_holding(Some(just_applied)).await;
        let ctx = context_over(FakeAzure::default(), vec![], &api);
        let seen = observe(&obj, &ctx, &ctx.azure).await.expect("observed");
        assert_eq!(seen.binding, BindingState::Updating);
        assert!(ctx.azure.calls().is_empty(), "{:?}", ctx.azure.calls());
    }

    #[tokio::test]
    async fn a_new_account_checks_provider_account_grant_and_azures_memory_then_trusts_the_grant_cache()
     {
        let obj = account(None);
        let ctx = context(
            FakeAzure {
                provider_registered: true,
                granted: vec!["first-party".into()],
                ..Default::default()
            },
            vec![ready_binding(&obj.spec.key_vault_binding_ref.name)],
        );
        let seen = observe(&obj, &ctx, &ctx.azure).await.expect("observed");
        assert_eq!(
            ctx.azure.calls(),
            [
                "provider_registered",
                "get_account",
                "granted_principals",
                "restorable_accounts"
            ]
        );
        assert_eq!(seen.granted, ["first-party"]);
        assert_eq!(seen.restorable_deleted, Some(Ok(vec![])));
        assert!(
            seen.turn.is_some(),
            "the vault's grant turn is held for a grant"
        );
        drop(seen);
        // The grant just confirmed is cached for the vault: not asked again.
        observe(&obj, &ctx, &ctx.azure).await.expect("observed");
        assert_eq!(
            ctx.azure.calls(),
            [
                "provider_registered",
                "get_account",
                "granted_principals",
                "restorable_accounts",
                "provider_registered",
                "get_account",
                "restorable_accounts"
            ]
        );
    }
}
