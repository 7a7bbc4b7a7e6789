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
    /// The Kubernetes uid of the resource that created or adopted the account.
    /// A resource with the same cluster, namespace and name but another uid (one
    /// restored by a backup tool, or the same manifest synced into a second
    /// cluster that was given the same cluster id) still manages the account but
    /// may not delete it until it confirms ownership (`CONFIRM_OWNER_ANNOTATION`).
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

impl Owner {
    /// The owner as a message to `viewer`'s namespace may name it: another
    /// namespace's resource (another team's) is not named.
    pub fn as_seen_from(&self, viewer: &Owner) -> String {
        if self.namespace == viewer.namespace {
            self.to_string()
        } else {
            format!(
                "a CosmosAccountCMK in another namespace of cluster {}",
                self.cluster
            )
        }
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
    /// Tagged as this resource's (cluster, namespace, name and uid).
    Mine,
    /// Tagged with this cluster, namespace and name but another uid: managed,
    /// never deleted until the owner is confirmed (the tags then name this uid).
    MineUnconfirmed { tagged_uid: String },
    /// Tagged by this very resource (same namespace, name and uid) under the
    /// cluster id this installation used before (`--previous-cluster-id`): the
    /// tags are moved to the current id before anything else is written.
    MineUnderPreviousId,
    /// Tagged as a resource of another cluster (another cluster id).
    OtherCluster(Owner),
    /// Tagged as another resource of this cluster.
    Other(Owner),
    /// No owner tags: created outside the operator (or before it tagged accounts).
    Unowned,
}

/// The account's ownership as its tags say. `previous_cluster` is the cluster
/// id this installation used before, if it is moving to a new one.
pub fn classify(
    tags: &BTreeMap<String, String>,
    me: &Owner,
    previous_cluster: Option<&str>,
) -> Ownership {
    let Some(o) = Owner::from_tags(tags) else {
        return Ownership::Unowned;
    };
    let same_object = o.namespace == me.namespace && o.name == me.name;
    // A uid names one object in one cluster: only the uid proves that tags
    // written under the previous id were written by this very resource.
    let moved_here = previous_cluster.is_some_and(|p| !p.is_empty() && o.cluster == p)
        && same_object
        && !me.uid.is_empty()
        && o.uid == me.uid;
    match () {
        _ if o.same_resource(me) && o.uid == me.uid => Ownership::Mine,
        _ if o.same_resource(me) => Ownership::MineUnconfirmed { tagged_uid: o.uid },
        _ if moved_here => Ownership::MineUnderPreviousId,
        _ if o.cluster != me.cluster => Ownership::OtherCluster(o),
        _ => Ownership::Other(o),
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
        assert_eq!(classify(&tags, &me(), None), Ownership::Mine);
        let restored = Owner {
            uid: "u2".into(),
            ..me()
        };
        assert_eq!(
            classify(&tags, &restored, None),
            Ownership::MineUnconfirmed {
                tagged_uid: "u1".into()
            },
            "a new uid manages, but must confirm before a delete"
        );
        let other = Owner {
            name: "orders-2".into(),
            ..me()
        };
        assert_eq!(classify(&tags, &other, None), Ownership::Other(me()));
        let elsewhere = Owner {
            cluster: "prod-2".into(),
            ..me()
        };
        assert_eq!(
            classify(&tags, &elsewhere, None),
            Ownership::OtherCluster(me()),
            "the same manifest in another cluster never owns the account"
        );
        assert_eq!(classify(&BTreeMap::new(), &me(), None), Ownership::Unowned);
        let foreign: BTreeMap<String, String> = [("env".to_owned(), "prod".to_owned())].into();
        assert_eq!(classify(&foreign, &me(), None), Ownership::Unowned);
    }

    #[test]
    fn tag_names_compare_case_insensitively() {
        let tags: BTreeMap<String, String> = me()
            .tags()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_uppercase(), v))
            .collect();
        assert_eq!(classify(&tags, &me(), None), Ownership::Mine);
    }

    #[test]
    fn only_the_same_uid_moves_from_the_previous_cluster_id() {
        let legacy = Owner {
            cluster: "default".into(),
            ..me()
        };
        let tags = legacy.tags();
        assert_eq!(
            classify(&tags, &me(), Some("default")),
            Ownership::MineUnderPreviousId
        );
        // Another cluster that also ran with `default` has its own uid.
        let twin = Owner {
            uid: "u-other-cluster".into(),
            ..me()
        };
        assert_eq!(
            classify(&tags, &twin, Some("default")),
            Ownership::OtherCluster(legacy.clone())
        );
        assert_eq!(
            classify(&tags, &me(), None),
            Ownership::OtherCluster(legacy.clone()),
            "without --previous-cluster-id the old tags are another cluster's"
        );
        let no_uid = Owner {
            uid: String::new(),
            ..me()
        };
        let untagged_uid = Owner {
            uid: String::new(),
            ..legacy
        };
        assert!(matches!(
            classify(&untagged_uid.tags(), &no_uid, Some("default")),
            Ownership::OtherCluster(_)
        ));
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
