//! The account settings Azure Policy looks at (`publicNetworkAccess`, firewall
//! and virtual network rules, `disableLocalAuth`, `minimalTlsVersion`) and the
//! user's tags: what differs between the spec and Azure, as one write.
//!
//! Which spec fields converge: all of them. Each is a plain property Azure
//! accepts in a PATCH of the account (Cosmos DB's REST spec lists them in
//! `DatabaseAccountUpdateProperties`), none is one-way, and none is bundled
//! with a CMK or region change by Azure's rules. What the spec leaves unset
//! is never compared or written (an adopted account keeps its own value), and
//! a field Azure's read lacks is left alone, never "corrected" from it.
//!
//! All differences go out in one PATCH, tags included: a deny assignment
//! judges the account as the PATCH leaves it, so fixing the network in one
//! write and adding a required tag in another would have each refused for
//! the part the other fixes.

use std::collections::BTreeMap;

use super::ownership::Owner;
use crate::api::{
    AccountSettings, CosmosAccountCMKSpec, IpRule, OWNER_TAG_PREFIX, VirtualNetworkRule,
};

/// One write that brings the settings and the user's tags to the spec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettingsUpdate {
    /// Only the settings that differ.
    pub settings: AccountSettings,
    /// The user's tags to set (every other tag on the account is kept, and the
    /// owner tags are never among these).
    pub tags: BTreeMap<String, String>,
    /// Adoption: the owner tags go out in the same write (see `account`).
    pub owner: Option<Owner>,
}

impl SettingsUpdate {
    pub fn is_empty(&self) -> bool {
        self.settings.is_empty() && self.tags.is_empty()
    }
}

/// The user's tags from the spec, without any that would shadow an owner tag
/// (the API server refuses those already; this keeps the owner tags safe from
/// a spec that slipped past it).
pub fn user_tags(spec: &CosmosAccountCMKSpec) -> BTreeMap<String, String> {
    spec.tags
        .iter()
        .filter(|(k, _)| !k.to_ascii_lowercase().starts_with(OWNER_TAG_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// What must change, in words and as one update; `None` when nothing differs.
/// `have` holds what Azure reported (`None` per field: not reported).
pub fn difference(
    have: &AccountSettings,
    have_tags: &BTreeMap<String, String>,
    spec: &CosmosAccountCMKSpec,
) -> Option<(String, SettingsUpdate)> {
    let want = spec.settings();
    let mut what = Vec::new();
    let mut out = SettingsUpdate::default();
    let mut field = |name: &str, differs: bool, have: String, want: String| {
        if differs {
            what.push(format!("{name} is {have} in Azure, the spec says {want}"));
        }
        differs
    };
    macro_rules! scalar {
        ($f:ident, $name:literal, $show:expr) => {
            if let (Some(w), Some(h)) = (want.$f, have.$f)
                && field($name, w != h, $show(h), $show(w))
            {
                out.settings.$f = Some(w);
            }
        };
    }
    scalar!(
        public_network_access,
        "publicNetworkAccess",
        |v: crate::api::PublicNetworkAccess| v.as_str().to_owned()
    );
    scalar!(
        is_virtual_network_filter_enabled,
        "isVirtualNetworkFilterEnabled",
        |v: bool| v.to_string()
    );
    scalar!(
        network_acl_bypass,
        "networkAclBypass",
        |v: crate::api::NetworkAclBypass| v.as_str().to_owned()
    );
    scalar!(disable_local_auth, "disableLocalAuth", |v: bool| v
        .to_string());
    scalar!(
        minimal_tls_version,
        "minimalTlsVersion",
        |v: crate::api::MinimalTlsVersion| v.as_str().to_owned()
    );
    if let (Some(w), Some(h)) = (&want.ip_rules, &have.ip_rules)
        && field("ipRules", ip_set(w) != ip_set(h), show_ips(h), show_ips(w))
    {
        out.settings.ip_rules = Some(w.clone());
    }
    if let (Some(w), Some(h)) = (&want.virtual_network_rules, &have.virtual_network_rules)
        && field(
            "virtualNetworkRules",
            vnet_set(w) != vnet_set(h),
            show_vnets(h),
            show_vnets(w),
        )
    {
        out.settings.virtual_network_rules = Some(w.clone());
    }
    if let (Some(w), Some(h)) = (
        &want.network_acl_bypass_resource_ids,
        &have.network_acl_bypass_resource_ids,
    ) && field(
        "networkAclBypassResourceIds",
        id_set(w) != id_set(h),
        format!("[{}]", h.join(", ")),
        format!("[{}]", w.join(", ")),
    ) {
        out.settings.network_acl_bypass_resource_ids = Some(w.clone());
    }
    for (k, v) in user_tags(spec) {
        let current = have_tags
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&k))
            .map(|(_, v)| v.as_str());
        if current != Some(v.as_str()) {
            what.push(match current {
                Some(c) => format!("tag {k} is {c:?} in Azure, the spec says {v:?}"),
                None => format!("tag {k} is not on the account"),
            });
            out.tags.insert(k, v);
        }
    }
    (!out.is_empty()).then(|| (what.join("; "), out))
}

/// IP rules compare as a set (Azure keeps no order that means anything).
fn ip_set(v: &[IpRule]) -> Vec<String> {
    let mut s: Vec<String> = v
        .iter()
        .map(|r| r.ip_address_or_range.trim().to_owned())
        .collect();
    s.sort();
    s.dedup();
    s
}

fn show_ips(v: &[IpRule]) -> String {
    format!("[{}]", ip_set(v).join(", "))
}

/// Subnet ids compare case-insensitively (ARM ids do).
fn vnet_set(v: &[VirtualNetworkRule]) -> Vec<(String, bool)> {
    let mut s: Vec<(String, bool)> = v
        .iter()
        .map(|r| {
            (
                r.id.to_ascii_lowercase(),
                r.ignore_missing_vnet_service_endpoint,
            )
        })
        .collect();
    s.sort();
    s.dedup();
    s
}

fn show_vnets(v: &[VirtualNetworkRule]) -> String {
    let ids: Vec<&str> = v.iter().map(|r| r.id.as_str()).collect();
    format!("[{}]", ids.join(", "))
}

fn id_set(v: &[String]) -> Vec<String> {
    let mut s: Vec<String> = v.iter().map(|i| i.to_ascii_lowercase()).collect();
    s.sort();
    s.dedup();
    s
}
