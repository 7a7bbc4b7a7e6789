//! Startup check that the CustomResourceDefinitions in the cluster are the
//! ones this binary was built with, or newer.
//!
//! Without it a missing CRD shows only as a watch failing over and over, and
//! an outdated one is worse: the API server prunes every field its schema
//! lacks, so the status this version writes (or a spec field it reads)
//! silently disappears.
//!
//! What is compared is the schema the API server *publishes* for the group
//! version (`/openapi/v3/apis/<group>/<version>`), not the CRD object: the
//! operator has no RBAC on CRDs (least privilege, `tests/packaging/chart_rbac.rs`),
//! while every authenticated client may read the published OpenAPI (the
//! `system:discovery` role). The published schema is the CRD's structural
//! schema, so the check is structural: every property this binary's schema
//! has must be there, with the same type, allowing at least the same enum
//! values, and the status subresource must be served. Anything more in the
//! cluster (a newer CRD applied ahead of a rolling upgrade) passes; a hash
//! of the whole CRD would refuse that and any change of a description.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionVersion,
};
use serde_json::Value;

/// How the installed CRDs fall short of this binary's.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    #[error(
        "the CustomResourceDefinition {crd} ({api_version} {kind}) is not installed: {APPLY_HINT}"
    )]
    Missing {
        crd: String,
        api_version: String,
        kind: String,
    },
    #[error(
        "the installed CustomResourceDefinition {crd} is older than this cmk-operator ({version}): {}; the API server would drop or refuse what this version writes there; {APPLY_HINT}",
        differences.join("; ")
    )]
    Outdated {
        crd: String,
        version: &'static str,
        differences: Vec<String>,
    },
    #[error("cannot read the schema the API server publishes for {0} (/openapi/v3): {1}")]
    Unreadable(String, kube::Error),
}

const APPLY_HINT: &str = "apply this version's CRDs before starting it (`cmk-operator crd | kubectl apply --server-side -f -`, or crds/ of this release; Helm installs a chart's CRDs on first install only, never on upgrade)";

/// How long a failed check is retried: the API server publishes a CRD's
/// schema a moment after the CRD is applied (well under a second here), and
/// an operator started right after `kubectl apply` must not fail on that.
pub const PUBLICATION_LAG: Duration = Duration::from_secs(3);

/// Checks `expected` (this binary's CRDs) against what the API server serves,
/// retrying for `patience` while the answer is "missing" or "outdated".
pub async fn verify(
    client: &kube::Client,
    expected: &[CustomResourceDefinition],
    patience: Duration,
) -> Result<(), CrdError> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match verify_once(client, expected).await {
            Err(CrdError::Missing { .. } | CrdError::Outdated { .. })
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => return other,
        }
    }
}

async fn verify_once(
    client: &kube::Client,
    expected: &[CustomResourceDefinition],
) -> Result<(), CrdError> {
    let mut published = BTreeMap::<String, Option<Value>>::new();
    for crd in expected {
        for version in crd.spec.versions.iter().filter(|v| v.served) {
            let api_version = format!("{}/{}", crd.spec.group, version.name);
            if !published.contains_key(&api_version) {
                let document = fetch(client, &api_version).await?;
                published.insert(api_version.clone(), document);
            }
            let document = published.get(&api_version).and_then(Option::as_ref);
            check(crd, version, document)?;
        }
    }
    Ok(())
}

