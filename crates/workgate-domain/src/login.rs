//! Enterprise Login (SPEC section 2 step 4, section 4 "Login", section 6): the step machine.
//!
//! `start` → an SMS code → `code` → (`enterprise` when the number is in several) → `done` with a
//! session. Every step that decides is one conditional update in the store, so concurrent
//! guesses cannot exceed the attempt limit and concurrent right answers yield exactly one session.

use crate::Services;
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::{DeviceId, EnterpriseId, EventId, InvitationId, LoginId, MemberId};
use crate::limits::{BUDGET_SLICES, Limit, network_of};
use crate::model::{Enterprise, Member};
use crate::outbox::OutboxMessage;
use crate::phone::{PhoneNumber, Region};
use crate::secret::{Secret, SecretHash, has_secret_shape, keyed_hash, random_code, reference_of};
use crate::sessions::{DeviceState, IssuedSession, NewSession};
use crate::sms::SmsContent;
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

/// The prefix of the `login_id` a client holds.
const LOGIN_CAPABILITY_PREFIX: &str = "lgn_";

/// A new login: the `login_id` the client gets (a bearer capability of 256 random bits, shown
/// once) and the reference it is stored under.
fn new_login() -> (String, LoginId) {
    let capability = Secret::generate(LOGIN_CAPABILITY_PREFIX).expose().to_string();
    let reference = login_reference(&capability).unwrap_or_else(LoginId::generate);
    (capability, reference)
}

/// The stored reference of a `login_id`: a hash of it, so that whoever reads the database, the
/// events or an admin view learns nothing that moves the login on. `None` when `login_id` does not
/// have the shape of one we issue.
pub fn login_reference(login_id: &str) -> Option<LoginId> {
    has_secret_shape(login_id, LOGIN_CAPABILITY_PREFIX)
        .then(|| LoginId::from_trusted(format!("{}{}", LoginId::PREFIX, reference_of(login_id))))
}

/// One Enterprise Login in progress.
#[derive(Debug, Clone)]
pub struct LoginChallenge {
    /// The login's reference (a hash of the client's `login_id`, never the `login_id` itself).
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
    /// The enterprises the number could sign in to when the login started: the only ones that
    /// see the login's events before it chose one.
    pub candidates: Vec<EnterpriseId>,
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
    /// For events before the login is bound to an enterprise: the enterprises that may see it.
    pub candidates: Vec<EnterpriseId>,
}

impl LoginEvent {
    /// The event as enterprise `viewer` may see it: events of a login into it in full; events of
    /// a login in which it was one of several candidates without the client's address (the login
    /// may have gone to another enterprise, and where it came from is not this one's business).
    /// `None` when the viewer may not see it at all.
    pub fn seen_by(mut self, viewer: &EnterpriseId) -> Option<LoginEvent> {
        match &self.enterprise_id {
            Some(e) if e == viewer => Some(self),
            Some(_) => None,
            None if self.candidates.iter().any(|c| c == viewer) => {
                if self.candidates.len() > 1 {
                    self.ip = None;
                }
                Some(self)
            }
            None => None,
        }
    }

    /// Makes the event visible to `candidates` while the login has no enterprise yet.
    pub fn among(mut self, candidates: &[EnterpriseId]) -> LoginEvent {
        self.candidates = candidates.to_vec();
        self
    }
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

/// The first limits of [`Services::sending_limits`]: the number's own (the cooldown, per hour,
/// per day); the budgets follow.
const PER_NUMBER_LIMITS: usize = 3;

/// The first limits of [`Services::sending_limits`] that every number meets alike (per number and
/// the server's budget); the enterprises' budgets follow.
const SERVER_WIDE_LIMITS: usize = 4;

/// A login once its number is proven and its member known: what every later step works from.
struct Identified<'a> {
    challenge: &'a LoginChallenge,
    /// The step the challenge is at; it moves on only from there.
    from: LoginStep,
    enterprise: Enterprise,
    member: Member,
    /// Events not yet written: with the session if the login ends here, else before returning.
    earlier: &'a [LoginEvent],
    client: &'a ClientInfo,
}

