//! Each error class, produced by the simulator's faults, through the SDK adapter.

use crate::adapter_support;
use crate::sim_support;

use std::time::{Duration, Instant};

use adapter_support::*;
use cmk_operator::azure::{
    AccountChange, AzureError, AzurePort, AzureSettings, CmkCause, CredentialSource, ErrorClass,
    SdkAzure,
};
use cmk_operator::reconcile::ownership::Owner;
use cmk_operator::sim::{
    ErrorFault, FaultConfig, HostileAnswer, HostileFault, LatencyFault, Seed, SeedVault,
    ThrottleFault,
};
use serde_json::json;
use sim_support::*;

#[tokio::test]
async fn throttling_returns_retry_after_and_pauses_the_subscription() {
    let sim = start().await;
    let azure = adapter(&sim);
    sim.set_faults(FaultConfig {
        throttle: vec![ThrottleFault {
            operation: "DatabaseAccounts_Get".into(),
            count: 1,
            retry_after_secs: 1,
        }],
        ..Default::default()
    });
    let err = azure.get_account(&account("acct-429")).await.unwrap_err();
    assert_eq!(
        (err.class(), err.retry_after(), err.reason()),
        (
            ErrorClass::Retryable,
            Some(Duration::from_secs(1)),
            "AzureThrottled"
        )
    );
    // The next call to that subscription fails at once with the wait left (a
    // reconcile never sits out a pause in a shared worker), and nothing goes
    // out; after the wait the call goes through.
    let err = azure.get_account(&account("acct-429")).await.unwrap_err();
    let wait = err.retry_after().expect("throttled");
    assert!(
        err.reason() == "AzureThrottled" && wait <= Duration::from_secs(1),
        "{err}"
    );
    assert_eq!(
        sim.count("DatabaseAccounts_Get"),
        1,
        "the paused call never went out"
    );
    tokio::time::sleep(wait).await;
    assert_eq!(azure.get_account(&account("acct-429")).await.unwrap(), None);
    assert_eq!(sim.count_status("DatabaseAccounts_Get", 429), 1);
    assert_eq!(sim.count_status("DatabaseAccounts_Get", 404), 1);
    // Other subscriptions not being held back is proven without a clock in
    // `absurd_retry_after_is_capped_and_never_outlasts_the_call_timeout`.
}

/// `Retry-After: 18446744073709551615` panicked the operator; ten years froze a
/// subscription. Both read as `max_retry_after`, and a pause longer than the
/// call's timeout fails the next call at once instead of holding it.
#[tokio::test]
async fn absurd_retry_after_is_capped_and_never_outlasts_the_call_timeout() {
    let sim = start().await;
    let azure = adapter(&sim); // 5 s timeout, the default 300 s cap
    let throttle = |retry_after_secs: u64| FaultConfig {
        throttle: vec![ThrottleFault {
            operation: "DatabaseAccounts_Get".into(),
            count: 1,
            retry_after_secs,
        }],
        ..Default::default()
    };
    sim.set_faults(throttle(u64::MAX));
    let err = azure.get_account(&account("acct-huge")).await.unwrap_err();
    assert_eq!(
        (err.reason(), err.retry_after()),
        ("AzureThrottled", Some(Duration::from_secs(300)))
    );
    // The subscription is paused for 300 s, more than the 5 s timeout: the next
    // call fails at once, typed, with the wait left, and nothing goes out.
    let err = azure.get_account(&account("acct-huge")).await.unwrap_err();
    let wait = err.retry_after().expect("throttled");
    assert!(
        err.class() == ErrorClass::Retryable
            && wait > Duration::from_secs(290)
            && wait <= Duration::from_secs(300),
        "{err}"
    );
    assert_eq!(
        sim.count("DatabaseAccounts_Get"),
        1,
        "the paused call never went out"
    );
    // Other subscriptions are not held back: were they, this call would fail
    // at once like the one above (a 300 s pause outlasts the 5 s timeout).
    assert!(azure.provider_registered("other-sub").await.unwrap());

    // Ten years with a 1 s cap: read as 1 s; once that has passed the call
    // goes through (the subscription is not frozen for ten years).
    let mut s = settings(&sim, roomy_limiter(), Duration::from_secs(5));
    s.max_retry_after = Duration::from_secs(1);
    let capped = SdkAzure::new(s).unwrap();
    sim.set_faults(throttle(315_360_000));
    let err = capped
        .get_account(&account("acct-ten-years"))
        .await
        .unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        capped
            .get_account(&account("acct-ten-years"))
            .await
            .unwrap(),
        None
    );
}

