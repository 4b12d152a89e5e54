//! The authorization code flow (OpenID Connect Core 3.1, RFC 6749 section 4.1) with PKCE S256
//! required (RFC 7636), the `iss` response parameter (RFC 9207), and the token endpoint's two
//! grants. Only active members of the app's own enterprise get a code; the check is made again
//! when the code is redeemed and at every refresh.

use super::apps::{App, ClientAuth};
use super::{
    ACCESS_PREFIX, AuthorizationCode, CODE_PREFIX, NewGrant, NewTokens, OAuthError, REFRESH_PREFIX, Redeemed, Refreshed,
};
use crate::Services;
use crate::clock::Timestamp;
use crate::error::Result;
use crate::ids::{AppId, GrantId};
use crate::model::{Enterprise, Member};
use crate::secret::{Secret, SecretHash};
use crate::sessions::MemberSession;
use crate::values::MemberStatus;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use subtle::ConstantTimeEq;

/// What the authorization endpoint was asked, as given (query parameters, each at most once).
pub type AuthorizeParams = HashMap<String, String>;

/// A well-formed authorization request of a known app.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    pub app: App,
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    /// `prompt=none`: answer at once, never show a page.
    pub prompt_none: bool,
    /// `prompt=login`: sign in again even with a session.
    pub prompt_login: bool,
    /// `max_age` in seconds: a sign-in older than this must be done again.
    pub max_age: Option<i64>,
    /// `id_token_hint`: an ID token this server issued, naming who the app expects.
    pub id_token_hint: Option<String>,
    /// `login_hint`: the number to pre-fill on the login page.
    pub login_hint: Option<String>,
    /// `ui_locales`: the languages the person prefers, in order.
    pub ui_locales: Vec<String>,
}

/// Why a person sees an error page instead of going back to the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The request names no app, or one that is not registered.
    UnknownApp,
    /// No `redirect_uri`, or one the app did not register (compared exactly).
    UnregisteredRedirectUri,
    /// A parameter was given twice.
    RepeatedParameter,
    /// The signed-in member belongs to another enterprise than the app.
    OtherEnterprise { app: String },
    /// The member may not sign in (disabled, departed).
    NotActive,
    /// The server could not complete it (database unavailable).
    Unavailable,
}

/// Why an authorization request cannot go on.
#[derive(Debug, Clone)]
pub enum AuthorizeError {
    /// Show the person an error page. When the client or its redirect URI cannot be trusted this
    /// is the only answer: never redirect there (RFC 6749 section 4.1.2.1).
    Page(Refusal),
    /// Tell the app, at its verified redirect URI.
    Redirect { redirect_uri: String, error: OAuthError, state: Option<String> },
}

impl AuthorizeError {
    fn to_app(req: &AuthorizeRequest, error: OAuthError) -> Self {
        AuthorizeError::Redirect { redirect_uri: req.redirect_uri.clone(), error, state: req.state.clone() }
    }
}

impl Services {
    /// Where an error goes back to the app: its verified redirect URI with `error`,
    /// `error_description`, `state` and `iss` (RFC 9207 asks for `iss` on error responses too, and
    /// strict clients reject a response without it).
    pub fn error_redirect(&self, redirect_uri: &str, error: &OAuthError, state: Option<&str>) -> String {
        let iss = self.issuer();
        let mut params = vec![("error", error.error), ("error_description", error.description.as_str())];
        if let Some(state) = state {
            params.push(("state", state));
        }
        params.push(("iss", iss.as_str()));
        redirect_with(redirect_uri, &params)
    }
}

/// `redirect_uri` with `params` added to its query.
pub fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(params);
            url.to_string()
        }
        // Registered URIs are validated on registration; this cannot happen for them.
        Err(_) => redirect_uri.to_string(),
    }
}