/// A challenge's move to its next step, made by the store only if the challenge is still at
/// `from` with `code_hash` (nobody else moved it meanwhile), fixing its enterprise and member.
#[derive(Clone, Copy)]
pub struct StepMove<'a> {
    pub id: &'a LoginId,
    pub from: LoginStep,
    pub code_hash: &'a SecretHash,
    pub to: LoginStep,
    pub enterprise: &'a EnterpriseId,
    pub member: &'a MemberId,
    /// The device the login will use, when known at this step.
    pub device: Option<&'a DeviceId>,
    pub expires_at: Timestamp,
}

/// Where a new login comes from: the device it is made on, and where its enterprise may come from.
struct ChallengeOrigin {
    /// Fixed by an invitation.
    enterprise_id: Option<EnterpriseId>,
    invitation_id: Option<InvitationId>,
    /// The enterprises the number may sign in to.
    candidates: Vec<EnterpriseId>,
    /// The device id the client presented (kept only if it is the member's) and the device's name.
    device_id: Option<DeviceId>,
    device_name: Option<String>,
}

/// A counter of consecutive wrong codes: `subject` locks after `limit` failures in a row, for
/// `base_lock_ms` doubled at each further failure (at most a day).
#[derive(Debug, Clone)]
pub struct FailureRule {
    pub subject: String,
    pub limit: i64,
    pub base_lock_ms: i64,
}

/// The failures counted against some subjects (`FailureRule::subject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failures {
    /// Millisecond time until which the latest of their locks holds (0 when none does).
    pub locked_until: i64,
    /// Whether any failure is counted against them, locked or not.
    pub counted: bool,
}

