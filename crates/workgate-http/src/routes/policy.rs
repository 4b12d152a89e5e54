//! The enterprise's security policy (SPEC section 5).

use crate::AppState;
use crate::extract::{AdminCaller, Json, parse_json};
use crate::problem::{ApiResult, Problem};
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use workgate_domain::Error;
use workgate_domain::policy::{Policy, StoredPolicy};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_policy, put_policy))
}

/// The policy's fields as in `PUT /policy`, and when it last changed. (Written out rather than
/// `#[serde(flatten)]`ed: `Policy` refuses unknown fields, so a document that flattens it would
/// say that `updated_at` may not be there.)
#[derive(Serialize, ToSchema)]
pub struct PolicyView {
    pub require_password: bool,
    pub reverify_after_days: u32,
    pub idle_timeout_days: u32,
    pub reverify_on_app_update: bool,
    pub max_devices: u32,
    pub require_device_approval: bool,
    pub access_token_ttl_seconds: u32,
    /// Country codes whose numbers may be added and sign in; `null` means all.
    pub allowed_regions: Option<Vec<String>>,
    /// When the policy last changed (null while the defaults apply).
    pub updated_at: Option<String>,
}

impl From<StoredPolicy> for PolicyView {
    fn from(p: StoredPolicy) -> Self {
        let updated_at = p.updated_at_text();
        let Policy {
            require_password,
            reverify_after_days,
            idle_timeout_days,
            reverify_on_app_update,
            max_devices,
            require_device_approval,
            access_token_ttl_seconds,
            allowed_regions,
        } = p.policy;
        PolicyView {
            require_password,
            reverify_after_days,
            idle_timeout_days,
            reverify_on_app_update,
            max_devices,
            require_device_approval,
            access_token_ttl_seconds,
            allowed_regions,
            updated_at,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/policy", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = PolicyView), (status = 403, body = Problem)))]
pub async fn get_policy(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
) -> ApiResult<axum::Json<PolicyView>> {
    Ok(axum::Json(s.services.get_policy(&caller).await?.into()))
}

/// The body of `PUT /policy` as the document describes it: the policy, with the `updated_at` that
/// `GET /policy` answered when the change is made on what was read. (The handler takes the policy
/// apart from `updated_at`, as `Policy` refuses fields it does not know.)
#[derive(serde::Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct PolicyDocument {
    #[serde(flatten)]
    policy: Policy,
    /// As `GET /policy` answered it: the change is refused (`409`) if the policy changed since.
    updated_at: Option<String>,
}

/// Replaces the whole policy. A change that tightens it asks devices verified before to verify
/// again at their next refresh (`policy_changed`). With `updated_at`, it is made only on that
/// version: if another change was stored since (on any node, or at the same moment), `409`.
#[utoipa::path(put, path = "/api/v1/policy", tag = "admin", security(("bearer" = [])), request_body = PolicyDocument,
    responses((status = 200, body = PolicyView), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
pub async fn put_policy(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Json(mut document): Json<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<axum::Json<PolicyView>> {
    // The document `GET /policy` answered is accepted as it is: its `updated_at`, when given,
    // must still be the policy's (nobody changed it since it was read).
    let read_at = match document.remove("updated_at") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(at)) => Some(at),
        Some(_) => return Err(Error::field("updated_at", "must be the string GET /policy answered, or null").into()),
    };
    let policy: Policy = parse_json(&serde_json::to_vec(&document).unwrap_or_default())?;
    Ok(axum::Json(s.services.put_policy(&caller, policy, read_at.as_deref()).await?.into()))
}