/// A reconcile waiting out one subscription's pause (here for the provider
/// registration read, which callers share) holds back no other subscription.
#[tokio::test]
async fn a_throttled_subscription_holds_back_no_other() {
    let sim = start().await;
    let azure = adapter(&sim);
    sim.set_faults(FaultConfig {
        throttle: vec![ThrottleFault {
            operation: "Providers_Get".into(),
            count: 1,
            retry_after_secs: 3,
        }],
        ..Default::default()
    });
    let err = azure
        .provider_registered("throttled-sub")
        .await
        .unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    // The throttled subscription's next read fails at once, holding nothing,
    let err = azure
        .provider_registered("throttled-sub")
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "AzureThrottled");
    // while another subscription's goes through.
    assert!(azure.provider_registered("other-sub").await.unwrap());
    assert_eq!(sim.count_status("Providers_Get", 429), 1);
}

#[tokio::test]
async fn server_errors_are_retryable() {
    let sim = start().await;
    let azure = adapter(&sim);
    sim.seed(&Seed {
        vaults: vec![good_vault(&sim, "kv-5xx", &[])],
        keys: vec![key("kv-5xx", "k")],
        ..Default::default()
    })
    .unwrap();
    let fault = |op: &str, status: u16, code: &str| ErrorFault {
        operation: op.into(),
        rate: 1.0,
        status,
        code: code.into(),
        count: Some(1),
    };
    sim.set_faults(FaultConfig {
        errors: vec![
            fault("Vaults_Get", 503, "ServiceUnavailable"),
            fault("KeyVault_GetKey", 500, "InternalServerError"),
        ],
        ..Default::default()
    });
    let err = azure.get_vault(&vault_id("kv-5xx")).await.unwrap_err();
    assert!(
        matches!(err, AzureError::Unavailable { status: 503, .. }),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Retryable);
    let vault = azure.get_vault(&vault_id("kv-5xx")).await.unwrap().unwrap();
    let err = azure.get_key(&vault.vault_uri, "k").await.unwrap_err();
    assert!(
        matches!(err, AzureError::Unavailable { status: 500, .. }),
        "{err}"
    );
    azure.get_key(&vault.vault_uri, "k").await.unwrap();
}