/// The answer to `login/start`.
pub struct Started {
    /// The capability the client moves its login on with; shown once, stored only as a hash.
    pub login_id: String,
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
            candidates: vec![],
        }
    }

    /// Records a refusal as a login event (seen by `candidates`), then returns it.
    async fn refuse(
        &self,
        phone: &PhoneNumber,
        client: &ClientInfo,
        candidates: &[EnterpriseId],
        error: Error,
    ) -> Error {
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
        let event = self.event(phone, kind, None, client, details).among(candidates);
        if let Err(e) = self.store.record_login_events(&[event]).await {
            tracing::error!(error = %e, "recording a login event failed");
        }
        error
    }

    /// The limits of login starts from the client's address and network (none when the address
    /// is unknown).
    fn address_limits(&self, client: &ClientInfo) -> Vec<Limit> {
        let s = &self.settings;
        let Some(ip) = client.ip else { return vec![] };
        vec![
            Limit::new("per_ip_hour", format!("start:ip:{ip}"), s.starts_per_ip_hour, 3600),
            Limit::new("per_network_hour", format!("start:net:{}", network_of(ip)), s.starts_per_network_hour, 3600),
        ]
    }

    /// Refuses a login start for `error`, after counting it against the client's address limits:
    /// where one of them is full, that is the answer instead (as if they had been counted first).
    async fn refuse_start(
        &self,
        phone: &PhoneNumber,
        client: &ClientInfo,
        address_limits: &[Limit],
        candidates: &[EnterpriseId],
        error: Error,
    ) -> Error {
        let counted = if address_limits.is_empty() { Ok(()) } else { self.hit_limits(address_limits).await };
        match counted {
            Ok(()) => self.refuse(phone, client, candidates, error).await,
            Err(full) => self.refuse(phone, client, &[], full).await,
        }
    }

    /// The per-number and budget limits of sending one code.
    ///
    /// A number that signs in nowhere (met only with hidden membership, where it takes the path of
    /// one that does) counts against a server budget of its own: a bot's starts for numbers of
    /// nobody send nothing, and must not spend the budget that members' codes need.
    pub(crate) fn sending_limits(&self, phone: &PhoneNumber, enterprises: &[EnterpriseId]) -> Vec<Limit> {
        let s = &self.settings;
        let server_budget = if enterprises.is_empty() { "sms:withheld" } else { "sms:server" };
        let mut limits = vec![
            Limit::new("resend_cooldown", format!("code:cooldown:{phone}"), 1, s.resend_cooldown_secs),
            Limit::new("per_number_hour", format!("code:hour:{phone}"), s.codes_per_number_hour, 3600),
            Limit::new("per_number_day", format!("code:day:{phone}"), s.codes_per_number_day, 86_400),
            Limit::new("sms_budget_server", server_budget.into(), s.sms_budget_server_hour, 3600).sliced(BUDGET_SLICES),
        ];
        for e in enterprises {
            let budget = format!("sms:enterprise:{e}");
            limits.push(
                Limit::new("sms_budget_enterprise", budget, s.sms_budget_enterprise_hour, 3600).sliced(BUDGET_SLICES),
            );
        }
        limits
    }

    /// The counters of `phone`'s own sending limits (an admin's unlock empties them).
    pub(crate) fn per_number_sending_buckets(&self, phone: &PhoneNumber) -> Vec<String> {
        self.sending_limits(phone, &[]).into_iter().take(PER_NUMBER_LIMITS).map(|l| l.bucket).collect()
    }

    /// The failure counters of wrong codes for `phone` from `client`: one per number and client
    /// network (its guessing delays that network), and the number's own, with a much higher
    /// ceiling, as the backstop against guessing spread over many networks.
    fn failure_rules(&self, phone: &PhoneNumber, client: &ClientInfo) -> [FailureRule; 2] {
        let s = &self.settings;
        let network = client.ip.map_or_else(|| "unknown".to_string(), network_of);
        let base_lock_ms = s.failure_lock_base_secs * 1000;
        [
            FailureRule {
                subject: format!("network:{phone}:{network}"),
                limit: s.consecutive_failures_limit,
                base_lock_ms,
            },
            FailureRule { subject: format!("number:{phone}"), limit: s.number_failure_ceiling, base_lock_ms },
        ]
    }

    /// Refuses with `rate_limited` while a failure lock of `phone` holds for `client`: checked at
    /// every step that takes or sends a code. Otherwise answers what is counted for them (which a
    /// right code then clears).
    async fn check_failure_lock(&self, phone: &PhoneNumber, client: &ClientInfo) -> Result<Failures> {
        let subjects = self.failure_rules(phone, client).map(|r| r.subject);
        let failures = self.store.failures_of(&subjects).await?;
        let (until, now) = (failures.locked_until, self.clock.now().millis());
        if until > now {
            return Err(Error::RateLimited { retry_after_secs: (until - now + 999) / 1000, what: "failure_lock" });
        }
        Ok(failures)
    }

    /// `POST /login/start`.
    ///
    /// With `hide_membership`, a number that cannot sign in takes the same path as one that can,
    /// up to the SMS itself: the same reads (memberships, a policy, the failure locks), the same
    /// limits counted, a challenge and two events written, the same answer.
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
        // The client's own limits come first: a start refused for any other reason counts against
        // them too, and a full one is the answer whatever else holds (a limited address learns
        // nothing about the numbers it tries). Where the start goes on, they are counted with the
        // sending limits and the challenge, in one write.
        let address_limits = self.address_limits(&client);
        let memberships = self.store.memberships_by_phone(&phone).await?;
        let candidates: Vec<&(Enterprise, Member)> = memberships
            .iter()
            .filter(|(_, m)| matches!(m.status, MemberStatus::Invited | MemberStatus::Active))
            .collect();
        // An enterprise's `allowed_regions` keeps numbers of other regions out.
        let region = phone.region();
        let mut region_refused = false;
        let mut signable = Vec::with_capacity(candidates.len());
        for membership in candidates {
            if self.policy_of(&membership.0.id).await?.policy.allows_region(region.as_deref()) {
                signable.push(membership);
            } else {
                region_refused = true;
            }
        }
        if memberships.is_empty() && s.hide_membership {
            // The read a member's number makes for its enterprise's policy.
            self.policy_of(&EnterpriseId::from_trusted(String::new())).await?;
        }
        let signable_ids: Vec<EnterpriseId> = signable.iter().map(|(e, _)| e.id.clone()).collect();
        if signable.is_empty() && !s.hide_membership {
            let all: Vec<EnterpriseId> = memberships.iter().map(|(e, _)| e.id.clone()).collect();
            let refusal = if region_refused {
                Error::Forbidden("your organisation does not allow sign-in with numbers of this region".into())
            } else if memberships.iter().any(|(_, m)| m.status == MemberStatus::Disabled) {
                Error::MemberDisabled
            } else {
                Error::NotAMember
            };
            return Err(self.refuse_start(&phone, &client, &address_limits, &all, refusal).await);
        }
        if let Err(e) = self.check_failure_lock(&phone, &client).await {
            return Err(self.refuse_start(&phone, &client, &address_limits, &signable_ids, e).await);
        }
        // An invitation picks its enterprise when it was sent to this very number.
        let invited_enterprise = invitation
            .as_ref()
            .filter(|(_, m)| m.phone == phone)
            .map(|(inv, _)| inv.enterprise_id.clone())
            .filter(|e| signable_ids.contains(e));
        let enterprises: Vec<EnterpriseId> = match &invited_enterprise {
            Some(e) => vec![e.clone()],
            None => signable_ids,
        };
        let known = !enterprises.is_empty();
        let device_id = input.device_id.as_deref().and_then(DeviceId::parse);
        let device_name = input.device_name.map(|n| n.chars().take(64).collect::<String>());
        let limits: Vec<Limit> =
            address_limits.iter().cloned().chain(self.sending_limits(&phone, &enterprises)).collect();
        let (capability, login_id) = new_login();
        let code = random_code(s.code_length);
        let invitation_id = invitation.as_ref().filter(|_| invited_enterprise.is_some()).map(|(i, _)| i.id.clone());
        let challenge = self.new_challenge(
            &login_id,
            &phone,
            &code,
            ChallengeOrigin {
                enterprise_id: invited_enterprise.clone(),
                invitation_id,
                candidates: enterprises.clone(),
                device_id,
                device_name,
            },
            &client,
            now,
        );
        let sms = known.then(|| self.code_message(&phone, &code, enterprises.first().cloned(), now));
        let start = json!({"login": login_id, "invitation": invited_enterprise.is_some()});
        let second = match &sms {
            Some(sms) => self.event(&phone, "code_sent", None, &client, json!({"login": login_id, "sms_id": sms.id})),
            None => self.event(&phone, "code_withheld", None, &client, json!({"login": login_id})),
        };
        let events =
            [self.event(&phone, "start", None, &client, start).among(&enterprises), second.among(&enterprises)];
        // The sending limits and the challenge in one write: the challenge, its SMS and events
        // are written only if no limit is full (hits counted before a full one stay counted).
        let now_ms = self.clock.now().millis();
        let apart = address_limits.len();
        if let Some(full) =
            self.store.start_login_within(&limits, apart, now_ms, &challenge, sms.as_ref(), &events).await?
        {
            let e = crate::limits::limit_reached(&limits, full);
            // A full address limit is the address's business, not the enterprises' (as above).
            let viewers = if full.0 < apart { &[][..] } else { &enterprises[..] };
            let e = self.refuse(&phone, &client, viewers, e).await;
            // With hidden membership a full budget (the server's or an enterprise's, which numbers
            // of nobody meet apart or never) looks like any start: the code is not sent.
            if s.hide_membership && full.0 >= apart + PER_NUMBER_LIMITS {
                self.store.start_login(&challenge, None, &[]).await?;
                return Ok(self.started(capability));
            }
            return Err(e);
        }
        if sms.is_some() {
            self.outbox_written();
        }
        Ok(self.started(capability))
    }

    fn started(&self, login_id: String) -> Started {
        Started {
            login_id,
            expires_in: self.settings.code_ttl_secs,
            resend_after: self.settings.resend_cooldown_secs,
            code_length: self.settings.code_length,
        }
    }

    fn new_challenge(
        &self,
        login_id: &LoginId,
        phone: &PhoneNumber,
        code: &str,
        origin: ChallengeOrigin,
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
            enterprise_id: origin.enterprise_id,
            member_id: None,
            invitation_id: origin.invitation_id,
            device_id: origin.device_id,
            device_name: origin.device_name,
            ip: client.ip_string(),
            created_at: now,
            candidates: origin.candidates,
        }
    }

    fn code_message(
        &self,
        phone: &PhoneNumber,
        code: &str,
        enterprise: Option<EnterpriseId>,
        now: Timestamp,
    ) -> OutboxMessage {
        let minutes = u32::try_from((self.settings.code_ttl_secs / 60).max(1)).unwrap_or(u32::MAX);
        let content = SmsContent::LoginCode { code: code.to_owned(), minutes };
        self.outbox_message(enterprise, phone.clone(), &content, now)
    }

    async fn live_challenge(&self, login_id: &str) -> Result<LoginChallenge> {
        let id = login_reference(login_id).ok_or(Error::CodeExpired)?;
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
        let failures = self.check_failure_lock(&challenge.phone, &client).await?;
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
                Err(self.refuse(&challenge.phone, &client, &challenge.candidates, refusal).await)
            }
            1 => {
                let (enterprise, member) = signable.into_iter().next().ok_or(Error::NotAMember)?;
                self.clear_failures(&challenge.phone, &client, failures).await?;
                // Written with the session when the login ends here (one write fewer on the way).
                let event =
                    self.event(&challenge.phone, "code_ok", Some(&member), &client, json!({"login": challenge.id}));
                let who = Identified {
                    challenge: &challenge,
                    from: LoginStep::Code,
                    enterprise,
                    member,
                    earlier: &[event],
                    client: &client,
                };
                self.after_identity(who, false).await
            }
            _ => {
                let until = Timestamp(now.millis() + self.settings.code_ttl_secs * 1000);
                let event = self
                    .event(&challenge.phone, "code_ok", None, &client, json!({"login": challenge.id}))
                    .among(&challenge.candidates);
                if !self.store.pass_code(&challenge.id, &challenge.code_hash, until, &[event]).await? {
                    return Err(Error::CodeExpired);
                }
                self.clear_failures(&challenge.phone, &client, failures).await?;
                Ok(Next::Enterprise(signable.into_iter().map(|(e, _)| e).collect()))
            }
        }
    }

    async fn wrong_code(&self, challenge: &LoginChallenge, client: &ClientInfo) -> Error {
        let max = self.settings.max_code_attempts;
        let event = self
            .event(&challenge.phone, "code_failed", None, client, json!({"login": challenge.id}))
            .among(&challenge.candidates);
        let counted = match self.store.record_wrong_code(&challenge.id, max, &[event]).await {
            Ok(c) => c,
            Err(e) => return e,
        };
        let Some(failed) = counted else { return Error::TooManyAttempts };
        let rules = self.failure_rules(&challenge.phone, client);
        if let Err(e) = self.store.record_failures(&challenge.phone, &rules, self.clock.now()).await {
            return e;
        }
        if failed >= max {
            let event = self
                .event(&challenge.phone, "locked", None, client, json!({"login": challenge.id}))
                .among(&challenge.candidates);
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
        let who = Identified {
            challenge: &challenge,
            from: LoginStep::Enterprise,
            enterprise,
            member,
            earlier: &[],
            client: &client,
        };
        self.after_identity(who, false).await
    }

    /// What follows once the number is proven and the member known: a password where the policy
    /// asks for one (unless `password_done`), then the device (its limit, its approval), then the
    /// session.
    async fn after_identity(&self, who: Identified<'_>, password_done: bool) -> Result<Next> {
        let Identified { challenge, from, ref enterprise, ref member, earlier, client } = who;
        let policy = self.policy_of(&enterprise.id).await?.policy;
        let now = self.clock.now();
        // The move to the next step, made only if the challenge is still where this request found it.
        let step = StepMove {
            id: &challenge.id,
            from,
            code_hash: &challenge.code_hash,
            to: from,
            enterprise: &enterprise.id,
            member: &member.id,
            device: None,
            expires_at: Timestamp(now.millis() + self.settings.code_ttl_secs * 1000),
        };
        if policy.require_password && !password_done {
            self.record_earlier(earlier).await?;
            let state = self.store.password_state(&enterprise.id, &member.id).await?;
            let to =
                if state.hash.is_none() || state.must_reset { LoginStep::SetPassword } else { LoginStep::Password };
            self.move_on(StepMove { to, ..step }).await?;
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
        let trusted = known.as_ref().is_some_and(|d| d.state == DeviceState::Trusted);
        if !trusted {
            let others = self.store.count_devices(&enterprise.id, &member.id, &device_id).await?;
            if others >= i64::from(policy.max_devices) {
                self.record_earlier(earlier).await?;
                return Err(Error::DeviceLimitReached { max: policy.max_devices });
            }
        }
        let approved = known.as_ref().is_some_and(|d| d.state == DeviceState::Trusted);
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
                state: DeviceState::Pending,
                first_seen_at: now,
                last_seen_at: now,
                verified_at: now,
            };
            self.store.hold_device(&device).await?;
            // An approval can take a while: the login waits up to a day.
            let until = Timestamp(now.millis() + 86_400_000);
            self.move_on(StepMove {
                to: LoginStep::PendingApproval,
                device: Some(&device_id),
                expires_at: until,
                ..step
            })
            .await?;
            let event =
                self.event(&challenge.phone, "device_pending", Some(member), client, json!({"device_id": device_id}));
            self.store.record_login_events(&[event]).await?;
            return Ok(Next::PendingApproval(device_id));
        }
        let new_device = known.is_none();
        let session = self.finish(who, device_id, new_device, &policy).await?;
        Ok(Next::Done(Box::new(session)))
    }

    /// Makes the move, or answers `CodeExpired` when another request moved the login first.
    async fn move_on(&self, step: StepMove<'_>) -> Result<()> {
        if self.store.advance_login(&step).await? { Ok(()) } else { Err(Error::CodeExpired) }
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
        let (member, enterprise) =
            self.store.member_and_enterprise(enterprise_id, member_id).await?.ok_or(Error::NotAMember)?;
        if !matches!(member.status, MemberStatus::Invited | MemberStatus::Active) {
            return Err(Error::MemberDisabled);
        }
        let password = crate::passwords::normalise(&input.password)?;
        let now = self.clock.now();
        if challenge.step == LoginStep::SetPassword {
            crate::passwords::check_strength(&password, &member)?;
            let hash = crate::passwords::hash(password).await?;
            self.store.set_password(enterprise_id, member_id, &hash, now).await?;
        } else {
            let state = self.store.password_state(enterprise_id, member_id).await?;
            let Some(phc) = state.hash else { return Err(Error::PasswordInvalid) };
            // The attempt is counted before it is judged, so parallel guesses cannot all be judged
            // against the same count.
            let reserved = self
                .store
                .reserve_password_attempt(
                    enterprise_id,
                    member_id,
                    crate::passwords::FAILURES_BEFORE_LOCK,
                    crate::passwords::LOCK_BASE_MS,
                    now,
                )
                .await?;
            if reserved.is_none() {
                let until = self.store.password_state(enterprise_id, member_id).await?.locked_until;
                let wait = ((until - now.millis() + 999) / 1000).max(1);
                return Err(Error::RateLimited { retry_after_secs: wait, what: "password_failures" });
            }
            if !crate::passwords::verify(password, phc).await? {
                let event = self.event(
                    &challenge.phone,
                    "password_failed",
                    Some(&member),
                    &client,
                    json!({"login": challenge.id}),
                );
                self.store.record_login_events(&[event]).await?;
                return Err(Error::PasswordInvalid);
            }
            self.store.clear_password_failures(enterprise_id, member_id).await?;
        }
        let who = Identified {
            challenge: &challenge,
            from: challenge.step,
            enterprise,
            member,
            earlier: &[],
            client: &client,
        };
        self.after_identity(who, true).await
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
        match device.state {
            DeviceState::Trusted => {}
            DeviceState::Pending => return Err(Error::DevicePendingApproval { device_id: device_id.to_string() }),
            DeviceState::Revoked => return Err(Error::Forbidden("an administrator refused this device".into())),
        }
        let (member, enterprise) =
            self.store.member_and_enterprise(enterprise_id, member_id).await?.ok_or(Error::NotAMember)?;
        let policy = self.policy_of(enterprise_id).await?.policy;
        let device_id = device_id.clone();
        let who = Identified {
            challenge: &challenge,
            from: LoginStep::PendingApproval,
            enterprise,
            member,
            earlier: &[],
            client: &client,
        };
        let session = self.finish(who, device_id, false, &policy).await?;
        Ok(Next::Done(Box::new(session)))
    }

    /// Ends a login with a session, exactly once: the store moves the challenge from `from` to
    /// `done` only if nobody else did.
    async fn finish(
        &self,
        who: Identified<'_>,
        device_id: DeviceId,
        new_device: bool,
        policy: &crate::policy::Policy,
    ) -> Result<IssuedSession> {
        let Identified { challenge, from, enterprise, member, earlier, client } = who;
        let now = self.clock.now();
        let ttl = i64::from(policy.access_token_ttl_seconds);
        let new = NewSession::for_login(challenge, &member, device_id, new_device, ttl, client, now);
        let event = self.event(
            &challenge.phone,
            "session_issued",
            Some(&member),
            client,
            json!({"login": challenge.id, "device_id": new.device_id, "new_device": new.new_device}),
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

    /// A right code clears the failures counted for its number from its network, and the
    /// number's own count (an admin's unlock clears them all).
    /// Nothing to do where none were counted when the code was checked: a failure counted since
    /// is concurrent with this success, and leaving it is a valid order (the stricter one).
    async fn clear_failures(&self, phone: &PhoneNumber, client: &ClientInfo, seen: Failures) -> Result<()> {
        if !seen.counted {
            return Ok(());
        }
        let subjects = self.failure_rules(phone, client).map(|r| r.subject);
        self.store.clear_failures(phone, Some(&subjects)).await
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
        self.check_failure_lock(&challenge.phone, &client).await?;
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
        let limits = if known { &limits[..] } else { &limits[..SERVER_WIDE_LIMITS] };
        if let Some(full) = self.store.hit_limits(limits, self.clock.now().millis()).await? {
            let e = crate::limits::limit_reached(limits, full);
            let e = self.refuse(&challenge.phone, &client, &challenge.candidates, e).await;
            // As at the start: with hidden membership a full budget looks like a resend, unsent.
            if self.settings.hide_membership && full.0 >= PER_NUMBER_LIMITS {
                return Ok(self.settings.resend_cooldown_secs);
            }
            return Err(e);
        }
        let now = self.clock.now();
        let code = random_code(self.settings.code_length);
        let hash = self.code_hash(&challenge.id, &code);
        let expires_at = Timestamp(now.millis() + self.settings.code_ttl_secs * 1000);
        let sms = known.then(|| self.code_message(&challenge.phone, &code, enterprises.first().cloned(), now));
        let event = self
            .event(&challenge.phone, "code_sent", None, &client, json!({"login": challenge.id, "resend": true}))
            .among(&challenge.candidates);
        if !self.store.replace_code(&challenge.id, &hash, now, expires_at, sms.as_ref(), &[event]).await? {
            return Err(Error::CodeExpired);
        }
        if sms.is_some() {
            self.outbox_written();
        }
        Ok(self.settings.resend_cooldown_secs)
    }
}
