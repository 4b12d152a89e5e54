//! Invitations (SPEC section 2, step 3): a one-time link sent by SMS that lets a provisioned
//! member activate. The link's token is 256 random bits, stored only as a hash; re-sending
//! replaces the previous link; departing cancels it.

use crate::Services;
use crate::audit::Caller;
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::{EnterpriseId, InvitationId, MemberId};
use crate::limits::Limit;
use crate::model::{Enterprise, Member};
use crate::outbox::{Delivery, OutboxMessage};
use crate::phone::PhoneNumber;
use crate::secret::{Secret, SecretHash};
use crate::sms::SmsContent;
use crate::values::MemberStatus;
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationState {
    Pending,
    Replaced,
    Used,
    Cancelled,
}

impl InvitationState {
    pub fn as_str(self) -> &'static str {
        match self {
            InvitationState::Pending => "pending",
            InvitationState::Replaced => "replaced",
            InvitationState::Used => "used",
            InvitationState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "pending" => InvitationState::Pending,
            "replaced" => InvitationState::Replaced,
            "used" => InvitationState::Used,
            "cancelled" => InvitationState::Cancelled,
            _ => return Err(Error::Internal(format!("unknown invitation state '{s}'"))),
        })
    }
}

#[derive(Debug, Clone)]
pub struct Invitation {
    pub id: InvitationId,
    pub enterprise_id: EnterpriseId,
    pub member_id: MemberId,
    pub state: InvitationState,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// Delivery of its SMS, when read for admins.
    pub delivery: Option<Delivery>,
}

impl Invitation {
    pub fn is_usable(&self, now: Timestamp) -> bool {
        self.state == InvitationState::Pending && now < self.expires_at
    }
}

/// An invitation to write, with its link's hash and its SMS, in the same transaction.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub invitation: Invitation,
    pub token_hash: SecretHash,
    pub sms: OutboxMessage,
}

/// What the invitation landing shows before sign-in.
pub struct InvitationPreview {
    pub enterprise_name: String,
    pub phone_masked: String,
    pub expires_at: Timestamp,
}

/// Invitation tokens start with this.
pub const INVITATION_PREFIX: &str = "wgi_";

impl Services {
    /// Builds an invitation for `member`, with the SMS carrying its link.
    pub fn new_invitation(&self, enterprise: &Enterprise, member: &Member, now: Timestamp) -> NewInvitation {
        // 128 bits: guessing one among a million pending invitations takes 2^108 tries, and the
        // path (`i/wgi_` + 22 characters) fits in the link variable of a gateway's template.
        let token = Secret::generate_short(INVITATION_PREFIX);
        let path = format!("i/{}", token.expose());
        let link = format!("{}/{path}", self.settings.public_url.trim_end_matches('/'));
        let days = u32::try_from((self.settings.invitation_ttl_secs / 86_400).max(1)).unwrap_or(u32::MAX);
        let content = SmsContent::Invitation {
            enterprise: enterprise.name.to_string(),
            member: member.name.to_string(),
            link,
            path,
            days,
        };
        NewInvitation {
            invitation: Invitation {
                id: InvitationId::generate(),
                enterprise_id: enterprise.id.clone(),
                member_id: member.id.clone(),
                state: InvitationState::Pending,
                created_at: now,
                expires_at: Timestamp(now.millis() + self.settings.invitation_ttl_secs * 1000),
                delivery: None,
            },
            token_hash: token.hash(),
            sms: self.outbox_message(Some(enterprise.id.clone()), member.phone.clone(), &content, now),
        }
    }

    /// The enterprise-wide budget of invitation SMS, counted by every invitation that is sent.
    pub(crate) fn invitation_budget(&self, enterprise: &EnterpriseId) -> Limit {
        let per_hour = self.settings.invitation_budget_enterprise_hour;
        Limit::new("invitation_budget_enterprise", format!("invite:enterprise:{enterprise}"), per_hour, 3600)
    }

