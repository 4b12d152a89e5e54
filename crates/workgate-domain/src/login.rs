//! Enterprise Login (SPEC section 2 step 4, section 4 "Login", section 6): the step machine.
//!
//! `start` → an SMS code → `code` → (`enterprise` when the number is in several) → `done` with a
//! session. Every step that decides is one conditional update in the store, so concurrent
//! guesses cannot exceed the attempt limit and concurrent right answers yield exactly one session.

use crate::Services;
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::{DeviceId, EnterpriseId, EventId, InvitationId, LoginId};
use crate::limits::{Limit, network_of};
use crate::model::{Enterprise, Member};
use crate::outbox::{OutboxMessage, SmsPurpose};
use crate::phone::{PhoneNumber, Region};
use crate::secret::{SecretHash, keyed_hash, random_code};
use crate::sessions::{IssuedSession, NewSession};
use crate::values::MemberStatus;
use serde::Deserialize;
use serde_json::json;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginStep {
    /// Waiting for the SMS code.
    Code,
    /// The code was right; waiting for the choice of enterprise.
    Enterprise,
    /// Waiting for the member's password.
    Password,
    /// Waiting for a new password (activation, or a reset an admin asked for).
    SetPassword,
    /// Waiting for an admin to approve the device.
    PendingApproval,
    Done,
    /// Too many wrong codes.
    Locked,
}

impl LoginStep {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginStep::Code => "code",
            LoginStep::Enterprise => "enterprise",
            LoginStep::Password => "password",
            LoginStep::SetPassword => "set_password",
            LoginStep::PendingApproval => "pending_approval",
            LoginStep::Done => "done",
            LoginStep::Locked => "locked",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "code" => LoginStep::Code,
            "enterprise" => LoginStep::Enterprise,
            "password" => LoginStep::Password,
            "set_password" => LoginStep::SetPassword,
            "pending_approval" => LoginStep::PendingApproval,
            "done" => LoginStep::Done,
            "locked" => LoginStep::Locked,
            _ => return Err(Error::Internal(format!("unknown login step '{s}'"))),
        })
    }
}

/// One Enterprise Login in progress.
#[derive(Debug, Clone)]
pub struct LoginChallenge {
    pub id: LoginId,
    pub phone: PhoneNumber,
    /// Keyed hash of the newest code; only that code is valid.
    pub code_hash: SecretHash,
    pub code_sent_at: Timestamp,
    pub expires_at: Timestamp,
    pub failed_attempts: i64,
    pub step: LoginStep,
    /// Fixed by an invitation, or by the choice of enterprise.
    pub enterprise_id: Option<EnterpriseId>,
    /// Fixed once the enterprise is (for the password and approval steps).
    pub member_id: Option<crate::ids::MemberId>,
    pub invitation_id: Option<InvitationId>,
    /// The device the client already has, if it sent one.
    pub device_id: Option<DeviceId>,
    pub device_name: Option<String>,
    pub ip: Option<String>,
    pub created_at: Timestamp,
}

