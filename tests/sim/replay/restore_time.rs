//! A recorded restore names a point in the recording's past, before any
//! account the simulator holds was made; the replay restores to a moment of
//! its own instead and binds the recorded time to it (both spellings: the
//! request's and Azure's normalised one in `restoreParameters`).

use std::time::Duration;

use serde_json::Value;

const FIELD: &str = "restoreTimestampInUtc";

/// The request body with its restore time (if any) moved to the next whole
/// second (after the source's creation), the recorded → replayed times bound.
pub async fn rewrite(body: &str, map: &mut Vec<(String, String)>) -> String {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return body.to_owned();
    };
    let Some(recorded) = v
        .pointer(&format!("/properties/restoreParameters/{FIELD}"))
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return body.to_owned();
    };
    let now = jiff::Timestamp::now();
    let next = jiff::Timestamp::from_second(now.as_second() + 1).expect("a time");
    tokio::time::sleep(Duration::from_millis(
        u64::try_from(next.as_millisecond() - now.as_millisecond()).unwrap_or(0),
    ))
    .await;
    let ours = next.strftime("%Y-%m-%dT%H:%M:%S.000Z").to_string();
    map.push((normalised(&recorded), next.to_string()));
    map.push((recorded.clone(), ours.clone()));
    body.replace(&recorded, &ours)
}

/// Azure's spelling of a recorded time in its answers (whole seconds, `Z`).
fn normalised(t: &str) -> String {
    t.parse::<jiff::Timestamp>()
        .map(|t| t.to_string())
        .unwrap_or_else(|_| t.to_owned())
}
