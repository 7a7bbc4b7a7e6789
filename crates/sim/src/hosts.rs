//! Azure's host names, and which one a request came in on: the simulator
//! routes by the `Host` header and writes every URL it hands out with the
//! scheme, host and port the client used.

use axum::http::{HeaderMap, Uri};

/// One Azure cloud's service hosts and token audiences.
#[derive(Debug, PartialEq, Eq)]
pub struct CloudHosts {
    pub name: &'static str,
    pub arm_host: &'static str,
    pub login_host: &'static str,
    pub vault_suffix: &'static str,
    /// ARM token audiences; the first is the one tokens carry, the second the
    /// classic (Azure Service Management) one Entra also accepts for ARM.
    pub arm_audiences: [&'static str; 2],
    pub vault_audience: &'static str,
}

impl CloudHosts {
    pub fn arm_audience(&self) -> &'static str {
        self.arm_audiences[0]
    }
}

/// The public cloud, then the sovereign ones (Microsoft's endpoint lists:
/// `az cloud show --name AzureCloud|AzureChinaCloud|AzureUSGovernment`).
pub const CLOUDS: [CloudHosts; 3] = [
    CloudHosts {
        name: "AzureCloud",
        arm_host: "management.azure.com",
        login_host: "login.microsoftonline.com",
        vault_suffix: "vault.azure.net",
        arm_audiences: [
            "https://management.azure.com",
            "https://management.core.windows.net",
        ],
        vault_audience: "https://vault.azure.net",
    },
    CloudHosts {
        name: "AzureChinaCloud",
        arm_host: "management.chinacloudapi.cn",
        login_host: "login.chinacloudapi.cn",
        vault_suffix: "vault.azure.cn",
        arm_audiences: [
            "https://management.chinacloudapi.cn",
            "https://management.core.chinacloudapi.cn",
        ],
        vault_audience: "https://vault.azure.cn",
    },
    CloudHosts {
        name: "AzureUSGovernment",
        arm_host: "management.usgovcloudapi.net",
        login_host: "login.microsoftonline.us",
        vault_suffix: "vault.usgovcloudapi.net",
        arm_audiences: [
            "https://management.usgovcloudapi.net",
            "https://management.core.usgovcloudapi.net",
        ],
        vault_audience: "https://vault.usgovcloudapi.net",
    },
];

pub const PUBLIC: &CloudHosts = &CLOUDS[0];

/// Which service a host name names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Service {
    Arm,
    Login,
    /// `{vault}.vault.azure.net` and the like: the vault's name.
    Vault(String),
    /// Anything else (the listen address, `localhost`): only the admin API.
    Other,
}

/// Where a request came in: cloud, service, and the port the client named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub cloud: &'static CloudHosts,
    pub service: Service,
    /// The port in the client's `Host` (none when it named none, or 443).
    pub port: Option<u16>,
}

impl Default for Origin {
    fn default() -> Self {
        Origin {
            cloud: PUBLIC,
            service: Service::Other,
            port: None,
        }
    }
}

/// `host` and `port` of a `Host` value (`name`, `name:port`, `[v6]:port`).
pub(crate) fn split_host(value: &str) -> (String, Option<u16>) {
    let value = value.trim();
    let (host, port) = match value.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') && (!h.contains(':') || h.ends_with(']')) => {
            (h, p.parse::<u16>().ok())
        }
        _ => (value, None),
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (host, port.filter(|p| *p != 443))
}

impl Origin {
    /// From the request's `Host` header (or the authority of an absolute URI).
    pub fn of(headers: &HeaderMap, uri: &Uri) -> Origin {
        let value = headers
            .get(axum::http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| uri.authority().map(|a| a.as_str().to_owned()));
        let Some(value) = value else {
            return Origin::default();
        };
        let (host, port) = split_host(&value);
        for cloud in &CLOUDS {
            let service = if host == cloud.arm_host {
                Service::Arm
            } else if host == cloud.login_host {
                Service::Login
            } else if let Some(vault) = host
                .strip_suffix(cloud.vault_suffix)
                .and_then(|v| v.strip_suffix('.'))
                .filter(|v| !v.is_empty() && !v.contains('.'))
            {
                Service::Vault(vault.to_owned())
            } else {
                continue;
            };
            return Origin {
                cloud,
                service,
                port,
            };
        }
        Origin {
            port,
            ..Origin::default()
        }
    }

