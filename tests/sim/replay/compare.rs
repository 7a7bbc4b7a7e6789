//! Recorded answer vs simulator answer: every recorded field must be in the
//! simulator's answer with the same value, unless [`IGNORED`] says why not.
//! Fields the simulator adds (newer api-versions carry more) are not differences.

use serde_json::Value;

/// How a recorded field is treated.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Treat {
    /// Present with the same JSON type; the value is not compared.
    Shape,
    /// Like `Shape`, and the recorded value stands for the simulator's from
    /// then on (ids Azure mints: later requests name them).
    Bind,
    /// Neither presence nor value compared.
    Skip,
}

/// A field path (`properties.locations[].id`), optionally only when the
/// recording holds one value, how it is treated, and why.
pub struct Ignored {
    pub path: &'static str,
    pub when_recorded: Option<&'static str>,
    pub treat: Treat,
    pub reason: &'static str,
}

/// Every recorded field not compared by value, with the reason.
pub const IGNORED: &[Ignored] = &[
    Ignored {
        path: "systemData",
        when_recorded: None,
        treat: Treat::Skip,
        reason: "who and when of the recording; the simulator reports only createdAt",
    },
    Ignored {
        path: "value[].properties.isSubscriptionRegionAccessAllowedForAz",
        when_recorded: None,
        treat: Treat::Shape,
        reason: "whether the recording's subscription may use the region; the simulator's subscriptions may use every region",
    },
    Ignored {
        path: "value[].properties.isSubscriptionRegionAccessAllowedForRegular",
        when_recorded: None,
        treat: Treat::Shape,
        reason: "whether the recording's subscription may use the region; the simulator's subscriptions may use every region",
    },
    Ignored {
        path: "properties.isSubscriptionRegionAccessAllowedForAz",
        when_recorded: None,
        treat: Treat::Shape,
        reason: "whether the recording's subscription may use the region; the simulator's subscriptions may use every region",
    },
    Ignored {
        path: "properties.isSubscriptionRegionAccessAllowedForRegular",
        when_recorded: None,
        treat: Treat::Shape,
        reason: "whether the recording's subscription may use the region; the simulator's subscriptions may use every region",
    },
    Ignored {
        path: "properties.instanceId",
        when_recorded: None,
        treat: Treat::Bind,
        reason: "a GUID minted per account",
    },
    Ignored {
        path: "identity.principalId",
        when_recorded: None,
        treat: Treat::Bind,
        reason: "a principal minted per system-assigned identity",
    },
    Ignored {
        path: "properties.principalId",
        when_recorded: None,
        treat: Treat::Bind,
        reason: "a principal minted per user-assigned identity",
    },
    Ignored {
        path: "properties.clientId",
        when_recorded: None,
        treat: Treat::Bind,
        reason: "an application id minted per user-assigned identity",
    },
    Ignored {
        path: "key.kid",
        when_recorded: None,
        treat: Treat::Bind,
        reason: "the version part is minted per key version",
    },
    Ignored {
        path: "value[].kid",
        when_recorded: None,
        treat: Treat::Bind,
        reason: "the version part is minted per key version",
    },
    Ignored {
        path: "key.n",
        when_recorded: None,
        treat: Treat::Shape,
        reason: "key material: random bytes in the simulator (no real RSA)",
    },
    Ignored {
        path: "attributes.created",
        when_recorded: None,
        treat: Treat::Shape,
        reason: "time of the call",
    },
    Ignored {
        path: "attributes.updated",
        when_recorded: None,
        treat: Treat::Shape,
        reason: "time of the call",
    },
    Ignored {
        path: "value[].attributes.created",
        when_recorded: None,
        treat: Treat::Shape,
        reason: "time of the call",
    },
    Ignored {
        path: "value[].attributes.updated",
        when_recorded: None,
        treat: Treat::Shape,
        reason: "time of the call",
    },
    Ignored {
        path: "attributes.exp",
        when_recorded: None,
        treat: Treat::Shape,
        reason: "time of the rotation + the policy's expiryTime; that sum is checked by key_lists_and_expiry::a_rotation_under_a_policy_sets_exp",
    },
    Ignored {
        path: "error.message",
        when_recorded: None,
        treat: Treat::Shape,
        reason: "Key Vault's 401 wording changed between recordings (AKV10000 prefix since 2022); the code and challenge are compared",
    },
    Ignored {
        path: "properties.backupPolicy.periodicModeProperties.backupStorageRedundancy",
        when_recorded: Some("Invalid"),
        treat: Treat::Shape,
        reason: "transient in the create answer; reads after the operation say Geo, which the simulator says from the start",
    },
    Ignored {
        path: "properties.keysMetadata.primaryMasterKey.generationTime",
        when_recorded: None,
        treat: Treat::Shape,
        reason: "time the account's keys were made",
    },
    Ignored {
        path: "properties.keysMetadata.secondaryMasterKey.generationTime",
        when_recorded: None,
        treat: Treat::Shape,
        reason: "time the account's keys were made",
    },
    Ignored {
        path: "properties.keysMetadata.primaryReadonlyMasterKey.generationTime",
        when_recorded: None,
        treat: Treat::Shape,
        reason: "time the account's keys were made",
    },
    Ignored {
        path: "properties.keysMetadata.secondaryReadonlyMasterKey.generationTime",
        when_recorded: None,
        treat: Treat::Shape,
        reason: "time the account's keys were made",
    },
    Ignored {
        path: "properties.configurationOverrides.EnablePerRegionPerPartitionAutoscaleOptIn",
        when_recorded: None,
        treat: Treat::Skip,
        reason: "an opt-in flag of a throughput feature (2023 and 2024 recordings); nothing here depends on it",
    },
    Ignored {
        path: "properties.locations[].provisioningState",
        when_recorded: Some("Succeeded"),
        treat: Treat::Shape,
        reason: "recordings disagree on the regions in a PATCH answer: Updating in 2020 and 2022 (seven answers), Succeeded in 2023 and 2024 (three); the simulator says Updating (the count; see docs/simulator.md). Compared by shape wherever Azure recorded Succeeded",
    },
    Ignored {
        path: "properties.readLocations[].provisioningState",
        when_recorded: Some("Succeeded"),
        treat: Treat::Shape,
        reason: "as properties.locations[].provisioningState",
    },
    Ignored {
        path: "properties.writeLocations[].provisioningState",
        when_recorded: Some("Succeeded"),
        treat: Treat::Shape,
        reason: "as properties.locations[].provisioningState",
    },
    Ignored {
        path: "properties.backupPolicy.continuousModeProperties.tier",
        when_recorded: Some("Continuous30Days"),
        treat: Treat::Shape,
        reason: "the 2024 migration recording reads Continuous30Days after a PATCH that asked Continuous7Days (one recording, unexplained); the simulator keeps the tier asked for",
    },
    Ignored {
        path: "value[].properties.creationTime",
        when_recorded: None,
        treat: Treat::Shape,
        reason: "time the source account was made",
    },
    Ignored {
        path: "value[].properties.oldestRestorableTime",
        when_recorded: None,
        treat: Treat::Shape,
        reason: "a time; recorded equal to the creation time for an account made minutes before, which sim_restorable checks of the simulator's",
    },
    Ignored {
        path: "value[].properties.restorableLocations[].creationTime",
        when_recorded: None,
        treat: Treat::Shape,
        reason: "time the source's region was made",
    },
    Ignored {
        path: "value[].properties.restorableLocations[].regionalDatabaseAccountInstanceId",
        when_recorded: None,
        treat: Treat::Shape,
        reason: "a GUID Azure mints per region; the simulator's accounts have one region entry and reuse the account's instance id (nothing reads it)",
    },
    Ignored {
        path: "properties.creationTime",
        when_recorded: None,
        treat: Treat::Shape,
        reason: "time the source account was made",
    },
    Ignored {
        path: "properties.oldestRestorableTime",
        when_recorded: None,
        treat: Treat::Shape,
        reason: "as value[].properties.oldestRestorableTime",
    },
    Ignored {
        path: "properties.restorableLocations[].creationTime",
        when_recorded: None,
        treat: Treat::Shape,
        reason: "time the source's region was made",
    },
    Ignored {
        path: "properties.restorableLocations[].regionalDatabaseAccountInstanceId",
        when_recorded: None,
        treat: Treat::Shape,
        reason: "as value[].properties.restorableLocations[].regionalDatabaseAccountInstanceId",
    },
];

