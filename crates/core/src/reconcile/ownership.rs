//! Who owns an Azure account: Azure tags written when the operator creates (or
//! adopts) it. The tags in Azure, not the status, decide whether a resource may
//! write to or delete an account, so a second resource naming the same account,
//! a status edit or a restored object without status can never take it over.

use std::collections::BTreeMap;
use std::fmt;

/// Tag names (Azure forbids `<>%&\?/` in tag names, so no slash here).
pub const TAG_CLUSTER: &str = "cosmoscmk.io-cluster";
pub const TAG_NAMESPACE: &str = "cosmoscmk.io-namespace";
pub const TAG_NAME: &str = "cosmoscmk.io-name";
pub const TAG_UID: &str = "cosmoscmk.io-uid";

/// The resource an account belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The operator installation's cluster id (`--cluster-id`).
    pub cluster: String,
    pub namespace: String,
    pub name: String,
    /// Recorded for people; not compared, so a resource restored from a backup
    /// (same cluster, namespace and name, new uid) still owns its account.
    pub uid: String,
}

impl Owner {
    /// The tags that mark an account as this owner's.
    pub fn tags(&self) -> BTreeMap<String, String> {
        [
            (TAG_CLUSTER, &self.cluster),
            (TAG_NAMESPACE, &self.namespace),
            (TAG_NAME, &self.name),
            (TAG_UID, &self.uid),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect()
    }

    /// The owner an account's tags name, if any (tag names compare case-insensitively,
    /// as Azure treats them).
    pub fn from_tags(tags: &BTreeMap<String, String>) -> Option<Owner> {
        let get = |k: &str| {
            tags.iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        let cluster = get(TAG_CLUSTER);
        let namespace = get(TAG_NAMESPACE);
        let name = get(TAG_NAME);
        if cluster.is_none() && namespace.is_none() && name.is_none() {
            return None;
        }
        Some(Owner {
            cluster: cluster.unwrap_or_default(),
            namespace: namespace.unwrap_or_default(),
            name: name.unwrap_or_default(),
            uid: get(TAG_UID).unwrap_or_default(),
        })
    }

    /// Whether `other` is the same resource (cluster, namespace and name).
    pub fn same_resource(&self, other: &Owner) -> bool {
        self.cluster == other.cluster
            && self.namespace == other.namespace
            && self.name == other.name
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CosmosAccountCMK {}/{} of cluster {}",
            self.namespace, self.name, self.cluster
        )
    }
}

/// How an account stands towards a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Tagged as this resource's.
    Mine,
    /// Tagged as another resource's (in this cluster or another).
    Other(Owner),
    /// No owner tags: created outside the operator (or before it tagged accounts).
    Unowned,
}

/// The account's ownership as its tags say.
pub fn classify(tags: &BTreeMap<String, String>, me: &Owner) -> Ownership {
    match Owner::from_tags(tags) {
        None => Ownership::Unowned,
        Some(o) if o.same_resource(me) => Ownership::Mine,
        Some(o) => Ownership::Other(o),
    }
}

/// `tags` with the owner's tags set, every other tag kept (ARM replaces the whole
/// tag set on PATCH, so a tag someone else wrote must be carried over).
pub fn with_owner(tags: &BTreeMap<String, String>, owner: &Owner) -> BTreeMap<String, String> {
    let ours = owner.tags();
    let mut out: BTreeMap<String, String> = tags
        .iter()
        .filter(|(k, _)| !ours.keys().any(|o| o.eq_ignore_ascii_case(k)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.extend(ours);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Owner {
        Owner {
            cluster: "prod-1".into(),
            namespace: "team-a".into(),
            name: "orders".into(),
            uid: "u1".into(),
        }
    }

    #[test]
    fn tags_round_trip_and_classify() {
        let tags = me().tags();
        assert_eq!(classify(&tags, &me()), Ownership::Mine);
        let restored = Owner {
            uid: "u2".into(),
            ..me()
        };
        assert_eq!(
            classify(&tags, &restored),
            Ownership::Mine,
            "uid is not compared"
        );
        let other = Owner {
            name: "orders-2".into(),
            ..me()
        };
        assert_eq!(classify(&tags, &other), Ownership::Other(me()));
        let elsewhere = Owner {
            cluster: "prod-2".into(),
            ..me()
        };
        assert!(matches!(classify(&tags, &elsewhere), Ownership::Other(_)));
        assert_eq!(classify(&BTreeMap::new(), &me()), Ownership::Unowned);
        let foreign: BTreeMap<String, String> = [("env".to_owned(), "prod".to_owned())].into();
        assert_eq!(classify(&foreign, &me()), Ownership::Unowned);
    }

    #[test]
    fn tag_names_compare_case_insensitively() {
        let tags: BTreeMap<String, String> = me()
            .tags()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_uppercase(), v))
            .collect();
        assert_eq!(classify(&tags, &me()), Ownership::Mine);
    }

    #[test]
    fn adding_the_owner_keeps_other_tags() {
        let mut tags: BTreeMap<String, String> = [("env".to_owned(), "prod".to_owned())].into();
        tags.insert("COSMOSCMK.IO-NAME".into(), "stale".into());
        let out = with_owner(&tags, &me());
        assert_eq!(out.get("env").map(String::as_str), Some("prod"));
        assert_eq!(out.get(TAG_NAME).map(String::as_str), Some("orders"));
        assert!(!out.contains_key("COSMOSCMK.IO-NAME"));
        assert_eq!(out.len(), 5);
    }
}
