//! A trimmed recorded transcript (tests/fixtures/recordings/*.yaml).

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
pub struct Source {
    pub repository: String,
    pub path: String,
    pub commit: String,
    pub recorded: String,
}

#[derive(Debug, Deserialize)]
pub struct SeedVault {
    pub name: String,
    pub location: String,
    /// The vault's ARM `properties`, as JSON text.
    pub properties: String,
}

#[derive(Debug, Deserialize)]
pub struct Interaction {
    pub method: String,
    pub uri: String,
    /// Request body, JSON text.
    #[serde(default)]
    pub request: Option<String>,
    pub status: u16,
    /// Long-running-operation headers, lower-case names.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Response body, JSON text (absent for calls kept only to be counted).
    #[serde(default)]
    pub response: Option<String>,
    /// How many recorded status polls this one stands for (the last kept).
    #[serde(default)]
    pub polls: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub struct Transcript {
    pub source: Source,
    #[serde(default)]
    pub seed_vault: Option<SeedVault>,
    pub interactions: Vec<Interaction>,
}

pub fn load(name: &str) -> Transcript {
    let path = format!(
        "{}/tests/fixtures/recordings/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn json(text: &Option<String>) -> Option<Value> {
    text.as_deref().map(|t| {
        serde_json::from_str(t).unwrap_or_else(|e| panic!("recorded body is not JSON ({e}): {t}"))
    })
}
