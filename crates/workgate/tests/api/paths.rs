//! The server's paths, by name: a test says which resource it asks for, and the spelling of each
//! URL lives here once. A test about a malformed or unknown path writes that path out instead.
//!
//! Ids and query strings go in as the test has them: a query value that needs percent-encoding is
//! encoded by the test (`helpers::enc`), since some tests are about the encoding.

#![allow(dead_code)]

const API: &str = "/api/v1";

// Members.

pub fn members() -> String {
    format!("{API}/members")
}

/// The member list with a query string (`limit=5`, `q=zhang&status=active`).
pub fn members_query(query: &str) -> String {
    format!("{API}/members?{query}")
}

pub fn member(id: &str) -> String {
    format!("{API}/members/{id}")
}

/// One of a member's actions by its name (`disable`, `enable`, `depart`, `unlock`, …), for the
/// tests that run several in turn.
pub fn member_action(id: &str, action: &str) -> String {
    format!("{API}/members/{id}/{action}")
}

pub fn member_disable(id: &str) -> String {
    member_action(id, "disable")
}

pub fn member_enable(id: &str) -> String {
    member_action(id, "enable")
}

pub fn member_depart(id: &str) -> String {
    member_action(id, "depart")
}

pub fn member_unlock(id: &str) -> String {
    member_action(id, "unlock")
}

/// Sends (again) a member's invitation.
pub fn member_invitation(id: &str) -> String {
    member_action(id, "invitation")
}

/// The invitations sent to a member.
pub fn member_invitations(id: &str) -> String {
    member_action(id, "invitations")
}

pub fn member_password_reset(id: &str) -> String {
    member_action(id, "password-reset")
}

pub fn member_sessions(id: &str) -> String {
    member_action(id, "sessions")
}

pub fn member_devices(id: &str) -> String {
    member_action(id, "devices")
}

pub fn member_device(id: &str, device: &str) -> String {
    format!("{API}/members/{id}/devices/{device}")
}

pub fn member_device_approve(id: &str, device: &str) -> String {
    format!("{API}/members/{id}/devices/{device}/approve")
}

pub fn members_import() -> String {
    format!("{API}/members/import")
}

/// The lookup by phone, without its query (to probe a missing `phone`).
pub fn member_lookup() -> String {
    format!("{API}/members/lookup")
}

/// The lookup of `phone`, as the query carries it (encoded by the caller where it needs to be).
pub fn member_lookup_phone(phone: &str) -> String {
    format!("{API}/members/lookup?phone={phone}")
}

// Departments.

pub fn departments() -> String {
    format!("{API}/departments")
}

pub fn department(id: &str) -> String {
    format!("{API}/departments/{id}")
}

// Sign-in and the signed-in member.

pub fn login_start() -> String {
    format!("{API}/login/start")
}

pub fn login_code(login_id: &str) -> String {
    format!("{API}/login/{login_id}/code")
}

pub fn login_password(login_id: &str) -> String {
    format!("{API}/login/{login_id}/password")
}

pub fn login_enterprise(login_id: &str) -> String {
    format!("{API}/login/{login_id}/enterprise")
}

pub fn login_resend(login_id: &str) -> String {
    format!("{API}/login/{login_id}/resend")
}

pub fn login_continue(login_id: &str) -> String {
    format!("{API}/login/{login_id}/continue")
}

pub fn token_refresh() -> String {
    format!("{API}/token/refresh")
}

pub fn me() -> String {
    format!("{API}/me")
}

pub fn me_logout() -> String {
    format!("{API}/me/logout")
}

pub fn me_enterprises() -> String {
    format!("{API}/me/enterprises")
}

pub fn me_devices() -> String {
    format!("{API}/me/devices")
}

pub fn me_device(device: &str) -> String {
    format!("{API}/me/devices/{device}")
}

/// An invitation, by the token its link carries.
pub fn invitation(token: &str) -> String {
    format!("{API}/invitations/{token}")
}

// Enterprise settings.

pub fn api_keys() -> String {
    format!("{API}/api-keys")
}

pub fn api_key(id: &str) -> String {
    format!("{API}/api-keys/{id}")
}

pub fn apps() -> String {
    format!("{API}/apps")
}

pub fn app(id: &str) -> String {
    format!("{API}/apps/{id}")
}

pub fn app_secret(id: &str) -> String {
    format!("{API}/apps/{id}/secret")
}

pub fn policy() -> String {
    format!("{API}/policy")
}

pub fn audit() -> String {
    format!("{API}/audit")
}

/// The audit log with a query string (`action=member.update`, `limit=4&cursor=…`).
pub fn audit_query(query: &str) -> String {
    format!("{API}/audit?{query}")
}

// OpenID Connect.

pub fn discovery() -> String {
    "/.well-known/openid-configuration".to_string()
}

pub fn oidc_authorize() -> String {
    "/oidc/authorize".to_string()
}

pub fn oidc_token() -> String {
    "/oidc/token".to_string()
}

pub fn oidc_userinfo() -> String {
    "/oidc/userinfo".to_string()
}

pub fn oidc_introspect() -> String {
    "/oidc/introspect".to_string()
}

pub fn oidc_revoke() -> String {
    "/oidc/revoke".to_string()
}

pub fn oidc_jwks() -> String {
    "/oidc/jwks".to_string()
}

pub fn oidc_logout() -> String {
    "/oidc/logout".to_string()
}