/// The published OpenAPI v3 document of a group version; `None` when the API
/// server serves no such group version.
async fn fetch(client: &kube::Client, api_version: &str) -> Result<Option<Value>, CrdError> {
    // axum's re-export of `http` (the same major version kube's client takes).
    let request = axum::http::Request::get(format!("/openapi/v3/apis/{api_version}"))
        .body(Vec::new())
        .map_err(|e| CrdError::Unreadable(api_version.to_owned(), kube::Error::HttpError(e)))?;
    match client.request::<Value>(request).await {
        Ok(document) => Ok(Some(document)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(e) => Err(CrdError::Unreadable(api_version.to_owned(), e)),
    }
}

/// One served version of `crd` against the published document of its group version.
pub fn check(
    crd: &CustomResourceDefinition,
    version: &CustomResourceDefinitionVersion,
    document: Option<&Value>,
) -> Result<(), CrdError> {
    let names = &crd.spec.names;
    let crd_name = format!("{}.{}", names.plural, crd.spec.group);
    let missing = || CrdError::Missing {
        crd: crd_name.clone(),
        api_version: format!("{}/{}", crd.spec.group, version.name),
        kind: names.kind.clone(),
    };
    let Some(document) = document else {
        return Err(missing());
    };
    let Some(published) = schema_of(document, &crd.spec.group, &version.name, &names.kind) else {
        return Err(missing());
    };
    let mut differences = Vec::new();
    if version
        .subresources
        .as_ref()
        .is_some_and(|s| s.status.is_some())
        && !serves_status(document, &names.plural)
    {
        differences.push("it has no status subresource".to_owned());
    }
    if let Some(wanted) = version
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
    {
        let wanted = serde_json::to_value(wanted).unwrap_or(Value::Null);
        compare(&wanted, published, "", &mut differences);
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(CrdError::Outdated {
            crd: crd_name,
            version: env!("CARGO_PKG_VERSION"),
            differences,
        })
    }
}

/// The schema of `kind` in a published document, found by its
/// `x-kubernetes-group-version-kind` (the list kind has its own).
fn schema_of<'a>(document: &'a Value, group: &str, version: &str, kind: &str) -> Option<&'a Value> {
    let schemas = document.pointer("/components/schemas")?.as_object()?;
    schemas.values().find(|schema| {
        schema["x-kubernetes-group-version-kind"]
            .as_array()
            .is_some_and(|gvks| {
                gvks.iter()
                    .any(|g| g["group"] == group && g["version"] == version && g["kind"] == kind)
            })
    })
}

fn serves_status(document: &Value, plural: &str) -> bool {
    let suffix = format!("/{plural}/{{name}}/status");
    document["paths"]
        .as_object()
        .is_some_and(|paths| paths.keys().any(|p| p.ends_with(&suffix)))
}

