//! Account settings Azure Policy assignments look at (network exposure,
//! local auth, TLS, tags). Names and values are those of Cosmos DB's REST
//! spec (`DatabaseAccountCreateUpdateProperties`, 2025-10-15, and the example
//! `CosmosDBDatabaseAccountCreateMax.json` in Azure/azure-rest-api-specs).
//! Every field is optional: unset leaves Azure's value alone (an adopted
//! account keeps what it has), set is written at creation and converged.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `publicNetworkAccess` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PublicNetworkAccess {
    /// Reachable from public networks (subject to `ipRules` and virtual network rules).
    Enabled,
    /// Private endpoints only.
    Disabled,
    /// Access governed by a network security perimeter.
    SecuredByPerimeter,
}

impl PublicNetworkAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "Enabled",
            Self::Disabled => "Disabled",
            Self::SecuredByPerimeter => "SecuredByPerimeter",
        }
    }
}

/// `networkAclBypass` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum NetworkAclBypass {
    /// No bypass.
    None,
    /// Trusted Azure services (e.g. Synapse) named in `networkAclBypassResourceIds` bypass the firewall.
    AzureServices,
}

impl NetworkAclBypass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::AzureServices => "AzureServices",
        }
    }
}

/// `minimalTlsVersion` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MinimalTlsVersion {
    Tls,
    Tls11,
    Tls12,
}

impl MinimalTlsVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tls => "Tls",
            Self::Tls11 => "Tls11",
            Self::Tls12 => "Tls12",
        }
    }
}

/// One IP firewall rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpRule {
    /// A single IPv4 address or a CIDR range, e.g. `23.43.230.120` or `110.12.240.0/12`.
    #[schemars(
        length(min = 7, max = 18),
        regex(pattern = r"^[0-9]{1,3}(\.[0-9]{1,3}){3}(/[0-9]{1,2})?$")
    )]
    pub ip_address_or_range: String,
}

/// One virtual network (subnet) rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualNetworkRule {
    /// ARM id of the subnet:
    /// `/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Network/virtualNetworks/<vnet>/subnets/<subnet>`.
    #[schemars(
        length(min = 1, max = 1024),
        regex(
            pattern = r"(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/virtualNetworks/[^/]+/subnets/[^/]+$"
        )
    )]
    pub id: String,
    /// Add the rule even before the subnet has the Microsoft.AzureCosmosDB service endpoint.
    #[serde(default, rename = "ignoreMissingVNetServiceEndpoint")]
    pub ignore_missing_vnet_service_endpoint: bool,
}

/// The settings as one value, for comparing what the spec sets with what
/// Azure reports, and for writing the difference.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountSettings {
    pub public_network_access: Option<PublicNetworkAccess>,
    pub ip_rules: Option<Vec<IpRule>>,
    pub virtual_network_rules: Option<Vec<VirtualNetworkRule>>,
    pub is_virtual_network_filter_enabled: Option<bool>,
    pub network_acl_bypass: Option<NetworkAclBypass>,
    pub network_acl_bypass_resource_ids: Option<Vec<String>>,
    pub disable_local_auth: Option<bool>,
    pub minimal_tls_version: Option<MinimalTlsVersion>,
}

impl AccountSettings {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Tag names the operator's owner tags use: user tags may not start with it.
pub const OWNER_TAG_PREFIX: &str = "cosmoscmk.io-";
