//! The apps registry (`/apps`): an enterprise's OpenID Connect clients. Only owners, admins and
//! API keys manage apps (a department admin cannot). An app's id is its `client_id`; a
//! confidential app's secret is shown once, at creation or when it is replaced, and stored hashed.

use super::{CLIENT_SECRET_PREFIX, OAuthError, SCOPES};
use crate::Services;
use crate::audit::Caller;
use crate::clock::Timestamp;
use crate::error::{Error, FieldError, Result};
use crate::ids::{AppId, EnterpriseId};
use crate::secret::{Secret, SecretHash};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientType {
    /// A server-side app that keeps a secret; it authenticates at the token endpoint.
    Confidential,
    /// A browser or native app that cannot keep a secret; PKCE alone binds its codes.
    Public,
}

impl ClientType {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientType::Confidential => "confidential",
            ClientType::Public => "public",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "confidential" => Ok(ClientType::Confidential),
            "public" => Ok(ClientType::Public),
            _ => Err(Error::field("client_type", "must be confidential or public")),
        }
    }
}

/// How an app's ID tokens are signed (`id_token_signed_response_alg`): RS256, which every OpenID
/// Connect library must accept, unless the app registers for ES256 (P-256), whose signatures cost
/// a small fraction of RSA's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdTokenAlg {
    #[default]
    Rs256,
    Es256,
}

impl IdTokenAlg {
    pub const ALL: [IdTokenAlg; 2] = [IdTokenAlg::Rs256, IdTokenAlg::Es256];

    pub fn as_str(self) -> &'static str {
        match self {
            IdTokenAlg::Rs256 => "RS256",
            IdTokenAlg::Es256 => "ES256",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        IdTokenAlg::ALL
            .into_iter()
            .find(|alg| alg.as_str() == s)
            .ok_or_else(|| Error::field("id_token_signed_response_alg", "must be RS256 or ES256"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub id: AppId,
    pub enterprise_id: EnterpriseId,
    pub name: String,
    pub client_type: ClientType,
    /// Compared exactly with the `redirect_uri` of a request (no prefixes, no patterns).
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send the browser back to.
    pub post_logout_redirect_uris: Vec<String>,
    /// The scopes this app may ask for.
    pub scopes: Vec<String>,
    /// How its ID tokens are signed.
    pub id_token_alg: IdTokenAlg,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// `POST /apps`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub name: String,
    /// `confidential` (default) or `public`.
    pub client_type: Option<String>,
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Default: every scope (`openid`, `profile`, `phone`).
    pub scopes: Option<Vec<String>>,
    /// `RS256` (default) or `ES256`: how its ID tokens are signed.
    pub id_token_signed_response_alg: Option<String>,
}

/// `PATCH /apps/{id}`: the fields given are replaced.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateApp {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub name: Option<String>,
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    /// `RS256` or `ES256`.
    pub id_token_signed_response_alg: Option<String>,
}

/// An app with its secret, when one was just made (shown once).
pub struct AppWithSecret {
    pub app: App,
    pub secret: Option<Secret>,
}

fn validate_name(name: &str, errors: &mut Vec<FieldError>) -> String {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        errors.push(FieldError::new("name", "must be 1–64 characters"));
    }
    name.to_string()
}

/// A redirect URI an app may register (RFC 9700 section 2.1, RFC 8252 for native apps): an
/// absolute URI without a fragment, over https, or http only to this machine's loopback, or a
/// private-use scheme (`com.example.app:/callback`) for native apps.
pub fn valid_redirect_uri(uri: &str) -> std::result::Result<(), &'static str> {
    if uri.len() > 2000 {
        return Err("must be at most 2000 characters");
    }
    let parsed = url::Url::parse(uri).map_err(|_| "must be an absolute URI")?;
    if parsed.fragment().is_some() {
        return Err("must not have a fragment");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials");
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => match parsed.host() {
            Some(url::Host::Domain("localhost")) => Ok(()),
            Some(url::Host::Ipv4(ip)) if ip.is_loopback() => Ok(()),
            Some(url::Host::Ipv6(ip)) if ip.is_loopback() => Ok(()),
            _ => Err("http is allowed only to localhost; use https"),
        },
        "javascript" | "data" | "file" | "vbscript" | "blob" => Err("this scheme is not allowed"),
        scheme if scheme.contains('.') => Ok(()),
        _ => Err("use https, http to localhost, or a private-use scheme such as com.example.app"),
    }
}

