//! `cmk-operator simulate`: prints its base URL, serves, saves state on SIGTERM.

mod sim_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use azure_core::{Method, Request, Url};

#[tokio::test]
async fn simulate_prints_base_url_and_saves_state_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("sim-standalone-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cmk-operator"))
        .args(["simulate", "--listen", "127.0.0.1:0", "--state-file"])
        .arg(&state)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    reader.read_line(&mut line).unwrap();
    let base = line.split_whitespace().last().unwrap().to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{line}");

    let http = azure_core::new_http_client();
    let mut seed = Request::new(
        Url::parse(&format!("{base}_admin/seed")).unwrap(),
        Method::Post,
    );
    seed.set_body(
        r#"{"identities":[{"subscriptionId":"s","resourceGroup":"rg","name":"standalone"}]}"#,
    );
    let resp = http.execute_request(&seed).await.unwrap();
    assert_eq!(u16::from(resp.status()), 200);

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let saved = std::fs::read_to_string(&state).unwrap();
    assert!(saved.contains("standalone"));
    let _ = std::fs::remove_dir_all(&dir);
}
