//! What other resources in the cluster still need, so that one resource never
//! removes a grant or disables a key version another one relies on. Pure: the
//! controller summarises each other resource from the shared cache (no API call).

use k8s_openapi::jiff::Timestamp;

use crate::api::{CosmosAccountCMKSpec, CosmosAccountCMKStatus, Grant, IdentityType, same_id};

/// The questions a decision asks about the other resources. Asked only by the
/// rare decisions that remove, disable or share something: summarising every
/// other resource up front for every reconcile is O(N) each, O(N²) per
/// convergence, and was most of the operator's CPU at 10,000 accounts. The
/// controller answers from its cache when asked; tests answer from a list.
pub trait Peers: std::fmt::Debug {
    /// Whether any other live resource needs `principal`'s grant on `vault`.
    fn grant_needed(&self, vault: &str, principal: &str) -> bool;
    /// Whether any other resource uses, or still needs, the key version.
    fn version_needed(&self, key_uri: &str, version: &str) -> bool;
    /// A grant record for `principal` on `vault` that another live resource holds.
    fn shared_grant(&self, vault: &str, principal: &str) -> Option<Grant>;
}

/// Other resources summarised up front.
#[derive(Clone, Copy, Debug, Default)]
pub struct PeerList<'a> {
    pub peers: &'a [Peer],
    /// The grant records the live ones hold.
    pub grants: &'a [Grant],
}

impl Peers for PeerList<'_> {
    fn grant_needed(&self, vault: &str, principal: &str) -> bool {
        grant_needed(self.peers, vault, principal)
    }
    fn version_needed(&self, key_uri: &str, version: &str) -> bool {
        version_needed(self.peers, key_uri, version)
    }
    fn shared_grant(&self, vault: &str, principal: &str) -> Option<Grant> {
        self.grants
            .iter()
            .find(|g| g.is_for(vault, principal))
            .cloned()
    }
}

/// Another `CosmosAccountCMK`, as far as sharing is concerned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peer {
    /// Vaults it uses or holds grants on; empty when unknown (then it may use any).
    pub vaults: Vec<String>,
    /// Principals it needs on those vaults.
    pub principals: Vec<String>,
    /// Its principal is not known yet (a user-assigned identity not resolved):
    /// it may need any principal.
    pub principal_unknown: bool,
    /// Key versions (versionless key URI, version) it uses or still needs.
    pub versions: Vec<(String, String)>,
    /// Still live (not being deleted): only live resources keep grants alive.
    pub live: bool,
}

impl Peer {
    /// Summarises another resource: `binding_vault` is the vault of the binding it
    /// names, when that binding is in the cache.
    pub fn of(
        spec: &CosmosAccountCMKSpec,
        status: Option<&CosmosAccountCMKStatus>,
        binding_vault: Option<&str>,
        first_party: &str,
        live: bool,
        now: Timestamp,
    ) -> Peer {
        let empty = CosmosAccountCMKStatus::default();
        let status = status.unwrap_or(&empty);
        let mut vaults: Vec<String> = binding_vault.into_iter().map(str::to_owned).collect();
        vaults.extend(status.grants.iter().filter_map(|g| g.vault_id.clone()));
        let mut principals = Vec::new();
        let still_first_party = status
            .default_identity
            .as_deref()
            .is_none_or(|d| d.eq_ignore_ascii_case("FirstPartyIdentity"));
        if spec.identity.type_ == IdentityType::FirstParty || still_first_party {
            principals.push(first_party.to_owned());
        }
        principals.extend(status.identity_principal_id.clone());
        let principal_unknown = spec.identity.type_ == IdentityType::UserAssigned
            && status.identity_principal_id.is_none();
        let mut versions: Vec<(String, String)> = Vec::new();
        if let (Some(uri), Some(v)) = (&status.key_vault_key_uri, &status.key_version_in_use) {
            versions.push((uri.clone(), v.clone()));
        }
        versions.extend(
            status
                .retained_key_versions
                .iter()
                .filter(|r| !r.disabled && now < r.safe_to_disable_after.0)
                .map(|r| (r.key_uri.clone(), r.version.clone())),
        );
        Peer {
            vaults,
            principals,
            principal_unknown,
            versions,
            live,
        }
    }

    fn on_vault(&self, vault: &str) -> bool {
        self.vaults.is_empty() || self.vaults.iter().any(|v| same_id(v, vault))
    }

    /// Whether this peer needs `principal`'s grant on `vault`.
    pub fn needs_grant(&self, vault: &str, principal: &str) -> bool {
        self.live
            && self.on_vault(vault)
            && (self.principal_unknown
                || self
                    .principals
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(principal)))
    }

    /// Whether this peer uses, or still needs for its backups, a key version.
    pub fn needs_version(&self, key_uri: &str, version: &str) -> bool {
        self.versions
            .iter()
            .any(|(u, v)| same_id(u, key_uri) && v.eq_ignore_ascii_case(version))
    }
}

/// Whether any peer needs `principal` on `vault`.
pub fn grant_needed(peers: &[Peer], vault: &str, principal: &str) -> bool {
    peers.iter().any(|p| p.needs_grant(vault, principal))
}

