//! The `Idempotency-Key` layer for admin POSTs (rules in `workgate_domain::idempotency`).
//!
//! The credential is checked first, exactly as the handler will check it: a request without a live
//! admin credential runs untouched (its handler answers 401 or 403), and nothing is kept or
//! replayed for it. A kept answer is bound to the credential that sent the request (the API key or
//! the session, by id) and replayed only to it, only while it is live. Answers are kept encrypted
//! under a key derived from the key file (they may hold a new API key or app secret). Answers that
//! say the request did not happen (401, 5xx) are not kept: a retry runs.

use crate::AppState;
use crate::extract::{AuthenticatedAdmin, authenticate_admin};
use crate::problem::ApiError;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use workgate_domain::Error;
use workgate_domain::idempotency::{Claim, StoredResponse, answer_context, parse_key};
use workgate_domain::secret::fingerprint;

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED_HEADER: &str = "idempotency-replayed";

pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match run(state, req, next).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn run(state: AppState, req: Request, next: Next) -> Result<Response, ApiError> {
    if req.method() != Method::POST || !req.headers().contains_key(HEADER) {
        return Ok(next.run(req).await);
    }
    let (mut parts, body) = req.into_parts();
    let admin = match authenticate_admin(&mut parts, &state).await {
        Ok(admin) => admin,
        // No live admin credential: the handler answers (401, 403, or the login endpoints'
        // own answer), with no key claimed and nothing replayed.
        Err(_) => return Ok(next.run(Request::from_parts(parts, body)).await),
    };
    let raw_key = parts.headers.get(HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    let key = parse_key(raw_key)?;
    let scope = admin.credential.clone();
    // The handler takes the caller from here rather than resolving the credential again.
    parts.extensions.insert::<AuthenticatedAdmin>(admin);
    let limit = if parts.uri.path().ends_with("/members/import") {
        state.config.import_body_limit
    } else {
        state.config.body_limit
    };
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| ApiError::PayloadTooLarge)?;
    let path = parts.uri.path_and_query().map_or("", |p| p.as_str());
    let print = fingerprint(&[parts.method.as_str().as_bytes(), path.as_bytes(), &bytes]);
    let store = &state.services.store;
    let now = state.services.clock.now();
    match store.claim_idempotency_key(&scope, &key, &print, now).await? {
        Claim::Claimed => {}
        Claim::Replay(stored) => {
            let body = state.services.keys().open_answer(&answer_context(&scope, &key), &stored.body)?;
            return Ok(replay(StoredResponse { body, ..stored }));
        }
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
        body: state.services.keys().seal_answer(&answer_context(&scope, &key), &body),
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
