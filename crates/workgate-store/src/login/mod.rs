//! The `LoginStore` half: SMS delivery, invitations, Enterprise Login, sessions and devices, for
//! both databases. Every decision is one conditional statement (`UPDATE … WHERE <still as
//! expected>`), which PostgreSQL re-checks against the newest row after waiting for a concurrent
//! writer of it, so concurrent requests cannot both pass a check that only one may pass. Where a
//! check reads one row and writes another, the row read is locked first (see `sql::Dialect`).
//!
//! Lock order, to keep PostgreSQL free of deadlocks: enterprise, member, sessions, devices (a
//! login challenge is only ever locked first, by the one request that moves it on).
//!
//! The SQL lives in one file per seam — `outbox`, `invitations`, `challenges`, `sessions` (and
//! devices), `passwords`, `limits` (rate counters and failure locks), `policy` — each written once
//! for both databases; this file implements the port by handing each method to its seam.

mod challenges;
mod invitations;
mod limits;
mod outbox;
mod passwords;
mod policy;
mod sessions;

use crate::SqlStore;
use crate::sql::sql;
use async_trait::async_trait;
use workgate_domain::Result;
use workgate_domain::clock::Timestamp;
use workgate_domain::ids::{DeviceId, EnterpriseId, LoginId, MemberId, SessionId, SmsId};
use workgate_domain::invitations::{Invitation, NewInvitation};
use workgate_domain::limits::Limit;
use workgate_domain::login::{FailureRule, LoginChallenge, LoginEvent, LoginStep, StepMove};
use workgate_domain::model::AuditEntry;
use workgate_domain::model::{Enterprise, Member};
use workgate_domain::outbox::OutboxMessage;
use workgate_domain::passwords::PasswordState;
use workgate_domain::phone::PhoneNumber;
use workgate_domain::policy::StoredPolicy;
use workgate_domain::secret::SecretHash;
use workgate_domain::sessions::{AccessRecord, Device, NewSession, RefreshContext, Rotation, RotationOutcome};
use workgate_domain::sessions::{EndReason, RevokedBy};
use workgate_domain::store::LoginStore;

pub(crate) use invitations::insert_invitation;
pub(crate) use outbox::insert_outbox;
pub(crate) use sessions::revoke_member_access;

#[async_trait]
impl LoginStore for SqlStore {
    async fn server_secret(&self, name: &str, candidate: &str, now: Timestamp) -> Result<String> {
        self.write(async |c| {
            c.execute(
                sql("INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO NOTHING")
                .bind(name)
                .bind(candidate)
                .bind(now.millis()),
            )
            .await?;
            c.value(sql("SELECT value FROM server_secrets WHERE name = $1").bind(name)).await
        })
        .await
    }

    async fn hit_limit(&self, bucket: &str, now_ms: i64, window_ms: i64, max: i64) -> Result<Option<i64>> {
        limits::hit_limit(self, bucket, now_ms, window_ms, max).await
    }

    async fn hit_limits(&self, limits: &[Limit], now_ms: i64) -> Result<Option<(usize, i64)>> {
        limits::hit_limits(self, limits, now_ms).await
    }

    async fn take_from_limit(&self, limit: &Limit, n: i64, now_ms: i64) -> Result<i64> {
        limits::take_from_limit(self, limit, n, now_ms).await
    }

    async fn lease_due_sms(&self, now: Timestamp, lease_ms: i64, limit: u32) -> Result<Vec<(OutboxMessage, i64)>> {
        outbox::lease_due_sms(self, now, lease_ms, limit).await
    }

    async fn mark_sms_sent(&self, ids: &[SmsId], provider: &str, now: Timestamp) -> Result<()> {
        outbox::mark_sms_sent(self, ids, provider, now).await
    }

    async fn mark_sms_retry(&self, id: &SmsId, error: &str, next_attempt_at: Timestamp) -> Result<()> {
        outbox::mark_sms_retry(self, id, error, next_attempt_at).await
    }