/// Whether `s` can be a PKCE code verifier or S256 challenge: the unreserved characters of
/// RFC 7636 section 4.1, 43 to 128 of them.
pub fn pkce_shaped(s: &str) -> bool {
    (43..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// The S256 code challenge of a PKCE code verifier: BASE64URL(SHA-256(verifier)), unpadded.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// An app's tokens as the token endpoint answers them.
#[derive(Debug, Clone)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    pub id_token: String,
    pub expires_in: i64,
    pub scope: String,
}

/// Tokens to write, with their secrets to hand out once they are written.
struct FreshTokens {
    tokens: NewTokens,
    access: String,
    refresh: String,
    expires_in: i64,
}

impl FreshTokens {
    /// The token endpoint's answer once these tokens are written: they, and the ID token that
    /// lives as long as the access token.
    fn answer(self, id_token: String, scope: &str) -> TokenResponse {
        TokenResponse {
            access_token: self.access,
            refresh_token: self.refresh,
            id_token,
            expires_in: self.expires_in,
            scope: scope.to_string(),
        }
    }
}

/// Whom an ID token speaks of, and for which grant.
struct Subject<'a> {
    member: &'a crate::ids::MemberId,
    enterprise: &'a crate::ids::EnterpriseId,
    scope: &'a str,
    auth_time: Timestamp,
    nonce: Option<&'a str>,
}

/// The token endpoint's form fields.
pub type TokenParams = HashMap<String, String>;

impl Services {
    /// The issuer identifier: the public URL without a trailing slash.
    pub fn issuer(&self) -> String {
        self.settings.public_url.trim_end_matches('/').to_string()
    }

