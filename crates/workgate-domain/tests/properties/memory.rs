//! An in-memory [`Store`] for the property tests: enough of the storage port, kept faithful to
//! its contract (one all-or-nothing write per call, uniqueness and "still `previous`" checks
//! answered as `Conflict`, the login's conditional updates on step and code), to run the domain's
//! own use cases without a database. Whatever the properties do not reach answers an
//! `Internal` error instead of pretending.

use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use workgate_domain::clock::Timestamp;
use workgate_domain::error::{Error, Result};
use workgate_domain::idempotency::{Claim, StoredResponse};
use workgate_domain::ids::{
    ApiKeyId, AppId, DepartmentId, DeviceId, EnterpriseId, GrantId, LoginId, MemberId, SessionId, SmsId,
};
use workgate_domain::invitations::{Invitation, NewInvitation};
use workgate_domain::limits::Limit;
use workgate_domain::login::{FailureRule, LoginChallenge, LoginEvent, LoginStep};
use workgate_domain::model::{ApiKey, AuditEntry, Department, Enterprise, Member};
use workgate_domain::oidc::{
    App, AppToken, AuthorizationCode, NewGrant, NewTokens, OidcStore, Redeemed, Refreshed, SigningKey,
};
use workgate_domain::outbox::OutboxMessage;
use workgate_domain::passwords::PasswordState;
use workgate_domain::phone::PhoneNumber;
use workgate_domain::policy::StoredPolicy;
use workgate_domain::retention::{Prune, PruningLock, RetentionStore};
use workgate_domain::secret::SecretHash;
use workgate_domain::sessions::{
    AccessRecord, Device, NewSession, RefreshContext, Rotation, RotationOutcome, SessionSummary,
};
use workgate_domain::store::{AuditFilter, DirectoryChange, LoginStore, MemberFilter, NewEnterprise, Store};
use workgate_domain::values::MemberStatus;

/// Everything the memory store holds; tests read it to check what was written.
#[derive(Default, Clone)]
pub struct State {
    pub secrets: HashMap<String, String>,
    pub enterprises: Vec<Enterprise>,
    pub departments: Vec<Department>,
    pub members: Vec<Member>,
    pub audit: Vec<AuditEntry>,
    pub outbox: Vec<OutboxMessage>,
    pub invitations: Vec<(Invitation, SecretHash)>,
    pub policies: HashMap<EnterpriseId, StoredPolicy>,
    pub logins: HashMap<LoginId, LoginChallenge>,
    pub events: Vec<LoginEvent>,
    pub sessions: Vec<NewSession>,
    pub devices: Vec<Device>,
}

impl State {
    fn member_mut(&mut self, enterprise: &EnterpriseId, id: &MemberId) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| &m.enterprise_id == enterprise && &m.id == id)
    }

    /// Phone and userid are unique among members who have not departed; sibling department names
    /// are unique; an enterprise keeps at least one standing owner.
    fn check_unique(&self, enterprise: &EnterpriseId) -> Result<()> {
        let mut phones = HashSet::new();
        let mut userids = HashSet::new();
        let mut owner = false;
        for m in self.members.iter().filter(|m| &m.enterprise_id == enterprise && m.status != MemberStatus::Departed) {
            if !phones.insert(m.phone.as_str()) {
                return Err(Error::Conflict(format!("another member already has the number {}", m.phone)));
            }
            if !userids.insert(m.userid.key()) {
                return Err(Error::Conflict(format!("another member already has the userid '{}'", m.userid)));
            }
            owner |= m.is_standing_owner();
        }
        let mut siblings = HashSet::new();
        for d in self.departments.iter().filter(|d| &d.enterprise_id == enterprise) {
            if !siblings.insert((d.parent_id.as_ref(), d.name.as_str())) {
                return Err(Error::Conflict(format!("a sibling department is already named '{}'", d.name)));
            }
        }
        if self.enterprises.iter().any(|e| &e.id == enterprise) && !owner {
            return Err(Error::Conflict("an enterprise keeps at least one owner".into()));
        }
        Ok(())
    }
}

