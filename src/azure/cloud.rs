//! Azure clouds: where ARM, Entra ID and Key Vault live, and who the Cosmos DB
//! first-party principal is, for each sovereign cloud. The simulator is any of
//! them with its host names resolved to the simulator's address and the
//! simulator's CA trusted: every check runs as against that cloud.

use std::fmt;
use std::net::SocketAddr;

/// The named clouds; the simulator is one of them redirected.
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
    /// Where this cloud's host names lead, when not to Azure (the simulator).
    pub redirect: Option<Redirect>,
}

/// How vault URIs are formed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VaultHosts {
    /// `https://{vault}.{suffix}/`, e.g. `vault.azure.net`.
    DnsSuffix(String),
}

/// The transport of a simulated cloud: its host names (ARM, login, every
/// vault) resolve to `addr`, and `ca_pem` is the one trusted root. URLs,
/// key URI checks, token audiences and the https requirement are the cloud's own.
#[derive(Clone, PartialEq, Eq)]
pub struct Redirect {
    pub addr: SocketAddr,
    pub ca_pem: String,
}

impl fmt::Debug for Redirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redirect")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
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

    /// The local simulator listening on `addr` with CA `ca_pem`: the public
    /// cloud, its host names resolved to `addr`.
    pub fn simulator(addr: SocketAddr, ca_pem: &str) -> Self {
        Cloud {
            name: "Simulator".into(),
            ..Self::public().redirected(addr, ca_pem)
        }
    }

    /// This cloud with its host names resolved to the simulator at `addr`
    /// (CA `ca_pem`): name, hosts, audiences, suffix and first-party app id
    /// stay this cloud's, so the simulator is addressed as this cloud.
    pub fn redirected(self, addr: SocketAddr, ca_pem: &str) -> Self {
        Cloud {
            redirect: Some(Redirect {
                addr,
                ca_pem: ca_pem.to_owned(),
            }),
            ..self
        }
    }

    /// Host names of this cloud's ARM and Entra endpoints, and its vaults' DNS suffix.
    pub fn hosts(&self) -> (Vec<String>, &str) {
        let host = |u: &str| {
            url::Url::parse(u)
                .ok()
                .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        };
        let names = [&self.resource_manager, &self.authority_host]
            .into_iter()
            .filter_map(|u| host(u))
            .collect();
        let VaultHosts::DnsSuffix(suffix) = &self.vault_hosts;
        (names, suffix)
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
            redirect: None,
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
    fn a_sovereign_cloud_redirected_keeps_its_own_names() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        for cloud in [Cloud::us_government(), Cloud::china()] {
            let sim = cloud.clone().redirected(addr, "PEM");
            assert_eq!(
                Cloud {
                    redirect: None,
                    ..sim.clone()
                },
                cloud
            );
            assert_eq!(sim.redirect.as_ref().map(|r| r.addr), Some(addr));
        }
    }

    #[test]
    fn the_simulator_is_the_public_cloud_redirected() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let sim = Cloud::simulator(addr, "PEM");
        assert_eq!(
            Cloud {
                name: "AzurePublicCloud".into(),
                redirect: None,
                ..sim.clone()
            },
            Cloud::public()
        );
        assert_eq!(sim.redirect.as_ref().map(|r| r.addr), Some(addr));
        assert!(!format!("{sim:?}").contains("PEM"));
        let (names, suffix) = sim.hosts();
        assert_eq!(
            (names, suffix),
            (
                vec![
                    "management.azure.com".to_owned(),
                    "login.microsoftonline.com".to_owned()
                ],
                "vault.azure.net"
            )
        );
    }
}
