//! The tenancy boundary: which namespaces may use the operator, and which
//! Azure scopes each may target. The platform team decides it (the file of
//! `cmk-operator run --tenancy-config`, the Helm value `tenancy.namespaces`);
//! namespace owners cannot widen it. Without a policy no namespace may use the
//! operator at all.
//!
//! Pure: parsing, validation and the check, no I/O.
//!
//! ```yaml
//! namespaces:
//!   - namespace: team-a          # exact name, or "*" for every namespace not listed
//!     operatorIdentity: true     # may act with the operator's own Azure identity
//!     scopes:                    # ARM id prefixes this namespace may target
//!       - /subscriptions/<sub>/resourceGroups/team-a
//!       - /subscriptions/<sub>/resourceGroups/kv/providers/Microsoft.KeyVault/vaults/team-a-kv
//! ```

use serde::Deserialize;

use crate::api::{CosmosAccountCMKSpec, KeyVaultBindingSpec};

/// Where a platform team allows a namespace, for messages.
const HOW_TO_ALLOW: &str = "the Helm value tenancy.namespaces, or the operator's --tenancy-config file (CMK_TENANCY_CONFIG)";

/// Which namespaces may use the operator and what each may target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenancyPolicy {
    /// One entry per namespace; `"*"` applies to every namespace without an
    /// entry of its own (an exact entry wins over it entirely).
    #[serde(default)]
    pub namespaces: Vec<NamespaceAllowance>,
}

/// What one namespace may do.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceAllowance {
    /// The namespace's exact name, or `"*"`.
    pub namespace: String,
    /// Whether resources of this namespace may act with the operator's own
    /// Azure identity; when false they must name a `spec.credentialRef`.
    #[serde(default)]
    pub operator_identity: bool,
    /// ARM resource id prefixes the namespace's resources may target.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// Why a tenancy configuration was refused at load.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("tenancy configuration is not valid YAML of the expected shape: {0}")]
    Parse(String),
    #[error("tenancy configuration, entry {index} (namespace {namespace:?}): {problem}")]
    Entry {
        index: usize,
        namespace: String,
        problem: String,
    },
}

/// Why a resource may not go ahead. Each message names the namespace, what it
/// asked for and what the platform team would change to allow it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "namespace {namespace} is not allowed to use the operator (it has no entry in the tenancy policy); nothing was done in Azure. A platform admin allows it with an entry `namespace: {namespace}` and the Azure scopes it may target in {HOW_TO_ALLOW}"
    )]
    NamespaceNotListed { namespace: String },
    #[error(
        "namespace {namespace} may not act with the operator's own Azure identity; nothing was done in Azure. Set spec.credentialRef to a Secret holding a service principal of your own, or a platform admin sets operatorIdentity: true on the tenancy entry {entry:?} in {HOW_TO_ALLOW}"
    )]
    OperatorIdentityNotAllowed { namespace: String, entry: String },
    #[error(
        "namespace {namespace} may not target {id}: it is outside the Azure scopes allowed for it ({allowed}); nothing was done in Azure. Point the resource at an allowed scope, or a platform admin adds a scope covering it to the tenancy entry {entry:?} in {HOW_TO_ALLOW}"
    )]
    OutOfScope {
        namespace: String,
        id: String,
        entry: String,
        allowed: String,
    },
    #[error(
        "the tenancy policy file {file} cannot be used: {problem}; until it is valid again the operator refuses every resource and nothing is done in Azure. A platform admin fixes the file ({HOW_TO_ALLOW})"
    )]
    PolicyUnusable { file: String, problem: String },
}

impl Refusal {
    /// The condition and event reason it is recorded with.
    pub fn reason(&self) -> &'static str {
        use crate::reconcile::reasons;
        match self {
            Refusal::PolicyUnusable { .. } => reasons::TENANCY_POLICY_UNUSABLE,
            _ => reasons::NAMESPACE_NOT_ALLOWED,
        }
    }
}

/// The policy the reconcilers check against: the file's, or none at all while
/// a changed file cannot be read or parsed (fail safe: an old policy may allow
/// what the new one was written to forbid, so every resource is refused).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyInForce {
    Valid(TenancyPolicy),
    Unusable { file: String, problem: String },
}

impl Default for PolicyInForce {
    /// No policy: nothing allowed.
    fn default() -> Self {
        PolicyInForce::Valid(TenancyPolicy::default())
    }
}