#[derive(Default)]
pub struct MemoryStore {
    pub state: Mutex<State>,
}

impl MemoryStore {
    pub fn snapshot(&self) -> State {
        self.state.lock().unwrap().clone()
    }

    /// The departments of every enterprise, as stored.
    pub fn departments(&self) -> Vec<Department> {
        self.state.lock().unwrap().departments.clone()
    }

    /// Runs `f` on a copy of the state and keeps the copy only if `f` succeeds: one transaction.
    /// The append-only logs (audit, login events, outbox), which `f` only appends to, are moved
    /// into the copy rather than copied, and cut back to their length if `f` fails.
    fn write<T>(&self, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut state = self.state.lock().unwrap();
        let logs =
            (std::mem::take(&mut state.audit), std::mem::take(&mut state.events), std::mem::take(&mut state.outbox));
        let lengths = (logs.0.len(), logs.1.len(), logs.2.len());
        let mut copy = state.clone();
        (copy.audit, copy.events, copy.outbox) = logs;
        match f(&mut copy) {
            Ok(out) => {
                *state = copy;
                Ok(out)
            }
            Err(e) => {
                copy.audit.truncate(lengths.0);
                copy.events.truncate(lengths.1);
                copy.outbox.truncate(lengths.2);
                (state.audit, state.events, state.outbox) = (copy.audit, copy.events, copy.outbox);
                Err(e)
            }
        }
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.state.lock().unwrap())
    }
}

