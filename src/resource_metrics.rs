//! Per-resource gauges for alerting: every condition of every resource, the
//! key's expiry and next rotation per binding, and when an account's earliest
//! retired key version becomes safe to disable. Like the phase counts
//! (`telemetry::CacheGauges`), they are computed at scrape time from the
//! shared caches, as cert-manager's `CertificateCollector` lists its
//! certificates at each `Collect` (cert-manager/cert-manager,
//! internal/collectors/certificate_collector.go @76ca203a): a deleted object
//! leaves its cache and so its series, with nothing to forget. Unlike that
//! collector, an unknown time exports no series rather than 0, which an
//! "expires within" rule would read as long expired.
//!
//! Cardinality stays bounded: one condition series per resource and
//! condition type (its status and reason are labels of that one series), and
//! one key series per binding.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::telemetry::ScrapeSource;

/// What the gauges show of one resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceFigures {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// Each condition as `(type, status, reason)`.
    pub conditions: Vec<(String, String, String)>,
    /// A binding's key and its times.
    pub key: Option<KeyTimes>,
    /// An account's earliest `safeToDisableAfter` among the key versions it
    /// retired and that are not disabled yet (Unix seconds).
    pub safe_to_disable_after: Option<i64>,
}

/// A binding's key and when it expires or rotates next (Unix seconds).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyTimes {
    /// The vault's name (the last segment of `spec.vaultResourceId`).
    pub vault: String,
    /// The key's name.
    pub key: String,
    pub expires: Option<i64>,
    pub next_rotation: Option<i64>,
}

/// Computes the figures on each scrape (the controllers set it).
pub type FigureSource = Box<dyn Fn() -> Vec<ResourceFigures> + Send + Sync>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    kind: String,
    namespace: String,
    name: String,
    r#type: String,
    status: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabels {
    namespace: String,
    name: String,
    vault: String,
    key: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountLabels {
    namespace: String,
    name: String,
}

/// The collector behind the per-resource gauges.
#[derive(Default)]
pub struct ResourceGauges {
    source: ScrapeSource<Vec<ResourceFigures>>,
}

impl std::fmt::Debug for ResourceGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResourceGauges")
    }
}

impl ResourceGauges {
    /// Where the figures come from (replaces an earlier source).
    pub fn set_source(&self, source: FigureSource) {
        self.source.set(source);
    }
}

impl Collector for ResourceGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(figures) = self.source.now() else {
            return Ok(());
        };
        let conditions = Family::<ConditionLabels, Gauge>::default();
        let expires = Family::<KeyLabels, Gauge>::default();
        let rotates = Family::<KeyLabels, Gauge>::default();
        let safe = Family::<AccountLabels, Gauge>::default();
        for f in &figures {
            for (type_, status, reason) in &f.conditions {
                conditions
                    .get_or_create(&ConditionLabels {
                        kind: f.kind.clone(),
                        namespace: f.namespace.clone(),
                        name: f.name.clone(),
                        r#type: type_.clone(),
                        status: status.clone(),
                        reason: reason.clone(),
                    })
                    .set(1);
            }
            if let Some(k) = &f.key {
                let labels = KeyLabels {
                    namespace: f.namespace.clone(),
                    name: f.name.clone(),
                    vault: k.vault.clone(),
                    key: k.key.clone(),
                };
                if let Some(t) = k.expires {
                    expires.get_or_create(&labels).set(t);
                }
                if let Some(t) = k.next_rotation {
                    rotates.get_or_create(&labels).set(t);
                }
            }
            if let Some(t) = f.safe_to_disable_after {
                safe.get_or_create(&AccountLabels {
                    namespace: f.namespace.clone(),
                    name: f.name.clone(),
                })
                .set(t);
            }
        }
        let families: [(&str, &str, &dyn EncodeMetric); 4] = [
            (
                "resource_condition",
                "1 for each condition of each resource, with its type, status and reason",
                &conditions,
            ),
            (
                "key_expiration_timestamp_seconds",
                "When the key version a KeyVaultBinding uses expires (Unix seconds; absent without an expiry)",
                &expires,
            ),
            (
                "key_next_rotation_timestamp_seconds",
                "When Key Vault next rotates a KeyVaultBinding's key (Unix seconds; absent without a rotation policy)",
                &rotates,
            ),
            (
                "key_version_safe_to_disable_timestamp_seconds",
                "The earliest time a key version a CosmosAccountCMK retired may be disabled (Unix seconds; absent when none waits)",
                &safe,
            ),
        ];
        for (name, help, family) in families {
            family.encode(encoder.encode_descriptor(name, help, None, family.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Metrics;
    use std::sync::{Arc, Mutex};

    fn binding(name: &str, reason: &str, expires: Option<i64>) -> ResourceFigures {
        ResourceFigures {
            kind: "KeyVaultBinding".into(),
            namespace: "team-a".into(),
            name: name.into(),
            conditions: vec![("Ready".into(), "True".into(), reason.into())],
            key: Some(KeyTimes {
                vault: "kv".into(),
                key: "cosmos".into(),
                expires,
                next_rotation: None,
            }),
            safe_to_disable_after: None,
        }
    }

    #[test]
    fn per_resource_gauges_are_what_the_source_says_at_each_scrape() {
        let m = Metrics::default();
        assert!(!m.encode().contains("resource_condition"), "no source yet");
        let objects = Arc::new(Mutex::new(vec![
            binding("orders", "KeyReady", Some(1_900_000_000)),
            ResourceFigures {
                kind: "CosmosAccountCMK".into(),
                namespace: "team-a".into(),
                name: "orders".into(),
                conditions: vec![
                    ("Ready".into(), "False".into(), "KeyRevoked".into()),
                    ("VaultReady".into(), "True".into(), "VaultReady".into()),
                ],
                key: None,
                safe_to_disable_after: Some(1_800_000_000),
            },
        ]));
        let seen = objects.clone();
        m.figures_from(Box::new(move || seen.lock().unwrap().clone()));
        let text = m.encode();
        for line in [
            r#"cmk_operator_resource_condition{kind="KeyVaultBinding",namespace="team-a",name="orders",type="Ready",status="True",reason="KeyReady"} 1"#,
            r#"cmk_operator_resource_condition{kind="CosmosAccountCMK",namespace="team-a",name="orders",type="Ready",status="False",reason="KeyRevoked"} 1"#,
            r#"cmk_operator_resource_condition{kind="CosmosAccountCMK",namespace="team-a",name="orders",type="VaultReady",status="True",reason="VaultReady"} 1"#,
            r#"cmk_operator_key_expiration_timestamp_seconds{namespace="team-a",name="orders",vault="kv",key="cosmos"} 1900000000"#,
            r#"cmk_operator_key_version_safe_to_disable_timestamp_seconds{namespace="team-a",name="orders"} 1800000000"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        assert!(
            !text.contains("cmk_operator_key_next_rotation_timestamp_seconds{"),
            "no rotation time, no series:\n{text}"
        );

        // The binding turns not Ready and loses its expiry; the account is deleted.
        *objects.lock().unwrap() = vec![binding("orders", "KeyDisabled", None)];
        let text = m.encode();
        assert!(
            text.contains(r#"name="orders",type="Ready",status="True",reason="KeyDisabled"} 1"#)
        );
        for gone in [
            "KeyReady",
            r#"kind="CosmosAccountCMK""#,
            "cmk_operator_key_expiration_timestamp_seconds{",
            "cmk_operator_key_version_safe_to_disable_timestamp_seconds{",
        ] {
            assert!(!text.contains(gone), "{gone} still in\n{text}");
        }
    }
}
