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
use crate::ids::{DeviceId, LoginId, SessionId, SmsId};
use crate::invitations::{Invitation, NewInvitation};
use crate::login::{LoginChallenge, LoginEvent};
use crate::model::{ApiKey, AuditEntry, Department, Enterprise, Member};
use crate::outbox::OutboxMessage;
use crate::phone::PhoneNumber;
use crate::secret::SecretHash;
use crate::sessions::{AccessRecord, Device, NewSession, Rotation, RotationOutcome};
use crate::sessions::{EndReason, RevokedBy};
use crate::values::MemberStatus;
use async_trait::async_trait;

/// Which members to list, in id order, after `after`.
#[derive(Debug, Clone, Default)]
pub struct MemberFilter {
    /// Members in this department or any department below it.
    pub department: Option<DepartmentId>,
    /// When not empty: only members in one of these subtrees (a department admin's scope).
    pub within: Vec<DepartmentId>,
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
    /// `member` replaces the stored record, which must still be `previous` (else `Conflict`).
    UpdateMember {
        previous: Box<Member>,
        member: Member,
    },
    /// An invitation (with its SMS) of a member created in the same batch.
    Invite(Box<NewInvitation>),
    /// A notice by SMS (e.g. to both numbers of a phone change), queued with the change.
    Notify(Box<crate::outbox::OutboxMessage>),
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
pub trait Store:
    LoginStore + crate::oidc::OidcStore + crate::retention::RetentionStore + Send + Sync + 'static
{
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

    /// Writes a new member, with its invitation and the invitation's SMS when given.
    async fn insert_member(
        &self,
        member: &Member,
        audit: &AuditEntry,
        invitation: Option<&NewInvitation>,
    ) -> Result<()>;
    /// Writes every field of `member`; `Conflict` if no standing owner would be left, or if the
    /// stored record is no longer `previous` (the record the change was computed from): a change
    /// made meanwhile by someone else is never silently undone (a disabled member re-enabled, a
    /// departed one revived by a stale edit). A member who becomes `disabled` or `departed` loses
    /// every session and device trust in the same transaction; `departed` also cancels pending
    /// invitations.
    async fn update_member(&self, previous: &Member, member: &Member, audit: &AuditEntry) -> Result<()>;
    async fn get_member(&self, enterprise: &EnterpriseId, id: &MemberId) -> Result<Option<Member>>;
    /// A member with its enterprise, in one read (what a session or an ID token is issued about).
    async fn member_and_enterprise(
        &self,
        enterprise: &EnterpriseId,
        id: &MemberId,
    ) -> Result<Option<(Member, Enterprise)>>;
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

/// The storage of SMS delivery, invitations, Enterprise Login, sessions and devices: one trait per
/// seam, each implemented in its own file of the store.
pub trait LoginStore:
    LimitStore + OutboxStore + InvitationStore + ChallengeStore + SessionStore + PolicyStore + PasswordStore
{
}

impl<T> LoginStore for T where
    T: LimitStore + OutboxStore + InvitationStore + ChallengeStore + SessionStore + PolicyStore + PasswordStore
{
}

/// Rate-limit counters and the failure counts that lock a number, a network or a device.
#[async_trait]
pub trait LimitStore: Send + Sync + 'static {
    /// Counts one hit for `bucket` at `now_ms` unless the last `window_ms` already hold `max` hits;
    /// when full, answers how many milliseconds until there is room. Check and count are atomic.
    async fn hit_limit(&self, bucket: &str, now_ms: i64, window_ms: i64, max: i64) -> Result<Option<i64>>;
    /// Counts one hit against each limit, in order, as [`Self::hit_limit`] does (in the first of
    /// its counters with room, for a sliced limit: [`crate::limits::Limit::parts`]), until one is
    /// full: answers its index and the milliseconds until it has room. Hits counted before it stay
    /// counted. A store may write them all at once (one commit instead of one per limit).
    async fn hit_limits(&self, limits: &[crate::limits::Limit], now_ms: i64) -> Result<Option<(usize, i64)>>;
    /// Counts up to `n` hits against `limit` at once, as many as its window has room for, and
    /// answers how many were counted (bulk import's invitations against the enterprise budget).
    async fn take_from_limit(&self, limit: &crate::limits::Limit, n: i64, now_ms: i64) -> Result<i64>;
    /// Counts a wrong code against each rule's subject (of `phone`); from a rule's `limit`
    /// failures in a row, its subject is locked for a doubling time from its `base_lock_ms`.
    async fn record_failures(
        &self,
        phone: &PhoneNumber,
        rules: &[crate::login::FailureRule],
        now: Timestamp,
    ) -> Result<()>;
    /// Millisecond time until which the latest lock of these subjects holds (0 when none does),
    /// and whether any failure of them is counted at all (one read: every code step asks both).
    async fn failures_of(&self, subjects: &[String]) -> Result<crate::login::Failures>;
    /// Millisecond time until which some lock of the number holds, from any network (0: none).
    async fn phone_locked_until(&self, phone: &PhoneNumber) -> Result<i64>;
    /// Clears these subjects' counts of `phone`, or all of its counts (`None`).
    async fn clear_failures(&self, phone: &PhoneNumber, subjects: Option<&[String]>) -> Result<()>;
    /// Empties the counters of these limits (`Limit::bucket`), as if nothing had been counted.
    async fn reset_limits(&self, buckets: &[String]) -> Result<()>;
}

/// The SMS outbox: messages leased to the sender and marked as it fares.
#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// Leases up to `limit` messages that are due (pending and due, or whose lease ran out),
    /// counting an attempt for each; answers each with its attempt count.
    async fn lease_due_sms(&self, now: Timestamp, lease_ms: i64, limit: u32) -> Result<Vec<(OutboxMessage, i64)>>;
    async fn mark_sms_sent(&self, ids: &[SmsId], provider: &str, now: Timestamp) -> Result<()>;
    async fn mark_sms_retry(&self, id: &SmsId, error: &str, next_attempt_at: Timestamp) -> Result<()>;
    async fn mark_sms_failed(&self, id: &SmsId, error: &str, now: Timestamp) -> Result<()>;
}