fn unused<T>(what: &str) -> Result<T> {
    Err(Error::Internal(format!("the memory store does not implement {what}")))
}

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn create_enterprise(&self, new: NewEnterprise<'_>) -> Result<()> {
        self.write(|s| {
            s.enterprises.push(new.enterprise.clone());
            s.departments.push(new.root.clone());
            s.members.push(new.owner.clone());
            s.audit.extend(new.audit.iter().cloned());
            s.check_unique(&new.enterprise.id)
        })
    }

    async fn get_enterprise(&self, id: &EnterpriseId) -> Result<Option<Enterprise>> {
        Ok(self.read(|s| s.enterprises.iter().find(|e| &e.id == id).cloned()))
    }

    async fn count_enterprises(&self) -> Result<i64> {
        Ok(self.read(|s| s.enterprises.len() as i64))
    }

    async fn find_api_key(&self, _hash: &SecretHash) -> Result<Option<ApiKey>> {
        unused("find_api_key")
    }

    async fn list_api_keys(&self, _enterprise: &EnterpriseId) -> Result<Vec<ApiKey>> {
        unused("list_api_keys")
    }

    async fn insert_api_key(&self, _key: &ApiKey, _hash: &SecretHash, _audit: &AuditEntry) -> Result<()> {
        unused("insert_api_key")
    }

    async fn delete_api_key(&self, _enterprise: &EnterpriseId, _id: &ApiKeyId, _audit: &AuditEntry) -> Result<bool> {
        unused("delete_api_key")
    }

    async fn list_departments(&self, enterprise: &EnterpriseId) -> Result<Vec<Department>> {
        Ok(self.read(|s| s.departments.iter().filter(|d| &d.enterprise_id == enterprise).cloned().collect()))
    }

    async fn get_department(&self, enterprise: &EnterpriseId, id: &DepartmentId) -> Result<Option<Department>> {
        Ok(self.read(|s| s.departments.iter().find(|d| &d.enterprise_id == enterprise && &d.id == id).cloned()))
    }

    async fn insert_department(&self, department: &Department, audit: &AuditEntry) -> Result<()> {
        self.write(|s| {
            s.departments.push(department.clone());
            s.audit.push(audit.clone());
            s.check_unique(&department.enterprise_id)
        })
    }

    async fn update_department(&self, department: &Department, audit: &AuditEntry) -> Result<()> {
        self.write(|s| {
            let stored = s
                .departments
                .iter_mut()
                .find(|d| d.enterprise_id == department.enterprise_id && d.id == department.id)
                .ok_or(Error::NotFound("department"))?;
            *stored = department.clone();
            s.audit.push(audit.clone());
            s.check_unique(&department.enterprise_id)
        })
    }

    async fn delete_department(
        &self,
        _enterprise: &EnterpriseId,
        _id: &DepartmentId,
        _audit: &AuditEntry,
    ) -> Result<()> {
        unused("delete_department")
    }

    async fn insert_member(
        &self,
        member: &Member,
        audit: &AuditEntry,
        invitation: Option<&NewInvitation>,
    ) -> Result<()> {
        self.write(|s| {
            s.members.push(member.clone());
            s.audit.push(audit.clone());
            if let Some(i) = invitation {
                s.invitations.push((i.invitation.clone(), i.token_hash.clone()));
                s.outbox.push(i.sms.clone());
            }
            s.check_unique(&member.enterprise_id)
        })
    }

    async fn update_member(&self, previous: &Member, member: &Member, audit: &AuditEntry) -> Result<()> {
        self.write(|s| {
            let stored = s.member_mut(&member.enterprise_id, &member.id).ok_or(Error::NotFound("member"))?;
            if stored != previous {
                return Err(Error::ChangedMeanwhile("member"));
            }
            *stored = member.clone();
            s.audit.push(audit.clone());
            s.check_unique(&member.enterprise_id)
        })
    }

    async fn get_member(&self, enterprise: &EnterpriseId, id: &MemberId) -> Result<Option<Member>> {
        Ok(self.read(|s| s.members.iter().find(|m| &m.enterprise_id == enterprise && &m.id == id).cloned()))
    }

    async fn list_members(&self, _enterprise: &EnterpriseId, _filter: &MemberFilter) -> Result<Vec<Member>> {
        unused("list_members")
    }

    async fn find_members_by_phone(&self, enterprise: &EnterpriseId, phone: &PhoneNumber) -> Result<Vec<Member>> {
        Ok(self.read(|s| {
            s.members.iter().filter(|m| &m.enterprise_id == enterprise && &m.phone == phone).cloned().collect()
        }))
    }

    async fn load_directory(&self, enterprise: &EnterpriseId) -> Result<(Vec<Department>, Vec<Member>)> {
        Ok(self.read(|s| {
            (
                s.departments.iter().filter(|d| &d.enterprise_id == enterprise).cloned().collect(),
                s.members
                    .iter()
                    .filter(|m| &m.enterprise_id == enterprise && m.status != MemberStatus::Departed)
                    .cloned()
                    .collect(),
            )
        }))
    }

    async fn apply_directory_changes(
        &self,
        enterprise: &EnterpriseId,
        changes: &[DirectoryChange],
        audit: &[AuditEntry],
    ) -> Result<()> {
        self.write(|s| {
            for change in changes {
                match change {
                    DirectoryChange::CreateDepartment(d) => s.departments.push(d.clone()),
                    DirectoryChange::CreateMember(m) => s.members.push(m.clone()),
                    DirectoryChange::UpdateMember { previous, member } => {
                        let stored = s.member_mut(enterprise, &member.id).ok_or(Error::NotFound("member"))?;
                        if stored != previous.as_ref() {
                            return Err(Error::ChangedMeanwhile("member"));
                        }
                        *stored = member.clone();
                    }
                    DirectoryChange::Invite(i) => {
                        s.invitations.push((i.invitation.clone(), i.token_hash.clone()));
                        s.outbox.push(i.sms.clone());
                    }
                    DirectoryChange::Notify(m) => s.outbox.push(m.as_ref().clone()),
                }
            }
            s.audit.extend(audit.iter().cloned());
            s.check_unique(enterprise)
        })
    }

    async fn list_audit(&self, _enterprise: &EnterpriseId, _filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        unused("list_audit")
    }

    async fn claim_idempotency_key(&self, _scope: &str, _key: &str, _fp: &str, _now: Timestamp) -> Result<Claim> {
        unused("claim_idempotency_key")
    }

    async fn complete_idempotency_key(&self, _scope: &str, _key: &str, _response: &StoredResponse) -> Result<()> {
        unused("complete_idempotency_key")
    }

    async fn release_idempotency_key(&self, _scope: &str, _key: &str) -> Result<()> {
        unused("release_idempotency_key")
    }
}