    /// `GET /.well-known/openid-configuration`.
    pub fn discovery(&self) -> Value {
        let iss = self.issuer();
        json!({
            "issuer": iss,
            "authorization_endpoint": format!("{iss}/oidc/authorize"),
            "token_endpoint": format!("{iss}/oidc/token"),
            "userinfo_endpoint": format!("{iss}/oidc/userinfo"),
            "jwks_uri": format!("{iss}/oidc/jwks"),
            "introspection_endpoint": format!("{iss}/oidc/introspect"),
            "revocation_endpoint": format!("{iss}/oidc/revoke"),
            "end_session_endpoint": format!("{iss}/oidc/logout"),
            "scopes_supported": super::SCOPES,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "azp", "at_hash",
                "enterprise_id", "userid", "name", "departments", "email", "email_verified", "phone_number",
                "phone_number_verified"],
            "prompt_values_supported": ["none", "login"],
            "authorization_response_iss_parameter_supported": true,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "claims_parameter_supported": false,
        })
    }

    /// Checks an authorization request: first the client and its redirect URI (errors shown on a
    /// page), then the rest (errors sent to the app).
    pub async fn check_authorize(&self, p: &AuthorizeParams) -> std::result::Result<AuthorizeRequest, AuthorizeError> {
        let found = match p.get("client_id").and_then(|id| AppId::parse(id)) {
            Some(id) => self.store.find_client(&id).await.map_err(|_| AuthorizeError::Page(Refusal::Unavailable))?,
            None => None,
        };
        let (app, _) = found.ok_or(AuthorizeError::Page(Refusal::UnknownApp))?;
        let redirect_uri = p
            .get("redirect_uri")
            .filter(|uri| app.redirect_uris.contains(uri))
            .ok_or(AuthorizeError::Page(Refusal::UnregisteredRedirectUri))?;
        let mut req = AuthorizeRequest {
            redirect_uri: redirect_uri.clone(),
            scope: String::new(),
            state: p.get("state").cloned(),
            nonce: p.get("nonce").cloned(),
            code_challenge: String::new(),
            prompt_none: false,
            prompt_login: false,
            max_age: None,
            id_token_hint: p.get("id_token_hint").cloned(),
            login_hint: p.get("login_hint").cloned(),
            ui_locales: p.get("ui_locales").map(|v| v.split(' ').map(str::to_string).collect()).unwrap_or_default(),
            app,
        };
        let fail = |req: &AuthorizeRequest, error: &'static str, d: &str| {
            Err(AuthorizeError::to_app(req, OAuthError::new(error, d)))
        };
        if p.contains_key("request") || p.contains_key("request_uri") {
            let error = if p.contains_key("request") { "request_not_supported" } else { "request_uri_not_supported" };
            return fail(&req, error, "request objects are not supported");
        }
        if p.get("response_type").map(String::as_str) != Some("code") {
            return fail(&req, "unsupported_response_type", "only response_type=code is supported");
        }
        if p.get("response_mode").is_some_and(|m| m != "query") {
            return fail(&req, "invalid_request", "only response_mode=query is supported");
        }
        // Scope values this server does not know (`address`, `offline_access`, …) are ignored, as
        // OpenID Connect asks; known ones the app may not have are refused.
        let requested: Vec<&str> =
            p.get("scope").map(|s| s.split(' ').filter(|s| super::SCOPES.contains(s)).collect()).unwrap_or_default();
        if !requested.contains(&"openid") {
            return fail(&req, "invalid_scope", "the scope must include openid");
        }
        if let Some(bad) = requested.iter().find(|s| !req.app.scopes.iter().any(|a| a == *s)) {
            return fail(&req, "invalid_scope", &format!("this app may not ask for the scope '{bad}'"));
        }
        req.scope = super::SCOPES.iter().filter(|s| requested.contains(s)).copied().collect::<Vec<_>>().join(" ");
        match (p.get("code_challenge"), p.get("code_challenge_method").map(String::as_str)) {
            (None, _) => return fail(&req, "invalid_request", "PKCE is required: send code_challenge (S256)"),
            (Some(_), m) if m != Some("S256") => {
                return fail(&req, "invalid_request", "code_challenge_method must be S256");
            }
            (Some(c), _) if !pkce_shaped(c) => {
                return fail(&req, "invalid_request", "code_challenge must be 43–128 unreserved characters");
            }
            (Some(c), _) => req.code_challenge = c.clone(),
        }
        if req.state.as_ref().is_some_and(|s| s.len() > 1024) || req.nonce.as_ref().is_some_and(|n| n.len() > 1024) {
            return fail(&req, "invalid_request", "state and nonce must be at most 1024 characters");
        }
        let prompt: Vec<&str> =
            p.get("prompt").map(|v| v.split(' ').filter(|v| !v.is_empty()).collect()).unwrap_or_default();
        req.prompt_none = prompt.contains(&"none");
        req.prompt_login = prompt.contains(&"login");
        if req.prompt_none && prompt.len() > 1 {
            return fail(&req, "invalid_request", "prompt=none cannot be combined with other prompt values");
        }
        if let Some(max_age) = p.get("max_age") {
            match max_age.parse::<i64>() {
                Ok(seconds) if seconds >= 0 => req.max_age = Some(seconds),
                _ => return fail(&req, "invalid_request", "max_age must be a whole number of seconds"),
            }
        }
        if let Some(claims) = p.get("claims") {
            // Not supported (discovery says so); a malformed one is still a malformed request.
            if serde_json::from_str::<serde_json::Map<String, Value>>(claims).is_err() {
                return fail(&req, "invalid_request", "claims must be a JSON object");
            }
        }
        Ok(req)
    }

    /// Issues a code for the signed-in member, answering the app's redirect URL. A member of
    /// another enterprise, or one who may not sign in, gets an error page.
    pub async fn authorize(
        &self,
        req: &AuthorizeRequest,
        session: &MemberSession,
    ) -> std::result::Result<String, AuthorizeError> {
        let internal = |_| AuthorizeError::Page(Refusal::Unavailable);
        if session.enterprise_id != req.app.enterprise_id {
            // The app's enterprise is not named: a member of another one has no business learning it.
            return Err(AuthorizeError::Page(Refusal::OtherEnterprise { app: req.app.name.clone() }));
        }
        let member = self.store.get_member(&session.enterprise_id, &session.member_id).await.map_err(internal)?;
        if member.is_none_or(|m| m.status != MemberStatus::Active) {
            return Err(AuthorizeError::Page(Refusal::NotActive));
        }
        let now = self.clock.now();
        let code = Secret::generate(CODE_PREFIX);
        let record = AuthorizationCode {
            code_hash: code.hash(),
            enterprise_id: req.app.enterprise_id.clone(),
            app_id: req.app.id.clone(),
            member_id: session.member_id.clone(),
            session_id: session.session_id.clone(),
            redirect_uri: req.redirect_uri.clone(),
            scope: req.scope.clone(),
            nonce: req.nonce.clone(),
            code_challenge: req.code_challenge.clone(),
            auth_time: session.authenticated_at,
            created_at: now,
            expires_at: Timestamp(now.millis() + self.settings.oidc_code_ttl_secs * 1000),
            used: false,
        };
        self.store.insert_authorization_code(&record).await.map_err(internal)?;
        let iss = self.issuer();
        let mut params = vec![("code", code.expose()), ("iss", iss.as_str())];
        if let Some(state) = &req.state {
            params.push(("state", state));
        }
        Ok(redirect_with(&req.redirect_uri, &params))
    }

    /// `POST /oidc/token`.
    pub async fn token(&self, p: &TokenParams, auth: &ClientAuth) -> std::result::Result<TokenResponse, OAuthError> {
        let app = self.authenticate_client(auth).await?;
        match p.get("grant_type").map(String::as_str) {
            Some("authorization_code") => self.redeem_code(&app, p).await,
            Some("refresh_token") => self.refresh_app_tokens(&app, p).await,
            Some(_) => Err(OAuthError::new("unsupported_grant_type", "use authorization_code or refresh_token")),
            None => Err(OAuthError::invalid_request("grant_type is missing")),
        }
    }

    async fn redeem_code(&self, app: &App, p: &TokenParams) -> std::result::Result<TokenResponse, OAuthError> {
        let code = p.get("code").ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
        let verifier = p.get("code_verifier").ok_or_else(|| OAuthError::invalid_request("code_verifier is missing"))?;
        let invalid = || OAuthError::invalid_grant("the code is invalid, expired, or was issued to another client");
        if !code.starts_with(CODE_PREFIX) {
            return Err(invalid());
        }
        let hash = SecretHash::of(code);
        let stored = self.store.get_authorization_code(&hash).await?.ok_or_else(invalid)?;
        if stored.app_id != app.id {
            return Err(invalid());
        }
        if p.get("redirect_uri") != Some(&stored.redirect_uri) {
            return Err(OAuthError::invalid_grant("redirect_uri differs from the authorization request's"));
        }
        if !pkce_shaped(verifier) || !bool::from(s256(verifier).as_bytes().ct_eq(stored.code_challenge.as_bytes())) {
            return Err(OAuthError::invalid_grant("the code_verifier does not match the code_challenge"));
        }
        let fresh = self.new_app_tokens(&stored.enterprise_id).await?;
        let grant = NewGrant {
            id: GrantId::generate(),
            enterprise_id: stored.enterprise_id.clone(),
            app_id: app.id.clone(),
            member_id: stored.member_id.clone(),
            scope: stored.scope.clone(),
            auth_time: stored.auth_time,
            nonce: stored.nonce.clone(),
            tokens: fresh.tokens.clone(),
        };
        let subject = Subject {
            member: &grant.member_id,
            enterprise: &grant.enterprise_id,
            scope: &grant.scope,
            auth_time: grant.auth_time,
            nonce: grant.nonce.as_deref(),
        };
        // The ID token is made (its member read, its signature computed) while the redemption is
        // written: it says only what the code was issued for, and is given out only once the
        // redemption stands.
        let (redeemed, id_token) = tokio::join!(
            self.store.redeem_authorization_code(&hash, &grant),
            self.id_token(app, &subject, &fresh.access, fresh.expires_in),
        );
        match redeemed? {
            Redeemed::Granted => {}
            Redeemed::Replayed => {
                tracing::warn!(app = %app.id, "an authorization code was presented twice; its grant is revoked");
                return Err(invalid());
            }
            Redeemed::Refused => return Err(invalid()),
        }
        Ok(fresh.answer(id_token?, &grant.scope))
    }

    async fn refresh_app_tokens(&self, app: &App, p: &TokenParams) -> std::result::Result<TokenResponse, OAuthError> {
        let presented =
            p.get("refresh_token").ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
        let invalid = || OAuthError::invalid_grant("the refresh token is invalid, expired or revoked");
        if !presented.starts_with(REFRESH_PREFIX) {
            return Err(invalid());
        }
        let hash = SecretHash::of(presented);
        let token = match self.store.find_app_token(&hash).await? {
            Some(t) if t.app_id == app.id => t,
            _ => return Err(invalid()),
        };
        let fresh = self.new_app_tokens(&token.enterprise_id).await?;
        // As for a code: the ID token is made while the rotation is written, from what the grant
        // was made for (which a rotation never changes), and given out only if the rotation stands.
        let subject = Subject {
            member: &token.member_id,
            enterprise: &token.enterprise_id,
            scope: &token.scope,
            auth_time: token.auth_time,
            nonce: None,
        };
        let (rotated, id_token) = tokio::join!(
            self.store.rotate_app_refresh(&hash, &app.id, &fresh.tokens),
            self.id_token(app, &subject, &fresh.access, fresh.expires_in),
        );
        let grant = match rotated? {
            Refreshed::Rotated { grant } => grant,
            Refreshed::Replayed => {
                tracing::warn!(app = %app.id, "a spent refresh token was presented; its grant is revoked");
                return Err(invalid());
            }
            Refreshed::Refused => return Err(invalid()),
        };
        let id_token = id_token?;
        Ok(fresh.answer(id_token, &grant.scope))
    }

    /// Fresh tokens, living as the enterprise's policy says for access tokens.
    async fn new_app_tokens(&self, enterprise: &crate::ids::EnterpriseId) -> Result<FreshTokens> {
        let now = self.clock.now();
        let ttl = i64::from(self.policy_of(enterprise).await?.policy.access_token_ttl_seconds);
        let access = Secret::generate(ACCESS_PREFIX);
        let refresh = Secret::generate(REFRESH_PREFIX);
        let tokens = NewTokens {
            access_hash: access.hash(),
            access_expires_at: Timestamp(now.millis() + ttl * 1000),
            refresh_hash: refresh.hash(),
            refresh_expires_at: Timestamp(now.millis() + self.settings.refresh_token_ttl_secs * 1000),
            now,
        };
        Ok(FreshTokens {
            tokens,
            access: access.expose().to_string(),
            refresh: refresh.expose().to_string(),
            expires_in: ttl,
        })
    }

    /// The claims about a member that `scope` lets an app see (ID token and userinfo alike).
    pub(crate) fn member_claims(
        member: &Member,
        enterprise: &Enterprise,
        scope: &str,
    ) -> serde_json::Map<String, Value> {
        let mut claims = serde_json::Map::new();
        claims.insert("sub".into(), json!(member.id));
        claims.insert("enterprise_id".into(), json!(enterprise.id));
        let scopes: Vec<&str> = scope.split(' ').collect();
        if scopes.contains(&"profile") {
            claims.insert("userid".into(), json!(member.userid.as_str()));
            claims.insert("name".into(), json!(member.name.as_str()));
            claims.insert("departments".into(), json!(member.departments));
        }
        if scopes.contains(&"email")
            && let Some(email) = &member.email
        {
            claims.insert("email".into(), json!(email.as_str()));
            // Recorded by an admin, never proved by the member.
            claims.insert("email_verified".into(), json!(false));
        }
        if scopes.contains(&"phone") {
            claims.insert("phone_number".into(), json!(member.phone.as_str()));
            // The number is the one the member proved by SMS code to sign in.
            claims.insert("phone_number_verified".into(), json!(true));
        }
        claims
    }

    async fn id_token(
        &self,
        app: &App,
        subject: &Subject<'_>,
        access_token: &str,
        ttl: i64,
    ) -> std::result::Result<String, OAuthError> {
        let invalid = || OAuthError::invalid_grant("the member may no longer sign in");
        let (member, enterprise) =
            self.store.member_and_enterprise(subject.enterprise, subject.member).await?.ok_or_else(invalid)?;
        let now = self.clock.now();
        let mut claims = Self::member_claims(&member, &enterprise, subject.scope);
        let digest = Sha256::digest(access_token.as_bytes());
        claims.insert("iss".into(), json!(self.issuer()));
        claims.insert("aud".into(), json!(app.id));
        claims.insert("azp".into(), json!(app.id));
        claims.insert("iat".into(), json!(now.millis() / 1000));
        claims.insert("exp".into(), json!(now.millis() / 1000 + ttl));
        claims.insert("auth_time".into(), json!(subject.auth_time.millis() / 1000));
        claims.insert("at_hash".into(), json!(URL_SAFE_NO_PAD.encode(&digest[..16])));
        if let Some(nonce) = subject.nonce {
            claims.insert("nonce".into(), json!(nonce));
        }
        Ok(self.sign_jwt(&Value::Object(claims), app.id_token_alg).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        assert_eq!(s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn redirects_keep_the_registered_query() {
        assert_eq!(
            redirect_with("https://app.example.com/cb?tenant=1", &[("code", "abc"), ("state", "x y")]),
            "https://app.example.com/cb?tenant=1&code=abc&state=x+y"
        );
    }
}