/// Appends to `out` how `have` (published) falls short of `want` (this
/// binary's schema) at `path`: missing properties, another type, enum values
/// it would refuse. What `have` has beyond `want` is fine.
fn compare(want: &Value, have: &Value, path: &str, out: &mut Vec<String>) {
    let shown = |p: &str| {
        if p.is_empty() {
            ".".to_owned()
        } else {
            p.to_owned()
        }
    };
    if let (Some(w), Some(h)) = (want["type"].as_str(), have["type"].as_str())
        && w != h
    {
        out.push(format!(
            "{} is of type {h} where this version needs {w}",
            shown(path)
        ));
        return;
    }
    if let (Some(w), Some(h)) = (want["enum"].as_array(), have["enum"].as_array()) {
        let refused: Vec<String> = w
            .iter()
            .filter(|v| !h.contains(v))
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect();
        if !refused.is_empty() {
            out.push(format!(
                "{} does not allow {}",
                shown(path),
                refused.join(", ")
            ));
        }
    }
    let keeps_unknown = have["x-kubernetes-preserve-unknown-fields"] == true;
    if let Some(properties) = want["properties"].as_object() {
        for (name, w) in properties {
            let child = format!("{path}.{name}");
            match have["properties"].get(name) {
                Some(h) => compare(w, h, &child, out),
                None if keeps_unknown => {}
                None => out.push(format!("it lacks {child}")),
            }
        }
    }
    if want["items"].is_object() {
        compare(&want["items"], &have["items"], &format!("{path}[]"), out);
    }
    if want["additionalProperties"].is_object() {
        compare(
            &want["additionalProperties"],
            &have["additionalProperties"],
            &format!("{path}[*]"),
            out,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A published document for this binary's own CRD, as the API server
    /// would publish it (the CRD's schema, found by its group-version-kind).
    fn published(crd: &CustomResourceDefinition, edit: impl FnOnce(&mut Value)) -> Value {
        let version = &crd.spec.versions[0];
        let mut schema = serde_json::to_value(
            version
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .expect("a schema"),
        )
        .expect("serializes");
        edit(&mut schema);
        schema["x-kubernetes-group-version-kind"] = json!([{
            "group": crd.spec.group, "version": version.name, "kind": crd.spec.names.kind,
        }]);
        let plural = &crd.spec.names.plural;
        json!({
            "paths": {
                format!("/apis/{}/{}/namespaces/{{namespace}}/{plural}/{{name}}/status", crd.spec.group, version.name): {}
            },
            "components": {"schemas": {"the.kind": schema}},
        })
    }

    fn outcome(crd: &CustomResourceDefinition, document: Option<&Value>) -> Result<(), String> {
        check(crd, &crd.spec.versions[0], document).map_err(|e| e.to_string())
    }

    #[test]
    fn the_binarys_own_crds_pass() {
        for crd in crate::api::crds() {
            assert_eq!(outcome(&crd, Some(&published(&crd, |_| {}))), Ok(()));
        }
    }

    #[test]
    fn a_newer_crd_with_more_fields_and_values_passes() {
        let [binding, _] = crate::api::crds();
        let doc = published(&binding, |s| {
            s["properties"]["status"]["properties"]["addedLater"] = json!({"type": "string"});
            s["properties"]["status"]["properties"]["phase"]["enum"]
                .as_array_mut()
                .expect("phase is an enum")
                .push(json!("Hibernating"));
        });
        assert_eq!(outcome(&binding, Some(&doc)), Ok(()));
    }

    #[test]
    fn a_group_version_or_kind_not_served_is_missing() {
        let [binding, account] = crate::api::crds();
        let err = outcome(&binding, None).expect_err("missing");
        assert!(
            err.starts_with("the CustomResourceDefinition keyvaultbindings.cosmoscmk.io (cosmoscmk.io/v1alpha1 KeyVaultBinding) is not installed"),
            "{err}"
        );
        assert!(err.contains("kubectl apply --server-side"), "{err}");
        // The group is served, but only for the other kind.
        let err = outcome(&account, Some(&published(&binding, |_| {}))).expect_err("missing");
        assert!(err.contains("cosmosaccountcmks.cosmoscmk.io"), "{err}");
    }

    #[test]
    fn an_older_crd_is_refused_naming_each_difference() {
        let [_, account] = crate::api::crds();
        let doc = published(&account, |s| {
            let status = &mut s["properties"]["status"]["properties"];
            status
                .as_object_mut()
                .expect("status properties")
                .remove("keyVersionInUse");
            status["phase"]["enum"] = json!(["Pending", "Ready"]);
            s["properties"]["spec"]["properties"]["accountName"]["type"] = json!("integer");
        });
        let err = outcome(&account, Some(&doc)).expect_err("outdated");
        assert!(
            err.starts_with("the installed CustomResourceDefinition cosmosaccountcmks.cosmoscmk.io is older than this cmk-operator"),
            "{err}"
        );
        for expected in [
            "it lacks .status.keyVersionInUse",
            ".status.phase does not allow Waiting, Provisioning, Revoked, Failed, Deleting",
            ".spec.accountName is of type integer where this version needs string",
        ] {
            assert!(err.contains(expected), "{expected:?} not in {err}");
        }
    }

    #[test]
    fn a_crd_without_the_status_subresource_is_outdated() {
        let [binding, _] = crate::api::crds();
        let mut doc = published(&binding, |_| {});
        doc["paths"] = json!({});
        let err = outcome(&binding, Some(&doc)).expect_err("outdated");
        assert!(err.contains("it has no status subresource"), "{err}");
    }
}