#[async_trait]
impl LoginStore for MemoryStore {
    async fn server_secret(&self, name: &str, candidate: &str, _now: Timestamp) -> Result<String> {
        self.write(|s| Ok(s.secrets.entry(name.to_string()).or_insert_with(|| candidate.to_string()).clone()))
    }

    /// No limit is ever full here: the properties are about the steps, not the counters.
    async fn hit_limit(&self, _bucket: &str, _now_ms: i64, _window_ms: i64, _max: i64) -> Result<Option<i64>> {
        Ok(None)
    }

    async fn take_from_limit(&self, _limit: &Limit, n: i64, _now_ms: i64) -> Result<i64> {
        Ok(n)
    }

    async fn lease_due_sms(&self, _now: Timestamp, _lease_ms: i64, _limit: u32) -> Result<Vec<(OutboxMessage, i64)>> {
        unused("lease_due_sms")
    }

    async fn mark_sms_sent(&self, _ids: &[SmsId], _provider: &str, _now: Timestamp) -> Result<()> {
        unused("mark_sms_sent")
    }

    async fn mark_sms_retry(&self, _id: &SmsId, _error: &str, _next: Timestamp) -> Result<()> {
        unused("mark_sms_retry")
    }

    async fn mark_sms_failed(&self, _id: &SmsId, _error: &str, _now: Timestamp) -> Result<()> {
        unused("mark_sms_failed")
    }

    async fn replace_invitation(&self, _new: &NewInvitation, _audit: &AuditEntry) -> Result<()> {
        unused("replace_invitation")
    }

    async fn find_invitation(&self, token_hash: &SecretHash) -> Result<Option<Invitation>> {
        Ok(self.read(|s| s.invitations.iter().find(|(_, h)| h == token_hash).map(|(i, _)| i.clone())))
    }

    async fn list_invitations(&self, _enterprise: &EnterpriseId, _member: &MemberId) -> Result<Vec<Invitation>> {
        unused("list_invitations")
    }

    async fn memberships_by_phone(&self, phone: &PhoneNumber) -> Result<Vec<(Enterprise, Member)>> {
        Ok(self.read(|s| {
            s.members
                .iter()
                .filter(|m| &m.phone == phone && m.status != MemberStatus::Departed)
                .filter_map(|m| s.enterprises.iter().find(|e| e.id == m.enterprise_id).map(|e| (e.clone(), m.clone())))
                .collect()
        }))
    }

    async fn start_login(
        &self,
        challenge: &LoginChallenge,
        sms: Option<&OutboxMessage>,
        events: &[LoginEvent],
    ) -> Result<()> {
        self.write(|s| {
            s.logins.insert(challenge.id.clone(), challenge.clone());
            s.outbox.extend(sms.cloned());
            s.events.extend(events.iter().cloned());
            Ok(())
        })
    }

    async fn get_login(&self, id: &LoginId) -> Result<Option<LoginChallenge>> {
        Ok(self.read(|s| s.logins.get(id).cloned()))
    }

    async fn record_wrong_code(&self, id: &LoginId, max: i64, events: &[LoginEvent]) -> Result<Option<i64>> {
        self.write(|s| {
            let Some(c) = s.logins.get_mut(id).filter(|c| c.step == LoginStep::Code && c.failed_attempts < max) else {
                return Ok(None);
            };
            c.failed_attempts += 1;
            if c.failed_attempts >= max {
                c.step = LoginStep::Locked;
            }
            let failed = c.failed_attempts;
            s.events.extend(events.iter().cloned());
            Ok(Some(failed))
        })
    }

