//! Sessions (SPEC sections 1, 4, 6): an opaque access token and a rotating refresh token, both 256
//! random bits stored only as hashes, bound to one member and one device.
//!
//! A refresh rotates both tokens in one conditional update; the old refresh token is remembered,
//! and presenting it again revokes the whole session (its family), as RFC 9700 recommends.

use crate::Services;
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::{DeviceId, EnterpriseId, MemberId, SessionId};
use crate::login::{ClientInfo, LoginChallenge};
use crate::model::{Enterprise, Member};
use crate::secret::{Secret, SecretHash};
use crate::values::MemberStatus;
use serde::Deserialize;
use serde_json::json;
use std::ops::Not;

pub const ACCESS_PREFIX: &str = "wga_";
pub const REFRESH_PREFIX: &str = "wgr_";

/// A session to write at the end of a login, with its device.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: SessionId,
    pub enterprise_id: EnterpriseId,
    pub member_id: MemberId,
    /// The member was invited when the login read it: this login may be the one that activates
    /// them. (One seen active is never invited again: re-enabled, a member who was once active
    /// is active.)
    pub activates: bool,
    pub device_id: DeviceId,
    /// The device is registered by this login (else an existing one is verified again).
    pub new_device: bool,
    pub device_name: Option<String>,
    pub platform: Option<String>,
    pub ip: Option<String>,
    pub access_token: String,
    pub access_hash: SecretHash,
    pub access_expires_at: Timestamp,
    pub refresh_token: String,
    pub refresh_hash: SecretHash,
    pub now: Timestamp,
}

impl NewSession {
    pub fn for_login(
        challenge: &LoginChallenge,
        member: &Member,
        device_id: DeviceId,
        new_device: bool,
        access_ttl_secs: i64,
        client: &ClientInfo,
        now: Timestamp,
    ) -> Self {
        let access = Secret::generate(ACCESS_PREFIX);
        let refresh = Secret::generate(REFRESH_PREFIX);
        NewSession {
            id: SessionId::generate(),
            enterprise_id: member.enterprise_id.clone(),
            member_id: member.id.clone(),
            activates: member.status == MemberStatus::Invited,
            device_id,
            new_device,
            device_name: challenge.device_name.clone(),
            platform: client.user_agent.as_deref().map(platform_of),
            ip: challenge.ip.clone(),
            access_hash: access.hash(),
            access_token: access.expose().to_string(),
            access_expires_at: Timestamp(now.millis() + access_ttl_secs * 1000),
            refresh_hash: refresh.hash(),
            refresh_token: refresh.expose().to_string(),
            now,
        }
    }
}

/// A rough platform name from a User-Agent, for the devices list.
pub(crate) fn platform_of(user_agent: &str) -> String {
    let ua = user_agent.to_ascii_lowercase();
    let name = if ua.contains("android") {
        "Android"
    } else if ua.contains("iphone") || ua.contains("ipad") || ua.contains("ios") {
        "iOS"
    } else if ua.contains("windows") {
        "Windows"
    } else if ua.contains("mac os") || ua.contains("macintosh") {
        "macOS"
    } else if ua.contains("linux") {
        "Linux"
    } else {
        "Other"
    };
    name.to_string()
}

/// What a successful login or refresh hands to the client.
#[derive(Debug, Clone)]
pub struct IssuedSession {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: i64,
    pub device_id: DeviceId,
    pub member: Member,
    pub enterprise: Enterprise,
}

/// A session as the store finds it by its access token.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id: SessionId,
    pub enterprise_id: EnterpriseId,
    pub member_id: MemberId,
    pub device_id: DeviceId,
    pub access_expires_at: Timestamp,
    pub revoked: bool,
    pub member_status: MemberStatus,
    /// The login that started the session.
    pub created_at: Timestamp,
}

/// A session found by its access token, with its member and enterprise as they were when the
/// session was checked (one read).
#[derive(Debug, Clone)]
pub struct AccessRecord {
    pub session: SessionRecord,
    pub member: Member,
    pub enterprise: Enterprise,
}

/// The signed-in member behind a valid access token.
#[derive(Debug, Clone)]
pub struct MemberSession {
    pub session_id: SessionId,
    pub enterprise_id: EnterpriseId,
    pub member_id: MemberId,
    pub device_id: DeviceId,
    /// When the member last proved who they are on this session (its login).
    pub authenticated_at: Timestamp,
    /// The member and enterprise, read with the session when the token was checked.
    pub member: Member,
    pub enterprise: Enterprise,
}

