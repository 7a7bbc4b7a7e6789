//! Azure clouds: where ARM, Entra ID and Key Vault live, and who the Cosmos DB
//! first-party principal is, for each sovereign cloud and for the simulator.

use std::fmt;

/// The named clouds plus a custom endpoint set (the simulator, or Azure Stack).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cloud {
    pub name: String,
    /// ARM endpoint, e.g. `https://management.azure.com/`.
    pub resource_manager: String,
    /// Entra ID authority host, e.g. `https://login.microsoftonline.com/`.
    pub authority_host: String,
    /// Token audience for ARM.
    pub arm_audience: String,
    /// Token audience for the Key Vault data plane.
    pub key_vault_audience: String,
    /// How key vault hosts look in this cloud.
    pub vault_hosts: VaultHosts,
    /// Application (client) id of the Azure Cosmos DB first-party service principal.
    pub cosmos_first_party_app_id: String,
}

/// How vault URIs are formed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VaultHosts {
    /// `https://{vault}.{suffix}/`, e.g. `vault.azure.net`.
    DnsSuffix(String),
    /// The simulator: plain http on a loopback address, one port per vault
    /// (`http://127.0.0.1:{port}/`), or path-based (`http://127.0.0.1:{port}/keyvault/{vault}/`).
    Loopback,
}

/// The first-party application id the seed gives for every Azure region except Government.
/// It is the *application* id; the principal's object id differs per tenant (see README).
pub const COSMOS_APP_ID_PUBLIC: &str = "a232010e-820c-4083-83bb-3ace5fc29d0b";
/// The Government cloud's Cosmos DB application id.
pub const COSMOS_APP_ID_US_GOV: &str = "57506a73-e302-42a9-b869-6f12d9ec29e9";

impl Cloud {
    /// Azure public cloud.
    pub fn public() -> Self {
        Self::named(
            "AzurePublicCloud",
            "management.azure.com",
            "login.microsoftonline.com",
            "vault.azure.net",
            COSMOS_APP_ID_PUBLIC,
        )
    }

    /// Azure US Government.
    pub fn us_government() -> Self {
        Self::named(
            "AzureUSGovernment",
            "management.usgovcloudapi.net",
            "login.microsoftonline.us",
            "vault.usgovcloudapi.net",
            COSMOS_APP_ID_US_GOV,
        )
    }

    /// Azure operated by 21Vianet (China).
    pub fn china() -> Self {
        Self::named(
            "AzureChinaCloud",
            "management.chinacloudapi.cn",
            "login.chinacloudapi.cn",
            "vault.azure.cn",
            COSMOS_APP_ID_PUBLIC,
        )
    }

    /// The local simulator at `base` (e.g. `http://127.0.0.1:8443/`): ARM and the token
    /// endpoint share its listener, vaults are loopback listeners of their own.
    pub fn simulator(base: &str) -> Self {
        let base = format!("{}/", base.trim_end_matches('/'));
        Cloud {
            name: "Simulator".into(),
            resource_manager: base.clone(),
            authority_host: base,
            arm_audience: "https://management.azure.com".into(),
            key_vault_audience: "https://vault.azure.net".into(),
            vault_hosts: VaultHosts::Loopback,
            cosmos_first_party_app_id: COSMOS_APP_ID_PUBLIC.into(),
        }
    }

    fn named(name: &str, arm: &str, login: &str, vault_suffix: &str, app_id: &str) -> Self {
        Cloud {
            name: name.into(),
            resource_manager: format!("https://{arm}/"),
            authority_host: format!("https://{login}/"),
            arm_audience: format!("https://{arm}"),
            key_vault_audience: format!("https://{}", vault_suffix),
            vault_hosts: VaultHosts::DnsSuffix(vault_suffix.into()),
            cosmos_first_party_app_id: app_id.into(),
        }
    }

    /// Looks a cloud up by the names `az cloud list` uses (case-insensitive), or short forms.
    pub fn by_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "azurepubliccloud" | "public" | "azurecloud" => Some(Self::public()),
            "azureusgovernment" | "usgovernment" | "usgov" => Some(Self::us_government()),
            "azurechinacloud" | "china" => Some(Self::china()),
            _ => None,
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sovereign_clouds_have_their_own_hosts() {
        assert_eq!(
            Cloud::public().vault_hosts,
            VaultHosts::DnsSuffix("vault.azure.net".into())
        );
        assert_eq!(
            Cloud::us_government().authority_host,
            "https://login.microsoftonline.us/"
        );
        assert_eq!(
            Cloud::china().resource_manager,
            "https://management.chinacloudapi.cn/"
        );
        assert_eq!(
            Cloud::by_name("AzureUSGovernment")
                .unwrap()
                .cosmos_first_party_app_id,
            COSMOS_APP_ID_US_GOV
        );
        assert!(Cloud::by_name("mars").is_none());
    }

    #[test]
    fn simulator_base_is_normalised() {
        assert_eq!(
            Cloud::simulator("http://127.0.0.1:1/").resource_manager,
            "http://127.0.0.1:1/"
        );
        assert_eq!(
            Cloud::simulator("http://127.0.0.1:1").authority_host,
            "http://127.0.0.1:1/"
        );
    }
}