    async fn pass_code(
        &self,
        id: &LoginId,
        code_hash: &SecretHash,
        expires_at: Timestamp,
        events: &[LoginEvent],
    ) -> Result<bool> {
        self.write(|s| {
            let Some(c) = s.logins.get_mut(id).filter(|c| c.step == LoginStep::Code && &c.code_hash == code_hash)
            else {
                return Ok(false);
            };
            c.step = LoginStep::Enterprise;
            c.expires_at = expires_at;
            s.events.extend(events.iter().cloned());
            Ok(true)
        })
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
        self.write(|s| {
            let Some(c) = s.logins.get_mut(id).filter(|c| c.step == LoginStep::Code) else { return Ok(false) };
            c.code_hash = code_hash.clone();
            c.code_sent_at = sent_at;
            c.expires_at = expires_at;
            s.outbox.extend(sms.cloned());
            s.events.extend(events.iter().cloned());
            Ok(true)
        })
    }

    async fn finish_login(
        &self,
        id: &LoginId,
        from: LoginStep,
        code_hash: &SecretHash,
        session: &NewSession,
        events: &[LoginEvent],
    ) -> Result<Option<Member>> {
        self.write(|s| {
            if !s.logins.get(id).is_some_and(|c| c.step == from && &c.code_hash == code_hash) {
                return Ok(None);
            }
            let Some(member) = s.member_mut(&session.enterprise_id, &session.member_id) else { return Ok(None) };
            match member.status {
                MemberStatus::Invited => {
                    member.status = MemberStatus::Active;
                    member.activated_at = Some(session.now);
                }
                MemberStatus::Active => {}
                // Nothing was changed yet.
                _ => return Ok(None),
            }
            let member = member.clone();
            if let Some(c) = s.logins.get_mut(id) {
                c.step = LoginStep::Done;
            }
            match s.devices.iter_mut().find(|d| d.id == session.device_id) {
                Some(d) => {
                    d.state = "trusted".into();
                    d.verified_at = session.now;
                }
                None => s.devices.push(Device {
                    id: session.device_id.clone(),
                    enterprise_id: session.enterprise_id.clone(),
                    member_id: session.member_id.clone(),
                    name: session.device_name.clone(),
                    platform: session.platform.clone(),
                    app_version: None,
                    ip: session.ip.clone(),
                    state: "trusted".into(),
                    first_seen_at: session.now,
                    last_seen_at: session.now,
                    verified_at: session.now,
                }),
            }
            s.sessions.push(session.clone());
            s.events.extend(events.iter().cloned());
            Ok(Some(member))
        })
    }

    async fn record_login_events(&self, events: &[LoginEvent]) -> Result<()> {
        self.write(|s| {
            s.events.extend(events.iter().cloned());
            Ok(())
        })
    }

    async fn login_events_for_phone(&self, _p: &PhoneNumber, _v: &EnterpriseId, _l: u32) -> Result<Vec<LoginEvent>> {
        unused("login_events_for_phone")
    }

    /// Failures are not counted here (no lock ever holds): the code step's own attempt limit,
    /// which the challenge carries, is what the properties exercise.
    async fn record_failures(&self, _phone: &PhoneNumber, _rules: &[FailureRule], _now: Timestamp) -> Result<()> {
        Ok(())
    }

    async fn failures_locked_until(&self, _subjects: &[String]) -> Result<i64> {
        Ok(0)
    }

    async fn phone_locked_until(&self, _phone: &PhoneNumber) -> Result<i64> {
        Ok(0)
    }

    async fn clear_failures(&self, _phone: &PhoneNumber, _subjects: Option<&[String]>) -> Result<()> {
        Ok(())
    }

