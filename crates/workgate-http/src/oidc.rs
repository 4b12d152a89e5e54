//! The OpenID Connect endpoints that apps call directly: discovery, JWKS, token, userinfo,
//! introspection (RFC 7662) and revocation (RFC 7009). Their errors are OAuth's
//! `{error, error_description}` (what relying-party libraries read), not problem+json. The
//! browser-facing endpoints (authorize, logout) are web pages, in `web::oidc`.
//!
//! These answer any origin (CORS without credentials): a browser app (a public client) calls
//! the token and userinfo endpoints from its own origin.

use crate::AppState;
use crate::extract::bearer_token;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::HashMap;
use tower_http::cors::{Any, CorsLayer};
use workgate_domain::oidc::OAuthError;
use workgate_domain::oidc::apps::ClientAuth;

/// Bodies of these endpoints are a few form fields.
const BODY_LIMIT: usize = 64 * 1024;

pub fn routes() -> Router<AppState> {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]);
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/oidc/jwks", get(jwks))
        .route("/oidc/token", post(token))
        .route("/oidc/userinfo", get(userinfo).post(userinfo))
        .route("/oidc/introspect", post(introspect))
        .route("/oidc/revoke", post(revoke))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(cors)
}

/// An OAuth error as RFC 6749 section 5.2 (and RFC 6750 section 3 for bearer tokens) spell it.
pub struct OAuthFailure(pub OAuthError);

impl From<OAuthError> for OAuthFailure {
    fn from(e: OAuthError) -> Self {
        OAuthFailure(e)
    }
}

impl From<workgate_domain::Error> for OAuthFailure {
    fn from(e: workgate_domain::Error) -> Self {
        OAuthFailure(e.into())
    }
}

impl IntoResponse for OAuthFailure {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let mut response =
            (status, no_store(), axum::Json(json!({"error": e.error, "error_description": e.description})))
                .into_response();
        let challenge = match e.error {
            "invalid_client" => Some("Basic realm=\"workgate\"".to_string()),
            "invalid_token" => Some(format!("Bearer error=\"invalid_token\", error_description=\"{}\"", e.description)),
            _ => None,
        };
        if let Some(v) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        response
    }
}

/// Tokens and their errors are never cached (RFC 6749 section 5.1).
fn no_store() -> [(header::HeaderName, &'static str); 2] {
    [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")]
}

type OAuthResult<T> = Result<T, OAuthFailure>;

/// The fields of a query or form, each at most once (RFC 6749 section 3.1: "parameters MUST NOT
/// be included more than once"); the error names the repeated one.
pub fn unique_params(encoded: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut params = HashMap::new();
    for (name, value) in form_urlencoded::parse(encoded) {
        if params.insert(name.to_string(), value.into_owned()).is_some() {
            return Err(name.into_owned());
        }
    }
    Ok(params)
}

/// A form body: `application/x-www-form-urlencoded`, each field once.
fn form(headers: &HeaderMap, body: &Bytes) -> OAuthResult<HashMap<String, String>> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(OAuthError::invalid_request("the body must be application/x-www-form-urlencoded").into());
    }
    unique_params(body).map_err(|name| OAuthError::invalid_request(format!("{name} is given more than once")).into())
}

/// The client's credentials: HTTP Basic (`client_secret_basic`, each part form-encoded as
/// RFC 6749 section 2.3.1 says) or `client_id`/`client_secret` fields; never both.
fn client_auth(headers: &HeaderMap, form: &mut HashMap<String, String>) -> OAuthResult<ClientAuth> {
    let form_id = form.remove("client_id");
    let form_secret = form.remove("client_secret");
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' ').filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic")).map(|(_, c)| c));
    let Some(encoded) = basic else { return Ok(ClientAuth { client_id: form_id, client_secret: form_secret }) };
    let invalid = || OAuthFailure(OAuthError::invalid_client());
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| invalid())?;
    let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(invalid)?;
    let unescape =
        |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
    let (id, secret) = (unescape(id), unescape(secret));
    if form_secret.is_some() || form_id.as_ref().is_some_and(|f| *f != id) {
        return Err(OAuthError::invalid_request("use one client authentication method").into());
    }
    Ok(ClientAuth { client_id: Some(id), client_secret: Some(secret) })
}

async fn discovery(State(s): State<AppState>) -> Response {
    ([(header::CACHE_CONTROL, "public, max-age=300")], axum::Json(s.services.discovery())).into_response()
}

async fn jwks(State(s): State<AppState>) -> OAuthResult<Response> {
    let keys = s.services.jwks().await?;
    // Short enough that a key published ahead of use is seen long before it signs.
    Ok(([(header::CACHE_CONTROL, "public, max-age=300")], axum::Json(keys)).into_response())
}

async fn token(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> OAuthResult<Response> {
    let mut params = form(&headers, &body)?;
    let auth = client_auth(&headers, &mut params)?;
    let t = s.services.token(&params, &auth).await?;
    let answer = json!({
        "access_token": t.access_token,
        "token_type": "Bearer",
        "expires_in": t.expires_in,
        "refresh_token": t.refresh_token,
        "id_token": t.id_token,
        "scope": t.scope,
    });
    Ok((no_store(), axum::Json(answer)).into_response())
}

/// `GET|POST /oidc/userinfo`: the access token in the `Authorization` header, or (POST only) as
/// the `access_token` field of a form body (RFC 6750 section 2.2) — never both.
async fn userinfo(
    State(s): State<AppState>,
    method: axum::http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> OAuthResult<Response> {
    let in_body = if method == axum::http::Method::POST && !body.is_empty() {
        form(&headers, &body)?.remove("access_token")
    } else {
        None
    };
    let token = match (bearer_token(&headers), in_body) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request("send the access token once: in the header or in the body").into());
        }
        (Some(token), None) => token.to_string(),
        (None, Some(token)) => token,
        (None, None) => {
            let mut response = (StatusCode::UNAUTHORIZED, no_store()).into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return Ok(response);
        }
    };
    let claims: Value = s.services.userinfo(&token).await?;
    Ok((no_store(), axum::Json(claims)).into_response())
}

async fn introspect(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> OAuthResult<Response> {
    let mut params = form(&headers, &body)?;
    let auth = client_auth(&headers, &mut params)?;
    let token = params.get("token").ok_or_else(|| OAuthFailure(OAuthError::invalid_request("token is missing")))?;
    let answer = s.services.introspect(token, &auth).await?;
    Ok((no_store(), axum::Json(answer)).into_response())
}

async fn revoke(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> OAuthResult<Response> {
    let mut params = form(&headers, &body)?;
    let auth = client_auth(&headers, &mut params)?;
    let token = params.get("token").ok_or_else(|| OAuthFailure(OAuthError::invalid_request("token is missing")))?;
    s.services.revoke_app_token(token, &auth).await?;
    Ok((StatusCode::OK, no_store()).into_response())
}
