//! The operator's public contract: the `cosmoscmk.io/v1alpha1` custom resources.
//!
//! Everything a user can write is described here, with OpenAPI bounds and CEL
//! rules so the API server refuses bad input at admission instead of the
//! operator discovering it half-way through an Azure procedure.

mod account_settings;
mod common;
pub mod conditions;
mod cosmos_account;
mod key_rotation;
mod key_vault_binding;
mod patterns;

pub use account_settings::*;
pub use common::*;
pub use cosmos_account::*;
pub use key_rotation::*;
pub use key_vault_binding::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// API group of both kinds.
pub const GROUP: &str = "cosmoscmk.io";
/// Category shared by both kinds: `kubectl get cosmoscmk` lists them together.
pub const CATEGORY: &str = "cosmoscmk";

/// Both CustomResourceDefinitions, as this binary generates them.
pub fn crds() -> [CustomResourceDefinition; 2] {
    [KeyVaultBinding::crd(), CosmosAccountCMK::crd()]
}

/// Both CRDs as one multi-document YAML stream, exactly what `crds/` holds.
pub fn crds_yaml() -> String {
    crds()
        .iter()
        .map(|crd| {
            let mut value = serde_json::to_value(crd).expect("a CRD always serializes");
            reflow_descriptions(&mut value);
            tidy_numbers(&mut value);
            // One line per description and rule, as kubectl prints them: folded
            // block scalars would re-wrap CEL rules across lines.
            let options = serde_saphyr::ser_options! { prefer_block_scalars: false };
            let yaml = serde_saphyr::to_string_with_options(&value, options)
                .expect("a CRD always serializes to YAML");
            format!("---\n{yaml}")
        })
        .collect()
}

/// Integer bounds as integers (schemars writes `24.0`), and `int64` for
/// unsigned fields: the API server knows no `uint64` format and kubectl warns
/// on every apply of a CRD that names one.
fn tidy_numbers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            let integer = map.get("type").and_then(|t| t.as_str()) == Some("integer");
            for (key, v) in map.iter_mut() {
                match (key.as_str(), &*v) {
                    ("minimum" | "maximum", serde_json::Value::Number(n)) if integer => {
                        if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0) {
                            // Integral bounds of i32/u64 fields fit an i64.
                            *v = serde_json::Value::from(f as i64);
                        }
                    }
                    ("format", serde_json::Value::String(f)) if f.starts_with("uint") => {
                        *v = serde_json::Value::from("int64");
                    }
                    _ => tidy_numbers(v),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(tidy_numbers),
        _ => {}
    }
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