    async fn session_by_access(&self, _access_hash: &SecretHash) -> Result<Option<AccessRecord>> {
        unused("session_by_access")
    }

    async fn rotate_refresh(&self, _rotation: &Rotation) -> Result<RotationOutcome> {
        unused("rotate_refresh")
    }

    async fn revoke_session(&self, _id: &SessionId, _reason: &str, _now: Timestamp) -> Result<()> {
        unused("revoke_session")
    }

    async fn get_device(&self, id: &DeviceId) -> Result<Option<Device>> {
        Ok(self.read(|s| s.devices.iter().find(|d| &d.id == id).cloned()))
    }

    async fn list_devices(&self, enterprise: &EnterpriseId, member: &MemberId) -> Result<Vec<Device>> {
        Ok(self.read(|s| {
            s.devices.iter().filter(|d| &d.enterprise_id == enterprise && &d.member_id == member).cloned().collect()
        }))
    }

    async fn revoke_device(
        &self,
        _enterprise: &EnterpriseId,
        _member: &MemberId,
        _device: &DeviceId,
        _reason: &str,
        _now: Timestamp,
    ) -> Result<bool> {
        unused("revoke_device")
    }

    async fn get_policy(&self, enterprise: &EnterpriseId) -> Result<Option<StoredPolicy>> {
        Ok(self.read(|s| s.policies.get(enterprise).cloned()))
    }

    async fn put_policy(&self, enterprise: &EnterpriseId, policy: &StoredPolicy, audit: &AuditEntry) -> Result<()> {
        self.write(|s| {
            s.policies.insert(enterprise.clone(), policy.clone());
            s.audit.push(audit.clone());
            Ok(())
        })
    }

    async fn refresh_context(&self, _refresh_hash: &SecretHash) -> Result<Option<RefreshContext>> {
        unused("refresh_context")
    }

    async fn password_state(&self, _enterprise: &EnterpriseId, _member: &MemberId) -> Result<PasswordState> {
        unused("password_state")
    }

    async fn set_password(&self, _e: &EnterpriseId, _m: &MemberId, _hash: &str, _now: Timestamp) -> Result<()> {
        unused("set_password")
    }

    async fn reserve_password_attempt(
        &self,
        _enterprise: &EnterpriseId,
        _member: &MemberId,
        _limit: i64,
        _base_lock_ms: i64,
        _now: Timestamp,
    ) -> Result<Option<i64>> {
        unused("reserve_password_attempt")
    }

    async fn clear_password_failures(&self, _enterprise: &EnterpriseId, _member: &MemberId) -> Result<()> {
        unused("clear_password_failures")
    }

    async fn require_password_reset(&self, _e: &EnterpriseId, _m: &MemberId, _audit: &AuditEntry) -> Result<()> {
        unused("require_password_reset")
    }

    async fn advance_login(
        &self,
        id: &LoginId,
        from: LoginStep,
        to: LoginStep,
        code_hash: &SecretHash,
        enterprise: &EnterpriseId,
        member: &MemberId,
        device: Option<&DeviceId>,
        expires_at: Timestamp,
    ) -> Result<bool> {
        self.write(|s| {
            let Some(c) = s.logins.get_mut(id).filter(|c| c.step == from && &c.code_hash == code_hash) else {
                return Ok(false);
            };
            c.step = to;
            c.enterprise_id = Some(enterprise.clone());
            c.member_id = Some(member.clone());
            if let Some(d) = device {
                c.device_id = Some(d.clone());
            }
            c.expires_at = expires_at;
            Ok(true)
        })
    }

    async fn hold_device(&self, device: &Device) -> Result<()> {
        self.write(|s| {
            s.devices.retain(|d| d.id != device.id);
            s.devices.push(device.clone());
            Ok(())
        })
    }

