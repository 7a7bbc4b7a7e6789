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
