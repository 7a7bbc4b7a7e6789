//! What the per-resource gauges (`resource_metrics`) show of each object in
//! the caches: its conditions, a binding's key times, an account's earliest
//! retired key version still waiting to be safe to disable.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{Resource, ResourceExt};

use crate::api::{CosmosAccountCMK, KeyVaultBinding};
use crate::resource_metrics::{KeyTimes, ResourceFigures};

fn figures<K: Resource<DynamicType = ()>>(obj: &K, conditions: &[Condition]) -> ResourceFigures {
    ResourceFigures {
        kind: K::kind(&()).into_owned(),
        namespace: obj.meta().namespace.clone().unwrap_or_default(),
        name: obj.name_any(),
        conditions: conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
            .collect(),
        ..ResourceFigures::default()
    }
}

/// Unix seconds of an RFC 3339 time; an unreadable one shows no series
/// rather than a wrong time.
fn unix(rfc3339: &str) -> Option<i64> {
    rfc3339
        .parse::<jiff::Timestamp>()
        .ok()
        .map(jiff::Timestamp::as_second)
}

pub fn binding(b: &KeyVaultBinding) -> ResourceFigures {
    let status = b.status.as_ref();
    let mut out = figures(b, status.map_or(&[][..], |s| &s.conditions));
    let vault = b.spec.vault_resource_id.trim_end_matches('/');
    out.key = Some(KeyTimes {
        vault: vault.rsplit('/').next().unwrap_or(vault).to_owned(),
        key: b.spec.key.name.clone(),
        expires: status
            .and_then(|s| s.key_expires_on.as_deref())
            .and_then(unix),
        next_rotation: status
            .and_then(|s| s.next_rotation_on.as_deref())
            .and_then(unix),
    });
    out
}

pub fn account(a: &CosmosAccountCMK) -> ResourceFigures {
    let Some(status) = a.status.as_ref() else {
        return figures(a, &[]);
    };
    let mut out = figures(a, &status.conditions);
    let previous = status
        .previous_version_safe_to_disable_after
        .as_ref()
        .filter(|_| !status.previous_version_disabled);
    let retained = status
        .retained_key_versions
        .iter()
        .filter(|r| !r.disabled)
        .map(|r| &r.safe_to_disable_after);
    out.safe_to_disable_after = previous
        .into_iter()
        .chain(retained)
        .map(|t| t.0.as_second())
        .min();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RetainedKeyVersion;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn example<K: serde::de::DeserializeOwned>(file: &str) -> K {
        let path = format!("{}/deploy/examples/{file}", env!("CARGO_MANIFEST_DIR"));
        serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn at(secs: i64) -> Time {
        Time(jiff::Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn a_binding_shows_its_vault_key_and_times() {
        let mut b: KeyVaultBinding = example("00-binding-access-policy.yaml");
        b.metadata.namespace = Some("team-a".into());
        let f = binding(&b);
        assert_eq!(f.kind, "KeyVaultBinding");
        assert_eq!(f.namespace, "team-a");
        let key = f.key.expect("a binding always has a key");
        assert!(!key.vault.is_empty() && !key.vault.contains('/'), "{key:?}");
        assert_eq!(key.key, b.spec.key.name);
        assert_eq!((key.expires, key.next_rotation), (None, None));
        assert!(f.conditions.is_empty());

        let status = b.status.get_or_insert_default();
        status.key_expires_on = Some("2030-01-02T03:04:05Z".into());
        status.next_rotation_on = Some("not a time".into());
        status.conditions = vec![crate::api::conditions::condition(
            "Ready",
            "True",
            "KeyReady",
            "",
            Some(1),
            at(0),
        )];
        let f = binding(&b);
        let key = f.key.unwrap();
        assert_eq!(key.expires, Some(1_893_553_445));
        assert_eq!(
            key.next_rotation, None,
            "an unreadable time shows no series"
        );
        assert_eq!(
            f.conditions,
            vec![("Ready".into(), "True".into(), "KeyReady".into())]
        );
    }

    #[test]
    fn an_account_shows_its_earliest_version_still_to_disable() {
        let mut a: CosmosAccountCMK = example("10-account-first-party.yaml");
        assert_eq!(account(&a).safe_to_disable_after, None, "no status yet");
        let retained = |secs, disabled| RetainedKeyVersion {
            key_uri: "https://kv.vault.azure.net/keys/k".into(),
            version: format!("v{secs}"),
            reason: String::new(),
            retired_at: None,
            safe_to_disable_after: at(secs),
            disabled,
            kept_because: None,
        };
        let status = a.status.get_or_insert_default();
        status.retained_key_versions = vec![
            retained(100, true),
            retained(300, false),
            retained(200, false),
        ];
        assert_eq!(
            account(&a).safe_to_disable_after,
            Some(200),
            "disabled ones wait no more"
        );
        let status = a.status.as_mut().unwrap();
        status.previous_version_safe_to_disable_after = Some(at(150));
        assert_eq!(account(&a).safe_to_disable_after, Some(150));
        a.status.as_mut().unwrap().previous_version_disabled = true;
        assert_eq!(account(&a).safe_to_disable_after, Some(200));
    }
}
