//! The operator's public contract: the `cosmoscmk.io/v1alpha1` custom resources.
//!
//! Everything a user can write is described here, with OpenAPI bounds and CEL
//! rules so the API server refuses bad input at admission instead of the
//! operator discovering it half-way through an Azure procedure.

mod common;
pub mod conditions;
mod cosmos_account;
mod key_vault_binding;
mod patterns;

pub use common::*;
pub use cosmos_account::*;
pub use key_vault_binding::*;

use kube::CustomResourceExt;

/// API group of both kinds.
pub const GROUP: &str = "cosmoscmk.io";
/// Category shared by both kinds: `kubectl get cosmoscmk` lists them together.
pub const CATEGORY: &str = "cosmoscmk";

/// Both CRDs as one multi-document YAML stream, exactly what `crds/` holds.
pub fn crds_yaml() -> String {
    [KeyVaultBinding::crd(), CosmosAccountCMK::crd()]
        .iter()
        .map(|crd| {
            let mut value = serde_json::to_value(crd).expect("a CRD always serializes");
            reflow_descriptions(&mut value);
            let yaml = serde_yaml::to_string(&value).expect("a CRD always serializes to YAML");
            format!("---\n{yaml}")
        })
        .collect()
}

/// Joins the hard-wrapped lines of doc comments so `kubectl explain` can wrap
/// them itself; blank lines (paragraphs) stay.
fn reflow_descriptions(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    serde_json::Value::String(s) if key == "description" => {
                        *s = s
                            .split("\n\n")
                            .map(|p| p.replace('\n', " "))
                            .collect::<Vec<_>>()
                            .join("\n\n");
                    }
                    _ => reflow_descriptions(v),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(reflow_descriptions),
        _ => {}
    }
}