    /// What sending one invitation to `phone` counts against, besides the enterprise's budget:
    /// the per-number cooldown and the hourly and daily per-number caps of login codes (the same
    /// numbers, counted apart, so that an invitation does not hold back the code its member asks
    /// for next).
    pub(crate) fn invitation_number_limits(&self, phone: &PhoneNumber) -> Vec<Limit> {
        let s = &self.settings;
        vec![
            Limit::new("resend_cooldown", format!("invite:cooldown:{phone}"), 1, s.resend_cooldown_secs),
            Limit::new("per_number_hour", format!("invite:hour:{phone}"), s.codes_per_number_hour, 3600),
            Limit::new("per_number_day", format!("invite:day:{phone}"), s.codes_per_number_day, 86_400),
        ]
    }

    /// Counts the invitation just written for a new member against its number's limits, so that
    /// a re-send waits out the cooldown from it. The member exists: a full limit changes nothing.
    pub(crate) async fn count_first_invitation(&self, phone: &PhoneNumber) {
        let limits = self.invitation_number_limits(phone);
        if let Err(e) = self.store.hit_limits(&limits, self.clock.now().millis()).await {
            tracing::warn!(error = %e, "counting an invitation against its number's limits failed");
        }
    }

    /// `POST /members/{id}/invitation`: a new link replaces any earlier one.
    pub async fn resend_invitation(&self, caller: &Caller, member_id: &str) -> Result<Invitation> {
        let member = self.get_member(caller, member_id).await?;
        if member.status != MemberStatus::Invited {
            return Err(Error::Conflict(format!(
                "the member is {}; invitations are for members who have not signed in yet",
                member.status.as_str()
            )));
        }
        let enterprise = self.enterprise(caller).await?;
        // Re-sends wait out the number's cooldown and count in its caps and the enterprise budget.
        let mut limits = self.invitation_number_limits(&member.phone);
        limits.push(self.invitation_budget(&enterprise.id));
        self.hit_limits(&limits).await?;
        let now = self.clock.now();
        let new = self.new_invitation(&enterprise, &member, now);
        let audit = caller.entry(
            now,
            "invitation.resend",
            Some(member.id.as_str()),
            json!({"invitation_id": new.invitation.id, "expires_at": new.invitation.expires_at}),
        );
        self.store.replace_invitation(&new, &audit).await?;
        self.outbox_written();
        let mut invitation = new.invitation;
        invitation.delivery = Some(Delivery { state: "pending".into(), attempts: 0, last_error: None, sent_at: None });
        Ok(invitation)
    }

    pub async fn list_invitations(&self, caller: &Caller, member_id: &str) -> Result<Vec<Invitation>> {
        let member = self.get_member(caller, member_id).await?;
        self.store.list_invitations(&caller.enterprise_id, &member.id).await
    }

    /// `GET /invitations/{token}`: the enterprise and the masked number, or `invitation_expired`.
    pub async fn preview_invitation(&self, token: &str) -> Result<InvitationPreview> {
        let (invitation, member) = self.usable_invitation(token).await?;
        let enterprise = self.store.get_enterprise(&invitation.enterprise_id).await?.ok_or(Error::InvitationExpired)?;
        Ok(InvitationPreview {
            enterprise_name: enterprise.name.to_string(),
            phone_masked: member.phone.masked(),
            expires_at: invitation.expires_at,
        })
    }

    /// The number an invitation was sent to, to fill in the sign-in form of its landing page (the
    /// link itself went to that number).
    pub async fn invitation_number(&self, token: &str) -> Result<String> {
        let (_, member) = self.usable_invitation(token).await?;
        Ok(member.phone.to_string())
    }

    /// The pending, unexpired invitation behind a token, with its member; else `invitation_expired`.
    pub(crate) async fn usable_invitation(&self, token: &str) -> Result<(Invitation, Member)> {
        if !token.starts_with(INVITATION_PREFIX) || token.len() > 100 {
            return Err(Error::InvitationExpired);
        }
        let invitation = self.store.find_invitation(&SecretHash::of(token)).await?.ok_or(Error::InvitationExpired)?;
        if !invitation.is_usable(self.clock.now()) {
            return Err(Error::InvitationExpired);
        }
        let member = self
            .store
            .get_member(&invitation.enterprise_id, &invitation.member_id)
            .await?
            .filter(|m| m.status == MemberStatus::Invited)
            .ok_or(Error::InvitationExpired)?;
        Ok((invitation, member))
    }
}
