//! The account settings Azure Policy looks at, to and from ARM's JSON
//! (`properties.publicNetworkAccess`, `ipRules[].ipAddressOrRange`,
//! `virtualNetworkRules[].{id, ignoreMissingVNetServiceEndpoint}`, ...: the
//! names of Cosmos DB's REST spec, 2025-10-15).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::api::{
    AccountSettings, IpRule, MinimalTlsVersion, NetworkAclBypass, OWNER_TAG_PREFIX,
    PublicNetworkAccess, VirtualNetworkRule,
};

/// The settings in an account's `properties`; a field Azure did not send (or
/// sent in a shape not understood) is `None`, so it is never "corrected".
pub(super) fn settings_of(p: &Value) -> AccountSettings {
    let text = |k: &str| {
        p.get(k)
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
    };
    let flag = |k: &str| p.get(k).and_then(Value::as_bool);
    let list = |k: &str| p.get(k).and_then(Value::as_array);
    AccountSettings {
        public_network_access: text("publicNetworkAccess").and_then(|v| match v.as_str() {
            "enabled" => Some(PublicNetworkAccess::Enabled),
            "disabled" => Some(PublicNetworkAccess::Disabled),
            "securedbyperimeter" => Some(PublicNetworkAccess::SecuredByPerimeter),
            _ => None,
        }),
        ip_rules: list("ipRules").and_then(|l| {
            l.iter()
                .map(|r| {
                    r.get("ipAddressOrRange")
                        .and_then(Value::as_str)
                        .map(|ip| IpRule {
                            ip_address_or_range: ip.to_owned(),
                        })
                })
                .collect()
        }),
        virtual_network_rules: list("virtualNetworkRules").and_then(|l| {
            l.iter()
                .map(|r| {
                    Some(VirtualNetworkRule {
                        id: r.get("id").and_then(Value::as_str)?.to_owned(),
                        ignore_missing_vnet_service_endpoint: r
                            .get("ignoreMissingVNetServiceEndpoint")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                    })
                })
                .collect()
        }),
        is_virtual_network_filter_enabled: flag("isVirtualNetworkFilterEnabled"),
        network_acl_bypass: text("networkAclBypass").and_then(|v| match v.as_str() {
            "none" => Some(NetworkAclBypass::None),
            "azureservices" => Some(NetworkAclBypass::AzureServices),
            _ => None,
        }),
        network_acl_bypass_resource_ids: list("networkAclBypassResourceIds")
            .and_then(|l| l.iter().map(|i| i.as_str().map(str::to_owned)).collect()),
        disable_local_auth: flag("disableLocalAuth"),
        minimal_tls_version: text("minimalTlsVersion").and_then(|v| match v.as_str() {
            "tls" => Some(MinimalTlsVersion::Tls),
            "tls11" => Some(MinimalTlsVersion::Tls11),
            "tls12" => Some(MinimalTlsVersion::Tls12),
            _ => None,
        }),
    }
}

/// The settings that are set, as `properties` entries.
pub(super) fn settings_body(s: &AccountSettings) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(v) = s.public_network_access {
        m.insert("publicNetworkAccess".into(), json!(v.as_str()));
    }
    if let Some(v) = &s.ip_rules {
        let rules: Vec<Value> = v
            .iter()
            .map(|r| json!({"ipAddressOrRange": r.ip_address_or_range}))
            .collect();
        m.insert("ipRules".into(), json!(rules));
    }
    if let Some(v) = &s.virtual_network_rules {
        let rules: Vec<Value> = v
            .iter()
            .map(|r| {
                json!({"id": r.id, "ignoreMissingVNetServiceEndpoint": r.ignore_missing_vnet_service_endpoint})
            })
            .collect();
        m.insert("virtualNetworkRules".into(), json!(rules));
    }
    if let Some(v) = s.is_virtual_network_filter_enabled {
        m.insert("isVirtualNetworkFilterEnabled".into(), json!(v));
    }
    if let Some(v) = s.network_acl_bypass {
        m.insert("networkAclBypass".into(), json!(v.as_str()));
    }
    if let Some(v) = &s.network_acl_bypass_resource_ids {
        m.insert("networkAclBypassResourceIds".into(), json!(v));
    }
    if let Some(v) = s.disable_local_auth {
        m.insert("disableLocalAuth".into(), json!(v));
    }
    if let Some(v) = s.minimal_tls_version {
        m.insert("minimalTlsVersion".into(), json!(v.as_str()));
    }
    m
}

/// The tag set a PATCH must carry (ARM replaces it whole): every tag the
/// account has, with the user's set on top. A user tag never replaces an
/// owner tag, whatever its case.
pub(super) fn merged_tags(
    current: &BTreeMap<String, String>,
    user: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = current.clone();
    for (k, v) in user {
        if k.to_ascii_lowercase().starts_with(OWNER_TAG_PREFIX) {
            continue;
        }
        out.retain(|name, _| !name.eq_ignore_ascii_case(k));
        out.insert(k.clone(), v.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_through_arm_json() {
        let s = AccountSettings {
            public_network_access: Some(PublicNetworkAccess::SecuredByPerimeter),
            ip_rules: Some(vec![IpRule {
                ip_address_or_range: "110.12.240.0/12".into(),
            }]),
            virtual_network_rules: Some(vec![VirtualNetworkRule {
                id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/a".into(),
                ignore_missing_vnet_service_endpoint: true,
            }]),
            is_virtual_network_filter_enabled: Some(true),
            network_acl_bypass: Some(NetworkAclBypass::AzureServices),
            network_acl_bypass_resource_ids: Some(vec!["/x".into()]),
            disable_local_auth: Some(true),
            minimal_tls_version: Some(MinimalTlsVersion::Tls11),
        };
        let body = Value::Object(settings_body(&s));
        assert_eq!(settings_of(&body), s);
        assert!(settings_body(&AccountSettings::default()).is_empty());
    }

    #[test]
    fn a_user_tag_never_replaces_an_owner_tag() {
        let current: BTreeMap<String, String> = [
            ("cosmoscmk.io-uid".to_owned(), "u1".to_owned()),
            ("Env".to_owned(), "dev".to_owned()),
        ]
        .into();
        let user = [
            ("COSMOSCMK.IO-UID".to_owned(), "forged".to_owned()),
            ("env".to_owned(), "prod".to_owned()),
        ]
        .into();
        let merged = merged_tags(&current, &user);
        assert_eq!(
            merged,
            [
                ("cosmoscmk.io-uid".to_owned(), "u1".to_owned()),
                ("env".to_owned(), "prod".to_owned()),
            ]
            .into()
        );
    }
}