impl PolicyInForce {
    /// What a file's content (or why it could not be read) makes the policy.
    pub fn from_file(file: &str, content: Result<&str, String>) -> Self {
        let unusable = |problem: String| PolicyInForce::Unusable {
            file: file.to_owned(),
            problem,
        };
        match content {
            Err(why) => unusable(format!("cannot read it: {why}")),
            Ok(text) => TenancyPolicy::from_yaml(text)
                .map_or_else(|e| unusable(e.to_string()), PolicyInForce::Valid),
        }
    }

    /// Ok when the request is allowed; an unusable policy allows nothing.
    pub fn check(&self, request: &Request<'_>) -> Result<(), Refusal> {
        match self {
            PolicyInForce::Valid(policy) => policy.check(request),
            PolicyInForce::Unusable { file, problem } => Err(Refusal::PolicyUnusable {
                file: file.clone(),
                problem: problem.clone(),
            }),
        }
    }
}

/// The Azure resources a request touches.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub namespace: &'a str,
    /// Whether the resource names a `spec.credentialRef` (else it would act
    /// with the operator's own identity).
    pub credential_ref: bool,
    /// ARM ids the resource reads or writes.
    pub targets: &'a [String],
}

impl TenancyPolicy {
    /// Parses and validates a configuration file's content; an empty file is
    /// the empty policy (nothing allowed).
    pub fn from_yaml(text: &str) -> Result<Self, PolicyError> {
        let policy: TenancyPolicy = if text.trim().is_empty() {
            TenancyPolicy::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| PolicyError::Parse(e.to_string()))?
        };
        policy.validate()?;
        Ok(policy)
    }

    /// Refuses entries that would be ambiguous or would not mean what they say.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let mut seen = std::collections::HashSet::new();
        for (index, entry) in self.namespaces.iter().enumerate() {
            let fail = |problem: String| PolicyError::Entry {
                index,
                namespace: entry.namespace.clone(),
                problem,
            };
            if entry.namespace != "*" && !is_namespace_name(&entry.namespace) {
                return Err(fail(
                    "not a namespace name (lowercase letters, digits and '-', at most 63) nor \"*\""
                        .to_owned(),
                ));
            }
            if !seen.insert(entry.namespace.as_str()) {
                return Err(fail(
                    "the namespace has two entries; merge their scopes into one".to_owned(),
                ));
            }
            for scope in &entry.scopes {
                if let Err(why) = check_scope(scope) {
                    return Err(fail(format!("scope {scope:?}: {why}")));
                }
            }
        }
        Ok(())
    }

    /// The entry that governs `namespace`: its own, else the `"*"` one.
    pub fn entry_for(&self, namespace: &str) -> Option<&NamespaceAllowance> {
        self.namespaces
            .iter()
            .find(|e| e.namespace == namespace)
            .or_else(|| self.namespaces.iter().find(|e| e.namespace == "*"))
    }

    /// Ok when the namespace may act as asked on every target.
    pub fn check(&self, request: &Request<'_>) -> Result<(), Refusal> {
        let namespace = request.namespace.to_owned();
        let Some(entry) = self.entry_for(request.namespace) else {
            return Err(Refusal::NamespaceNotListed { namespace });
        };
        if !request.credential_ref && !entry.operator_identity {
            return Err(Refusal::OperatorIdentityNotAllowed {
                namespace,
                entry: entry.namespace.clone(),
            });
        }
        for id in request.targets {
            if !entry.scopes.iter().any(|s| scope_covers(s, id)) {
                let allowed = if entry.scopes.is_empty() {
                    "none".to_owned()
                } else {
                    entry.scopes.join(", ")
                };
                return Err(Refusal::OutOfScope {
                    namespace,
                    id: id.clone(),
                    entry: entry.namespace.clone(),
                    allowed,
                });
            }
        }
        Ok(())
    }
}

/// Whether `scope` covers the ARM id `id`: equal, or a prefix ending at a
/// `/` boundary, ignoring case (ARM ids are case-insensitive) and a trailing `/`.
pub fn scope_covers(scope: &str, id: &str) -> bool {
    let scope = scope.trim_end_matches('/');
    let id = id.trim_end_matches('/');
    if scope.is_empty() || id.len() < scope.len() || !id.is_char_boundary(scope.len()) {
        return false;
    }
    let (head, rest) = id.split_at(scope.len());
    head.eq_ignore_ascii_case(scope) && (rest.is_empty() || rest.starts_with('/'))
}