/// New tokens for a refresh, written only if the presented refresh token is current.
#[derive(Clone)]
pub struct Rotation {
    pub presented: SecretHash,
    pub access_hash: SecretHash,
    pub access_expires_at: Timestamp,
    pub refresh_hash: SecretHash,
    pub now: Timestamp,
    /// A session not refreshed since before this is refused (idle too long).
    pub refreshed_after: Timestamp,
    /// The client's app version, recorded on the device.
    pub app_version: Option<String>,
}

pub enum RotationOutcome {
    Rotated {
        session: SessionRecord,
    },
    /// The token was already rotated away: the session has now been revoked.
    Reused {
        session: SessionRecord,
    },
    Refused,
}

#[derive(Debug, Clone)]
pub struct Device {
    pub id: DeviceId,
    pub enterprise_id: EnterpriseId,
    pub member_id: MemberId,
    pub name: Option<String>,
    pub platform: Option<String>,
    pub app_version: Option<String>,
    pub ip: Option<String>,
    pub state: DeviceState,
    pub first_seen_at: Timestamp,
    pub last_seen_at: Timestamp,
    /// The last SMS-verified login on this device.
    pub verified_at: Timestamp,
}

/// Where a device stands with its enterprise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    /// Signs in without an admin (it passed an SMS code, and approval when the policy asks).
    Trusted,
    /// Waits for an admin's approval.
    Pending,
    /// Refused or revoked by an admin or the member: its sessions are over, and it starts again.
    Revoked,
}

impl DeviceState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Trusted => "trusted",
            DeviceState::Pending => "pending",
            DeviceState::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "trusted" => DeviceState::Trusted,
            "pending" => DeviceState::Pending,
            "revoked" => DeviceState::Revoked,
            _ => return Err(Error::Internal(format!("unknown device state '{s}'"))),
        })
    }
}

/// One of a member's sessions, for admins: a device's session or an app's grant.
#[derive(Debug, Clone)]
pub struct SessionSummary {
    pub id: String,
    /// `device` (a signed-in device) or `app` (an app's OpenID Connect grant).
    pub kind: &'static str,
    /// The device's or the app's id.
    pub holder_id: String,
    /// The device's or the app's name.
    pub holder_name: Option<String>,
    pub created_at: Timestamp,
    /// The last refresh (device) or token issued (app).
    pub last_used_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub ended_reason: Option<EndReason>,
}

/// What a refresh is judged on: the session, its device, and why it ended if it did.
#[derive(Debug, Clone)]
pub struct RefreshContext {
    pub session: SessionRecord,
    pub device: Device,
    /// When the session was last refreshed (or created).
    pub refreshed_at: Timestamp,
    pub revoked_reason: Option<EndReason>,
}

/// Why a device must pass an SMS code again (SPEC section 2, step 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reverify {
    Periodic,
    Idle,
    AppUpdated,
    DeviceRevoked,
    PolicyChanged,
}

impl Reverify {
    pub fn as_str(self) -> &'static str {
        match self {
            Reverify::Periodic => "periodic",
            Reverify::Idle => "idle",
            Reverify::AppUpdated => "app_updated",
            Reverify::DeviceRevoked => "device_revoked",
            Reverify::PolicyChanged => "policy_changed",
        }
    }

    /// Why a refresh of a session that ended for `reason` asks for an SMS code again; `None`
    /// when the session ended for good (signed out, replayed, its member disabled).
    fn after(reason: EndReason) -> Option<Self> {
        match reason {
            EndReason::Reverify(why) => Some(why),
            EndReason::DeviceRevoked(_) => Some(Reverify::DeviceRevoked),
            _ => None,
        }
    }
}

/// How many times a day an admin's unlock may start a number's sending limits over.
const UNLOCK_RESETS_PER_NUMBER_DAY: i64 = 3;

/// Who revoked a device's trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokedBy {
    Member,
    Admin,
}

/// Why a device's session or an app's grant ended. Stored as text (`as_str`) and read back
/// exactly (`parse`); admins see it on the member's sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The member signed out.
    Logout,
    /// A refresh token that had been rotated away was presented again.
    RefreshReuse,
    /// The policy asked the device for an SMS code again.
    Reverify(Reverify),
    DeviceRevoked(RevokedBy),
    MemberDisabled,
    MemberDeparted,
    /// A new number is a new authenticator: what the old one signed in ends.
    PhoneChanged,
    /// The app revoked its refresh token.
    RevokedByApp,
    /// An authorization code was presented a second time.
    CodeReplayed,
    /// An app's refresh token that had been rotated away was presented again.
    RefreshReplayed,
}

