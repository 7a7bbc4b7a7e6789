//! The rotation-policy and rotate calls of the SDK adapter against the
//! simulator over HTTP: the policy round-trips in Key Vault's shape, a
//! rotation makes a version with the policy's expiry, and the times of a
//! version (`created`, `exp`) reach `KeyFacts`.

use crate::adapter_support;
use crate::sim_support;

use adapter_support::*;
use cmk_operator::api::KeyRotation;
use cmk_operator::azure::AzurePort;
use cmk_operator::reconcile::binding::KeyFacts;
use cmk_operator::sim::Seed;
use sim_support::*;

#[tokio::test]
async fn a_rotation_policy_round_trips_and_a_rotation_gets_its_expiry() {
    let sim = start().await;
    let azure = adapter(&sim);
    sim.seed(&Seed {
        vaults: vec![good_vault(&sim, "kv-rot", &[])],
        keys: vec![key("kv-rot", "cmk")],
        ..Default::default()
    })
    .unwrap();
    let vault = sim.vault_uri("kv-rot").unwrap();

    // A key nobody gave a policy: Key Vault's default, notify only.
    let default = azure.get_rotation_policy(&vault, "cmk").await.unwrap();
    assert_eq!(default.rotate_after, None);

    let want = KeyRotation {
        rotate_after: Some("P90D".into()),
        expires_after: Some("P1Y".into()),
        notify_before_expiry: Some("P30D".into()),
        ..Default::default()
    };
    let written = azure
        .set_rotation_policy(&vault, "cmk", &want)
        .await
        .unwrap();
    assert_eq!(written, want);
    assert_eq!(
        azure.get_rotation_policy(&vault, "cmk").await.unwrap(),
        want
    );

    let KeyFacts::Present {
        version: before, ..
    } = azure.get_key(&vault, "cmk").await.unwrap()
    else {
        panic!("seeded")
    };
    let rotated = azure.rotate_key(&vault, "cmk").await.unwrap();
    let KeyFacts::Present {
        version,
        created: Some(created),
        expires: Some(expires),
        ..
    } = &rotated
    else {
        panic!("{rotated:?}")
    };
    assert_ne!(*version, before);
    assert_eq!(
        expires.duration_since(*created),
        jiff::SignedDuration::from_hours(365 * 24),
        "the policy's P1Y (a simulated year is 365 days)"
    );
    assert_eq!(azure.get_key(&vault, "cmk").await.unwrap(), rotated);
    assert_eq!(sim.count_status("KeyVault_RotateKey", 200), 1);
}