#[tokio::test]
async fn slow_answers_time_out() {
    let sim = start().await;
    let azure = SdkAzure::new(settings(&sim, roomy_limiter(), Duration::from_millis(300))).unwrap();
    // Warm the token cache so the timeout measures the ARM call alone.
    assert!(azure.provider_registered(SUB).await.unwrap());
    sim.set_faults(FaultConfig {
        latency: vec![LatencyFault {
            operation: "DatabaseAccounts_Get".into(),
            ms: 10_000,
        }],
        ..Default::default()
    });
    let start = Instant::now();
    let err = azure.get_account(&account("slow")).await.unwrap_err();
    assert!(
        matches!(err, AzureError::Timeout { after, .. } if after == Duration::from_millis(300)),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Retryable);
    // Given up long before the 10 s answer (a loose bound for a loaded machine).
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn permission_and_missing_resources_are_user_fixable() {
    let sim = start().await;
    let azure = adapter(&sim);
    // A vault whose policies do not include the operator.
    sim.seed(&Seed {
        vaults: vec![SeedVault {
            subscription_id: SUB.into(),
            resource_group: RG.into(),
            name: "kv-deny".into(),
            location: Some("westus".into()),
            properties: json!({"enableSoftDelete": true, "enablePurgeProtection": true, "accessPolicies": []})
                .as_object()
                .cloned()
                .unwrap(),
        }],
        keys: vec![key("kv-deny", "k")],
        ..Default::default()
    })
    .unwrap();
    let vault = azure
        .get_vault(&vault_id("kv-deny"))
        .await
        .unwrap()
        .unwrap();
    let err = azure.get_key(&vault.vault_uri, "k").await.unwrap_err();
    assert!(matches!(err, AzureError::Forbidden { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::UserFixable);

    sim.set_faults(FaultConfig {
        errors: vec![ErrorFault {
            operation: "Providers_Get".into(),
            rate: 1.0,
            status: 403,
            code: "AuthorizationFailed".into(),
            count: Some(1),
        }],
        ..Default::default()
    });
    let err = azure.provider_registered(SUB).await.unwrap_err();
    // The fault's message names no action and scope (ARM's own does, see
    // sim::auth): Azure's words are kept as they came, under `Forbidden`.
    assert!(
        matches!(&err, AzureError::Forbidden { code, .. } if code == "AuthorizationFailed"),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::UserFixable);

    // Updating an account that does not exist.
    let err = azure
        .update_account(
            &account("nope"),
            &AccountChange::SetDefaultIdentity("FirstPartyIdentity".into()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AzureError::NotFound { .. }), "{err}");
    assert_eq!(
        (err.class(), err.http_status()),
        (ErrorClass::UserFixable, Some(404))
    );
}

#[tokio::test]
async fn cosmos_cmk_substatus_codes_map_to_causes() {
    let sim = start().await;
    let azure = adapter(&sim);
    // No grant for the first-party principal: 403/4002.
    let key_uri = seed_vault_and_key(&sim, good_vault(&sim, "kv-nogrant", &[]), "cmk");
    let err = azure
        .create_account(&new_account("acct-4002", &key_uri))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AzureError::Cmk {
                status: 403,
                sub_status: 4002,
                cause: CmkCause::KeyVaultAccessDenied,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.reason(), "KeyAccessDenied");
    // Missing key: 404/4003.
    let fp = first_party(&sim);
    seed_vault_and_key(&sim, good_vault(&sim, "kv-nokey", &[&fp]), "other");
    let missing = format!("{}keys/absent", sim.vault_uri("kv-nokey").unwrap());
    let err = azure
        .create_account(&new_account("acct-4003", &missing))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AzureError::Cmk {
                sub_status: 4003,
                cause: CmkCause::KeyNotFound,
                ..
            }
        ),
        "{err}"
    );
    // Vault unreachable: 503/4004, retryable.
    let ok_uri = seed_vault_and_key(&sim, good_vault(&sim, "kv-down", &[&fp]), "cmk");
    sim.set_faults(FaultConfig {
        keyvault_unreachable: vec!["kv-down".into()],
        ..Default::default()
    });
    let err = azure
        .create_account(&new_account("acct-4004", &ok_uri))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AzureError::Cmk {
                sub_status: 4004,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Retryable);
    assert_eq!(sim.count_status("DatabaseAccounts_CreateOrUpdate", 200), 0);
}

#[tokio::test]
async fn credential_failures_are_typed_and_secret_free() {
    let sim = start().await;
    let (client_id, _, _) = sim.operator_credentials();
    let mut s = settings(&sim, roomy_limiter(), Duration::from_secs(5));
    s.credential = CredentialSource::ClientSecret {
        tenant_id: sim.tenant_id().into(),
        client_id,
        client_secret: "wrong-secret-value".into(),
    };
    let wrong = SdkAzure::new(s.clone()).unwrap();
    let err = wrong.get_account(&account("x")).await.unwrap_err();
    assert!(matches!(err, AzureError::Authentication { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::UserFixable);
    let text = format!("{err} {err:?} {wrong:?} {s:?}");
    assert!(!text.contains("wrong-secret-value"), "{text}");
    assert!(!text.contains(&sim.operator_credentials().1), "{text}");

    // Entra ID outage: retryable.
    let azure = SdkAzure::new(AzureSettings {
        credential: client_secret(&sim),
        ..s
    })
    .unwrap();
    sim.set_faults(FaultConfig {
        token_outage: true,
        ..Default::default()
    });
    let err = azure.get_account(&account("x")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Retryable, "{err}");
}

/// The next `operation` gets `answer` (once).
fn hostile(operation: &str, answer: HostileAnswer) -> FaultConfig {
    FaultConfig {
        hostile: vec![HostileFault {
            operation: operation.into(),
            answer,
            count: Some(1),
        }],
        ..Default::default()
    }
}

fn assert_invalid(err: &AzureError, what: &str) {
    assert!(
        matches!(err, AzureError::InvalidResponse { status: 200, message, .. } if message.contains(what)),
        "{err:?}"
    );
    assert_eq!(
        (err.class(), err.reason()),
        (ErrorClass::Retryable, "AzureInvalidResponse")
    );
}

/// A garbage vault answer became `PurgeProtectionDisabled`. Every unusable
/// body, on the SDK path (Vaults_Get) and the raw ones (Key Vault, providers),
/// is now a typed transient error, and the next whole answer reads as before.
#[tokio::test]
async fn broken_answer_bodies_are_transient_errors_never_facts() {
    let sim = start().await;
    let azure = adapter(&sim);
    sim.seed(&Seed {
        vaults: vec![good_vault(&sim, "kv-hostile", &[])],
        keys: vec![key("kv-hostile", "k")],
        ..Default::default()
    })
    .unwrap();
    // Before the first whole answer (a registered provider is remembered).
    sim.set_faults(hostile("Providers_Get", HostileAnswer::Truncated));
    let err = azure.provider_registered(SUB).await.unwrap_err();
    assert_invalid(&err, "not JSON");
    sim.set_faults(hostile(
        "Providers_Get",
        HostileAnswer::Omit {
            fields: vec!["registrationState".into()],
        },
    ));
    assert_invalid(
        &azure.provider_registered(SUB).await.unwrap_err(),
        "no `registrationState`",
    );
    assert!(azure.provider_registered(SUB).await.unwrap());

    let vault_id = vault_id("kv-hostile");
    for (answer, what) in [
        (HostileAnswer::Garbage, "not JSON"),
        (HostileAnswer::Truncated, "not JSON"),
        (HostileAnswer::Huge { bytes: None }, "larger than 4 MiB"),
        (
            HostileAnswer::Omit {
                fields: vec!["properties".into()],
            },
            "no `properties`",
        ),
    ] {
        sim.set_faults(hostile("Vaults_Get", answer.clone()));
        let err = azure.get_vault(&vault_id).await.unwrap_err();
        assert_invalid(&err, what);
        let vault = azure.get_vault(&vault_id).await.unwrap().unwrap();
        assert!(vault.purge_protection && vault.soft_delete, "{answer:?}");
    }
    let vault = azure.get_vault(&vault_id).await.unwrap().unwrap();
    for (answer, what) in [
        (HostileAnswer::Garbage, "not JSON"),
        (
            HostileAnswer::Omit {
                fields: vec!["key".into()],
            },
            "`key.kid`",
        ),
    ] {
        sim.set_faults(hostile("KeyVault_GetKey", answer));
        let err = azure.get_key(&vault.vault_uri, "k").await.unwrap_err();
        assert_invalid(&err, what);
    }
    assert!(matches!(
        azure.get_key(&vault.vault_uri, "k").await.unwrap(),
        cmk_operator::reconcile::binding::KeyFacts::Present { enabled: true, .. }
    ));
}

/// An identity or tag write is rebuilt from a fresh read; a read missing the
/// block it replaces is refused, and nothing is written.
#[tokio::test]
async fn identity_and_tag_writes_refuse_a_read_without_the_block() {
    let sim = start().await;
    let azure = adapter(&sim);
    let fp = first_party(&sim);
    let seeded = sim
        .seed(&Seed {
            identities: vec![uai("id-extra"), uai("id-in-use")],
            ..Default::default()
        })
        .unwrap();
    let in_use = seeded["identities"][1]["principalId"]
        .as_str()
        .unwrap()
        .to_owned();
    let key_uri = seed_vault_and_key(&sim, good_vault(&sim, "kv-ident", &[&fp, &in_use]), "cmk");
    // The account uses a user-assigned identity: a read without the identity
    // block contradicts its defaultIdentity.
    let mut new = new_account("acct-ident", &key_uri);
    new.user_assigned_identity = Some(identity_id("id-in-use"));
    new.default_identity = format!("UserAssignedIdentity={}", identity_id("id-in-use"));
    new.tags = [("team".to_owned(), "payments".to_owned())].into();
    let op = azure.create_account(&new).await.unwrap();
    finish(&azure, &op).await;
    let acct = account("acct-ident");
    let owner = Owner {
        cluster: "c".into(),
        namespace: "ns".into(),
        name: "orders".into(),
        uid: "u".into(),
    };
    let writes = sim.ledger().len();
    for (change, omit, what) in [
        (
            AccountChange::AddUserAssignedIdentity(identity_id("id-extra")),
            "identity",
            "no `identity`",
        ),
        (
            AccountChange::EnableSystemIdentity,
            "identity",
            "no `identity`",
        ),
        (AccountChange::SetOwner(owner.clone()), "tags", "no `tags`"),
    ] {
        sim.set_faults(hostile(
            "DatabaseAccounts_Get",
            HostileAnswer::Omit {
                fields: vec![omit.into()],
            },
        ));
        let err = azure.update_account(&acct, &change).await.unwrap_err();
        assert_invalid(&err, what);
    }
    assert_eq!(sim.ledger().len(), writes, "nothing was written");
    // Nor is such a read taken for facts (an account not ours, without identities).
    for omit in ["identity", "tags", "properties"] {
        sim.set_faults(hostile(
            "DatabaseAccounts_Get",
            HostileAnswer::Omit {
                fields: vec![omit.into()],
            },
        ));
        let err = azure.get_account(&acct).await.unwrap_err();
        assert_invalid(&err, &format!("no `{omit}`"));
    }
    // With a whole read the tag write goes through and keeps the other tags.
    let op = azure
        .update_account(&acct, &AccountChange::SetOwner(owner))
        .await
        .unwrap();
    finish(&azure, &op).await;
    let facts = azure.get_account(&acct).await.unwrap().unwrap();
    assert_eq!(facts.tags.get("team").map(String::as_str), Some("payments"));
    assert!(facts.tags.len() > 1, "{:?}", facts.tags);
}

/// `Retry-After` as an HTTP date ten millennia away is capped; garbage reads
/// as the 10 s default.
#[tokio::test]
async fn retry_after_dates_and_garbage_are_bounded() {
    let sim = start().await;
    for (value, want) in [
        ("Fri, 31 Dec 9999 23:59:59 GMT", Duration::from_secs(300)),
        ("soon", Duration::from_secs(10)),
        ("-1", Duration::from_secs(10)),
    ] {
        let azure = adapter(&sim);
        sim.set_faults(hostile(
            "DatabaseAccounts_Get",
            HostileAnswer::RetryAfter {
                value: value.into(),
            },
        ));
        let err = azure.get_account(&account("any")).await.unwrap_err();
        assert_eq!(err.retry_after(), Some(want), "{value}: {err}");
    }
}
