//! The records of the directory, as the domain sees them.

use crate::clock::Timestamp;
use crate::ids::{ApiKeyId, AuditId, DepartmentId, EnterpriseId, MemberId};
use crate::phone::{PhoneNumber, Region};
use crate::values::{DepartmentName, Email, EnterpriseName, MemberStatus, PersonName, Role, Title, UserId};

#[derive(Debug, Clone)]
pub struct Enterprise {
    pub id: EnterpriseId,
    pub name: EnterpriseName,
    /// Local numbers (without a country code) are read in this region.
    pub region: Region,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Department {
    pub id: DepartmentId,
    pub enterprise_id: EnterpriseId,
    pub name: DepartmentName,
    /// `None` only for the enterprise's root department.
    pub parent_id: Option<DepartmentId>,
    /// Position among siblings, ascending.
    pub order: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub id: MemberId,
    pub enterprise_id: EnterpriseId,
    pub userid: UserId,
    pub name: PersonName,
    pub phone: PhoneNumber,
    pub email: Option<Email>,
    pub title: Option<Title>,
    pub departments: Vec<DepartmentId>,
    pub role: Role,
    /// For `department_admin`: the roots of the subtrees they administer. Empty otherwise.
    pub admin_departments: Vec<DepartmentId>,
    pub status: MemberStatus,
    pub created_at: Timestamp,
    pub activated_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

impl Member {
    /// Counts towards "at least one owner always exists".
    pub fn is_standing_owner(&self) -> bool {
        self.role == Role::Owner && matches!(self.status, MemberStatus::Invited | MemberStatus::Active)
    }
}

/// An API key as listed: never the secret, only a prefix to tell keys apart.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub enterprise_id: EnterpriseId,
    pub name: String,
    pub prefix: String,
    pub created_at: Timestamp,
}

/// Who did something: recorded in the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    ApiKey(ApiKeyId),
    Member(MemberId),
    /// The operator, through the command line.
    Cli,
}

impl Actor {
    /// `api_key:key_…`, `member:mem_…` or `cli`, as stored and filtered on.
    pub fn label(&self) -> String {
        match self {
            Actor::ApiKey(id) => format!("api_key:{id}"),
            Actor::Member(id) => format!("member:{id}"),
            Actor::Cli => "cli".to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub id: AuditId,
    pub enterprise_id: EnterpriseId,
    pub at: Timestamp,
    /// [`Actor::label`] of who acted.
    pub actor: String,
    /// Dotted verb, e.g. `member.create`, `department.move`.
    pub action: String,
    /// Id of the record acted on.
    pub target: Option<String>,
    pub ip: Option<String>,
    /// What changed, as JSON.
    pub details: serde_json::Value,
}