    /// The origin of a client addressing `cloud` by its `az cloud list` name
    /// (or the operator's `AzurePublicCloud`), on port 443.
    pub fn named(cloud: &str) -> Option<Origin> {
        let cloud = match cloud {
            "AzurePublicCloud" => PUBLIC,
            name => CLOUDS.iter().find(|c| c.name.eq_ignore_ascii_case(name))?,
        };
        Some(Origin {
            cloud,
            ..Origin::default()
        })
    }

    fn port_suffix(&self) -> String {
        self.port.map(|p| format!(":{p}")).unwrap_or_default()
    }

    /// `https://management.azure.com/` (with the client's port, if it named one).
    pub fn arm_base(&self) -> String {
        format!("https://{}{}/", self.cloud.arm_host, self.port_suffix())
    }

    /// `https://login.microsoftonline.com/` (with the client's port, if it named one).
    pub fn login_base(&self) -> String {
        format!("https://{}{}/", self.cloud.login_host, self.port_suffix())
    }

    /// `https://{vault}.vault.azure.net/` (with the client's port, if it named one).
    pub fn vault_uri(&self, vault: &str) -> String {
        format!(
            "https://{}.{}{}/",
            vault.to_ascii_lowercase(),
            self.cloud.vault_suffix,
            self.port_suffix()
        )
    }
}

/// The vault a key URI names, when its host is a vault host of any cloud
/// (`https://{vault}.vault.azure.net[:port]/...`), and the URI's path segments.
pub fn vault_of_url(url: &url::Url) -> Option<String> {
    if url.scheme() != "https" {
        return None;
    }
    let host = url.host_str()?.trim_end_matches('.').to_ascii_lowercase();
    CLOUDS.iter().find_map(|c| {
        host.strip_suffix(c.vault_suffix)
            .and_then(|v| v.strip_suffix('.'))
            .filter(|v| !v.is_empty() && !v.contains('.'))
            .map(str::to_owned)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(host: &str) -> Origin {
        let mut h = HeaderMap::new();
        h.insert("host", host.parse().unwrap());
        Origin::of(&h, &Uri::from_static("/"))
    }

    #[test]
    fn hosts_name_cloud_service_and_port() {
        let o = origin("management.azure.com");
        assert_eq!((o.service.clone(), o.port), (Service::Arm, None));
        assert_eq!(o.arm_base(), "https://management.azure.com/");
        let o = origin("KV1.Vault.Azure.CN:8443");
        assert_eq!(o.service, Service::Vault("kv1".into()));
        assert_eq!(o.cloud.name, "AzureChinaCloud");
        assert_eq!(o.vault_uri("kv1"), "https://kv1.vault.azure.cn:8443/");
        assert_eq!(o.login_base(), "https://login.chinacloudapi.cn:8443/");
        let o = origin("login.microsoftonline.us:443");
        assert_eq!((o.service.clone(), o.port), (Service::Login, None));
        assert_eq!(origin("127.0.0.1:9").service, Service::Other);
        assert_eq!(origin("[::1]:9").port, Some(9));
        assert_eq!(origin("a.b.vault.azure.net").service, Service::Other);
        assert_eq!(origin("vault.azure.net").service, Service::Other);
        assert_eq!(
            Origin::named("AzureUSGovernment").map(|o| o.vault_uri("kv")),
            Some("https://kv.vault.usgovcloudapi.net/".to_owned())
        );
        assert_eq!(
            Origin::named("AzurePublicCloud").map(|o| o.cloud),
            Some(PUBLIC)
        );
        assert!(Origin::named("mars").is_none());
    }

    #[test]
    fn key_uris_name_their_vault_on_any_cloud() {
        let v = |s: &str| vault_of_url(&url::Url::parse(s).unwrap());
        assert_eq!(
            v("https://kv.vault.azure.net/keys/k").as_deref(),
            Some("kv")
        );
        assert_eq!(
            v("https://kv.vault.usgovcloudapi.net:8443/keys/k").as_deref(),
            Some("kv")
        );
        assert_eq!(v("http://kv.vault.azure.net/keys/k"), None);
        assert_eq!(v("https://127.0.0.1:9/keys/k"), None);
    }
}
