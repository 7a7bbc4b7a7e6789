//! Resource provider registration (`GET/POST /subscriptions/{s}/providers/{ns}[/register]`).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use crate::errors::{ApiError, Style};
use crate::server::{App, Req, json_resp};
use crate::state::{OpKind, ProviderRegistration, State, now_ms};

fn key(sub: &str, ns: &str) -> String {
    format!("{sub}/{ns}").to_ascii_lowercase()
}

pub fn registration_state(app: &App, state: &State, sub: &str, ns: &str) -> String {
    state
        .providers
        .get(&key(sub, ns))
        .map(|p| p.state.clone())
        .unwrap_or_else(|| {
            if app.config.providers_registered_by_default {
                "Registered"
            } else {
                "NotRegistered"
            }
            .into()
        })
}

pub fn registered(app: &App, state: &State, sub: &str, ns: &str) -> bool {
    registration_state(app, state, sub, ns) == "Registered"
}

pub fn handle(
    app: &App,
    req: &Req,
    sub: &str,
    ns: &str,
    register: bool,
) -> Result<Response, ApiError> {
    let mut state = app.state();
    super::lro::advance(&mut state);
    match (req.method.as_str(), register) {
        ("GET", false) => {}
        ("POST", true) => {
            if !registered(app, &state, sub, ns) {
                let k = key(sub, ns);
                state.providers.insert(
                    k.clone(),
                    ProviderRegistration {
                        state: "Registering".into(),
                        since_ms: now_ms(),
                    },
                );
                super::lro::start(app, &mut state, OpKind::Register, &k, sub, "global");
            }
        }
        _ => return Ok(crate::server::method_not_allowed(Style::Arm)),
    }
    let reg = registration_state(app, &state, sub, ns);
    let types = if ns.eq_ignore_ascii_case("Microsoft.DocumentDB") {
        let locations: Vec<&str> = super::regions::REGIONS.iter().map(|r| r.1).collect();
        json!([{"resourceType": "databaseAccounts", "locations": locations, "apiVersions": super::api_versions::COSMOS}])
    } else {
        json!([])
    };
    Ok(json_resp(
        StatusCode::OK,
        json!({
            "id": format!("/subscriptions/{sub}/providers/{ns}"),
            "namespace": ns,
            "registrationState": reg,
            "registrationPolicy": "RegistrationRequired",
            "resourceTypes": types,
        }),
    ))
}
