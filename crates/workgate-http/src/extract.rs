//! Extractors: request bodies and queries that fail as problem+json, the client's address, and
//! the authenticated admin caller.

use crate::AppState;
use crate::problem::ApiError;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use std::net::{IpAddr, SocketAddr};
use workgate_domain::Error;
use workgate_domain::audit::Caller;
use workgate_domain::login::ClientInfo;

/// A JSON body, read under the body limit; unknown fields, wrong types and repeated keys are
/// `validation_failed` naming the field.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json =
            req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
                v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType { expected: "application/json" });
        }
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(Json)
    }
}

/// Decodes a JSON request body as the `Json` extractor does: unknown fields, wrong types and
/// repeated keys are `validation_failed` naming the field, and so is anything after the value
/// but whitespace. Public for the fuzz targets.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let message = e.inner().to_string();
        ApiError::Domain(Error::field(error_field(&e.path().to_string(), &message, "body"), without_position(&message)))
    })?;
    // `{"name":"a"}{"name":"b"}` or `{…}garbage` is not one JSON value.
    de.end().map_err(|e| ApiError::Domain(Error::field("body", without_position(&e.to_string()))))?;
    Ok(value)
}

/// serde's messages end with " at line 1 column 12"; the field name says where.
fn without_position(message: &str) -> String {
    message.split(" at line ").next().unwrap_or(message).to_string()
}

/// The field an error is about: serde's path, completed with the field that a "missing field
/// `x`" or "duplicate field `x`" message names (for those the path stops at the enclosing
/// object); `whole` when the error is about the input as a whole.
fn error_field(path: &str, message: &str, whole: &str) -> String {
    let named = ["missing field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    let path = if path == "." { "" } else { path };
    match (path.is_empty(), named) {
        (true, Some(field)) => field.to_string(),
        (true, None) => whole.to_string(),
        (false, Some(field)) => format!("{path}.{field}"),
        (false, None) => path.to_string(),
    }
}

pub(crate) async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(inner) if inner.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge
        }
        other => ApiError::Domain(Error::field("body", other.body_text())),
    })
}

/// Query parameters; an unknown or repeated parameter is `validation_failed`.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(Query).map_err(|e| {
            let message = e.inner().to_string();
            ApiError::Domain(Error::field(error_field(&e.path().to_string(), &message, "query"), message))
        })
    }
}

/// The client's address: the peer's, or — when the peer is a configured trusted proxy — the
/// right-most address in `X-Forwarded-For` that is not itself a trusted proxy.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let Some(peer) = peer else { return Ok(ClientIp(None)) };
        if !state.config.trusted_proxies.contains(&peer) {
            return Ok(ClientIp(Some(peer)));
        }
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        let client = forwarded.into_iter().rev().find(|ip| !state.config.trusted_proxies.contains(ip));
        Ok(ClientIp(Some(client.unwrap_or(peer))))
    }
}

/// An authenticated caller with admin rights over their enterprise.
pub struct AdminCaller(pub Caller);

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // The `Idempotency-Key` layer may have resolved this request's credential already.
        if let Some(AuthenticatedAdmin { caller, .. }) = parts.extensions.get::<AuthenticatedAdmin>() {
            return Ok(AdminCaller(caller.clone()));
        }
        Ok(AdminCaller(authenticate_admin(parts, state).await?.caller))
    }
}

/// An admin credential resolved for this request, and its name (`api_key:<id>` or
/// `session:<id>`).
#[derive(Clone)]
pub struct AuthenticatedAdmin {
    pub caller: Caller,
    pub credential: String,
}

/// Resolves the bearer credential of an admin request (the one resolution, used by [`AdminCaller`]
/// and the `Idempotency-Key` layer alike).
pub async fn authenticate_admin(parts: &mut Parts, state: &AppState) -> Result<AuthenticatedAdmin, ApiError> {
    let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
    let token = bearer_token(&parts.headers).ok_or(ApiError::Domain(Error::Unauthorized))?;
    let (caller, credential) = state.services.authenticate_admin_credential(token, ip.map(|ip| ip.to_string())).await?;
    Ok(AuthenticatedAdmin { caller, credential })
}

/// The credential of an `Authorization: Bearer <token>` header.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme is case-insensitive (RFC 9110 section 11.1).
        .and_then(|v| v.split_once(' ').filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer")).map(|(_, t)| t))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// A signed-in member, by their access token.
pub struct MemberCaller(pub workgate_domain::sessions::MemberSession);

impl FromRequestParts<AppState> for MemberCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers).ok_or(ApiError::Domain(Error::Unauthorized))?;
        Ok(MemberCaller(state.services.authenticate_access(token).await?))
    }
}

/// The client's address and User-Agent, for limits, events and the devices list.
pub struct Client(pub ClientInfo);

impl FromRequestParts<AppState> for Client {
    type Rejection = crate::problem::ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
        let user_agent =
            parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(256).collect());
        Ok(Client(ClientInfo { ip, user_agent }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Named {
        #[allow(dead_code)]
        name: String,
    }

    fn refused_field(body: &[u8]) -> String {
        match parse_json::<Named>(body) {
            Err(ApiError::Domain(Error::Validation(errors))) => errors[0].field.clone(),
            other => panic!("{} was not refused as validation_failed: {other:?}", String::from_utf8_lossy(body)),
        }
    }

    #[test]
    fn anything_after_the_value_is_refused() {
        // Found by the `api_json` fuzz target: `{"name":"ci"}rse' batt` was accepted as
        // `{"name":"ci"}` (serde_json::from_slice refuses it; the extractor did not).
        assert_eq!(refused_field(br#"{"name":"ci"}rse' batt"#), "body");
        assert_eq!(refused_field(br#"{"name":"a"}{"name":"b"}"#), "body");
        assert!(parse_json::<Named>(b" {\"name\":\"a\"} \r\n").is_ok());
    }

    #[test]
    fn refusals_name_the_field() {
        assert_eq!(refused_field(br#"{"name":1}"#), "name");
        assert_eq!(refused_field(br#"{}"#), "name");
    }
}
