//! Workgate as an OpenID Connect provider for the enterprise's own apps (SPEC sections 2 step 7
//! and 4, "OpenID Connect").
//!
//! - `apps`: the registry of an enterprise's apps (OAuth clients), managed by its admins.
//! - `keys`: the RS256 signing keys, shared by every node through the store, rotated on a
//!   schedule: a key is published in the JWKS a while before it signs, and kept there for a whole
//!   rotation period after it stops, longer than any token it signed lives.
//! - `flow`: the authorization code flow with PKCE (S256 only), and the token endpoint's
//!   `authorization_code` and `refresh_token` grants (refresh tokens rotate; a used one revokes
//!   its grant, as RFC 9700 asks).
//! - `tokens`: userinfo, introspection (RFC 7662), revocation (RFC 7009), and reading an
//!   `id_token_hint` for RP-initiated logout.
//!
//! App tokens are opaque (256 random bits, stored hashed) rather than JWTs, so that disabling a
//! member makes them inactive at once everywhere: every use looks the token up together with its
//! member's status. Only the ID token is a JWT.

pub mod apps;
pub mod flow;
pub mod keys;
pub mod tokens;

use crate::clock::Timestamp;
use crate::error::Result;
use crate::ids::{AppId, EnterpriseId, GrantId, MemberId, SessionId};
use crate::model::AuditEntry;
use crate::secret::SecretHash;
use crate::sessions::EndReason;
use crate::values::MemberStatus;
use async_trait::async_trait;

pub use apps::{App, ClientType};
pub use keys::{EcKey, SigningKey};

/// Prefixes of the secrets of this module, so that a leaked string says what it is.
pub const CODE_PREFIX: &str = "wgoc_";
pub const ACCESS_PREFIX: &str = "wgoa_";
pub const REFRESH_PREFIX: &str = "wgor_";
pub const CLIENT_SECRET_PREFIX: &str = "wgcs_";

/// The scopes an app may ask for: `openid` (required), `profile` (name, userid, departments),
/// `email` (the e-mail address an admin recorded, when there is one) and `phone` (the mobile number).
pub const SCOPES: [&str; 4] = ["openid", "profile", "email", "phone"];

/// An error of the OAuth endpoints, answered as RFC 6749's `{error, error_description}` rather
/// than problem+json: that is what relying-party libraries read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// RFC 6749 section 5.2 (and RFC 6750, RFC 7009) error code.
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        OAuthError { error, description: description.into() }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new("invalid_request", description)
    }

    pub fn invalid_client() -> Self {
        Self::new("invalid_client", "client authentication failed")
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new("invalid_grant", description)
    }

    pub fn invalid_token() -> Self {
        Self::new("invalid_token", "the access token is invalid, expired or revoked")
    }

    /// The HTTP status RFC 6749/6750 give the error.
    pub fn status(&self) -> u16 {
        match self.error {
            "invalid_client" | "invalid_token" => 401,
            "server_error" => 500,
            _ => 400,
        }
    }
}

impl From<crate::Error> for OAuthError {
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::Validation(fields) => OAuthError::invalid_request(
                fields.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; "),
            ),
            other => {
                tracing::error!(error = %other, "OpenID Connect request failed");
                OAuthError::new("server_error", "the server could not complete the request")
            }
        }
    }
}

/// An authorization code as stored: only its hash, and everything it was issued for.
#[derive(Debug, Clone)]
pub struct AuthorizationCode {
    pub code_hash: SecretHash,
    pub enterprise_id: EnterpriseId,
    pub app_id: AppId,
    pub member_id: MemberId,
    /// The browser session that approved it.
    pub session_id: SessionId,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    /// BASE64URL(SHA-256(code_verifier)).
    pub code_challenge: String,
    /// When the member last proved who they are (the browser session's login).
    pub auth_time: Timestamp,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub used: bool,
}

/// A grant: what one authorization gave one app over one member, and the family of tokens
/// issued from it. Revoking it ends every token of the family.
#[derive(Debug, Clone)]
pub struct NewGrant {
    pub id: GrantId,
    pub enterprise_id: EnterpriseId,
    pub app_id: AppId,
    pub member_id: MemberId,
    pub scope: String,
    pub auth_time: Timestamp,
    pub nonce: Option<String>,
    pub tokens: NewTokens,
}

/// A fresh access token and refresh token, by hash.
#[derive(Debug, Clone)]
pub struct NewTokens {
    pub access_hash: SecretHash,
    pub access_expires_at: Timestamp,
    pub refresh_hash: SecretHash,
    pub refresh_expires_at: Timestamp,
    pub now: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "access" => Some(TokenKind::Access),
            "refresh" => Some(TokenKind::Refresh),
            _ => None,
        }
    }
}