/// Lists whose recorded items (of one resource type) are looked up in the
/// simulator's answer by `id`, and why: their order, and items the simulator
/// lists beyond the recording's, are not compared.
pub const BY_ID: &[(&str, &str, &str)] = &[
    (
        "value",
        "Microsoft.DocumentDB/locations",
        "the regions Azure lists to a subscription change over time (the simulator also lists those opened after the 2024 recording, and its own order)",
    ),
    (
        "value",
        "Microsoft.DocumentDB/locations/restorableDatabaseAccounts",
        "the recording's subscription is Microsoft's test subscription: only the items of the accounts the transcript made are kept and looked for",
    ),
];

fn by_id(path: &str, recorded: &[Value]) -> bool {
    BY_ID.iter().any(|(p, ty, _)| {
        *p == path
            && !recorded.is_empty()
            && recorded
                .iter()
                .all(|i| i.get("type").and_then(Value::as_str) == Some(ty) && i.get("id").is_some())
    })
}

fn ignored(path: &str, recorded: &Value) -> Option<&'static Ignored> {
    IGNORED
        .iter()
        .find(|i| i.path == path && i.when_recorded.is_none_or(|w| recorded.as_str() == Some(w)))
}

/// What comparing one answer found.
#[derive(Default, Debug)]
pub struct Outcome {
    pub matched: usize,
    pub ignored: usize,
    pub differences: Vec<String>,
    /// (recorded, simulator) values of `Bind` fields.
    pub bindings: Vec<(String, String)>,
}