/// A member's invitations (each written with its SMS).
#[async_trait]
pub trait InvitationStore: Send + Sync + 'static {
    /// Marks the member's pending invitations replaced and writes the new one with its SMS.
    async fn replace_invitation(&self, new: &NewInvitation, audit: &AuditEntry) -> Result<()>;
    async fn find_invitation(&self, token_hash: &SecretHash) -> Result<Option<Invitation>>;
    /// Newest first, with delivery state.
    async fn list_invitations(&self, enterprise: &EnterpriseId, member: &MemberId) -> Result<Vec<Invitation>>;
}

/// Enterprise Login: the challenges, their steps and the events they leave.
#[async_trait]
pub trait ChallengeStore: LimitStore + Send + Sync + 'static {
    /// Every membership of a number that has not departed, in every enterprise.
    async fn memberships_by_phone(&self, phone: &PhoneNumber) -> Result<Vec<(Enterprise, Member)>>;
    /// Counts `limits` as [`LimitStore::hit_limits`] does and, if none is full, writes the
    /// challenge as [`Self::start_login`] does. A store may do both in one write. The first
    /// `apart` limits are hit by many starts at once (those of a shared address): a store whose
    /// counters are locked until a commit may count them in a write of their own first, so that
    /// their locks are held only briefly.
    async fn start_login_within(
        &self,
        limits: &[crate::limits::Limit],
        _apart: usize,
        now_ms: i64,
        challenge: &LoginChallenge,
        sms: Option<&OutboxMessage>,
        events: &[LoginEvent],
    ) -> Result<Option<(usize, i64)>> {
        if let Some(full) = self.hit_limits(limits, now_ms).await? {
            return Ok(Some(full));
        }
        self.start_login(challenge, sms, events).await?;
        Ok(None)
    }
    async fn start_login(
        &self,
        challenge: &LoginChallenge,
        sms: Option<&OutboxMessage>,
        events: &[LoginEvent],
    ) -> Result<()>;
    async fn get_login(&self, id: &LoginId) -> Result<Option<LoginChallenge>>;
    /// Counts a wrong code if the challenge is still at `code` with fewer than `max` failures,
    /// locking it at `max`; answers the new count, or `None` when nothing was counted.
    async fn record_wrong_code(&self, id: &LoginId, max: i64, events: &[LoginEvent]) -> Result<Option<i64>>;
    /// Moves a challenge from `code` to `enterprise` if its newest code is still `code_hash`.
    async fn pass_code(
        &self,
        id: &LoginId,
        code_hash: &SecretHash,
        expires_at: Timestamp,
        events: &[LoginEvent],
    ) -> Result<bool>;
    /// Replaces the code of a challenge still at `code` (failure count kept), queueing its SMS.
    async fn replace_code(
        &self,
        id: &LoginId,
        code_hash: &SecretHash,
        sent_at: Timestamp,
        expires_at: Timestamp,
        sms: Option<&OutboxMessage>,
        events: &[LoginEvent],
    ) -> Result<bool>;
    /// In one transaction, if the challenge is still at `from` with `code_hash`: marks it done,
    /// activates an invited member (using up their invitations), registers or re-verifies the
    /// device, and writes the session. Answers the member as it now is, or `None` when another
    /// request finished first or the member may no longer sign in.
    async fn finish_login(
        &self,
        id: &LoginId,
        from: crate::login::LoginStep,
        code_hash: &SecretHash,
        session: &NewSession,
        events: &[LoginEvent],
    ) -> Result<Option<Member>>;
    async fn record_login_events(&self, events: &[LoginEvent]) -> Result<()>;
    /// The number's events that enterprise `viewer` may see (of logins into it, or in which it
    /// was a candidate), newest first. The caller still applies [`LoginEvent::seen_by`].
    async fn login_events_for_phone(
        &self,
        phone: &PhoneNumber,
        viewer: &EnterpriseId,
        limit: u32,
    ) -> Result<Vec<LoginEvent>>;
    /// Makes the move if the challenge is still where the mover saw it; answers whether it did.
    async fn advance_login(&self, step: &crate::login::StepMove<'_>) -> Result<bool>;
}