    async fn count_devices(&self, enterprise: &EnterpriseId, member: &MemberId, except: &DeviceId) -> Result<i64> {
        Ok(self.read(|s| {
            s.devices
                .iter()
                .filter(|d| &d.enterprise_id == enterprise && &d.member_id == member && &d.id != except)
                .filter(|d| d.state == "trusted" || d.state == "pending")
                .count() as i64
        }))
    }

    async fn list_member_sessions(&self, _e: &EnterpriseId, _m: &MemberId, _limit: u32) -> Result<Vec<SessionSummary>> {
        unused("list_member_sessions")
    }

    async fn approve_device(
        &self,
        enterprise: &EnterpriseId,
        member: &MemberId,
        device: &DeviceId,
        audit: &AuditEntry,
    ) -> Result<bool> {
        self.write(|s| {
            let Some(d) = s.devices.iter_mut().find(|d| {
                &d.enterprise_id == enterprise && &d.member_id == member && &d.id == device && d.state == "pending"
            }) else {
                return Ok(false);
            };
            d.state = "trusted".into();
            s.audit.push(audit.clone());
            Ok(true)
        })
    }
}

#[async_trait]
impl OidcStore for MemoryStore {
    async fn insert_app(&self, _app: &App, _secret_hash: Option<&SecretHash>, _audit: &AuditEntry) -> Result<()> {
        unused("insert_app")
    }

    async fn update_app(&self, _app: &App, _audit: &AuditEntry) -> Result<bool> {
        unused("update_app")
    }

    async fn set_app_secret(&self, _e: &EnterpriseId, _id: &AppId, _h: &SecretHash, _a: &AuditEntry) -> Result<bool> {
        unused("set_app_secret")
    }

    async fn delete_app(&self, _enterprise: &EnterpriseId, _id: &AppId, _audit: &AuditEntry) -> Result<bool> {
        unused("delete_app")
    }

    async fn get_app(&self, _enterprise: &EnterpriseId, _id: &AppId) -> Result<Option<App>> {
        unused("get_app")
    }

    async fn find_client(&self, _id: &AppId) -> Result<Option<(App, Option<SecretHash>)>> {
        unused("find_client")
    }

    async fn list_apps(&self, _enterprise: &EnterpriseId) -> Result<Vec<App>> {
        unused("list_apps")
    }

    async fn signing_keys(&self, _limit: u32) -> Result<Vec<SigningKey>> {
        unused("signing_keys")
    }

    async fn insert_signing_key(&self, _key: &SigningKey) -> Result<bool> {
        unused("insert_signing_key")
    }

    async fn insert_authorization_code(&self, _code: &AuthorizationCode) -> Result<()> {
        unused("insert_authorization_code")
    }

    async fn get_authorization_code(&self, _code_hash: &SecretHash) -> Result<Option<AuthorizationCode>> {
        unused("get_authorization_code")
    }

    async fn redeem_authorization_code(&self, _code_hash: &SecretHash, _grant: &NewGrant) -> Result<Redeemed> {
        unused("redeem_authorization_code")
    }

    async fn find_app_token(&self, _token_hash: &SecretHash) -> Result<Option<AppToken>> {
        unused("find_app_token")
    }

    async fn rotate_app_refresh(&self, _p: &SecretHash, _app: &AppId, _tokens: &NewTokens) -> Result<Refreshed> {
        unused("rotate_app_refresh")
    }

    async fn revoke_grant(&self, _grant: &GrantId, _reason: &str, _now: Timestamp) -> Result<()> {
        unused("revoke_grant")
    }

    async fn revoke_app_access_token(&self, _token_hash: &SecretHash, _now: Timestamp) -> Result<()> {
        unused("revoke_app_access_token")
    }
}

#[async_trait]
impl RetentionStore for MemoryStore {
    async fn pruning_lock(&self) -> Result<Option<Box<dyn PruningLock>>> {
        unused("pruning_lock")
    }

    async fn prune_batch(&self, _what: &Prune, _limit: u32) -> Result<u64> {
        unused("prune_batch")
    }
}
