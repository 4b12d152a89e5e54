//! The security numbers of SPEC section 6 and the other server-wide settings of login. Defaults
//! are the SPEC's; every one is configurable, and tests lower them.

use crate::phone::Region;

#[derive(Debug, Clone)]
pub struct LoginSettings {
    /// Links in invitations are `<public_url>/i/<token>`.
    pub public_url: String,
    /// Region for numbers typed without a country code at login (no enterprise is known yet).
    pub default_region: Region,
    /// Unknown, disabled and known numbers get the same answer; no SMS to unknown numbers.
    pub hide_membership: bool,
    pub code_length: u32,
    pub code_ttl_secs: i64,
    /// Wrong codes a challenge takes before it locks.
    pub max_code_attempts: i64,
    /// Seconds between two codes to one number.
    pub resend_cooldown_secs: i64,
    pub codes_per_number_hour: i64,
    pub codes_per_number_day: i64,
    /// `login/start` calls per client address per hour.
    pub starts_per_ip_hour: i64,
    /// `login/start` calls per /24 (IPv4) or /64 (IPv6) network per hour.
    pub starts_per_network_hour: i64,
    /// Login codes the whole server sends per hour (toll-fraud ceiling).
    pub sms_budget_server_hour: i64,
    /// Login codes sent per hour for the numbers of one enterprise.
    pub sms_budget_enterprise_hour: i64,
    /// Invitations (created, imported and re-sent) one enterprise sends per hour: a leaked key
    /// cannot pump SMS past it. Imported members past it are created without their invitation.
    pub invitation_budget_enterprise_hour: i64,
    /// Wrong codes in a row for one number from one client network (/24 or /64), across
    /// challenges, before that network must wait to try the number again.
    pub consecutive_failures_limit: i64,
    /// Wrong codes in a row for one number from all networks together before the number itself
    /// must wait: the backstop against guessing spread over many networks (NIST SP 800-63B
    /// allows at most 100).
    pub number_failure_ceiling: i64,
    /// The first wait after that limit, doubled at each further failure (capped at a day).
    pub failure_lock_base_secs: i64,
    pub invitation_ttl_secs: i64,
    pub access_token_ttl_secs: i64,
    /// A refresh token not used for this long is refused.
    pub refresh_token_ttl_secs: i64,
    /// How long a sender owns an SMS it took. After a crash mid-send, the message is sent again
    /// once this has passed; keep it above the provider's timeout.
    pub outbox_lease_secs: i64,
    /// Delivery attempts before an SMS is marked failed.
    pub outbox_max_attempts: i64,
    /// How long an OpenID Connect authorization code may wait to be redeemed.
    pub oidc_code_ttl_secs: i64,
    /// How long one ID-token signing key signs before the next takes over.
    pub oidc_key_rotation_secs: i64,
    /// How long before it signs a new key is published in the JWKS.
    pub oidc_key_prepublish_secs: i64,
}

impl Default for LoginSettings {
    fn default() -> Self {
        LoginSettings {
            public_url: "http://127.0.0.1:8080".into(),
            default_region: Region::parse("CN").unwrap_or_else(|_| unreachable!("CN is a region")),
            hide_membership: false,
            code_length: 6,
            code_ttl_secs: 300,
            max_code_attempts: 5,
            resend_cooldown_secs: 60,
            codes_per_number_hour: 5,
            codes_per_number_day: 10,
            starts_per_ip_hour: 30,
            starts_per_network_hour: 300,
            sms_budget_server_hour: 10_000,
            sms_budget_enterprise_hour: 1_000,
            invitation_budget_enterprise_hour: 10_000,
            consecutive_failures_limit: 10,
            number_failure_ceiling: 100,
            failure_lock_base_secs: 60,
            invitation_ttl_secs: 7 * 24 * 3600,
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            outbox_lease_secs: 30,
            outbox_max_attempts: 8,
            oidc_code_ttl_secs: 60,
            oidc_key_rotation_secs: 30 * 24 * 3600,
            oidc_key_prepublish_secs: 24 * 3600,
        }
    }
}