impl EndReason {
    const ALL: [EndReason; 15] = [
        EndReason::Logout,
        EndReason::RefreshReuse,
        EndReason::Reverify(Reverify::Periodic),
        EndReason::Reverify(Reverify::Idle),
        EndReason::Reverify(Reverify::AppUpdated),
        EndReason::Reverify(Reverify::DeviceRevoked),
        EndReason::Reverify(Reverify::PolicyChanged),
        EndReason::DeviceRevoked(RevokedBy::Member),
        EndReason::DeviceRevoked(RevokedBy::Admin),
        EndReason::MemberDisabled,
        EndReason::MemberDeparted,
        EndReason::PhoneChanged,
        EndReason::RevokedByApp,
        EndReason::CodeReplayed,
        EndReason::RefreshReplayed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Logout => "logout",
            EndReason::RefreshReuse => "refresh_reuse",
            EndReason::Reverify(Reverify::Periodic) => "reverify:periodic",
            EndReason::Reverify(Reverify::Idle) => "reverify:idle",
            EndReason::Reverify(Reverify::AppUpdated) => "reverify:app_updated",
            EndReason::Reverify(Reverify::DeviceRevoked) => "reverify:device_revoked",
            EndReason::Reverify(Reverify::PolicyChanged) => "reverify:policy_changed",
            EndReason::DeviceRevoked(RevokedBy::Member) => "device_revoked:member",
            EndReason::DeviceRevoked(RevokedBy::Admin) => "device_revoked:admin",
            EndReason::MemberDisabled => "disabled",
            EndReason::MemberDeparted => "departed",
            EndReason::PhoneChanged => "phone_changed",
            EndReason::RevokedByApp => "revoked_by_app",
            EndReason::CodeReplayed => "code_replayed",
            EndReason::RefreshReplayed => "refresh_replayed",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| Error::Internal(format!("unknown reason '{s}' for an ended session")))
    }
}

