//! The key-URI table: valid and invalid identifiers for each cloud (the simulator is the public cloud).

use super::cloud::{Cloud, VaultHosts};
use super::key_uri::{KeyUri, KeyUriError};

const V: &str = "0123456789abcdef0123456789abcdef";

fn public() -> VaultHosts {
    Cloud::public().vault_hosts
}

/// (input, hosts, Ok(versionless, version) | Err(error kind))
type Expected = Result<(&'static str, Option<&'static str>), &'static str>;

fn table() -> Vec<(String, VaultHosts, Expected)> {
    let gov = Cloud::us_government().vault_hosts;
    let cn = Cloud::china().vault_hosts;
    // The simulator is the public cloud redirected: the same rules.
    let sim = Cloud::simulator(([127, 0, 0, 1], 8443).into(), "").vault_hosts;
    let ok = |u: &'static str| Ok((u, None));
    vec![
        // valid, public cloud
        (
            "https://myvault.vault.azure.net/keys/mykey".into(),
            public(),
            ok("https://myvault.vault.azure.net/keys/mykey"),
        ),
        (
            "https://myvault.vault.azure.net/keys/mykey/".into(),
            public(),
            ok("https://myvault.vault.azure.net/keys/mykey"),
        ),
        (
            format!("https://myvault.vault.azure.net/keys/mykey/{V}"),
            public(),
            Ok(("https://myvault.vault.azure.net/keys/mykey", Some(V))),
        ),
        (
            "HTTPS://MyVault.Vault.Azure.NET/keys/My-Key".into(),
            public(),
            ok("https://myvault.vault.azure.net/keys/My-Key"),
        ),
        (
            "https://myvault.vault.azure.net:443/keys/k".into(),
            public(),
            ok("https://myvault.vault.azure.net/keys/k"),
        ),
        (
            "https://a-b-c.vault.azure.net/keys/k1".into(),
            public(),
            ok("https://a-b-c.vault.azure.net/keys/k1"),
        ),
        (
            format!("https://v12.vault.azure.net/keys/{}", "k".repeat(127)),
            public(),
            Ok(("", None)),
        ),
        (
            format!(
                "https://myvault.vault.azure.net/keys/mykey/{}",
                V.to_uppercase()
            ),
            public(),
            Ok(("https://myvault.vault.azure.net/keys/mykey", Some(V))),
        ),
        // valid, sovereign clouds
        (
            "https://govvault.vault.usgovcloudapi.net/keys/k".into(),
            gov.clone(),
            ok("https://govvault.vault.usgovcloudapi.net/keys/k"),
        ),
        (
            "https://cnvault.vault.azure.cn/keys/k".into(),
            cn.clone(),
            ok("https://cnvault.vault.azure.cn/keys/k"),
        ),
        // the simulator: Azure's form only
        (
            format!("https://myvault.vault.azure.net/keys/k/{V}"),
            sim.clone(),
            Ok(("https://myvault.vault.azure.net/keys/k", Some(V))),
        ),
        (
            "http://127.0.0.1:40123/keys/k".into(),
            sim.clone(),
            Err("NotHttps"),
        ),
        (
            "https://127.0.0.1:8443/keyvault/myvault/keys/k".into(),
            sim.clone(),
            Err("WrongHost"),
        ),
        (
            "https://localhost/keys/k".into(),
            sim.clone(),
            Err("WrongHost"),
        ),
        (
            "https://myvault.vault.azure.net:8443/keys/k".into(),
            sim.clone(),
            Err("WrongHost"),
        ),
        // invalid
        (
            "myvault.vault.azure.net/keys/k".into(),
            public(),
            Err("NotAUrl"),
        ),
        (
            "ftp://myvault.vault.azure.net/keys/k".into(),
            public(),
            Err("NotAUrl"),
        ),
        ("https:///keys/k".into(), public(), Err("NotAUrl")),
        (
            "http://myvault.vault.azure.net/keys/k".into(),
            public(),
            Err("NotHttps"),
        ),
        (
            "https://myvault.vault.azure.com/keys/k".into(),
            public(),
            Err("WrongHost"),
        ),
        (
            "https://myvault.vault.azure.net.evil.com/keys/k".into(),
            public(),
            Err("WrongHost"),
        ),
        (
            "https://a.b.vault.azure.net/keys/k".into(),
            public(),
            Err("WrongHost"),
        ),
        (
            "https://vault.azure.net/keys/k".into(),
            public(),
            Err("WrongHost"),
        ),
        (
            "https://myvault.vault.azure.net/keys/k".into(),
            gov,
            Err("WrongHost"),
        ),
        (
            "https://myvault.vault.azure.net:8443/keys/k".into(),
            public(),
            Err("WrongHost"),
        ),
        (
            "https://myvault.vault.azure.net/keys/k".into(),
            sim,
            ok("https://myvault.vault.azure.net/keys/k"),
        ),
        (
            "https://ab.vault.azure.net/keys/k".into(),
            public(),
            Err("BadVaultName"),
        ),
        (
            "https://1vault.vault.azure.net/keys/k".into(),
            public(),
            Err("BadVaultName"),
        ),
        (
            "https://my_vault.vault.azure.net/keys/k".into(),
            public(),
            Err("BadVaultName"),
        ),
        (
            "https://myvault.vault.azure.net/keys/k?api-version=7.4".into(),
            public(),
            Err("TrailingJunk"),
        ),
        (
            "https://myvault.vault.azure.net/keys/k#frag".into(),
            public(),
            Err("TrailingJunk"),
        ),
        (
            "https://user@myvault.vault.azure.net/keys/k".into(),
            public(),
            Err("TrailingJunk"),
        ),
        (
            "https://myvault.vault.azure.net/keys/k ".into(),
            public(),
            Err("TrailingJunk"),
        ),
        (
            "https://myvault.vault.azure.net/keys".into(),
            public(),
            Err("MissingKeyName"),
        ),
        (
            "https://myvault.vault.azure.net/keys/".into(),
            public(),
            Err("MissingKeyName"),
        ),
        (
            "https://myvault.vault.azure.net/".into(),
            public(),
            Err("MissingKeyName"),
        ),
        (
            "https://myvault.vault.azure.net/secrets/k".into(),
            public(),
            Err("MissingKeyName"),
        ),
        (
            "https://myvault.vault.azure.net/keys/my_key".into(),
            public(),
            Err("BadKeyName"),
        ),
        (
            format!("https://myvault.vault.azure.net/keys/{}", "k".repeat(128)),
            public(),
            Err("BadKeyName"),
        ),
        (
            "https://myvault.vault.azure.net/keys/k/latest".into(),
            public(),
            Err("BadVersion"),
        ),
        (
            "https://myvault.vault.azure.net/keys/k/0123".into(),
            public(),
            Err("BadVersion"),
        ),
        (
            format!("https://myvault.vault.azure.net/keys/k/{V}/extra"),
            public(),
            Err("ExtraSegments"),
        ),
        (
            "https://127.0.0.1:8443/keys/k".into(),
            public(),
            Err("WrongHost"),
        ),
        (
            "https://myvault.vault.azure.net:abc/keys/k".into(),
            public(),
            Err("NotAUrl"),
        ),
    ]
}