/// Sessions (access and refresh tokens) and the devices they run on.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// The session of an access token, with its member and enterprise (read together).
    async fn session_by_access(&self, access_hash: &SecretHash) -> Result<Option<AccessRecord>>;
    /// Rotates the tokens of the session whose current refresh token is `rotation.presented`,
    /// if it is not revoked, not idle past `refreshed_after`, and its member is active. A token
    /// that was already rotated away revokes its session.
    async fn rotate_refresh(&self, rotation: &Rotation) -> Result<RotationOutcome>;
    async fn revoke_session(&self, id: &SessionId, reason: EndReason, now: Timestamp) -> Result<()>;
    async fn get_device(&self, id: &DeviceId) -> Result<Option<Device>>;
    async fn list_devices(&self, enterprise: &EnterpriseId, member: &MemberId) -> Result<Vec<Device>>;
    /// Withdraws a device's trust and ends its sessions; `false` if the member has no such device.
    async fn revoke_device(
        &self,
        enterprise: &EnterpriseId,
        member: &MemberId,
        device: &DeviceId,
        by: RevokedBy,
        now: Timestamp,
    ) -> Result<bool>;
    /// The session whose current refresh token hashes to `refresh_hash`, with its device.
    async fn refresh_context(&self, refresh_hash: &SecretHash) -> Result<Option<crate::sessions::RefreshContext>>;
    /// Registers (or re-registers) a device as waiting for approval.
    async fn hold_device(&self, device: &crate::sessions::Device) -> Result<()>;
    /// Devices of a member that are trusted or pending, other than `except`.
    async fn count_devices(&self, enterprise: &EnterpriseId, member: &MemberId, except: &DeviceId) -> Result<i64>;
    /// Trusts a pending device; `false` if the member has no such pending device.
    async fn approve_device(
        &self,
        enterprise: &EnterpriseId,
        member: &MemberId,
        device: &DeviceId,
        audit: &AuditEntry,
    ) -> Result<bool>;
    /// A member's newest device sessions and app grants (up to `limit` of each), newest first.
    async fn list_member_sessions(
        &self,
        enterprise: &EnterpriseId,
        member: &MemberId,
        limit: u32,
    ) -> Result<Vec<crate::sessions::SessionSummary>>;
}

/// An enterprise's policy, and the server-wide values the nodes share.
#[async_trait]
pub trait PolicyStore: Send + Sync + 'static {
    /// A server-wide value (the key check of `keys`): `candidate` is stored if there is none yet, and the
    /// stored value (whoever stored it first) is returned.
    async fn server_secret(&self, name: &str, candidate: &str, now: Timestamp) -> Result<String>;
    /// The policy as a login reads it: possibly from the node's cache (see the store's caching rules).
    async fn get_policy(&self, enterprise: &EnterpriseId) -> Result<Option<crate::policy::StoredPolicy>>;
    /// The policy as stored this moment, read from the database itself: the base of a change.
    async fn policy_for_change(&self, enterprise: &EnterpriseId) -> Result<Option<crate::policy::StoredPolicy>>;
    /// Stores `policy` (and its audit entry) only if the stored policy is still the one last
    /// updated at `replaces` (`Timestamp(0)`: none stored yet); false, and nothing written, if not.
    async fn put_policy(
        &self,
        enterprise: &EnterpriseId,
        policy: &crate::policy::StoredPolicy,
        replaces: Timestamp,
        audit: &AuditEntry,
    ) -> Result<bool>;
}

/// Members' passwords, their failure counts and reset requests.
#[async_trait]
pub trait PasswordStore: Send + Sync + 'static {
    async fn password_state(
        &self,
        enterprise: &EnterpriseId,
        member: &MemberId,
    ) -> Result<crate::passwords::PasswordState>;
    /// Stores a new password hash, clearing any reset request and failure count.
    async fn set_password(
        &self,
        enterprise: &EnterpriseId,
        member: &MemberId,
        hash: &str,
        now: Timestamp,
    ) -> Result<()>;
    /// Counts a password attempt as a failure before it is judged, unless the member is locked
    /// (then `None`); the attempt that reaches `limit` locks for a doubling time from
    /// `base_lock_ms`. A right password then clears the count.
    async fn reserve_password_attempt(
        &self,
        enterprise: &EnterpriseId,
        member: &MemberId,
        limit: i64,
        base_lock_ms: i64,
        now: Timestamp,
    ) -> Result<Option<i64>>;
    async fn clear_password_failures(&self, enterprise: &EnterpriseId, member: &MemberId) -> Result<()>;
    /// Asks the member for a new password at the next login.
    async fn require_password_reset(
        &self,
        enterprise: &EnterpriseId,
        member: &MemberId,
        audit: &AuditEntry,
    ) -> Result<()>;
}