fn validate_uris(field: &str, uris: &[String], required: bool, errors: &mut Vec<FieldError>) -> Vec<String> {
    if required && uris.is_empty() {
        errors.push(FieldError::new(field, "must list at least one URI"));
    }
    if uris.len() > 20 {
        errors.push(FieldError::new(field, "at most 20 URIs"));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, uri) in uris.iter().enumerate() {
        match valid_redirect_uri(uri) {
            Ok(()) if !out.contains(uri) => out.push(uri.clone()),
            Ok(()) => {}
            Err(message) => errors.push(FieldError::new(format!("{field}[{i}]"), message)),
        }
    }
    out
}

fn validate_scopes(scopes: Option<&[String]>, errors: &mut Vec<FieldError>) -> Vec<String> {
    let Some(scopes) = scopes else { return SCOPES.iter().map(|s| s.to_string()).collect() };
    for (i, s) in scopes.iter().enumerate() {
        if !SCOPES.contains(&s.as_str()) {
            errors.push(FieldError::new(format!("scopes[{i}]"), "must be one of openid, profile, email, phone"));
        }
    }
    if !scopes.iter().any(|s| s == "openid") {
        errors.push(FieldError::new("scopes", "must include openid"));
    }
    // Kept in the order of SCOPES, once each.
    SCOPES.iter().filter(|s| scopes.iter().any(|t| t == *s)).map(|s| s.to_string()).collect()
}

fn validate_alg(alg: Option<&str>, errors: &mut Vec<FieldError>) -> IdTokenAlg {
    match alg.map(IdTokenAlg::parse) {
        None => IdTokenAlg::default(),
        Some(Ok(alg)) => alg,
        Some(Err(e)) => {
            if let Error::Validation(mut fields) = e {
                errors.append(&mut fields);
            }
            IdTokenAlg::default()
        }
    }
}

fn done(errors: Vec<FieldError>) -> Result<()> {
    if errors.is_empty() { Ok(()) } else { Err(Error::Validation(errors)) }
}

impl Services {
    pub async fn list_apps(&self, caller: &Caller) -> Result<Vec<App>> {
        caller.require_settings_rights()?;
        self.store.list_apps(&caller.enterprise_id).await
    }

    pub async fn get_app(&self, caller: &Caller, id: &str) -> Result<App> {
        caller.require_settings_rights()?;
        let id = AppId::parse(id).ok_or(Error::NotFound("app"))?;
        self.store.get_app(&caller.enterprise_id, &id).await?.ok_or(Error::NotFound("app"))
    }

    pub async fn create_app(&self, caller: &Caller, input: CreateApp) -> Result<AppWithSecret> {
        caller.require_settings_rights()?;
        let mut errors = Vec::new();
        let name = validate_name(&input.name, &mut errors);
        let client_type = match input.client_type.as_deref() {
            None => ClientType::Confidential,
            Some(t) => ClientType::parse(t).unwrap_or_else(|e| {
                if let Error::Validation(mut f) = e {
                    errors.append(&mut f);
                }
                ClientType::Confidential
            }),
        };
        let redirect_uris = validate_uris("redirect_uris", &input.redirect_uris, true, &mut errors);
        let post_logout =
            validate_uris("post_logout_redirect_uris", &input.post_logout_redirect_uris, false, &mut errors);
        let scopes = validate_scopes(input.scopes.as_deref(), &mut errors);
        let id_token_alg = validate_alg(input.id_token_signed_response_alg.as_deref(), &mut errors);
        done(errors)?;
        let now = self.clock.now();
        let app = App {
            id: AppId::generate(),
            enterprise_id: caller.enterprise_id.clone(),
            name,
            client_type,
            redirect_uris,
            post_logout_redirect_uris: post_logout,
            scopes,
            id_token_alg,
            created_at: now,
            updated_at: now,
        };
        let secret = (client_type == ClientType::Confidential).then(|| Secret::generate(CLIENT_SECRET_PREFIX));
        let audit = caller.entry(
            now,
            "app.create",
            Some(app.id.as_str()),
            json!({"name": app.name, "client_type": client_type.as_str(), "redirect_uris": app.redirect_uris}),
        );
        self.store.insert_app(&app, secret.as_ref().map(Secret::hash).as_ref(), &audit).await?;
        Ok(AppWithSecret { app, secret })
    }