/// Something that happened during a login, for the support view and the audit trail.
#[derive(Debug, Clone)]
pub struct LoginEvent {
    pub id: EventId,
    pub phone: PhoneNumber,
    pub enterprise_id: Option<EnterpriseId>,
    pub member_id: Option<crate::ids::MemberId>,
    /// `start`, `code_sent`, `code_ok`, `code_failed`, `locked`, `rate_limited`, `not_a_member`,
    /// `member_disabled`, `session_issued`, `refresh_reuse`, `logout`.
    pub kind: String,
    pub ip: Option<String>,
    pub at: Timestamp,
    pub details: serde_json::Value,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StartLoginInput {
    pub phone: String,
    /// The `device_id` this client was given at an earlier login, to keep it.
    pub device_id: Option<String>,
    /// An invitation token: it picks the enterprise.
    pub invitation: Option<String>,
    /// A name for the device, e.g. "Li Lei's iPhone".
    pub device_name: Option<String>,
    /// The region a number without a country code is read in (the server's default otherwise).
    pub region: Option<String>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CodeInput {
    pub code: String,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnterpriseChoice {
    pub enterprise_id: String,
}

/// The answer to `login/start`.
pub struct Started {
    pub login_id: LoginId,
    pub expires_in: i64,
    pub resend_after: i64,
    pub code_length: u32,
}

/// The next step after a code or a choice.
pub enum Next {
    Enterprise(Vec<Enterprise>),
    Password,
    SetPassword,
    PendingApproval(DeviceId),
    Done(Box<IssuedSession>),
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PasswordInput {
    pub password: String,
}

/// What a request tells about its client.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl ClientInfo {
    fn ip_string(&self) -> Option<String> {
        self.ip.map(|ip| ip.to_string())
    }
}

impl Services {
    fn code_hash(&self, login_id: &LoginId, code: &str) -> SecretHash {
        keyed_hash(&self.code_key, format!("{login_id}:{code}").as_bytes())
    }

    pub(crate) fn event(
        &self,
        phone: &PhoneNumber,
        kind: &str,
        member: Option<&Member>,
        client: &ClientInfo,
        details: serde_json::Value,
    ) -> LoginEvent {
        LoginEvent {
            id: EventId::generate(),
            phone: phone.clone(),
            enterprise_id: member.map(|m| m.enterprise_id.clone()),
            member_id: member.map(|m| m.id.clone()),
            kind: kind.to_string(),
            ip: client.ip_string(),
            at: self.clock.now(),
            details,
        }
    }

    /// Records a refusal as a login event, then returns it.
    async fn refuse(&self, phone: &PhoneNumber, client: &ClientInfo, error: Error) -> Error {
        let kind = match &error {
            Error::RateLimited { .. } => "rate_limited",
            Error::NotAMember => "not_a_member",
            Error::MemberDisabled => "member_disabled",
            Error::TooManyAttempts => "locked",
            _ => "refused",
        };
        let details = match &error {
            Error::RateLimited { what, retry_after_secs } => json!({"limit": what, "retry_after": retry_after_secs}),
            _ => json!({}),
        };
        if let Err(e) = self.store.record_login_events(&[self.event(phone, kind, None, client, details)]).await {
            tracing::error!(error = %e, "recording a login event failed");
        }
        error
    }

    /// The per-number and budget limits of sending one code.
    fn sending_limits(&self, phone: &PhoneNumber, enterprises: &[EnterpriseId]) -> Vec<Limit> {
        let s = &self.settings;
        let mut limits = vec![
            Limit::new("resend_cooldown", format!("code:cooldown:{phone}"), 1, s.resend_cooldown_secs),
            Limit::new("per_number_hour", format!("code:hour:{phone}"), s.codes_per_number_hour, 3600),
            Limit::new("per_number_day", format!("code:day:{phone}"), s.codes_per_number_day, 86_400),
            Limit::new("sms_budget_server", "sms:server".into(), s.sms_budget_server_hour, 3600),
        ];
        for e in enterprises {
            limits.push(Limit::new(
                "sms_budget_enterprise",
                format!("sms:enterprise:{e}"),
                s.sms_budget_enterprise_hour,
                3600,
            ));
        }
        limits
    }

    /// `POST /login/start`.
    pub async fn start_login(&self, input: StartLoginInput, client: ClientInfo) -> Result<Started> {
        let now = self.clock.now();
        let s = self.settings.clone();
        let invitation = match input.invitation.as_deref() {
            Some(token) => Some(self.usable_invitation(token).await?),
            None => None,
        };
        let region = match (&input.region, &invitation) {
            (Some(r), _) => Region::parse(r)?,
            (None, Some((inv, _))) => {
                self.store.get_enterprise(&inv.enterprise_id).await?.map_or(s.default_region, |e| e.region)
            }
            (None, None) => s.default_region,
        };

        let phone = PhoneNumber::parse(&input.phone, region)?;
        if let Some(ip) = client.ip {
            let limits = [
                Limit::new("per_ip_hour", format!("start:ip:{ip}"), s.starts_per_ip_hour, 3600),
                Limit::new(
                    "per_network_hour",
                    format!("start:net:{}", network_of(ip)),
                    s.starts_per_network_hour,
                    3600,
                ),
            ];
            if let Err(e) = self.hit_limits(&limits).await {
                return Err(self.refuse(&phone, &client, e).await);
            }
        }
        let memberships = self.store.memberships_by_phone(&phone).await?;
        let mut signable: Vec<&(Enterprise, Member)> = memberships
            .iter()
            .filter(|(_, m)| matches!(m.status, MemberStatus::Invited | MemberStatus::Active))
            .collect();
        // An enterprise's `allowed_regions` keeps numbers of other regions out.
        let region = phone.region();
        let mut region_refused = false;
        let mut allowed = Vec::with_capacity(signable.len());
        for membership in signable {
            if self.policy_of(&membership.0.id).await?.policy.allows_region(region.as_deref()) {
                allowed.push(membership);
            } else {
                region_refused = true;
            }
        }
        signable = allowed;
        if signable.is_empty() && region_refused && !s.hide_membership {
            let refusal =
                Error::Forbidden("your organisation does not allow sign-in with numbers of this region".into());
            return Err(self.refuse(&phone, &client, refusal).await);
        }
        // An invitation picks its enterprise when it was sent to this very number.
        let invited_enterprise =
            invitation.as_ref().filter(|(_, m)| m.phone == phone).map(|(inv, _)| inv.enterprise_id.clone());
        let device_id = input.device_id.as_deref().and_then(DeviceId::parse);
        let device_name = input.device_name.map(|n| n.chars().take(64).collect::<String>());
        if signable.is_empty() {
            let refusal = if memberships.iter().any(|(_, m)| m.status == MemberStatus::Disabled) {
                Error::MemberDisabled
            } else {
                Error::NotAMember
            };
            if !s.hide_membership {
                return Err(self.refuse(&phone, &client, refusal).await);
            }
            // Same answer, same limits, same writes as a real start; no SMS goes out.
            let limits = self.sending_limits(&phone, &[]);
            let login_id = LoginId::generate();
            let code = random_code(s.code_length);
            let challenge =
                self.new_challenge(&login_id, &phone, &code, None, None, device_id, device_name, &client, now);
            let event = self.event(&phone, "start", None, &client, json!({"hidden": true}));
            // The limits and the challenge in one write (hits counted before a full limit stay).
            let now_ms = self.clock.now().millis();
            if let Some(full) = self.store.start_login_within(&limits[..3], now_ms, &challenge, None, &[event]).await? {
                return Err(crate::limits::limit_reached(&limits[..3], full));
            }
            return Ok(self.started(login_id));
        }
        if self.store.phone_locked_until(&phone).await? > now.millis() {
            let wait = (self.store.phone_locked_until(&phone).await? - now.millis() + 999) / 1000;
            return Err(self
                .refuse(&phone, &client, Error::RateLimited { retry_after_secs: wait, what: "failure_lock" })
                .await);
        }
        let enterprises: Vec<EnterpriseId> = match &invited_enterprise {
            Some(e) => vec![e.clone()],
            None => signable.iter().map(|(e, _)| e.id.clone()).collect(),
        };
        let limits = self.sending_limits(&phone, &enterprises);
        let login_id = LoginId::generate();
        let code = random_code(s.code_length);
        let invitation_id = invitation.as_ref().filter(|_| invited_enterprise.is_some()).map(|(i, _)| i.id.clone());
        let challenge = self.new_challenge(
            &login_id,
            &phone,
            &code,
            invited_enterprise.clone(),
            invitation_id,
            device_id,
            device_name,
            &client,
            now,
        );
        let sms = self.code_message(&phone, &code, enterprises.first().cloned(), now);
        let events = [
            self.event(
                &phone,
                "start",
                None,
                &client,
                json!({"login_id": login_id, "invitation": invited_enterprise.is_some()}),
            ),
            self.event(&phone, "code_sent", None, &client, json!({"login_id": login_id, "sms_id": sms.id})),
        ];
        // The sending limits and the challenge in one write: the challenge, its SMS and events
        // are written only if no limit is full (hits counted before a full one stay counted).
        let now_ms = self.clock.now().millis();
        if let Some(full) = self.store.start_login_within(&limits, now_ms, &challenge, Some(&sms), &events).await? {
            let e = crate::limits::limit_reached(&limits, full);
            return Err(self.refuse(&phone, &client, e).await);
        }
        self.outbox_written();
        Ok(self.started(login_id))
    }

    fn started(&self, login_id: LoginId) -> Started {
        Started {
            login_id,
            expires_in: self.settings.code_ttl_secs,
            resend_after: self.settings.resend_cooldown_secs,
            code_length: self.settings.code_length,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn new_challenge(
        &self,
        login_id: &LoginId,
        phone: &PhoneNumber,
        code: &str,
        enterprise_id: Option<EnterpriseId>,
        invitation_id: Option<InvitationId>,
        device_id: Option<DeviceId>,
        device_name: Option<String>,
        client: &ClientInfo,
        now: Timestamp,
    ) -> LoginChallenge {
        LoginChallenge {
            id: login_id.clone(),
            phone: phone.clone(),
            code_hash: self.code_hash(login_id, code),
            code_sent_at: now,
            expires_at: Timestamp(now.millis() + self.settings.code_ttl_secs * 1000),
            failed_attempts: 0,
            step: LoginStep::Code,
            enterprise_id,
            member_id: None,
            invitation_id,
            device_id,
            device_name,
            ip: client.ip_string(),
            created_at: now,
        }
    }

    fn code_message(
        &self,
        phone: &PhoneNumber,
        code: &str,
        enterprise: Option<EnterpriseId>,
        now: Timestamp,
    ) -> OutboxMessage {
        let minutes = (self.settings.code_ttl_secs / 60).max(1);
        let body = format!(
            "{code} is your Workgate verification code. It expires in {minutes} minutes. Never share it with anyone."
        );
        self.outbox_message(enterprise, phone.clone(), body, SmsPurpose::LoginCode, now)
    }

    async fn live_challenge(&self, login_id: &str) -> Result<LoginChallenge> {
        let id = LoginId::parse(login_id).ok_or(Error::CodeExpired)?;
        let challenge = self.store.get_login(&id).await?.ok_or(Error::CodeExpired)?;
        if challenge.step == LoginStep::Locked {
            return Err(Error::TooManyAttempts);
        }
        if challenge.step == LoginStep::Done || self.clock.now() >= challenge.expires_at {
            return Err(Error::CodeExpired);
        }
        Ok(challenge)
    }

    /// `POST /login/{id}/code`.
    pub async fn submit_code(&self, login_id: &str, input: CodeInput, client: ClientInfo) -> Result<Next> {
        let challenge = self.live_challenge(login_id).await?;
        if challenge.step != LoginStep::Code {
            return Err(Error::CodeExpired);
        }
        let max = self.settings.max_code_attempts;
        if challenge.failed_attempts >= max {
            return Err(Error::TooManyAttempts);
        }
        let code = input.code.trim();
        let presented = self.code_hash(&challenge.id, code);
        let well_formed = code.len() == self.settings.code_length as usize && code.bytes().all(|b| b.is_ascii_digit());
        if !(well_formed && presented.matches(&challenge.code_hash)) {
            return Err(self.wrong_code(&challenge, &client).await);
        }
        let now = self.clock.now();
        let memberships = self.store.memberships_by_phone(&challenge.phone).await?;
        let signable: Vec<(Enterprise, Member)> = memberships
            .iter()
            .filter(|(_, m)| matches!(m.status, MemberStatus::Invited | MemberStatus::Active))
            .filter(|(e, _)| challenge.enterprise_id.as_ref().is_none_or(|id| id == &e.id))
            .cloned()
            .collect();
        match signable.len() {
            0 => {
                let refusal = if memberships.iter().any(|(_, m)| m.status == MemberStatus::Disabled) {
                    Error::MemberDisabled
                } else {
                    Error::NotAMember
                };
                Err(self.refuse(&challenge.phone, &client, refusal).await)
            }
            1 => {
                let (enterprise, member) = signable.into_iter().next().ok_or(Error::NotAMember)?;
                self.store.clear_phone_failures(&challenge.phone).await?;
                // Written with the session when the login ends here (one write fewer on the way).
                let event =
                    self.event(&challenge.phone, "code_ok", Some(&member), &client, json!({"login_id": challenge.id}));
                self.after_identity(&challenge, LoginStep::Code, enterprise, member, false, &[event], &client).await
            }
            _ => {
                let until = Timestamp(now.millis() + self.settings.code_ttl_secs * 1000);
                let event = self.event(&challenge.phone, "code_ok", None, &client, json!({"login_id": challenge.id}));
                if !self.store.pass_code(&challenge.id, &challenge.code_hash, until, &[event]).await? {
                    return Err(Error::CodeExpired);
                }
                self.store.clear_phone_failures(&challenge.phone).await?;
                Ok(Next::Enterprise(signable.into_iter().map(|(e, _)| e).collect()))
            }
        }
    }

    async fn wrong_code(&self, challenge: &LoginChallenge, client: &ClientInfo) -> Error {
        let max = self.settings.max_code_attempts;
        let event = self.event(&challenge.phone, "code_failed", None, client, json!({"login_id": challenge.id}));
        let counted = match self.store.record_wrong_code(&challenge.id, max, &[event]).await {
            Ok(c) => c,
            Err(e) => return e,
        };
        let Some(failed) = counted else { return Error::TooManyAttempts };
        let lock = self
            .store
            .record_phone_failure(
                &challenge.phone,
                self.settings.consecutive_failures_limit,
                self.settings.failure_lock_base_secs * 1000,
                self.clock.now(),
            )
            .await;
        if let Err(e) = lock {
            return e;
        }
        if failed >= max {
            let event = self.event(&challenge.phone, "locked", None, client, json!({"login_id": challenge.id}));
            if let Err(e) = self.store.record_login_events(&[event]).await {
                return e;
            }
        }
        Error::CodeInvalid { attempts_left: (max - failed).max(0) }
    }

    /// `POST /login/{id}/enterprise`.
    pub async fn choose_enterprise(&self, login_id: &str, input: EnterpriseChoice, client: ClientInfo) -> Result<Next> {
        let challenge = self.live_challenge(login_id).await?;
        if challenge.step != LoginStep::Enterprise {
            return Err(Error::field("enterprise_id", "this login is not at the enterprise step"));
        }
        let chosen = EnterpriseId::parse(&input.enterprise_id);
        let memberships = self.store.memberships_by_phone(&challenge.phone).await?;
        let (enterprise, member) = memberships
            .into_iter()
            .find(|(e, m)| {
                Some(&e.id) == chosen.as_ref() && matches!(m.status, MemberStatus::Invited | MemberStatus::Active)
            })
            .ok_or_else(|| Error::field("enterprise_id", "not one of the enterprises offered to this number"))?;
        self.after_identity(&challenge, LoginStep::Enterprise, enterprise, member, false, &[], &client).await
    }

    /// What follows once the number is proven and the member known: a password where the policy
    /// asks for one, then the device (its limit, its approval), then the session. `earlier` are
    /// events not yet written: with the session if the login ends here, else before returning.
    #[allow(clippy::too_many_arguments)]
    async fn after_identity(
        &self,
        challenge: &LoginChallenge,
        from: LoginStep,
        enterprise: Enterprise,
        member: Member,
        password_done: bool,
        earlier: &[LoginEvent],
        client: &ClientInfo,
    ) -> Result<Next> {
        let policy = self.policy_of(&enterprise.id).await?.policy;
        let now = self.clock.now();
        let step_deadline = Timestamp(now.millis() + self.settings.code_ttl_secs * 1000);
        if policy.require_password && !password_done {
            self.record_earlier(earlier).await?;
            let state = self.store.password_state(&enterprise.id, &member.id).await?;
            let to =
                if state.hash.is_none() || state.must_reset { LoginStep::SetPassword } else { LoginStep::Password };
            let moved = self
                .store
                .advance_login(
                    &challenge.id,
                    from,
                    to,
                    &challenge.code_hash,
                    &enterprise.id,
                    &member.id,
                    None,
                    step_deadline,
                )
                .await?;
            if !moved {
                return Err(Error::CodeExpired);
            }
            return Ok(if to == LoginStep::SetPassword { Next::SetPassword } else { Next::Password });
        }
        // A device id is kept only by the member it was issued to; anyone else gets a new one.
        let known = match &challenge.device_id {
            Some(id) => self
                .store
                .get_device(id)
                .await?
                .filter(|d| d.member_id == member.id && d.enterprise_id == enterprise.id),
            None => None,
        };
        let device_id = known.as_ref().map_or_else(DeviceId::generate, |d| d.id.clone());
        let trusted = known.as_ref().is_some_and(|d| d.state == "trusted");
        if !trusted {
            let others = self.store.count_devices(&enterprise.id, &member.id, &device_id).await?;
            if others >= i64::from(policy.max_devices) {
                self.record_earlier(earlier).await?;
                return Err(Error::DeviceLimitReached { max: policy.max_devices });
            }
        }
        let approved = known.as_ref().is_some_and(|d| d.state == "trusted");
        if policy.require_device_approval && !approved {
            self.record_earlier(earlier).await?;
            let device = crate::sessions::Device {
                id: device_id.clone(),
                enterprise_id: enterprise.id.clone(),
                member_id: member.id.clone(),
                name: challenge.device_name.clone(),
                platform: client.user_agent.as_deref().map(crate::sessions::platform_of),
                app_version: None,
                ip: client.ip_string(),
                state: "pending".into(),
                first_seen_at: now,
                last_seen_at: now,
                verified_at: now,
            };
            self.store.hold_device(&device).await?;
            // An approval can take a while: the login waits up to a day.
            let until = Timestamp(now.millis() + 86_400_000);
            let moved = self
                .store
                .advance_login(
                    &challenge.id,
                    from,
                    LoginStep::PendingApproval,
                    &challenge.code_hash,
                    &enterprise.id,
                    &member.id,
                    Some(&device_id),
                    until,
                )
                .await?;
            if !moved {
                return Err(Error::CodeExpired);
            }
            let event =
                self.event(&challenge.phone, "device_pending", Some(&member), client, json!({"device_id": device_id}));
            self.store.record_login_events(&[event]).await?;
            return Ok(Next::PendingApproval(device_id));
        }
        let session = self
            .finish(challenge, from, enterprise, member, device_id, known.is_none(), &policy, earlier, client)
            .await?;
        Ok(Next::Done(Box::new(session)))
    }

    /// `POST /login/{id}/password`: checks the password, or sets it where one is to be set.
    pub async fn submit_password(&self, login_id: &str, input: PasswordInput, client: ClientInfo) -> Result<Next> {
        let challenge = self.live_challenge(login_id).await?;
        let (Some(enterprise_id), Some(member_id)) = (&challenge.enterprise_id, &challenge.member_id) else {
            return Err(Error::field("password", "this login is not at a password step"));
        };
        if !matches!(challenge.step, LoginStep::Password | LoginStep::SetPassword) {
            return Err(Error::field("password", "this login is not at a password step"));
        }
        let member = self.store.get_member(enterprise_id, member_id).await?.ok_or(Error::NotAMember)?;
        if !matches!(member.status, MemberStatus::Invited | MemberStatus::Active) {
            return Err(Error::MemberDisabled);
        }
        let enterprise = self.store.get_enterprise(enterprise_id).await?.ok_or(Error::NotAMember)?;
        let password = crate::passwords::normalise(&input.password)?;
        let now = self.clock.now();
        if challenge.step == LoginStep::SetPassword {
            crate::passwords::check_strength(&password, &member)?;
            let hash = crate::passwords::hash(password).await?;
            self.store.set_password(enterprise_id, member_id, &hash, now).await?;
        } else {
            let state = self.store.password_state(enterprise_id, member_id).await?;
            if state.locked_until > now.millis() {
                let wait = (state.locked_until - now.millis() + 999) / 1000;
                return Err(Error::RateLimited { retry_after_secs: wait, what: "password_failures" });
            }
            let Some(phc) = state.hash else { return Err(Error::PasswordInvalid) };
            if !crate::passwords::verify(password, phc).await? {
                self.store
                    .record_password_failure(
                        enterprise_id,
                        member_id,
                        crate::passwords::FAILURES_BEFORE_LOCK,
                        crate::passwords::LOCK_BASE_MS,
                        now,
                    )
                    .await?;
                let event = self.event(
                    &challenge.phone,
                    "password_failed",
                    Some(&member),
                    &client,
                    json!({"login_id": challenge.id}),
                );
                self.store.record_login_events(&[event]).await?;
                return Err(Error::PasswordInvalid);
            }
            self.store.clear_password_failures(enterprise_id, member_id).await?;
        }
        self.after_identity(&challenge, challenge.step, enterprise, member, true, &[], &client).await
    }

    /// `POST /login/{id}/continue`: after an admin approved the device, finishes the login.
    pub async fn continue_login(&self, login_id: &str, client: ClientInfo) -> Result<Next> {
        let challenge = self.live_challenge(login_id).await?;
        let (LoginStep::PendingApproval, Some(enterprise_id), Some(member_id), Some(device_id)) =
            (challenge.step, &challenge.enterprise_id, &challenge.member_id, &challenge.device_id)
        else {
            return Err(Error::field("login_id", "this login is not waiting for a device approval"));
        };
        let device = self.store.get_device(device_id).await?.ok_or(Error::CodeExpired)?;
        match device.state.as_str() {
            "trusted" => {}
            "pending" => return Err(Error::DevicePendingApproval { device_id: device_id.to_string() }),
            _ => return Err(Error::Forbidden("an administrator refused this device".into())),
        }
        let member = self.store.get_member(enterprise_id, member_id).await?.ok_or(Error::NotAMember)?;
        let enterprise = self.store.get_enterprise(enterprise_id).await?.ok_or(Error::NotAMember)?;
        let policy = self.policy_of(enterprise_id).await?.policy;
        let device_id = device_id.clone();
        let session = self
            .finish(&challenge, LoginStep::PendingApproval, enterprise, member, device_id, false, &policy, &[], &client)
            .await?;
        Ok(Next::Done(Box::new(session)))
    }

    /// Ends a login with a session, exactly once: the store moves the challenge from `from` to
    /// `done` only if nobody else did.
    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        challenge: &LoginChallenge,
        from: LoginStep,
        enterprise: Enterprise,
        member: Member,
        device_id: DeviceId,
        new_device: bool,
        policy: &crate::policy::Policy,
        earlier: &[LoginEvent],
        client: &ClientInfo,
    ) -> Result<IssuedSession> {
        let now = self.clock.now();
        let ttl = i64::from(policy.access_token_ttl_seconds);
        let new = NewSession::for_login(challenge, &member, device_id, new_device, ttl, client, now);
        let event = self.event(
            &challenge.phone,
            "session_issued",
            Some(&member),
            client,
            json!({"login_id": challenge.id, "device_id": new.device_id, "new_device": new.new_device}),
        );
        let events: Vec<LoginEvent> = earlier.iter().cloned().chain([event]).collect();
        let finished = self.store.finish_login(&challenge.id, from, &challenge.code_hash, &new, &events).await?;
        let Some(member) = finished else {
            self.record_earlier(earlier).await?;
            return Err(Error::CodeExpired);
        };
        Ok(IssuedSession {
            access_token: new.access_token,
            refresh_token: new.refresh_token,
            expires_in: ttl,
            device_id: new.device_id,
            member,
            enterprise,
        })
    }

    async fn record_earlier(&self, earlier: &[LoginEvent]) -> Result<()> {
        if earlier.is_empty() { Ok(()) } else { self.store.record_login_events(earlier).await }
    }

    /// `POST /login/{id}/resend`: a new code replaces the old one; failure counts stay.
    pub async fn resend_code(&self, login_id: &str, client: ClientInfo) -> Result<i64> {
        let challenge = self.live_challenge(login_id).await?;
        if challenge.step != LoginStep::Code {
            return Err(Error::CodeExpired);
        }
        if challenge.failed_attempts >= self.settings.max_code_attempts {
            return Err(Error::TooManyAttempts);
        }
        let memberships = self.store.memberships_by_phone(&challenge.phone).await?;
        let enterprises: Vec<EnterpriseId> = match &challenge.enterprise_id {
            Some(e) => vec![e.clone()],
            None => memberships
                .iter()
                .filter(|(_, m)| matches!(m.status, MemberStatus::Invited | MemberStatus::Active))
                .map(|(e, _)| e.id.clone())
                .collect(),
        };
        let known = !enterprises.is_empty();
        let limits = self.sending_limits(&challenge.phone, &enterprises);
        let limits = if known { &limits[..] } else { &limits[..3] };
        if let Err(e) = self.hit_limits(limits).await {
            return Err(self.refuse(&challenge.phone, &client, e).await);
        }
        let now = self.clock.now();
        let code = random_code(self.settings.code_length);
        let hash = self.code_hash(&challenge.id, &code);
        let expires_at = Timestamp(now.millis() + self.settings.code_ttl_secs * 1000);
        let sms = known.then(|| self.code_message(&challenge.phone, &code, enterprises.first().cloned(), now));
        let event =
            self.event(&challenge.phone, "code_sent", None, &client, json!({"login_id": challenge.id, "resend": true}));
        if !self.store.replace_code(&challenge.id, &hash, now, expires_at, sms.as_ref(), &[event]).await? {
            return Err(Error::CodeExpired);
        }
        if sms.is_some() {
            self.outbox_written();
        }
        Ok(self.settings.resend_cooldown_secs)
    }
}
