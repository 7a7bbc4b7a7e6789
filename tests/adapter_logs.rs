//! No token or secret reaches the logs, even at trace level. Its own binary:
//! it installs a tracing subscriber, and tracing caches callsite interest
//! process-wide (other tests on other threads would race it).

mod adapter_support;
mod sim_support;

use adapter_support::*;
use cmk_operator::azure::AzurePort;
use sim_support::*;

#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn trace_logs_carry_no_token_or_secret() {
    let sim = start().await;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let azure = adapter(&sim);
    let fp = first_party(&sim);
    let key_uri = seed_vault_and_key(&sim, good_vault(&sim, "kv-log", &[&fp]), "cmk");
    let vault = azure.get_vault(&vault_id("kv-log")).await.unwrap().unwrap();
    azure.get_key(&vault.vault_uri, "cmk").await.unwrap();
    let op = azure
        .create_account(&new_account("acct-log", &key_uri))
        .await
        .unwrap();
    finish(&azure, &op).await;
    let _ = azure.get_account(&account("missing")).await.unwrap();

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("performing request"),
        "the capture works: {logs}"
    );
    assert!(!logs.to_ascii_lowercase().contains("bearer "), "{logs}");
    assert!(!logs.contains(&sim.operator_credentials().1), "{logs}");
}