/// An app token as the store finds it by its hash, with what decides whether it is active.
#[derive(Debug, Clone)]
pub struct AppToken {
    pub kind: TokenKind,
    pub grant_id: GrantId,
    pub enterprise_id: EnterpriseId,
    pub app_id: AppId,
    pub member_id: MemberId,
    pub scope: String,
    pub auth_time: Timestamp,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    /// A refresh token rotated away, or an access token revoked on its own.
    pub spent: bool,
    pub grant_revoked: bool,
    pub member_status: MemberStatus,
}

/// An app token with the member it was issued for and their enterprise.
#[derive(Debug, Clone)]
pub struct AppTokenHolder {
    pub token: AppToken,
    pub member: crate::model::Member,
    pub enterprise: crate::model::Enterprise,
}

impl AppToken {
    pub fn is_active(&self, now: Timestamp) -> bool {
        !self.spent && !self.grant_revoked && self.member_status == MemberStatus::Active && now < self.expires_at
    }
}

/// What redeeming an authorization code did.
#[derive(Debug)]
pub enum Redeemed {
    /// The code was unused and its member still active: the grant and its tokens are written.
    Granted,
    /// The code had been redeemed before: the grant issued from it is now revoked.
    Replayed,
    /// The code expired, or its member may no longer sign in.
    Refused,
}

/// What presenting a refresh token did.
#[derive(Debug)]
pub enum Refreshed {
    /// The token was current: it is spent and `tokens` replace it in its grant.
    Rotated {
        grant: AppToken,
    },
    /// The token had already been rotated away: its grant is now revoked.
    Replayed,
    Refused,
}

/// The storage of apps, signing keys, authorization codes, grants and app tokens.
#[async_trait]
pub trait OidcStore: Send + Sync + 'static {
    // ---- apps ----
    async fn insert_app(&self, app: &App, secret_hash: Option<&SecretHash>, audit: &AuditEntry) -> Result<()>;
    /// Writes name, redirect URIs and scopes; `false` when there is no such app here.
    async fn update_app(&self, app: &App, audit: &AuditEntry) -> Result<bool>;
    async fn set_app_secret(
        &self,
        enterprise: &EnterpriseId,
        id: &AppId,
        secret_hash: &SecretHash,
        audit: &AuditEntry,
    ) -> Result<bool>;
    /// Deletes the app with its codes, grants and tokens; `false` when there is no such app here.
    async fn delete_app(&self, enterprise: &EnterpriseId, id: &AppId, audit: &AuditEntry) -> Result<bool>;
    async fn get_app(&self, enterprise: &EnterpriseId, id: &AppId) -> Result<Option<App>>;
    /// An app by its client id, with its secret's hash. Not tenant-scoped: the id names its tenant.
    async fn find_client(&self, id: &AppId) -> Result<Option<(App, Option<SecretHash>)>>;
    async fn list_apps(&self, enterprise: &EnterpriseId) -> Result<Vec<App>>;

    // ---- signing keys ----
    /// The newest keys, newest first.
    async fn signing_keys(&self, limit: u32) -> Result<Vec<SigningKey>>;
    /// Writes a key unless one of its generation exists (another node made it first): `false` then.
    async fn insert_signing_key(&self, key: &SigningKey) -> Result<bool>;
    /// Gives generation `generation` its P-256 key if it has none yet; false when it had one.
    async fn add_ec_key(&self, generation: i64, ec: &EcKey) -> Result<bool>;

    // ---- codes, grants and tokens ----
    async fn insert_authorization_code(&self, code: &AuthorizationCode) -> Result<()>;
    async fn get_authorization_code(&self, code_hash: &SecretHash) -> Result<Option<AuthorizationCode>>;
    /// In one transaction: spends the code if it is unused, unexpired at `grant.tokens.now` and its
    /// member active, writing the grant and its tokens; a code spent before revokes its grant.
    async fn redeem_authorization_code(&self, code_hash: &SecretHash, grant: &NewGrant) -> Result<Redeemed>;
    async fn find_app_token(&self, token_hash: &SecretHash) -> Result<Option<AppToken>>;
    /// An app token with its member and enterprise, in one read (userinfo).
    async fn app_token_holder(&self, token_hash: &SecretHash) -> Result<Option<AppTokenHolder>>;
    /// Spends `presented` if it is the current refresh token of a live grant of `app` whose member
    /// is active, writing `tokens` in the grant; a spent token revokes its grant.
    async fn rotate_app_refresh(&self, presented: &SecretHash, app: &AppId, tokens: &NewTokens) -> Result<Refreshed>;
    async fn revoke_grant(&self, grant: &GrantId, reason: EndReason, now: Timestamp) -> Result<()>;
    /// Spends one access token (RFC 7009 revocation of an access token).
    async fn revoke_app_access_token(&self, token_hash: &SecretHash, now: Timestamp) -> Result<()>;
}
