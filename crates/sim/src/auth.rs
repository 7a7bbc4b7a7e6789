//! Entra ID token endpoint and bearer-token checks.
//!
//! Tokens are opaque to clients but checkable here: `simtok.<claims>.<mac>`,
//! where the MAC is keyed with the state's random `token_key`.

use std::hash::{Hash, Hasher};

use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::errors::{ApiError, Style};
use super::hosts::{CloudHosts, Origin};
use super::server::App;
use super::state::new_guid;

/// The public cloud's audiences. `authenticate` takes them as the kind of
/// token a route needs and checks for the request's cloud's own.
pub const ARM_AUDIENCE: &str = super::hosts::PUBLIC.arm_audiences[0];
pub const VAULT_AUDIENCE: &str = super::hosts::PUBLIC.vault_audience;
const ASSERTION_AUDIENCE: &str = "api://AzureADTokenExchange";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub tid: String,
    pub oid: String,
    pub appid: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

fn mac(key: u64, payload: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    payload.hash(&mut h);
    let a = h.finish();
    a.rotate_left(17).hash(&mut h);
    format!("{a:016x}{:016x}", h.finish())
}

pub fn mint(key: u64, claims: &Claims) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let sig = mac(key, &payload);
    format!("simtok.{payload}.{sig}")
}

/// The audience of the request's bearer token, when it carries one the
/// simulator signed (valid or not for where it was sent): what the ledger
/// records, so a test sees which cloud's audience a client asked for.
pub fn bearer_audience(app: &App, headers: &HeaderMap) -> Option<String> {
    let raw = headers.get("authorization")?.to_str().ok()?;
    let token = raw
        .strip_prefix("Bearer ")
        .or_else(|| raw.strip_prefix("bearer "))?;
    let key = app.state().token_key;
    verify(key, token.trim()).map(|c| c.aud)
}