pub fn compare(recorded: &Value, actual: &Value, path: &str, out: &mut Outcome) {
    if let Some(i) = ignored(path, recorded) {
        out.ignored += 1;
        if i.treat == Treat::Skip {
            return;
        }
        if std::mem::discriminant(recorded) != std::mem::discriminant(actual) {
            out.differences.push(format!(
                "{path}: recorded {recorded}, simulator {actual} (type)"
            ));
        } else if let (Treat::Bind, Some(r), Some(a)) =
            (i.treat, recorded.as_str(), actual.as_str())
        {
            out.bindings.push((r.to_owned(), a.to_owned()));
        }
        return;
    }
    match (recorded, actual) {
        (Value::Object(r), Value::Object(a)) => {
            for (k, rv) in r {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match a.get(k) {
                    Some(av) => compare(rv, av, &p, out),
                    None if ignored(&p, rv).is_some_and(|i| i.treat == Treat::Skip) => {
                        out.ignored += 1
                    }
                    None => out.differences.push(format!(
                        "{p}: recorded {rv}, missing in the simulator's answer"
                    )),
                }
            }
        }
        (Value::Array(r), Value::Array(a)) if by_id(path, r) => {
            for rv in r {
                match a.iter().find(|av| av.get("id") == rv.get("id")) {
                    Some(av) => compare(rv, av, &format!("{path}[]"), out),
                    None => out.differences.push(format!(
                        "{path}: recorded item {} missing in the simulator's answer",
                        rv["id"]
                    )),
                }
            }
        }
        (Value::Array(r), Value::Array(a)) => {
            if r.len() != a.len() {
                out.differences.push(format!(
                    "{path}: recorded {} items, simulator {}",
                    r.len(),
                    a.len()
                ));
            }
            for (rv, av) in r.iter().zip(a) {
                compare(rv, av, &format!("{path}[]"), out);
            }
        }
        _ if recorded == actual => out.matched += 1,
        _ => out
            .differences
            .push(format!("{path}: recorded {recorded}, simulator {actual}")),
    }
}
