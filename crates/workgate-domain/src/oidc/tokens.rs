//! Using and ending app tokens: userinfo, introspection (RFC 7662), revocation (RFC 7009), and
//! the `id_token_hint` of RP-initiated logout.

use super::apps::{App, ClientAuth, ClientType};
use super::{ACCESS_PREFIX, AppToken, AppTokenHolder, OAuthError, REFRESH_PREFIX, TokenKind};
use crate::Services;
use crate::ids::{AppId, MemberId};
use crate::secret::SecretHash;
use crate::sessions::EndReason;
use serde_json::{Value, json};

/// What an `id_token_hint` says, once verified as ours.
#[derive(Debug, Clone)]
pub struct LogoutHint {
    pub app_id: AppId,
    pub member_id: MemberId,
}

impl Services {
    async fn app_token(&self, token: &str) -> crate::Result<Option<AppToken>> {
        if !(token.starts_with(ACCESS_PREFIX) || token.starts_with(REFRESH_PREFIX)) {
            return Ok(None);
        }
        self.store.find_app_token(&SecretHash::of(token)).await
    }

    /// `GET|POST /oidc/userinfo` with an app's access token.
    pub async fn userinfo(&self, access_token: &str) -> std::result::Result<Value, OAuthError> {
        let now = self.clock.now();
        if !access_token.starts_with(ACCESS_PREFIX) {
            return Err(OAuthError::invalid_token());
        }
        let AppTokenHolder { token, member, enterprise } = self
            .store
            .app_token_holder(&SecretHash::of(access_token))
            .await?
            .filter(|h| h.token.kind == TokenKind::Access && h.token.is_active(now))
            .ok_or_else(OAuthError::invalid_token)?;
        Ok(Value::Object(Self::member_claims(&member, &enterprise, &token.scope)))
    }

    /// `POST /oidc/introspect`: any confidential app of the token's enterprise may ask (its
    /// resource servers are its apps); a token of another enterprise, like an unknown one, is
    /// `{"active": false}`. RFC 7662 section 2.1 wants an authenticated caller, so a public app
    /// (no secret: anyone can present its id) is `invalid_client`.
    pub async fn introspect(&self, token: &str, auth: &ClientAuth) -> std::result::Result<Value, OAuthError> {
        let caller = self.authenticate_client(auth).await?;
        if caller.client_type != ClientType::Confidential {
            return Err(OAuthError::invalid_client());
        }
        let now = self.clock.now();
        let found =
            self.app_token(token).await?.filter(|t| t.enterprise_id == caller.enterprise_id && t.is_active(now));
        let Some(t) = found else { return Ok(json!({"active": false})) };
        Ok(json!({
            "active": true,
            "scope": t.scope,
            "client_id": t.app_id,
            "sub": t.member_id,
            "aud": t.app_id,
            "iss": self.issuer(),
            "exp": t.expires_at.millis() / 1000,
            "iat": t.issued_at.millis() / 1000,
            "token_type": match t.kind { TokenKind::Access => "Bearer", TokenKind::Refresh => "refresh_token" },
            "enterprise_id": t.enterprise_id,
        }))
    }

    /// `POST /oidc/revoke`: a refresh token ends its whole grant; an access token ends alone.
    /// Unknown tokens, and tokens of other apps, are answered alike (RFC 7009 section 2.2).
    pub async fn revoke_app_token(&self, token: &str, auth: &ClientAuth) -> std::result::Result<(), OAuthError> {
        let app: App = self.authenticate_client(auth).await?;
        let Some(found) = self.app_token(token).await?.filter(|t| t.app_id == app.id) else { return Ok(()) };
        let now = self.clock.now();
        match found.kind {
            TokenKind::Refresh => self.store.revoke_grant(&found.grant_id, EndReason::RevokedByApp, now).await?,
            TokenKind::Access => self.store.revoke_app_access_token(&SecretHash::of(token), now).await?,
        }
        Ok(())
    }

    /// Reads an `id_token_hint`: whom and which app it names, if one of our keys signed it.
    pub async fn logout_hint(&self, id_token: &str) -> crate::Result<Option<LogoutHint>> {
        let Some(claims) = self.verify_own_jwt(id_token).await? else { return Ok(None) };
        let app = claims["aud"].as_str().and_then(AppId::parse);
        let member = claims["sub"].as_str().and_then(MemberId::parse);
        Ok(app.zip(member).map(|(app_id, member_id)| LogoutHint { app_id, member_id }))
    }

    /// The app a logout names, if `post_logout_redirect_uri` is one it registered.
    pub async fn logout_redirect(&self, app: &AppId, uri: &str) -> crate::Result<bool> {
        Ok(self
            .store
            .find_client(app)
            .await?
            .is_some_and(|(a, _)| a.post_logout_redirect_uris.iter().any(|u| u == uri)))
    }
}