fn verify(key: u64, token: &str) -> Option<Claims> {
    let rest = token.strip_prefix("simtok.")?;
    let (payload, sig) = rest.split_once('.')?;
    if mac(key, payload) != sig {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Maps an OAuth scope to the audience it names in `cloud` (each cloud's Entra
/// knows only its own resources), or `None` for an unknown resource.
pub fn audience_for_scope(cloud: &CloudHosts, scope: &str) -> Option<&'static str> {
    let resource = scope
        .trim()
        .trim_end_matches("/.default")
        .trim_end_matches('/')
        .to_ascii_lowercase();
    if cloud.arm_audiences.contains(&resource.as_str()) {
        Some(cloud.arm_audience())
    } else if resource == cloud.vault_audience {
        Some(cloud.vault_audience)
    } else {
        None
    }
}

fn oauth_err(status: StatusCode, error: &str, aadsts: &str, description: String) -> ApiError {
    ApiError::new(
        Style::OAuth,
        status,
        error,
        format!("{aadsts}: {description}"),
    )
    .inner(aadsts)
}

/// `POST /{tenant}/oauth2/v2.0/token` (client credentials; secret or federated assertion).
pub fn token(
    app: &App,
    origin: &Origin,
    tenant: &str,
    body: &[u8],
) -> Result<(Value, String), ApiError> {
    if app.faults_snapshot().token_outage {
        return Err(oauth_err(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "AADSTS90033",
            "A transient error has occurred. Please try again.".into(),
        ));
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if !tenant.eq_ignore_ascii_case(&app.config.tenant_id) {
        return Err(oauth_err(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS90002",
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        ));
    }
    if field("grant_type") != Some("client_credentials") {
        return Err(oauth_err(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "AADSTS70003",
            "The app requested an unsupported grant type.".into(),
        ));
    }
    let client_id = field("client_id").unwrap_or_default().to_owned();
    let scope = field("scope").unwrap_or_default();
    let first_scope = scope.split_whitespace().next().unwrap_or_default();
    let aud = audience_for_scope(origin.cloud, first_scope).ok_or_else(|| {
        oauth_err(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            "AADSTS500011",
            format!(
                "The resource principal named {} was not found in the tenant named {}.",
                first_scope.trim_end_matches("/.default"),
                app.config.tenant_id
            ),
        )
    })?;

    let state = app.state();
    // Who is the client: an app registration, or a user-assigned identity (workload identity).
    let (object_id, secret, federated) = if let Some(a) =
        state.apps.get(&client_id.to_ascii_lowercase())
    {
        (
            a.object_id.clone(),
            a.client_secret.clone(),
            a.federated_credentials.clone(),
        )
    } else if let Some(i) = state
        .identities
        .values()
        .find(|i| i.client_id.eq_ignore_ascii_case(&client_id))
    {
        (
            i.principal_id.clone(),
            None,
            i.federated_credentials.clone(),
        )
    } else {
        return Err(oauth_err(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "AADSTS700016",
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{}'.",
                app.config.tenant_id
            ),
        ));
    };
    let key = state.token_key;
    drop(state);

    if let Some(given) = field("client_secret") {
        if secret.as_deref() != Some(given) {
            return Err(oauth_err(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "AADSTS7000215",
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.".into(),
            ));
        }
    } else if let Some(assertion) = field("client_assertion") {
        if field("client_assertion_type") != Some(JWT_BEARER) {
            return Err(oauth_err(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "AADSTS700023",
                "The client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.".into(),
            ));
        }
        check_assertion(assertion, &federated)?;
    } else {
        return Err(oauth_err(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS7000218",
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.".into(),
        ));
    }

    let now = jiff::Timestamp::now().as_second();
    let lifetime = app.config.token_lifetime.as_secs() as i64;
    let claims = Claims {
        tid: app.config.tenant_id.clone(),
        oid: object_id.clone(),
        appid: client_id,
        aud: aud.to_owned(),
        iat: now,
        exp: now + lifetime,
        jti: new_guid(),
    };
    let token = mint(key, &claims);
    Ok((
        json!({
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
        }),
        object_id,
    ))
}

/// Checks a workload-identity assertion: a JWT whose `aud`, `iss`, `sub` and `exp`
/// match a federated credential (the signature is not checked: no keys exist here).
fn check_assertion(
    assertion: &str,
    federated: &[super::state::FederatedCredential],
) -> Result<(), ApiError> {
    let invalid = || {
        oauth_err(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "AADSTS50027",
            "JWT token is invalid or malformed.".into(),
        )
    };
    let mut parts = assertion.split('.');
    let (_h, p) = match (parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(_)) => (h, p),
        _ => return Err(invalid()),
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(p.trim_end_matches('='))
        .map_err(|_| invalid())?;
    let claims: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let auds: Vec<&str> = match claims.get("aud") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let accepts = |f: &super::state::FederatedCredential| {
        if f.audiences.is_empty() {
            auds.contains(&ASSERTION_AUDIENCE)
        } else {
            f.audiences.iter().any(|a| auds.contains(&a.as_str()))
        }
    };
    if !federated.iter().any(accepts) && !auds.contains(&ASSERTION_AUDIENCE) {
        return Err(oauth_err(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "AADSTS700212",
            format!(
                "No matching federated identity record found for presented assertion audience '{}'.",
                auds.join(",")
            ),
        ));
    }
    if let Some(exp) = claims.get("exp").and_then(Value::as_i64)
        && exp < jiff::Timestamp::now().as_second()
    {
        return Err(oauth_err(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "AADSTS700024",
            "Client assertion is not within its valid time range.".into(),
        ));
    }
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !federated
        .iter()
        .any(|f| f.issuer == iss && f.subject == sub && accepts(f))
    {
        return Err(oauth_err(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "AADSTS70021",
            format!(
                "No matching federated identity record found for presented assertion. Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'."
            ),
        ));
    }
    Ok(())
}

/// Checks the bearer token of a request for `audience` ([`ARM_AUDIENCE`] or
/// [`VAULT_AUDIENCE`], read as that service's audience in the request's
/// cloud); answers Azure's 401 otherwise, its challenge naming the authority
/// and resource of that cloud with the client's port.
pub fn authenticate(
    app: &App,
    origin: &Origin,
    headers: &HeaderMap,
    audience: &str,
) -> Result<Claims, ApiError> {
    let (style, audience) = if audience == VAULT_AUDIENCE {
        (Style::KeyVault, origin.cloud.vault_audience)
    } else {
        (Style::Arm, origin.cloud.arm_audience())
    };
    let authority = format!("{}{}", origin.login_base(), app.config.tenant_id);
    let challenge = |desc: &str| {
        if style == Style::KeyVault {
            format!("Bearer authorization=\"{authority}\", resource=\"{audience}\"")
        } else {
            format!(
                "Bearer authorization_uri=\"{authority}\", error=\"invalid_token\", error_description=\"{desc}\""
            )
        }
    };
    let fail = |arm_code: &str, kv_msg: &str, desc: &str| {
        let (code, msg) = if style == Style::KeyVault {
            ("Unauthorized", kv_msg.to_owned())
        } else {
            (arm_code, desc.to_owned())
        };
        ApiError::new(style, StatusCode::UNAUTHORIZED, code, msg)
            .header("WWW-Authenticate", challenge(desc))
    };
    let raw = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            fail(
                "AuthenticationFailed",
                "AKV10000: Request is missing a Bearer or PoP token.",
                "Authentication failed. The 'Authorization' header is missing.",
            )
        })?;
    let token = raw
        .strip_prefix("Bearer ")
        .or_else(|| raw.strip_prefix("bearer "))
        .ok_or_else(|| {
            fail(
                "InvalidAuthenticationToken",
                "AKV10000: Request is missing a Bearer or PoP token.",
                "The access token is invalid.",
            )
        })?;
    let key = app.state().token_key;
    let claims = verify(key, token.trim()).ok_or_else(|| {
        fail(
            "InvalidAuthenticationToken",
            "AKV10032: Invalid issuer or signature.",
            "The access token is invalid.",
        )
    })?;
    let now = jiff::Timestamp::now().as_second();
    if claims.exp <= now {
        return Err(fail(
            "ExpiredAuthenticationToken",
            "AKV10012: Token has expired.",
            &format!(
                "The access token expiry UTC time '{}' is earlier than current UTC time '{}'.",
                jiff::Timestamp::from_second(claims.exp)
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
                jiff::Timestamp::now()
            ),
        ));
    }
    if claims.aud != audience {
        return Err(fail(
            "InvalidAuthenticationTokenAudience",
            &format!(
                "AKV10022: Invalid audience. Expected {audience}, found: {}.",
                claims.aud
            ),
            &format!(
                "The access token has been obtained for wrong audience or resource '{}'. It should exactly match with one of the allowed audiences '{}/','{}/'.",
                claims.aud, origin.cloud.arm_audiences[1], origin.cloud.arm_audiences[0]
            ),
        ));
    }
    Ok(claims)
}

/// OpenID discovery document (azure_identity 0.21 never asks for it; MSAL-based tools do).
pub fn openid_configuration(origin: &Origin, tenant: &str) -> Value {
    let issuer_base = format!("{}{tenant}", origin.login_base());
    json!({
        "token_endpoint": format!("{issuer_base}/oauth2/v2.0/token"),
        "authorization_endpoint": format!("{issuer_base}/oauth2/v2.0/authorize"),
        "issuer": format!("{issuer_base}/v2.0"),
        "jwks_uri": format!("{issuer_base}/discovery/v2.0/keys"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "tenant_region_scope": "NA",
    })
}
