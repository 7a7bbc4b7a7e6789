//! Polling a persisted long-running operation. All state is in the
//! `PendingOperation` (its URL), so a restarted operator resumes polling the
//! same operation instead of issuing the request again.

use azure_core::Url;
use azure_core::headers::{HeaderName, Headers};
use serde_json::Value;

use super::SdkAzure;
use super::http::{self, Answer};
use super::ids::subscription_in_path;
use crate::api::{AzureErrorRecord, OperationKind, PendingOperation};
use crate::azure::errors::AzureError;
use crate::azure::rate_limit::CallKind;
use crate::reconcile::account::OperationState;

/// The Cosmos DB api-version every call sends: the latest GA one. The 0.21
/// crate only has preview packages (its newest sends `2024-09-01-preview`);
/// its request builders keep an `api-version` already on the client's
/// endpoint, so the client is built with this one (see `SdkAzure::new`). The
/// preview package's models are a superset of what the operator reads and
/// writes in the GA shape (checked by `tests/adapter/ops.rs` against the
/// simulator, which serves the GA shape).
pub(super) const COSMOS_API: &str = "2025-10-15";

const ASYNC_OPERATION: HeaderName = HeaderName::from_static("azure-asyncoperation");
const LOCATION: HeaderName = HeaderName::from_static("location");

/// `Azure-AsyncOperation` (preferred: it reports failures in the body), else `Location`.
pub(super) fn poll_url(headers: &Headers) -> Option<String> {
    headers
        .get_optional_str(&ASYNC_OPERATION)
        .or_else(|| headers.get_optional_str(&LOCATION))
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
}

impl SdkAzure {
    pub(super) async fn poll_operation(
        &self,
        op: &PendingOperation,
    ) -> Result<OperationState, AzureError> {
        const OP: &str = "PollOperation";
        let url = self.checked_poll_url(OP, &op.poll_url)?;
        let sub = subscription_in_path(url.path())
            .unwrap_or("global")
            .to_owned();
        let answer = self
            .call(OP, &sub, CallKind::Read, async {
                match self.inner.arm.poll(url.clone()).await {
                    Ok(a) => Ok(Ok(a)),
                    // A client error here is the operation's own outcome (operationResults
                    // or the resource answer with it); throttling and auth are not.
                    Err(e) => match http::failure(&e) {
                        Some(f)
                            if (400..500).contains(&f.status)
                                && ![401, 403, 408, 429].contains(&f.status) =>
                        {
                            Ok(Err(f.clone()))
                        }
                        _ => Err(http::map_error(OP, e)),
                    },
                }
            })
            .await?;
        Ok(match answer {
            Ok(a) => state_of(op.kind.as_str(), &a),
            // Polling the account itself during a delete: gone means done.
            Err(f) if f.status == 404 && op.kind == OperationKind::DeleteAccount => {
                OperationState::Succeeded
            }
            Err(f) => {
                OperationState::Failed(record(op.kind.as_str(), f.status, &f.code, &f.message))
            }
        })
    }

    /// The ARM bearer token only ever goes to this cloud's ARM endpoint, whatever
    /// was persisted in a status.
    fn checked_poll_url(&self, op: &str, poll_url: &str) -> Result<Url, AzureError> {
        let reject = |why: String| AzureError::Rejected {
            operation: op.to_owned(),
            status: 400,
            code: "InvalidPollUrl".into(),
            message: why,
        };
        let url = Url::parse(poll_url)
            .map_err(|e| reject(format!("the operation URL {poll_url:?} is not a URL: {e}")))?;
        let arm = Url::parse(&self.inner.cloud.resource_manager)
            .map_err(|e| reject(format!("the ARM endpoint is not a URL: {e}")))?;
        if url.origin() != arm.origin() {
            return Err(reject(format!(
                "the operation URL {poll_url:?} is not on this cloud's ARM endpoint {}; refusing to send it a token",
                self.inner.cloud.resource_manager
            )));
        }
        Ok(url)
    }
}

/// The state an answer reports: an async-operation status body, a resource with
/// `provisioningState`, or an operation-result status code.
fn state_of(kind: &str, a: &Answer) -> OperationState {
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_ascii_lowercase);
    let status =
        s(a.body.get("status")).or_else(|| s(a.body.pointer("/properties/provisioningState")));
    match status.as_deref() {
        Some("succeeded") => OperationState::Succeeded,
        Some("failed" | "canceled" | "cancelled") => {
            let err = a
                .body
                .get("error")
                .or_else(|| a.body.pointer("/properties/error"));
            let text = |k: &str| {
                err.and_then(|e| e.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            };
            let code = match text("code") {
                "" => status.as_deref().map_or("Failed", |s| {
                    if s == "failed" { "Failed" } else { "Canceled" }
                }),
                c => c,
            };
            OperationState::Failed(record(kind, 0, code, text("message")))
        }
        // Enqueued, Dequeued, InProgress, Creating, Updating, Deleting, Initializing, ...
        Some(_) => OperationState::InProgress,
        None if a.status == 202 => OperationState::InProgress,
        None => OperationState::Succeeded,
    }
}

/// An operation's failure. `status` 0 means "failed inside Azure": the status
/// then comes from the message (`(Status: 403, Substatus: 4002)`) or is 500.
fn record(kind: &str, status: u16, code: &str, message: &str) -> AzureErrorRecord {
    let number_after = |label: &str| -> Option<i32> {
        let (_, rest) = message.split_once(label)?;
        rest.trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .ok()
    };
    let http_status = match status {
        0 => number_after("Status:").unwrap_or(500),
        s => i32::from(s),
    };
    AzureErrorRecord {
        operation: kind.to_owned(),
        http_status,
        sub_status: number_after("Substatus:"),
        code: (!code.is_empty()).then(|| code.to_owned()),
        message: (!message.is_empty()).then(|| message.to_owned()),
        time: Some(k8s_openapi::jiff::Timestamp::now().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(status: u16, body: Value) -> Answer {
        Answer {
            status,
            headers: Headers::new(),
            body,
        }
    }

    #[test]
    fn every_shape_of_progress_is_read() {
        for s in ["Enqueued", "Dequeued", "InProgress", "Creating"] {
            assert_eq!(
                state_of("CreateAccount", &answer(200, json!({"status": s}))),
                OperationState::InProgress
            );
        }
        assert_eq!(
            state_of("x", &answer(200, json!({"status": "Succeeded"}))),
            OperationState::Succeeded
        );
        let OperationState::Failed(r) = state_of(
            "CreateAccount",
            &answer(
                200,
                json!({"status": "Failed", "error": {"code": "BadRequest", "message": "no (Status: 403, Substatus: 4002)"}}),
            ),
        ) else {
            panic!("failed expected")
        };
        assert_eq!(
            (r.http_status, r.sub_status, r.code.as_deref()),
            (403, Some(4002), Some("BadRequest"))
        );
        assert_eq!(
            state_of(
                "x",
                &answer(
                    200,
                    json!({"properties": {"provisioningState": "Updating"}})
                )
            ),
            OperationState::InProgress
        );
        assert_eq!(
            state_of("x", &answer(202, Value::Null)),
            OperationState::InProgress
        );
        assert_eq!(
            state_of("x", &answer(204, Value::Null)),
            OperationState::Succeeded
        );
    }
}
