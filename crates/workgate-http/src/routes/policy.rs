//! The enterprise's security policy (SPEC section 5).

use crate::AppState;
use crate::extract::{AdminCaller, Json};
use crate::problem::{ApiResult, Problem};
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use workgate_domain::policy::{Policy, StoredPolicy};

#[derive(Serialize, ToSchema)]
pub struct PolicyView {
    #[serde(flatten)]
    pub policy: Policy,
    /// When the policy last changed (null while the defaults apply).
    pub updated_at: Option<String>,
}

impl From<StoredPolicy> for PolicyView {
    fn from(p: StoredPolicy) -> Self {
        PolicyView { updated_at: (p.updated_at.millis() > 0).then(|| p.updated_at.to_rfc3339()), policy: p.policy }
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

/// Replaces the whole policy. A change that tightens it asks devices verified before to verify
/// again at their next refresh (`policy_changed`).
#[utoipa::path(put, path = "/api/v1/policy", tag = "admin", security(("bearer" = [])), request_body = Policy,
    responses((status = 200, body = PolicyView), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn put_policy(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Json(policy): Json<Policy>,
) -> ApiResult<axum::Json<PolicyView>> {
    Ok(axum::Json(s.services.put_policy(&caller, policy).await?.into()))
}
