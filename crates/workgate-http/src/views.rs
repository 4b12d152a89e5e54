//! The JSON shapes of responses (SPEC section 4, "Shapes"). Fields may be added, never renamed.

use serde::Serialize;
use utoipa::ToSchema;
use workgate_domain::audit::Page;
use workgate_domain::directory::PhoneLookup;
use workgate_domain::invitations::Invitation;
use workgate_domain::login::LoginEvent;
use workgate_domain::model::{ApiKey, AuditEntry, Department, Member};
use workgate_domain::sessions::Device;

#[derive(Serialize, ToSchema)]
pub struct ListOf<T> {
    pub items: Vec<T>,
    /// Pass back as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T> ListOf<T> {
    /// A whole list (there is no next page), each item made a view.
    pub fn whole<D>(items: impl IntoIterator<Item = D>, view: impl Fn(D) -> T) -> Self {
        ListOf { items: items.into_iter().map(view).collect(), next_cursor: None }
    }

    /// A whole list of items that convert into their view.
    pub fn all<D: Into<T>>(items: Vec<D>) -> Self {
        Self::whole(items, Into::into)
    }

    pub fn from_page<D>(page: Page<D>, view: impl Fn(D) -> T) -> Self {
        ListOf { items: page.items.into_iter().map(view).collect(), next_cursor: page.next_cursor }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DepartmentView {
    pub id: String,
    pub name: String,
    pub parent_id: Option<String>,
    pub order: i64,
}

impl From<Department> for DepartmentView {
    fn from(d: Department) -> Self {
        DepartmentView {
            id: d.id.to_string(),
            name: d.name.to_string(),
            parent_id: d.parent_id.map(|p| p.to_string()),
            order: d.order,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MemberView {
    pub id: String,
    pub userid: String,
    pub name: String,
    /// E.164.
    pub phone: String,
    pub email: Option<String>,
    pub title: Option<String>,
    pub departments: Vec<String>,
    /// `owner`, `admin`, `department_admin` or `member`.
    pub role: String,
    /// For a `department_admin`: the subtrees they administer.
    pub admin_departments: Vec<String>,
    /// `invited`, `active`, `disabled` or `departed`.
    pub status: String,
    /// RFC 3339.
    pub created_at: String,
    pub activated_at: Option<String>,
    pub updated_at: String,
}

impl From<Member> for MemberView {
    fn from(m: Member) -> Self {
        MemberView {
            id: m.id.to_string(),
            userid: m.userid.to_string(),
            name: m.name.to_string(),
            phone: m.phone.to_string(),
            email: m.email.map(|e| e.to_string()),
            title: m.title.map(|t| t.to_string()),
            departments: m.departments.iter().map(ToString::to_string).collect(),
            role: m.role.as_str().into(),
            admin_departments: m.admin_departments.iter().map(ToString::to_string).collect(),
            status: m.status.as_str().into(),
            created_at: m.created_at.to_rfc3339(),
            activated_at: m.activated_at.map(|t| t.to_rfc3339()),
            updated_at: m.updated_at.to_rfc3339(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct LookupView {
    /// The number as understood, E.164.
    pub phone: String,
    /// The member who holds this number here now, if any.
    pub member: Option<MemberView>,
    /// Earlier members with this number who departed.
    pub departed: Vec<MemberView>,
    /// What to do so this person can sign in: `add_member`, `resend_invitation`, `enable`,
    /// `wait_for_unlock`, or null.
    pub suggested_fix: Option<String>,
    /// The diagnosis as a sentence for the help desk.
    pub explanation: String,
    /// The current member's invitations, newest first, with SMS delivery state.
    pub invitations: Vec<InvitationView>,
    /// Recent login events of this number here, newest first.
    pub recent_events: Vec<LoginEventView>,
    /// Set while the number must wait after too many wrong codes in a row.
    pub locked_until: Option<String>,
    pub devices: Vec<DeviceView>,
}

#[derive(Serialize, ToSchema)]
pub struct LoginEventView {
    /// `start`, `code_sent`, `code_failed`, `locked`, `rate_limited`, `not_a_member`,
    /// `member_disabled`, `session_issued`, `refresh_reuse`, …
    pub kind: String,
    pub at: String,
    pub ip: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<LoginEvent> for LoginEventView {
    fn from(e: LoginEvent) -> Self {
        LoginEventView { kind: e.kind, at: e.at.to_rfc3339(), ip: e.ip, details: e.details }
    }
}

impl From<PhoneLookup> for LookupView {
    fn from(l: PhoneLookup) -> Self {
        LookupView {
            phone: l.phone.to_string(),
            member: l.member.map(Into::into),
            departed: l.departed.into_iter().map(Into::into).collect(),
            suggested_fix: l.suggested_fix.map(str::to_string),
            explanation: l.explanation,
            invitations: l.invitations.into_iter().map(Into::into).collect(),
            recent_events: l.recent_events.into_iter().map(Into::into).collect(),
            locked_until: l.locked_until.map(|t| t.to_rfc3339()),
            devices: l.devices.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    /// The first characters of the key, to tell keys apart.
    pub prefix: String,
    pub created_at: String,
    /// The key itself: present only in the answer to its creation, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(k: ApiKey) -> Self {
        ApiKeyView {
            id: k.id.to_string(),
            name: k.name,
            prefix: k.prefix,
            created_at: k.created_at.to_rfc3339(),
            key: None,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditView {
    pub id: String,
    pub at: String,
    /// `api_key:<id>`, `member:<id>` or `cli`.
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub ip: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        AuditView {
            id: e.id.to_string(),
            at: e.at.to_rfc3339(),
            actor: e.actor,
            action: e.action,
            target: e.target,
            ip: e.ip,
            details: e.details,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeviceView {
    pub id: String,
    pub name: Option<String>,
    pub platform: Option<String>,
    pub app_version: Option<String>,
    pub ip: Option<String>,
    /// `trusted`, `pending` or `revoked`.
    pub state: String,
    pub first_seen_at: String,
    pub last_seen_at: String,
    /// The device of the calling session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<bool>,
}

impl From<Device> for DeviceView {
    fn from(d: Device) -> Self {
        DeviceView {
            id: d.id.to_string(),
            name: d.name,
            platform: d.platform,
            app_version: d.app_version,
            ip: d.ip,
            state: d.state.as_str().into(),
            first_seen_at: d.first_seen_at.to_rfc3339(),
            last_seen_at: d.last_seen_at.to_rfc3339(),
            current: None,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct InvitationView {
    pub id: String,
    /// `pending`, `replaced`, `used` or `cancelled`.
    pub state: String,
    pub created_at: String,
    pub expires_at: String,
    /// SMS delivery: `pending`, `sending`, `sent` or `failed`.
    pub delivery: Option<String>,
    pub delivery_attempts: i64,
    pub delivery_error: Option<String>,
    pub sent_at: Option<String>,
}

impl From<Invitation> for InvitationView {
    fn from(i: Invitation) -> Self {
        let d = i.delivery;
        InvitationView {
            id: i.id.to_string(),
            state: i.state.as_str().into(),
            created_at: i.created_at.to_rfc3339(),
            expires_at: i.expires_at.to_rfc3339(),
            delivery: d.as_ref().map(|d| d.state.clone()),
            delivery_attempts: d.as_ref().map_or(0, |d| d.attempts),
            delivery_error: d.as_ref().and_then(|d| d.last_error.clone()),
            sent_at: d.as_ref().and_then(|d| d.sent_at.map(|t| t.to_rfc3339())),
        }
    }
}

/// An app (OpenID Connect client). `client_id` is its id.
#[derive(Serialize, ToSchema)]
pub struct AppView {
    pub id: String,
    pub client_id: String,
    pub name: String,
    /// `confidential` or `public`.
    pub client_type: &'static str,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    /// `RS256` or `ES256`: how its ID tokens are signed.
    pub id_token_signed_response_alg: &'static str,
    pub created_at: String,
    pub updated_at: String,
    /// The client secret: present only in the answer that made it, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl From<workgate_domain::oidc::App> for AppView {
    fn from(a: workgate_domain::oidc::App) -> Self {
        AppView {
            id: a.id.to_string(),
            client_id: a.id.to_string(),
            name: a.name,
            client_type: a.client_type.as_str(),
            redirect_uris: a.redirect_uris,
            post_logout_redirect_uris: a.post_logout_redirect_uris,
            scopes: a.scopes,
            id_token_signed_response_alg: a.id_token_alg.as_str(),
            created_at: a.created_at.to_rfc3339(),
            updated_at: a.updated_at.to_rfc3339(),
            client_secret: None,
        }
    }
}

impl From<workgate_domain::oidc::apps::AppWithSecret> for AppView {
    fn from(created: workgate_domain::oidc::apps::AppWithSecret) -> Self {
        let mut view = AppView::from(created.app);
        view.client_secret = created.secret.map(|s| s.expose().to_string());
        view
    }
}

/// One of a member's sessions: a signed-in device, or an app's OpenID Connect grant.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    /// `device` or `app`.
    pub kind: &'static str,
    /// The device's id (`device`) or the app's client id (`app`).
    pub holder_id: String,
    pub holder_name: Option<String>,
    pub created_at: String,
    pub last_used_at: String,
    /// Absent while the session is live.
    pub ended_at: Option<String>,
    pub ended_reason: Option<String>,
}

impl From<workgate_domain::sessions::SessionSummary> for SessionView {
    fn from(s: workgate_domain::sessions::SessionSummary) -> Self {
        SessionView {
            id: s.id,
            kind: s.kind,
            holder_id: s.holder_id,
            holder_name: s.holder_name,
            created_at: s.created_at.to_rfc3339(),
            last_used_at: s.last_used_at.to_rfc3339(),
            ended_at: s.ended_at.map(|t| t.to_rfc3339()),
            ended_reason: s.ended_reason.map(|r| r.as_str().to_string()),
        }
    }
}