/// A scope is an ARM id or a prefix of one at a segment boundary:
/// `/subscriptions/<id>` followed by name/value pairs of segments.
fn check_scope(scope: &str) -> Result<(), &'static str> {
    if scope
        .chars()
        .any(|c| c.is_whitespace() || c == '*' || c == '?')
    {
        return Err("must not contain spaces or wildcards; list each scope as an ARM id prefix");
    }
    let Some(path) = scope.strip_prefix('/') else {
        return Err("must start with /subscriptions/<subscription id>");
    };
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    if !segments[0].eq_ignore_ascii_case("subscriptions") || segments.len() < 2 {
        return Err("must start with /subscriptions/<subscription id>");
    }
    if segments
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return Err("has an empty, '.' or '..' segment");
    }
    if !segments.len().is_multiple_of(2) {
        return Err(
            "ends with a type name without its value (e.g. /resourceGroups without the group's name)",
        );
    }
    Ok(())
}

/// A DNS-1123 label, as Kubernetes namespace names are.
fn is_namespace_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// ARM ids a `CosmosAccountCMK` targets: the account, its user-assigned
/// identity, the restore source, and the vault of its binding (when known).
pub fn account_targets(spec: &CosmosAccountCMKSpec, binding_vault: Option<&str>) -> Vec<String> {
    let mut ids = vec![format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.DocumentDB/databaseAccounts/{}",
        spec.subscription_id, spec.resource_group, spec.account_name
    )];
    ids.extend(spec.identity.user_assigned_identity_id.iter().cloned());
    ids.extend(
        spec.restore
            .as_ref()
            .and_then(|r| r.source_account_id.clone()),
    );
    ids.extend(binding_vault.map(str::to_owned));
    ids
}