    async fn mark_sms_failed(&self, id: &SmsId, error: &str, _now: Timestamp) -> Result<()> {
        outbox::mark_sms_failed(self, id, error, _now).await
    }

    async fn replace_invitation(&self, new: &NewInvitation, audit: &AuditEntry) -> Result<()> {
        invitations::replace_invitation(self, new, audit).await
    }

    async fn find_invitation(&self, token_hash: &SecretHash) -> Result<Option<Invitation>> {
        invitations::find_invitation(self, token_hash).await
    }

    async fn list_invitations(&self, enterprise: &EnterpriseId, member: &MemberId) -> Result<Vec<Invitation>> {
        invitations::list_invitations(self, enterprise, member).await
    }

    async fn memberships_by_phone(&self, phone: &PhoneNumber) -> Result<Vec<(Enterprise, Member)>> {
        challenges::memberships_by_phone(self, phone).await
    }

    async fn start_login_within(
        &self,
        limits: &[Limit],
        now_ms: i64,
        ch: &LoginChallenge,
        sms: Option<&OutboxMessage>,
        events: &[LoginEvent],
    ) -> Result<Option<(usize, i64)>> {
        challenges::start_login_within(self, limits, now_ms, ch, sms, events).await
    }

    async fn start_login(&self, ch: &LoginChallenge, sms: Option<&OutboxMessage>, events: &[LoginEvent]) -> Result<()> {
        challenges::start_login(self, ch, sms, events).await
    }

    async fn get_login(&self, id: &LoginId) -> Result<Option<LoginChallenge>> {
        challenges::get_login(self, id).await
    }

    async fn record_wrong_code(&self, id: &LoginId, max: i64, events: &[LoginEvent]) -> Result<Option<i64>> {
        challenges::record_wrong_code(self, id, max, events).await
    }

    async fn pass_code(
        &self,
        id: &LoginId,
        code_hash: &SecretHash,
        expires_at: Timestamp,
        events: &[LoginEvent],
    ) -> Result<bool> {
        challenges::pass_code(self, id, code_hash, expires_at, events).await
    }

    async fn replace_code(
        &self,
        id: &LoginId,
        code_hash: &SecretHash,
        sent_at: Timestamp,
        expires_at: Timestamp,
        sms: Option<&OutboxMessage>,
        events: &[LoginEvent],
    ) -> Result<bool> {
        challenges::replace_code(self, id, code_hash, sent_at, expires_at, sms, events).await
    }

    async fn finish_login(
        &self,
        id: &LoginId,
        from: LoginStep,
        code_hash: &SecretHash,
        s: &NewSession,
        events: &[LoginEvent],
    ) -> Result<Option<Member>> {
        challenges::finish_login(self, id, from, code_hash, s, events).await
    }

    async fn record_login_events(&self, events: &[LoginEvent]) -> Result<()> {
        challenges::record_login_events(self, events).await
    }

    async fn login_events_for_phone(
        &self,
        phone: &PhoneNumber,
        viewer: &EnterpriseId,
        limit: u32,
    ) -> Result<Vec<LoginEvent>> {
        challenges::login_events_for_phone(self, phone, viewer, limit).await
    }

    async fn record_failures(&self, phone: &PhoneNumber, rules: &[FailureRule], now: Timestamp) -> Result<()> {
        limits::record_failures(self, phone, rules, now).await
    }

    async fn failures_locked_until(&self, subjects: &[String]) -> Result<i64> {
        limits::failures_locked_until(self, subjects).await
    }

    async fn phone_locked_until(&self, phone: &PhoneNumber) -> Result<i64> {
        limits::phone_locked_until(self, phone).await
    }

    async fn clear_failures(&self, phone: &PhoneNumber, subjects: Option<&[String]>) -> Result<()> {
        limits::clear_failures(self, phone, subjects).await
    }

    async fn reset_limits(&self, buckets: &[String]) -> Result<()> {
        limits::reset_limits(self, buckets).await
    }

