//! The other accounts as sharing sees them (`crate::reconcile::sharing`),
//! answered from the shared caches only when a decision asks: most reconciles
//! never ask, and summarising all N accounts for each of them made
//! convergence O(N²) (at 10,000 accounts it was most of the operator's CPU
//! and, through 32 workers' allocations, most of its memory).

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use super::context::Context;
use crate::api::{CosmosAccountCMK, Grant, KeyVaultBinding};
use crate::reconcile::sharing::{Peer, Peers};

pub struct CachePeers {
    accounts: Store<CosmosAccountCMK>,
    bindings: Store<KeyVaultBinding>,
    /// The asking resource, never its own peer.
    this: Option<String>,
    first_party: String,
    now: Timestamp,
}

impl CachePeers {
    pub fn new<A>(ctx: &Context<A>, this: &CosmosAccountCMK, now: Timestamp) -> Self {
        CachePeers {
            accounts: ctx.accounts.clone(),
            bindings: ctx.bindings.clone(),
            this: this.metadata.uid.clone(),
            first_party: ctx.settings.first_party_principal.clone(),
            now,
        }
    }

    /// Every other account, summarised.
    fn others(&self) -> impl Iterator<Item = Peer> + '_ {
        self.accounts
            .state()
            .into_iter()
            .filter(|o| o.metadata.uid != self.this)
            .map(|o| self.summary(&o))
    }

    fn summary(&self, other: &CosmosAccountCMK) -> Peer {
        let ns = other.namespace().unwrap_or_default();
        let vault = self
            .bindings
            .get(
                &ObjectRef::<KeyVaultBinding>::new(&other.spec.key_vault_binding_ref.name)
                    .within(&ns),
            )
            .map(|b| b.spec.vault_resource_id.clone());
        Peer::of(
            &other.spec,
            other.status.as_ref(),
            vault.as_deref(),
            &self.first_party,
            other.metadata.deletion_timestamp.is_none(),
            self.now,
        )
    }
}

impl Peers for CachePeers {
    fn grant_needed(&self, vault: &str, principal: &str) -> bool {
        self.others().any(|p| p.needs_grant(vault, principal))
    }

    fn version_needed(&self, key_uri: &str, version: &str) -> bool {
        self.others().any(|p| p.needs_version(key_uri, version))
    }

    fn shared_grant(&self, vault: &str, principal: &str) -> Option<Grant> {
        self.accounts
            .state()
            .into_iter()
            .filter(|o| o.metadata.uid != self.this && o.metadata.deletion_timestamp.is_none())
            .find_map(|o| {
                let s = o.status.as_ref()?;
                s.grants
                    .iter()
                    .find(|g| g.is_for(vault, principal))
                    .cloned()
            })
    }
}

impl std::fmt::Debug for CachePeers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachePeers")
            .field("accounts", &self.accounts.len())
            .field("this", &self.this)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CosmosAccountCMKStatus, Grant};
    use crate::controller::context::Settings;
    use crate::controller::fake_azure::FakeAzure;
    use crate::controller::listed::listed;
    use kube::runtime::reflector;
    use kube::runtime::watcher;

    const KEY: &str = "https://kv.vault.azure.net/keys/cmk";
    const VAULT: &str = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv";

    fn account(name: &str, version: &str, deleting: bool) -> CosmosAccountCMK {
        let mut a: CosmosAccountCMK = serde_saphyr::from_str(include_str!(
            "../../deploy/examples/10-account-first-party.yaml"
        ))
        .expect("example parses");
        a.metadata.name = Some(name.into());
        a.metadata.namespace = Some("ns".into());
        a.metadata.uid = Some(format!("uid-{name}"));
        if deleting {
            a.metadata.deletion_timestamp = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()),
            );
        }
        a.status = Some(CosmosAccountCMKStatus {
            key_vault_key_uri: Some(KEY.into()),
            key_version_in_use: Some(version.into()),
            identity_principal_id: Some(format!("principal-{name}")),
            grants: vec![Grant {
                model: crate::api::PermissionModel::AccessPolicy,
                principal_id: format!("principal-{name}"),
                vault_id: Some(VAULT.into()),
                role_assignment_id: None,
                entry_found: false,
            }],
            ..Default::default()
        });
        a
    }

    /// The answers the destructive rules rely on, read from the cache when
    /// asked: another account's version and grant are needed, the asking
    /// account is never its own peer, and one being deleted keeps its key
    /// version (its backups) but no grant.
    #[tokio::test]
    async fn other_accounts_answer_from_the_cache() {
        let (accounts, mut writer) = reflector::store();
        for a in [
            account("asking", "v0", false),
            account("other", "v1", false),
            account("leaving", "v2", true),
        ] {
            writer.apply_watcher_event(&watcher::Event::Apply(a));
        }
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let ctx = Context::new(
            kube::Client::try_from(config).expect("client"),
            FakeAzure::default(),
            Settings {
                first_party_principal: "first-party".into(),
                ..Settings::default()
            },
            reflector::store().0,
            accounts,
            [listed().1, listed().1],
            std::sync::Arc::default(),
        );
        let peers = CachePeers::new(&ctx, &account("asking", "v0", false), Timestamp::now());
        assert!(peers.version_needed(KEY, "v1"), "another account's version");
        assert!(
            peers.version_needed(KEY, "v2"),
            "one being deleted still uses its version"
        );
        assert!(
            !peers.version_needed(KEY, "v0"),
            "the asking account is not its own peer"
        );
        assert!(peers.grant_needed(VAULT, "principal-other"));
        assert!(
            !peers.grant_needed(VAULT, "principal-leaving"),
            "only live ones keep grants"
        );
        assert!(!peers.grant_needed(VAULT, "principal-asking"));
        assert!(peers.shared_grant(VAULT, "principal-other").is_some());
        assert!(peers.shared_grant(VAULT, "principal-leaving").is_none());
    }
}