/// ARM ids a `KeyVaultBinding` targets: its vault.
pub fn binding_targets(spec: &KeyVaultBindingSpec) -> Vec<String> {
    vec![spec.vault_resource_id.clone()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "00000000-0000-0000-0000-00000000c0de";

    fn policy(yaml: &str) -> TenancyPolicy {
        TenancyPolicy::from_yaml(yaml).expect("valid policy")
    }

    fn ask<'a>(ns: &'a str, credential_ref: bool, targets: &'a [String]) -> Request<'a> {
        Request {
            namespace: ns,
            credential_ref,
            targets,
        }
    }

    #[test]
    fn a_file_that_cannot_be_read_or_parsed_refuses_everything_naming_the_file() {
        let targets = [rg("team-a")];
        let allowed = format!(
            "namespaces:\n  - namespace: team-a\n    operatorIdentity: true\n    scopes: [{}]\n",
            rg("team-a")
        );
        let table: [(Result<&str, String>, Option<&str>); 5] = [
            (Ok(&allowed), None),
            (Ok(""), Some("NamespaceNotAllowed")),
            (Ok("namespaces: [oops"), Some("TenancyPolicyUnusable")),
            (
                Ok("namespaces:\n  - namespace: Team_A\n"),
                Some("TenancyPolicyUnusable"),
            ),
            (Err("No such file".into()), Some("TenancyPolicyUnusable")),
        ];
        for (content, want) in table {
            let shown = format!("{content:?}");
            let policy = PolicyInForce::from_file("/etc/cmk/tenancy.yaml", content);
            let got = policy.check(&ask("team-a", false, &targets)).err();
            assert_eq!(got.as_ref().map(Refusal::reason), want, "{shown}");
            if want == Some("TenancyPolicyUnusable") {
                let message = got.map(|r| r.to_string()).unwrap_or_default();
                assert!(message.contains("/etc/cmk/tenancy.yaml"), "{message}");
            }
        }
    }

    fn rg(name: &str) -> String {
        format!("/subscriptions/{SUB}/resourceGroups/{name}")
    }

    fn account_in(group: &str) -> String {
        format!(
            "{}/providers/Microsoft.DocumentDB/databaseAccounts/acct",
            rg(group)
        )
    }

    #[test]
    fn a_scope_covers_itself_and_what_is_below_it_at_a_slash() {
        assert!(scope_covers(&rg("rg"), &rg("rg")));
        assert!(scope_covers(&rg("rg"), &account_in("rg")));
        assert!(scope_covers(&format!("{}/", rg("rg")), &account_in("rg")));
        // A prefix that ends inside a segment covers nothing.
        assert!(!scope_covers(&rg("rg"), &rg("rg2")));
        assert!(!scope_covers(&rg("rg"), &account_in("rg2")));
        assert!(!scope_covers(&rg("rg2"), &rg("rg")));
        assert!(!scope_covers(&account_in("rg"), &rg("rg")));
        assert!(!scope_covers("", &rg("rg")));
    }

    #[test]
    fn matching_ignores_case_as_arm_does() {
        let upper = account_in("RG").replace("resourceGroups", "RESOURCEGROUPS");
        assert!(scope_covers(&rg("rg"), &upper));
        assert!(scope_covers(&rg("Rg").to_uppercase(), &account_in("rg")));
    }

    #[test]
    fn no_policy_allows_nothing() {
        let empty = TenancyPolicy::default();
        let err = empty
            .check(&ask("team-a", false, &[account_in("rg")]))
            .unwrap_err();
        assert!(matches!(err, Refusal::NamespaceNotListed { .. }));
        let msg = err.to_string();
        assert!(
            msg.contains("team-a") && msg.contains("tenancy.namespaces"),
            "{msg}"
        );
        assert_eq!(
            TenancyPolicy::from_yaml("  \n"),
            Ok(TenancyPolicy::default())
        );
        assert_eq!(
            TenancyPolicy::from_yaml("namespaces: []"),
            Ok(TenancyPolicy::default())
        );
    }

    #[test]
    fn a_namespace_may_target_only_its_scopes() {
        let p = policy(&format!(
            "namespaces:\n  - namespace: team-a\n    operatorIdentity: true\n    scopes: [{}]\n",
            rg("team-a")
        ));
        assert_eq!(
            p.check(&ask("team-a", false, &[account_in("team-a")])),
            Ok(())
        );
        let vault = format!("{}/providers/Microsoft.KeyVault/vaults/kv", rg("team-a2"));
        let targets = [account_in("team-a"), vault.clone()];
        match p.check(&ask("team-a", false, &targets)) {
            Err(e @ Refusal::OutOfScope { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("team-a") && msg.contains(&vault), "{msg}");
                assert!(msg.contains(&rg("team-a")), "names what is allowed: {msg}");
                assert!(msg.contains("tenancy.namespaces"), "names the fix: {msg}");
            }
            other => panic!("{other:?}"),
        }
        // Another namespace is not covered by team-a's entry.
        assert!(matches!(
            p.check(&ask("team-b", true, &[account_in("team-a")])),
            Err(Refusal::NamespaceNotListed { .. })
        ));
    }

    #[test]
    fn without_operator_identity_a_credential_ref_is_required() {
        let p = policy(&format!(
            "namespaces:\n  - namespace: team-a\n    scopes: [/subscriptions/{SUB}]\n"
        ));
        let targets = [account_in("any")];
        let err = p.check(&ask("team-a", false, &targets)).unwrap_err();
        assert!(matches!(err, Refusal::OperatorIdentityNotAllowed { .. }));
        assert!(err.to_string().contains("credentialRef"), "{err}");
        assert!(err.to_string().contains("operatorIdentity: true"), "{err}");
        assert_eq!(p.check(&ask("team-a", true, &targets)), Ok(()));
        // Scopes still apply to a namespace's own credentials.
        let elsewhere = ["/subscriptions/other/resourceGroups/x".to_owned()];
        assert!(matches!(
            p.check(&ask("team-a", true, &elsewhere)),
            Err(Refusal::OutOfScope { .. })
        ));
    }

    #[test]
    fn the_wildcard_entry_applies_only_to_namespaces_without_their_own() {
        let p = policy(&format!(
            "namespaces:\n  - namespace: '*'\n    operatorIdentity: true\n    scopes: [{}]\n  - namespace: team-a\n    scopes: [{}]\n",
            rg("shared"),
            rg("team-a")
        ));
        assert_eq!(
            p.check(&ask("anyone", false, &[account_in("shared")])),
            Ok(())
        );
        // team-a's own entry wins entirely: no operator identity, no shared group.
        assert!(matches!(
            p.check(&ask("team-a", false, &[account_in("team-a")])),
            Err(Refusal::OperatorIdentityNotAllowed { .. })
        ));
        assert!(matches!(
            p.check(&ask("team-a", true, &[account_in("shared")])),
            Err(Refusal::OutOfScope { .. })
        ));
        assert_eq!(
            p.check(&ask("team-a", true, &[account_in("team-a")])),
            Ok(())
        );
    }

    #[test]
    fn malformed_configurations_are_refused_naming_the_entry() {
        let cases = [
            (
                "namespaces:\n  - namespace: ok\n    scopes: [resourceGroups/rg]\n",
                "scope",
            ),
            (
                "namespaces:\n  - namespace: ok\n    scopes: [/resourceGroups/rg]\n",
                "/subscriptions/",
            ),
            (
                "namespaces:\n  - namespace: ok\n    scopes: [/subscriptions/s/resourceGroups]\n",
                "without its value",
            ),
            (
                "namespaces:\n  - namespace: ok\n    scopes: [/subscriptions//resourceGroups/rg]\n",
                "empty",
            ),
            (
                "namespaces:\n  - namespace: ok\n    scopes: ['/subscriptions/*']\n",
                "wildcards",
            ),
            (
                "namespaces:\n  - namespace: ok\n    scopes: [/subscriptions]\n",
                "/subscriptions/",
            ),
            (
                "namespaces:\n  - namespace: Team_A\n",
                "not a namespace name",
            ),
            (
                "namespaces:\n  - namespace: a\n  - namespace: a\n",
                "two entries",
            ),
        ];
        for (yaml, expect) in cases {
            let err = TenancyPolicy::from_yaml(yaml).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, PolicyError::Entry { index: _, .. }),
                "{yaml}: {msg}"
            );
            assert!(msg.contains(expect), "{yaml}: {msg}");
            assert!(msg.contains("entry"), "{yaml}: {msg}");
        }
        // A misspelt field is an error, not a silently ignored line.
        for yaml in [
            "namespaces:\n  - namespace: a\n    scope: [/subscriptions/s]\n",
            "namespace: a\n",
            "namespaces: team-a\n",
        ] {
            assert!(
                matches!(TenancyPolicy::from_yaml(yaml), Err(PolicyError::Parse(_))),
                "{yaml}"
            );
        }
        let bad_second = "namespaces:\n  - namespace: a\n  - namespace: b\n    scopes: [x]\n";
        let msg = TenancyPolicy::from_yaml(bad_second)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("entry 1") && msg.contains("\"b\""), "{msg}");
    }

    #[test]
    fn an_account_targets_itself_its_identity_its_restore_source_and_its_vault() {
        let spec: CosmosAccountCMKSpec = serde_json::from_value(serde_json::json!({
            "subscriptionId": SUB,
            "resourceGroup": "rg",
            "accountName": "acct",
            "locations": [{"locationName": "eastus", "failoverPriority": 0}],
            "keyVaultBindingRef": {"name": "b"},
            "identity": {
                "type": "UserAssigned",
                "userAssignedIdentityId": format!("{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id", rg("ids"))
            },
            "restore": {
                "sourceAccountId": format!("/subscriptions/{SUB}/providers/Microsoft.DocumentDB/locations/eastus/restorableDatabaseAccounts/x"),
                "timestamp": "2026-11-01T12:00:00Z"
            }
        }))
        .expect("a spec");
        let vault = format!("{}/providers/Microsoft.KeyVault/vaults/kv", rg("kv"));
        let ids = account_targets(&spec, Some(&vault));
        assert_eq!(ids.len(), 4, "{ids:?}");
        assert_eq!(ids[0], account_in("rg"));
        assert!(ids[1].contains("userAssignedIdentities/id"));
        assert!(ids[2].contains("restorableDatabaseAccounts/x"));
        assert_eq!(ids[3], vault);

        // The restore source lives under the subscription, not a group: only a
        // subscription scope covers it.
        let group_only = policy(&format!(
            "namespaces:\n  - namespace: t\n    operatorIdentity: true\n    scopes: [{}, {}, {}]\n",
            rg("rg"),
            rg("ids"),
            rg("kv")
        ));
        match group_only.check(&ask("t", false, &ids)) {
            Err(Refusal::OutOfScope { id, .. }) => assert_eq!(id, ids[2]),
            other => panic!("{other:?}"),
        }
        let whole = policy(&format!(
            "namespaces:\n  - namespace: t\n    operatorIdentity: true\n    scopes: [/subscriptions/{SUB}]\n"
        ));
        assert_eq!(whole.check(&ask("t", false, &ids)), Ok(()));
    }
}