    async fn session_by_access(&self, access_hash: &SecretHash) -> Result<Option<AccessRecord>> {
        sessions::session_by_access(self, access_hash).await
    }

    async fn rotate_refresh(&self, r: &Rotation) -> Result<RotationOutcome> {
        sessions::rotate_refresh(self, r).await
    }

    async fn revoke_session(&self, id: &SessionId, reason: EndReason, now: Timestamp) -> Result<()> {
        sessions::revoke_session(self, id, reason, now).await
    }

    async fn get_device(&self, id: &DeviceId) -> Result<Option<Device>> {
        sessions::get_device(self, id).await
    }

    async fn list_devices(&self, enterprise: &EnterpriseId, member: &MemberId) -> Result<Vec<Device>> {
        sessions::list_devices(self, enterprise, member).await
    }

    async fn revoke_device(
        &self,
        enterprise: &EnterpriseId,
        member: &MemberId,
        device: &DeviceId,
        by: RevokedBy,
        now: Timestamp,
    ) -> Result<bool> {
        sessions::revoke_device(self, enterprise, member, device, by, now).await
    }

    async fn get_policy(&self, enterprise: &EnterpriseId) -> Result<Option<StoredPolicy>> {
        policy::get_policy(self, enterprise).await
    }

    async fn put_policy(&self, enterprise: &EnterpriseId, policy: &StoredPolicy, audit: &AuditEntry) -> Result<()> {
        policy::put_policy(self, enterprise, policy, audit).await
    }

    async fn refresh_context(&self, refresh_hash: &SecretHash) -> Result<Option<RefreshContext>> {
        sessions::refresh_context(self, refresh_hash).await
    }

    async fn password_state(&self, enterprise: &EnterpriseId, member: &MemberId) -> Result<PasswordState> {
        passwords::password_state(self, enterprise, member).await
    }

    async fn set_password(
        &self,
        enterprise: &EnterpriseId,
        member: &MemberId,
        hash: &str,
        now: Timestamp,
    ) -> Result<()> {
        passwords::set_password(self, enterprise, member, hash, now).await
    }

    async fn reserve_password_attempt(
        &self,
        enterprise: &EnterpriseId,
        member: &MemberId,
        limit: i64,
        base_lock_ms: i64,
        now: Timestamp,
    ) -> Result<Option<i64>> {
        passwords::reserve_password_attempt(self, enterprise, member, limit, base_lock_ms, now).await
    }

    async fn clear_password_failures(&self, enterprise: &EnterpriseId, member: &MemberId) -> Result<()> {
        passwords::clear_password_failures(self, enterprise, member).await
    }

    async fn require_password_reset(
        &self,
        enterprise: &EnterpriseId,
        member: &MemberId,
        audit: &AuditEntry,
    ) -> Result<()> {
        passwords::require_password_reset(self, enterprise, member, audit).await
    }

    async fn advance_login(&self, step: &StepMove<'_>) -> Result<bool> {
        challenges::advance_login(self, step).await
    }

    async fn hold_device(&self, d: &Device) -> Result<()> {
        sessions::hold_device(self, d).await
    }

    async fn count_devices(&self, enterprise: &EnterpriseId, member: &MemberId, except: &DeviceId) -> Result<i64> {
        sessions::count_devices(self, enterprise, member, except).await
    }

    async fn approve_device(
        &self,
        enterprise: &EnterpriseId,
        member: &MemberId,
        device: &DeviceId,
        audit: &AuditEntry,
    ) -> Result<bool> {
        sessions::approve_device(self, enterprise, member, device, audit).await
    }

    async fn list_member_sessions(
        &self,
        enterprise: &EnterpriseId,
        member: &MemberId,
        limit: u32,
    ) -> Result<Vec<workgate_domain::sessions::SessionSummary>> {
        sessions::list_member_sessions(self, enterprise, member, limit).await
    }
}
