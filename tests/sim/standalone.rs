//! `cmk-operator simulate`: prints its address and CA file, serves HTTPS
//! under Azure's host names, saves state on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use azure_core::{Method, Request, Url};
use cmk_operator::azure::cloud::Cloud;

#[tokio::test]
async fn simulate_prints_base_url_and_saves_state_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("sim-standalone-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cmk-operator"))
        .args(["simulate", "--listen", "127.0.0.1:0", "--state-file"])
        .arg(&state)
        .arg("--ca-file")
        .arg(dir.join("ca.pem"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    reader.read_line(&mut line).unwrap();
    let base = line.split_whitespace().last().unwrap().to_owned();
    assert!(base.starts_with("https://127.0.0.1:"), "{line}");
    let mut ca_line = String::new();
    reader.read_line(&mut ca_line).unwrap();
    assert!(
        ca_line.contains(&format!("CA certificate: {}", dir.join("ca.pem").display())),
        "{ca_line}"
    );
    let ca = std::fs::read_to_string(dir.join("ca.pem")).unwrap();
    let addr: std::net::SocketAddr = Url::parse(&base).unwrap().socket_addrs(|| None).unwrap()[0];
    let http = cmk_operator::azure::sdk::http_client_for(&Cloud::simulator(addr, &ca)).unwrap();

    // Azure's token endpoint under its own name, the CA file trusted.
    let mut token = Request::new(
        Url::parse("https://login.microsoftonline.com/72f988bf-0000-4000-8000-00000000a001/oauth2/v2.0/token").unwrap(),
        Method::Post,
    );
    token.insert_header("content-type", "application/x-www-form-urlencoded");
    token.set_body("grant_type=client_credentials&client_id=0e7c5b1a-0000-4000-8000-0000000000c1&client_secret=sim-operator-secret&scope=https%3A%2F%2Fmanagement.azure.com%2F.default");
    let resp = http.execute_request(&token).await.unwrap();
    assert_eq!(u16::from(resp.status()), 200);
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

/// Without `--ca-file` nothing is written (a read-only root file system, as
/// in the image, must not stop it): the CA is printed after the start-up lines.
#[test]
fn simulate_without_a_ca_file_prints_the_ca() {
    let dir = std::env::temp_dir().join(format!("sim-standalone-ro-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cmk-operator"))
        .args(["simulate", "--listen", "127.0.0.1:0"])
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let reader = BufReader::new(child.stdout.take().unwrap());
    let lines: Vec<String> = reader
        .lines()
        .map_while(Result::ok)
        .take_while(|l| l != "-----END CERTIFICATE-----")
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines[1].contains("CA certificate: printed below"),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l == "-----BEGIN CERTIFICATE-----"),
        "{lines:?}"
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "nothing written"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
