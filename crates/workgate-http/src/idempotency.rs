//! The `Idempotency-Key` layer for admin POSTs (rules in `workgate_domain::idempotency`).
//!
//! Scope is the hash of the credential that sent the request, so one client's keys never meet
//! another's. Answers that say the request did not happen (401, 5xx) are not kept: a retry runs.

use crate::AppState;
use crate::extract::bearer_token;
use crate::problem::ApiError;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use workgate_domain::Error;
use workgate_domain::idempotency::{Claim, StoredResponse, parse_key};
use workgate_domain::secret::{SecretHash, fingerprint};

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED_HEADER: &str = "idempotency-replayed";

pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match run(state, req, next).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn run(state: AppState, req: Request, next: Next) -> Result<Response, ApiError> {
    let Some(raw_key) = req.headers().get(HEADER).filter(|_| req.method() == Method::POST) else {
        return Ok(next.run(req).await);
    };
    let key = parse_key(raw_key.to_str().unwrap_or(""))?;
    let Some(token) = bearer_token(req.headers()) else {
        return Ok(next.run(req).await); // the handler answers 401
    };
    let scope = SecretHash::of(token).as_str().to_string();
    let limit = if req.uri().path().ends_with("/members/import") {
        state.config.import_body_limit
    } else {
        state.config.body_limit
    };
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| ApiError::PayloadTooLarge)?;
    let path = parts.uri.path_and_query().map_or("", |p| p.as_str());
    let print = fingerprint(&[parts.method.as_str().as_bytes(), path.as_bytes(), &bytes]);
    let store = &state.services.store;
    let now = state.services.clock.now();
    match store.claim_idempotency_key(&scope, &key, &print, now).await? {
        Claim::Claimed => {}
        Claim::Replay(stored) => return Ok(replay(stored)),
        Claim::InProgress => {
            return Err(Error::Conflict(
                "a request with this Idempotency-Key is still being processed; retry when it has finished".into(),
            )
            .into());
        }
        Claim::Mismatch => {
            return Err(
                Error::field("Idempotency-Key", "was already used with a different request; use a new key").into()
            );
        }
    }
    let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let status = response.status();
    if status == StatusCode::UNAUTHORIZED || status.is_server_error() {
        store.release_idempotency_key(&scope, &key).await?;
        return Ok(response);
    }
    let (mut head, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| Error::Internal(format!("reading the answer to keep it failed: {e}")))?;
    let stored = StoredResponse {
        status: status.as_u16(),
        content_type: head.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string(),
        body: body.to_vec(),
    };
    if let Err(e) = store.complete_idempotency_key(&scope, &key, &stored).await {
        tracing::error!(error = %e, "keeping the answer for Idempotency-Key failed");
        store.release_idempotency_key(&scope, &key).await.ok();
    }
    head.headers.remove(header::CONTENT_LENGTH);
    Ok(Response::from_parts(head, Body::from(body)))
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, stored.body).into_response();
    if let Ok(v) = HeaderValue::from_str(&stored.content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    response.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}