/// Judges a refresh against the enterprise's policy; `None` lets it through.
pub fn judge_refresh(
    ctx: &RefreshContext,
    policy: &crate::policy::StoredPolicy,
    app_version: Option<&str>,
    now: Timestamp,
) -> Option<Reverify> {
    const DAY_MS: i64 = 86_400_000;
    let p = &policy.policy;
    if ctx.device.state == DeviceState::Revoked {
        return Some(Reverify::DeviceRevoked);
    }
    if now.millis() - ctx.device.verified_at.millis() >= i64::from(p.reverify_after_days) * DAY_MS {
        return Some(Reverify::Periodic);
    }
    let last_used = ctx.refreshed_at.max(ctx.device.last_seen_at);
    if now.millis() - last_used.millis() >= i64::from(p.idle_timeout_days) * DAY_MS {
        return Some(Reverify::Idle);
    }
    if p.reverify_on_app_update
        && let (Some(new), Some(old)) = (app_version, ctx.device.app_version.as_deref())
        && new != old
    {
        return Some(Reverify::AppUpdated);
    }
    if policy.tightened_at > ctx.device.verified_at {
        return Some(Reverify::PolicyChanged);
    }
    None
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RefreshInput {
    pub refresh_token: String,
    pub app_version: Option<String>,
}

impl Services {
    /// The member session behind an access token; `unauthorized` when it is unknown, expired,
    /// revoked, or its member is no longer active.
    pub async fn authenticate_access(&self, token: &str) -> Result<MemberSession> {
        if !token.starts_with(ACCESS_PREFIX) {
            return Err(Error::Unauthorized);
        }
        let AccessRecord { session: record, member, enterprise } =
            self.store.session_by_access(&SecretHash::of(token)).await?.ok_or(Error::Unauthorized)?;
        if record.revoked
            || record.member_status != MemberStatus::Active
            || self.clock.now() >= record.access_expires_at
        {
            return Err(Error::Unauthorized);
        }
        Ok(MemberSession {
            session_id: record.id,
            enterprise_id: record.enterprise_id,
            member_id: record.member_id,
            device_id: record.device_id,
            authenticated_at: record.created_at,
            member,
            enterprise,
        })
    }

    /// `POST /token/refresh`.
    pub async fn refresh(&self, input: RefreshInput, client: ClientInfo) -> Result<IssuedSession> {
        if !input.refresh_token.starts_with(REFRESH_PREFIX) {
            return Err(Error::Unauthorized);
        }
        let now = self.clock.now();
        let presented = SecretHash::of(&input.refresh_token);
        let app_version = input.app_version.as_deref().map(|v| v.trim()).filter(|v| !v.is_empty());
        if app_version.is_some_and(|v| v.len() > 64) {
            return Err(Error::field("app_version", "must be at most 64 characters"));
        }
        let mut ttl = self.settings.access_token_ttl_secs;
        if let Some(ctx) = self.store.refresh_context(&presented).await? {
            if let Some(reason) = ctx.revoked_reason.and_then(Reverify::after) {
                return Err(Error::ReverificationRequired { reason: reason.as_str() });
            }
            let policy = self.policy_of(&ctx.session.enterprise_id).await?;
            ttl = i64::from(policy.policy.access_token_ttl_seconds);
            if ctx.session.revoked.not()
                && let Some(reason) = judge_refresh(&ctx, &policy, app_version, now)
            {
                self.store.revoke_session(&ctx.session.id, EndReason::Reverify(reason), now).await?;
                return Err(Error::ReverificationRequired { reason: reason.as_str() });
            }
        }
        let access = Secret::generate(ACCESS_PREFIX);
        let refresh = Secret::generate(REFRESH_PREFIX);
        let rotation = Rotation {
            presented,
            access_hash: access.hash(),
            access_expires_at: Timestamp(now.millis() + ttl * 1000),
            refresh_hash: refresh.hash(),
            now,
            refreshed_after: Timestamp(now.millis() - self.settings.refresh_token_ttl_secs * 1000),
            app_version: app_version.map(str::to_string),
        };
        let session = match self.store.rotate_refresh(&rotation).await? {
            RotationOutcome::Rotated { session } => session,
            RotationOutcome::Reused { session } => {
                if let Some(member) = self.store.get_member(&session.enterprise_id, &session.member_id).await? {
                    let event = self.event(
                        &member.phone,
                        "refresh_reuse",
                        Some(&member),
                        &client,
                        json!({"session_id": session.id}),
                    );
                    self.store.record_login_events(&[event]).await?;
                }
                return Err(Error::Unauthorized);
            }
            RotationOutcome::Refused => return Err(Error::Unauthorized),
        };
        let (member, enterprise) = self
            .store
            .member_and_enterprise(&session.enterprise_id, &session.member_id)
            .await?
            .ok_or(Error::Unauthorized)?;
        Ok(IssuedSession {
            access_token: access.expose().to_string(),
            refresh_token: refresh.expose().to_string(),
            expires_in: ttl,
            device_id: session.device_id,
            member,
            enterprise,
        })
    }

    /// `GET /me`: the member and enterprise read with the session (in the same query as the
    /// check that the session is valid and the member active).
    pub async fn me(&self, session: &MemberSession) -> Result<(Member, Enterprise)> {
        Ok((session.member.clone(), session.enterprise.clone()))
    }

    /// `POST /me/logout`: ends this session (the device stays trusted).
    pub async fn logout(&self, session: &MemberSession) -> Result<()> {
        self.store.revoke_session(&session.session_id, EndReason::Logout, self.clock.now()).await
    }

    /// `GET /me/enterprises`: every enterprise where this number can sign in.
    pub async fn my_enterprises(&self, session: &MemberSession) -> Result<Vec<(Enterprise, Member)>> {
        let (member, _) = self.me(session).await?;
        let all = self.store.memberships_by_phone(&member.phone).await?;
        Ok(all.into_iter().filter(|(_, m)| matches!(m.status, MemberStatus::Invited | MemberStatus::Active)).collect())
    }

    pub async fn my_devices(&self, session: &MemberSession) -> Result<Vec<Device>> {
        self.store.list_devices(&session.enterprise_id, &session.member_id).await
    }

    /// `DELETE /me/devices/{id}`: signs that device out and withdraws its trust.
    pub async fn revoke_my_device(&self, session: &MemberSession, device_id: &str) -> Result<()> {
        let id = DeviceId::parse(device_id).ok_or(Error::NotFound("device"))?;
        if self
            .store
            .revoke_device(&session.enterprise_id, &session.member_id, &id, RevokedBy::Member, self.clock.now())
            .await?
        {
            Ok(())
        } else {
            Err(Error::NotFound("device"))
        }
    }
}

impl Services {
    /// `POST /members/{id}/unlock`: clears the number's run of wrong codes.
    pub async fn unlock_member(&self, caller: &crate::audit::Caller, member_id: &str) -> Result<()> {
        let member = self.get_member(caller, member_id).await?;
        self.store.clear_failures(&member.phone, None).await?;
        // Codes someone else had sent to the number (a bot that knows it) must not keep its
        // member waiting once an admin has looked: the number's own sending limits start over.
        // Only a few times a day per number, counted in the database: those limits also protect
        // the phone, and any enterprise's admin can add a number and unlock it.
        let resets = crate::limits::Limit::new(
            "unlock_resets",
            format!("unlock:{}", member.phone),
            UNLOCK_RESETS_PER_NUMBER_DAY,
            86_400,
        );
        let reset = self.store.hit_limits(&[resets], self.clock.now().millis()).await?.is_none();
        if reset {
            self.store.reset_limits(&self.per_number_sending_buckets(&member.phone)).await?;
        }
        let details = json!({"sending_limits_reset": reset});
        let audit = caller.entry(self.clock.now(), "member.unlock", Some(member.id.as_str()), details);
        self.store.apply_directory_changes(&caller.enterprise_id, &[], &[audit]).await
    }
}

impl Services {
    /// `GET /members/{id}/devices`.
    pub async fn member_devices(&self, caller: &crate::audit::Caller, member_id: &str) -> Result<Vec<Device>> {
        let member = self.get_member(caller, member_id).await?;
        self.store.list_devices(&caller.enterprise_id, &member.id).await
    }

    /// `DELETE /members/{id}/devices/{device_id}`: the device's sessions end; it must verify by SMS
    /// again (`device_revoked`), and be approved again where the policy asks.
    pub async fn revoke_member_device(
        &self,
        caller: &crate::audit::Caller,
        member_id: &str,
        device_id: &str,
    ) -> Result<()> {
        let member = self.get_member(caller, member_id).await?;
        let id = DeviceId::parse(device_id).ok_or(Error::NotFound("device"))?;
        let now = self.clock.now();
        if !self.store.revoke_device(&caller.enterprise_id, &member.id, &id, RevokedBy::Admin, now).await? {
            return Err(Error::NotFound("device"));
        }
        let audit = caller.entry(now, "device.revoke", Some(id.as_str()), json!({"member_id": member.id}));
        self.store.apply_directory_changes(&caller.enterprise_id, &[], &[audit]).await
    }

    /// `POST /members/{id}/devices/{device_id}/approve`.
    pub async fn approve_member_device(
        &self,
        caller: &crate::audit::Caller,
        member_id: &str,
        device_id: &str,
    ) -> Result<()> {
        let member = self.get_member(caller, member_id).await?;
        let id = DeviceId::parse(device_id).ok_or(Error::NotFound("device"))?;
        let audit =
            caller.entry(self.clock.now(), "device.approve", Some(id.as_str()), json!({"member_id": member.id}));
        if self.store.approve_device(&caller.enterprise_id, &member.id, &id, &audit).await? {
            Ok(())
        } else {
            Err(Error::NotFound("device"))
        }
    }

    /// `GET /members/{id}/sessions`: the member's device sessions and app grants, newest first.
    pub async fn member_sessions(&self, caller: &crate::audit::Caller, member_id: &str) -> Result<Vec<SessionSummary>> {
        let member = self.get_member(caller, member_id).await?;
        self.store.list_member_sessions(&caller.enterprise_id, &member.id, 50).await
    }

    /// `POST /members/{id}/password-reset`.
    pub async fn require_password_reset(&self, caller: &crate::audit::Caller, member_id: &str) -> Result<()> {
        let member = self.get_member(caller, member_id).await?;
        let audit = caller.entry(self.clock.now(), "member.password_reset", Some(member.id.as_str()), json!({}));
        self.store.require_password_reset(&caller.enterprise_id, &member.id, &audit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_end_reason_reads_back_as_itself_and_nothing_else_reads() {
        for reason in EndReason::ALL {
            assert_eq!(EndReason::parse(reason.as_str()).ok(), Some(reason));
        }
        for stored in ["", "device_revoked", "reverify:", "device_revoked:someone", "Logout"] {
            assert!(EndReason::parse(stored).is_err(), "{stored}");
        }
        for state in [DeviceState::Trusted, DeviceState::Pending, DeviceState::Revoked] {
            assert_eq!(DeviceState::parse(state.as_str()).ok(), Some(state));
        }
    }

    #[test]
    fn only_a_policy_or_a_revoked_device_asks_a_refresh_for_a_code_again() {
        assert_eq!(Reverify::after(EndReason::DeviceRevoked(RevokedBy::Admin)), Some(Reverify::DeviceRevoked));
        assert_eq!(Reverify::after(EndReason::Reverify(Reverify::Idle)), Some(Reverify::Idle));
        for ended in [EndReason::Logout, EndReason::RefreshReuse, EndReason::MemberDisabled, EndReason::PhoneChanged] {
            assert_eq!(Reverify::after(ended), None);
        }
    }
}
