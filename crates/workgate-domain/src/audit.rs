//! Who is acting, and the audit entries their actions leave.

use crate::Services;
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::{AuditId, EnterpriseId};
use crate::model::{Actor, AuditEntry};
use crate::store::AuditFilter;
use serde::Deserialize;

/// The authenticated caller of an admin operation. The enterprise comes only from the credential,
/// so every operation taking a `Caller` is scoped to the caller's own tenant.
#[derive(Debug, Clone)]
pub struct Caller {
    pub enterprise_id: EnterpriseId,
    pub actor: Actor,
    /// The client's address as the HTTP layer determined it (trusted proxies considered).
    pub ip: Option<String>,
    /// What this caller may do in the enterprise.
    pub rights: Rights,
}

/// Admin rights (SPEC section 1, roles; issue "admin sessions").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rights {
    /// An API key or the operator's CLI: an owner's rank over members (see `crate::rank`).
    Operator,
    /// An owner's session: everything, including making and unmaking owners.
    Owner,
    /// An admin's session: everything but owners, other admins' identity and API keys' creation.
    Admin,
    /// A department admin's session: members and departments inside these subtrees only; no
    /// policy, roles, API keys, apps or audit log.
    Departments(Vec<crate::ids::DepartmentId>),
}

impl Caller {
    /// The operator acting through the command line on `enterprise_id`.
    pub fn operator(enterprise_id: EnterpriseId) -> Self {
        Caller { enterprise_id, actor: Actor::Cli, ip: None, rights: Rights::Operator }
    }

    /// Enterprise-wide settings (policy, roles, API keys, apps, the audit log) need more than a
    /// department admin's rights.
    pub fn require_settings_rights(&self) -> Result<()> {
        match self.rights {
            Rights::Departments(_) => Err(Error::Forbidden(
                "a department admin cannot change enterprise settings, roles, API keys or apps".into(),
            )),
            _ => Ok(()),
        }
    }

    /// The subtrees this caller is limited to, or `None` for the whole enterprise.
    pub fn department_scope(&self) -> Option<&[crate::ids::DepartmentId]> {
        match &self.rights {
            Rights::Departments(roots) => Some(roots),
            _ => None,
        }
    }

    pub fn can_manage_owners(&self) -> bool {
        matches!(self.rights, Rights::Operator | Rights::Owner)
    }

    pub fn entry(&self, at: Timestamp, action: &str, target: Option<&str>, details: serde_json::Value) -> AuditEntry {
        AuditEntry {
            id: AuditId::generate(),
            enterprise_id: self.enterprise_id.clone(),
            at,
            actor: self.actor.label(),
            action: action.to_string(),
            target: target.map(str::to_string),
            ip: self.ip.clone(),
            details,
        }
    }
}

/// `GET /audit` query parameters, as given.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub since: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub cursor: Option<String>,
    /// Entries per page (default 50).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 500))]
    pub limit: Option<u32>,
}

pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 500;

pub fn page_limit(limit: Option<u32>) -> Result<u32> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(Error::field("limit", format!("must be between 1 and {MAX_PAGE}"))),
    }
}

impl Services {
    pub async fn list_audit(&self, caller: &Caller, query: AuditQuery) -> Result<Page<AuditEntry>> {
        caller.require_settings_rights()?;
        let limit = page_limit(query.limit)?;
        let since = match query.since.as_deref() {
            None => None,
            Some(s) => Some(
                Timestamp::parse_rfc3339(s)
                    .ok_or_else(|| Error::field("since", "must be an RFC 3339 time such as 2026-11-25T09:00:00Z"))?,
            ),
        };
        let before = match query.cursor.as_deref() {
            None => None,
            Some(c) => {
                Some(AuditId::parse(c).ok_or_else(|| Error::field("cursor", "is not a cursor from a previous page"))?)
            }
        };
        let filter = AuditFilter { since, actor: query.actor, action: query.action, before, limit: limit + 1 };
        let mut items = self.store.list_audit(&caller.enterprise_id, &filter).await?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|e| e.id.to_string())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }
}