/// Whether any peer uses or still needs the key version.
pub fn version_needed(peers: &[Peer], key_uri: &str, version: &str) -> bool {
    peers.iter().any(|p| p.needs_version(key_uri, version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AccountIdentity, Grant, PermissionModel, RetainedKeyVersion};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const FP: &str = "fp";
    const V1: &str = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1";
    const V2: &str = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv2";

    fn spec(t: IdentityType) -> CosmosAccountCMKSpec {
        let mut s: CosmosAccountCMKSpec = serde_json::from_value(serde_json::json!({
            "subscriptionId": "00000000-0000-0000-0000-000000000000",
            "resourceGroup": "rg", "accountName": "acct",
            "locations": [{"locationName": "eastus", "failoverPriority": 0}],
            "keyVaultBindingRef": {"name": "b"},
        }))
        .unwrap();
        s.identity = AccountIdentity {
            type_: t,
            user_assigned_identity_id: (t == IdentityType::UserAssigned).then(|| "/x".into()),
            remove_first_party_grant: false,
        };
        s
    }

    #[test]
    fn a_first_party_account_needs_the_first_party_on_its_vault_only() {
        let p = Peer::of(
            &spec(IdentityType::FirstParty),
            None,
            Some(V1),
            FP,
            true,
            Timestamp::now(),
        );
        assert!(grant_needed(std::slice::from_ref(&p), V1, FP));
        assert!(grant_needed(
            std::slice::from_ref(&p),
            &V1.to_uppercase(),
            "FP"
        ));
        assert!(!grant_needed(std::slice::from_ref(&p), V2, FP));
        assert!(!grant_needed(std::slice::from_ref(&p), V1, "someone"));
        let dead = Peer { live: false, ..p };
        assert!(
            !grant_needed(&[dead], V1, FP),
            "a resource being deleted keeps nothing alive"
        );
    }

    #[test]
    fn unknown_vaults_or_principals_count_as_needing() {
        let p = Peer::of(
            &spec(IdentityType::UserAssigned),
            None,
            None,
            FP,
            true,
            Timestamp::now(),
        );
        assert!(p.principal_unknown);
        assert!(grant_needed(&[p], V2, "anyone"));
    }

    #[test]
    fn a_switched_system_assigned_account_no_longer_needs_the_first_party() {
        let status = CosmosAccountCMKStatus {
            default_identity: Some("SystemAssignedIdentity".into()),
            identity_principal_id: Some("sys".into()),
            grants: vec![Grant {
                model: PermissionModel::AccessPolicy,
                principal_id: FP.into(),
                vault_id: Some(V2.into()),
                role_assignment_id: None,
                entry_found: false,
            }],
            ..Default::default()
        };
        let p = Peer::of(
            &spec(IdentityType::SystemAssigned),
            Some(&status),
            Some(V1),
            FP,
            true,
            Timestamp::now(),
        );
        assert!(!grant_needed(std::slice::from_ref(&p), V1, FP));
        assert!(grant_needed(std::slice::from_ref(&p), V1, "sys"));
        assert!(
            grant_needed(std::slice::from_ref(&p), V2, "sys"),
            "vaults it holds grants on count"
        );
        let before_switch = Peer::of(
            &spec(IdentityType::SystemAssigned),
            None,
            Some(V1),
            FP,
            true,
            Timestamp::now(),
        );
        assert!(grant_needed(&[before_switch], V1, FP));
    }

    #[test]
    fn versions_in_use_or_inside_their_window_are_needed() {
        let now = Timestamp::now();
        let later = Time(
            now.checked_add(k8s_openapi::jiff::SignedDuration::from_hours(1))
                .unwrap(),
        );
        let earlier = Time(
            now.checked_sub(k8s_openapi::jiff::SignedDuration::from_hours(1))
                .unwrap(),
        );
        let kept = |v: &str, t: &Time| RetainedKeyVersion {
            key_uri: "https://kv.vault.azure.net/keys/k".into(),
            version: v.into(),
            reason: String::new(),
            retired_at: None,
            safe_to_disable_after: t.clone(),
            disabled: false,
            kept_because: None,
        };
        let status = CosmosAccountCMKStatus {
            key_vault_key_uri: Some("https://kv.vault.azure.net/keys/k".into()),
            key_version_in_use: Some("v3".into()),
            retained_key_versions: vec![kept("v1", &earlier), kept("v2", &later)],
            ..Default::default()
        };
        let p = Peer::of(
            &spec(IdentityType::FirstParty),
            Some(&status),
            None,
            FP,
            false,
            now,
        );
        let peers = [p];
        let k = "https://KV.vault.azure.net/keys/k/";
        assert!(
            version_needed(&peers, k, "v3"),
            "in use, even by a resource being deleted"
        );
        assert!(version_needed(&peers, k, "v2"), "inside its restore window");
        assert!(!version_needed(&peers, k, "v1"), "past its window");
        assert!(!version_needed(
            &peers,
            "https://kv.vault.azure.net/keys/other",
            "v3"
        ));
    }
}