fn kind(e: &KeyUriError) -> &'static str {
    match e {
        KeyUriError::NotAUrl(_) => "NotAUrl",
        KeyUriError::NotHttps(_) => "NotHttps",
        KeyUriError::WrongHost { .. } => "WrongHost",
        KeyUriError::BadVaultName { .. } => "BadVaultName",
        KeyUriError::TrailingJunk(_) => "TrailingJunk",
        KeyUriError::MissingKeyName(_) => "MissingKeyName",
        KeyUriError::BadKeyName { .. } => "BadKeyName",
        KeyUriError::BadVersion { .. } => "BadVersion",
        KeyUriError::VersionNotAllowed(_) => "VersionNotAllowed",
        KeyUriError::ExtraSegments(_) => "ExtraSegments",
    }
}

#[test]
fn key_uri_table() {
    let table = table();
    assert!(table.len() >= 30);
    for (input, hosts, expected) in table {
        let got = KeyUri::parse(&input, &hosts);
        match (&got, expected) {
            (Ok(k), Ok((versionless, version))) => {
                if !versionless.is_empty() {
                    assert_eq!(k.versionless(), versionless, "{input}");
                }
                assert_eq!(k.version.as_deref(), version, "{input}");
            }
            (Err(e), Err(want)) => {
                assert_eq!(kind(e), want, "{input}: {e}");
                assert!(
                    e.to_string().contains(input.trim_end()),
                    "the message names the URI: {e}"
                );
            }
            (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn versionless_form_is_required_where_asked() {
    let with_version = format!("https://myvault.vault.azure.net/keys/k/{V}");
    let err = KeyUri::parse_versionless(&with_version, &public()).unwrap_err();
    assert_eq!(kind(&err), "VersionNotAllowed");
    assert!(err.to_string().contains("drop the last path segment"));
    let k = KeyUri::parse(&with_version, &public()).unwrap();
    assert_eq!(
        KeyUri::parse_versionless(&k.versionless(), &public())
            .unwrap()
            .version,
        None
    );
    assert_eq!(k.to_string(), with_version);
    assert_eq!(k.vault_uri(), "https://myvault.vault.azure.net/");
}

#[test]
fn parsing_never_panics_on_arbitrary_input() {
    // A cheap deterministic fuzz: every prefix and byte-flip of a valid URI.
    let base = format!("https://myvault.vault.azure.net/keys/mykey/{V}");
    let hosts = [public(), Cloud::china().vault_hosts];
    for i in 0..base.len() {
        for h in &hosts {
            let _ = KeyUri::parse(&base[..i], h);
            let mut bytes = base.clone().into_bytes();
            for b in [b'/', b':', b'.', b'?', b' ', b'@', b'[', b']'] {
                bytes[i] = b;
                let _ = KeyUri::parse(&String::from_utf8_lossy(&bytes), h);
            }
        }
    }
}
