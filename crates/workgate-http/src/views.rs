//! The JSON shapes of responses (SPEC section 4, "Shapes"). Fields may be added, never renamed.

use serde::Serialize;
use utoipa::ToSchema;
use workgate_domain::audit::Page;
use workgate_domain::directory::PhoneLookup;
use workgate_domain::model::{ApiKey, AuditEntry, Department, Member};

#[derive(Serialize, ToSchema)]
pub struct ListOf<T> {
    pub items: Vec<T>,
    /// Pass back as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T> ListOf<T> {
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
    /// What to do so this person can sign in: `add_member`, `resend_invitation`, `enable`, or null.
    pub suggested_fix: Option<String>,
}

impl From<PhoneLookup> for LookupView {
    fn from(l: PhoneLookup) -> Self {
        LookupView {
            phone: l.phone.to_string(),
            member: l.member.map(Into::into),
            departed: l.departed.into_iter().map(Into::into).collect(),
            suggested_fix: l.suggested_fix.map(str::to_string),
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