    pub async fn update_app(&self, caller: &Caller, id: &str, input: UpdateApp) -> Result<App> {
        let mut app = self.get_app(caller, id).await?;
        let mut errors = Vec::new();
        if let Some(name) = &input.name {
            app.name = validate_name(name, &mut errors);
        }
        if let Some(uris) = &input.redirect_uris {
            app.redirect_uris = validate_uris("redirect_uris", uris, true, &mut errors);
        }
        if let Some(uris) = &input.post_logout_redirect_uris {
            app.post_logout_redirect_uris = validate_uris("post_logout_redirect_uris", uris, false, &mut errors);
        }
        if let Some(scopes) = &input.scopes {
            app.scopes = validate_scopes(Some(scopes), &mut errors);
        }
        if let Some(alg) = &input.id_token_signed_response_alg {
            app.id_token_alg = validate_alg(Some(alg), &mut errors);
        }
        done(errors)?;
        app.updated_at = self.clock.now();
        let audit = caller.entry(
            app.updated_at,
            "app.update",
            Some(app.id.as_str()),
            json!({"name": app.name, "redirect_uris": app.redirect_uris, "scopes": app.scopes,
                   "id_token_signed_response_alg": app.id_token_alg.as_str()}),
        );
        if self.store.update_app(&app, &audit).await? { Ok(app) } else { Err(Error::NotFound("app")) }
    }

    /// `POST /apps/{id}/secret`: a new secret for a confidential app; the old one stops working.
    pub async fn rotate_app_secret(&self, caller: &Caller, id: &str) -> Result<AppWithSecret> {
        let app = self.get_app(caller, id).await?;
        if app.client_type != ClientType::Confidential {
            return Err(Error::Conflict("a public app has no secret".into()));
        }
        let secret = Secret::generate(CLIENT_SECRET_PREFIX);
        let audit = caller.entry(self.clock.now(), "app.secret_rotate", Some(app.id.as_str()), json!({}));
        if !self.store.set_app_secret(&caller.enterprise_id, &app.id, &secret.hash(), &audit).await? {
            return Err(Error::NotFound("app"));
        }
        Ok(AppWithSecret { app, secret: Some(secret) })
    }

    /// `DELETE /apps/{id}`: the app's tokens stop working with it.
    pub async fn delete_app(&self, caller: &Caller, id: &str) -> Result<()> {
        caller.require_settings_rights()?;
        let id = AppId::parse(id).ok_or(Error::NotFound("app"))?;
        let audit = caller.entry(self.clock.now(), "app.delete", Some(id.as_str()), json!({}));
        if self.store.delete_app(&caller.enterprise_id, &id, &audit).await? {
            Ok(())
        } else {
            Err(Error::NotFound("app"))
        }
    }

    /// Authenticates a client at the token, introspection and revocation endpoints: a
    /// confidential app by its secret (compared in constant time), a public app by its id alone.
    pub async fn authenticate_client(&self, auth: &ClientAuth) -> std::result::Result<App, OAuthError> {
        let id = auth.client_id.as_deref().and_then(AppId::parse).ok_or_else(OAuthError::invalid_client)?;
        let (app, hash) = self.store.find_client(&id).await?.ok_or_else(OAuthError::invalid_client)?;
        match (app.client_type, hash, auth.client_secret.as_deref()) {
            (ClientType::Confidential, Some(stored), Some(presented)) if stored.matches(&SecretHash::of(presented)) => {
                Ok(app)
            }
            (ClientType::Public, _, None) => Ok(app),
            _ => Err(OAuthError::invalid_client()),
        }
    }
}

/// Client credentials as presented: HTTP Basic or form fields (the HTTP layer reads them).
#[derive(Debug, Clone, Default)]
pub struct ClientAuth {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::valid_redirect_uri;

    #[test]
    fn redirect_uris_follow_the_security_bcp() {
        for ok in [
            "https://app.example.com/callback",
            "https://app.example.com/cb?tenant=1",
            "http://localhost:3000/cb",
            "http://127.0.0.1:8765/cb",
            "http://[::1]/cb",
            "com.example.app:/oauth",
        ] {
            assert_eq!(valid_redirect_uri(ok), Ok(()), "{ok}");
        }
        for bad in [
            "/relative",
            "http://app.example.com/cb",
            "https://app.example.com/cb#frag",
            "javascript:alert(1)",
            "https://user:pw@app.example.com/cb",
            "ftp://example.com/x",
        ] {
            assert!(valid_redirect_uri(bad).is_err(), "{bad}");
        }
    }
}
