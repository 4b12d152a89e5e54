//! The storage port. The store crate implements it for SQLite and PostgreSQL.
//!
//! Contract for every implementation:
//! - every query on tenant data is scoped by the enterprise id passed in;
//! - each mutating call is one transaction that also appends the given audit entries, so the log
//!   never misses a change and never records one that did not happen;
//! - uniqueness (phone and userid among non-departed members, sibling department names) and "at
//!   least one standing owner" are enforced inside that transaction, answering `Error::Conflict`.

use crate::clock::Timestamp;
use crate::error::Result;
use crate::idempotency::{Claim, StoredResponse};
use crate::ids::{ApiKeyId, AuditId, DepartmentId, EnterpriseId, MemberId};
use crate::model::{ApiKey, AuditEntry, Department, Enterprise, Member};
use crate::phone::PhoneNumber;
use crate::secret::SecretHash;
use crate::values::MemberStatus;
use async_trait::async_trait;

/// Which members to list, in id order, after `after`.
#[derive(Debug, Clone, Default)]
pub struct MemberFilter {
    /// Members in this department or any department below it.
    pub department: Option<DepartmentId>,
    /// Statuses to include; empty means every status but `departed`.
    pub statuses: Vec<MemberStatus>,
    /// Case-insensitive substring of name or userid, or digits of the phone number.
    pub query: Option<String>,
    pub after: Option<MemberId>,
    pub limit: u32,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub since: Option<Timestamp>,
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Entries older than this one (the log is listed newest first).
    pub before: Option<AuditId>,
    pub limit: u32,
}

/// One write of a bulk import; a batch of them is applied in one transaction.
#[derive(Debug, Clone)]
pub enum DirectoryChange {
    CreateDepartment(Department),
    CreateMember(Member),
    UpdateMember(Member),
}

/// The first credentials of a new enterprise, written with it in one transaction.
pub struct NewEnterprise<'a> {
    pub enterprise: &'a Enterprise,
    pub root: &'a Department,
    pub owner: &'a Member,
    pub api_key: &'a ApiKey,
    pub api_key_hash: &'a SecretHash,
    pub audit: &'a [AuditEntry],
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Answers when the database can serve queries (for `/readyz`).
    async fn ping(&self) -> Result<()>;

    async fn create_enterprise(&self, new: NewEnterprise<'_>) -> Result<()>;
    async fn get_enterprise(&self, id: &EnterpriseId) -> Result<Option<Enterprise>>;
    async fn count_enterprises(&self) -> Result<i64>;

    /// Finds a key by the hash of the presented secret. Not tenant-scoped: the key names its tenant.
    async fn find_api_key(&self, hash: &SecretHash) -> Result<Option<ApiKey>>;
    async fn list_api_keys(&self, enterprise: &EnterpriseId) -> Result<Vec<ApiKey>>;
    async fn insert_api_key(&self, key: &ApiKey, hash: &SecretHash, audit: &AuditEntry) -> Result<()>;
    /// `false` when there is no such key in this enterprise.
    async fn delete_api_key(&self, enterprise: &EnterpriseId, id: &ApiKeyId, audit: &AuditEntry) -> Result<bool>;

    async fn list_departments(&self, enterprise: &EnterpriseId) -> Result<Vec<Department>>;
    async fn get_department(&self, enterprise: &EnterpriseId, id: &DepartmentId) -> Result<Option<Department>>;
    async fn insert_department(&self, department: &Department, audit: &AuditEntry) -> Result<()>;
    /// Writes name, parent and order; a new parent moves the whole subtree.
    async fn update_department(&self, department: &Department, audit: &AuditEntry) -> Result<()>;
    /// `Conflict` when the department has sub-departments or members who have not departed.
    async fn delete_department(&self, enterprise: &EnterpriseId, id: &DepartmentId, audit: &AuditEntry) -> Result<()>;

    async fn insert_member(&self, member: &Member, audit: &AuditEntry) -> Result<()>;
    /// Writes every field of `member`; `Conflict` if no standing owner would be left.
    async fn update_member(&self, member: &Member, audit: &AuditEntry) -> Result<()>;
    async fn get_member(&self, enterprise: &EnterpriseId, id: &MemberId) -> Result<Option<Member>>;
    /// Up to `filter.limit` members in id order.
    async fn list_members(&self, enterprise: &EnterpriseId, filter: &MemberFilter) -> Result<Vec<Member>>;
    /// Every member record with this number here, departed ones included, oldest first.
    async fn find_members_by_phone(&self, enterprise: &EnterpriseId, phone: &PhoneNumber) -> Result<Vec<Member>>;

    /// The whole directory of one enterprise (departments, and members who have not departed), for
    /// planning a bulk import.
    async fn load_directory(&self, enterprise: &EnterpriseId) -> Result<(Vec<Department>, Vec<Member>)>;
    /// Applies a batch of import writes and their audit entries in one transaction.
    async fn apply_directory_changes(
        &self,
        enterprise: &EnterpriseId,
        changes: &[DirectoryChange],
        audit: &[AuditEntry],
    ) -> Result<()>;

    /// Newest first.
    async fn list_audit(&self, enterprise: &EnterpriseId, filter: &AuditFilter) -> Result<Vec<AuditEntry>>;

    /// Claims `(scope, key)` for a request with `fingerprint`, atomically (see `idempotency`).
    /// Keys older than `idempotency::KEY_LIFETIME_MS` are forgotten.
    async fn claim_idempotency_key(&self, scope: &str, key: &str, fingerprint: &str, now: Timestamp) -> Result<Claim>;
    async fn complete_idempotency_key(&self, scope: &str, key: &str, response: &StoredResponse) -> Result<()>;
    /// Forgets a claimed key whose request failed in a way worth retrying.
    async fn release_idempotency_key(&self, scope: &str, key: &str) -> Result<()>;
}
