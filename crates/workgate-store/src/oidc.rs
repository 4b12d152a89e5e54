//! The `OidcStore` half: apps, signing keys, authorization codes, grants and app tokens, for
//! both databases. Redeeming a code and rotating a refresh token are each one conditional update
//! (`… WHERE spent IS NULL`), so of concurrent requests with one code or one token exactly one
//! succeeds; the others find it spent, which revokes the grant (a replay).

use crate::SqlStore;
use crate::cache::read_through;
use crate::directory::{audit_if_changed, insert_audit};
use crate::login::{Revocable, revoke_one};
use crate::rows::{DomainRow, MEMBER_AND_ENTERPRISE};
use crate::sql::{Conn, Prefixed, sql};
use async_trait::async_trait;
use workgate_domain::Result;
use workgate_domain::clock::Timestamp;
use workgate_domain::ids::{AppId, EnterpriseId, GrantId, MemberId, SessionId};
use workgate_domain::model::AuditEntry;
use workgate_domain::oidc::apps::IdTokenAlg;
use workgate_domain::oidc::{
    App, AppToken, AppTokenHolder, AuthorizationCode, ClientType, EcKey, NewGrant, NewTokens, OidcStore, Redeemed,
    Refreshed, SigningKey, TokenKind,
};
use workgate_domain::secret::SecretHash;
use workgate_domain::sessions::EndReason;
use workgate_domain::values::MemberStatus;

const APP_COLUMNS: &str = "id, enterprise_id, name, client_type, secret_hash, redirect_uris, post_logout_redirect_uris, scopes, created_at, \
     updated_at, id_token_alg";

const CODE_COLUMNS: &str = "code_hash, enterprise_id, app_id, member_id, session_id, redirect_uri, scope, nonce, \
     code_challenge, auth_time, created_at, expires_at, used_at";

/// A token with its grant and its member's status: everything that decides whether it is active.
const TOKEN_RECORD: &str = "SELECT t.kind, t.created_at AS issued_at, t.expires_at, t.spent_at, g.id AS grant_id, \
     g.enterprise_id, g.app_id, g.member_id, g.scope, g.auth_time, g.revoked_at, m.status AS member_status \
     FROM oidc_tokens t JOIN oidc_grants g ON g.id = t.grant_id \
     JOIN members m ON m.id = g.member_id AND m.enterprise_id = g.enterprise_id";

fn json_list(row: &impl DomainRow, column: &str) -> Result<Vec<String>> {
    let text: String = row.get(column)?;
    serde_json::from_str(&text).map_err(|e| workgate_domain::Error::Internal(format!("column {column}: {e}")))
}

fn app(row: &impl DomainRow) -> Result<App> {
    let client_type: String = row.get("client_type")?;
    Ok(App {
        id: AppId::from_trusted(row.get("id")?),
        enterprise_id: EnterpriseId::from_trusted(row.get("enterprise_id")?),
        name: row.get("name")?,
        client_type: ClientType::parse(&client_type)?,
        redirect_uris: json_list(row, "redirect_uris")?,
        post_logout_redirect_uris: json_list(row, "post_logout_redirect_uris")?,
        scopes: json_list(row, "scopes")?,
        created_at: Timestamp(row.get("created_at")?),
        updated_at: Timestamp(row.get("updated_at")?),
        id_token_alg: IdTokenAlg::parse(&row.get::<String>("id_token_alg")?)?,
    })
}

fn signing_key(row: &impl DomainRow) -> Result<SigningKey> {
    let jwk: String = row.get("public_jwk")?;
    let json = |text: &str, column: &str| {
        serde_json::from_str(text).map_err(|e| workgate_domain::Error::Internal(format!("column {column}: {e}")))
    };
    let ec = match (row.get::<Option<String>>("ec_private")?, row.get::<Option<String>>("ec_public_jwk")?) {
        (Some(private), Some(public)) => Some(EcKey { private, public_jwk: json(&public, "ec_public_jwk")? }),
        _ => None,
    };
    Ok(SigningKey {
        ec,
        generation: row.get("generation")?,
        kid: row.get("kid")?,
        alg: row.get("alg")?,
        private_pem: row.get("private_pem")?,
        public_jwk: serde_json::from_str(&jwk)
            .map_err(|e| workgate_domain::Error::Internal(format!("column public_jwk: {e}")))?,
        created_at: Timestamp(row.get("created_at")?),
        signs_from: Timestamp(row.get("signs_from")?),
    })
}

fn code(row: &impl DomainRow) -> Result<AuthorizationCode> {
    Ok(AuthorizationCode {
        code_hash: SecretHash::from_trusted(row.get("code_hash")?),
        enterprise_id: EnterpriseId::from_trusted(row.get("enterprise_id")?),
        app_id: AppId::from_trusted(row.get("app_id")?),
        member_id: MemberId::from_trusted(row.get("member_id")?),
        session_id: SessionId::from_trusted(row.get("session_id")?),
        redirect_uri: row.get("redirect_uri")?,
        scope: row.get("scope")?,
        nonce: row.get("nonce")?,
        code_challenge: row.get("code_challenge")?,
        auth_time: Timestamp(row.get("auth_time")?),
        created_at: Timestamp(row.get("created_at")?),
        expires_at: Timestamp(row.get("expires_at")?),
        used: row.get::<Option<i64>>("used_at")?.is_some(),
    })
}

fn app_token(row: &impl DomainRow) -> Result<AppToken> {
    let kind: String = row.get("kind")?;
    let status: String = row.get("member_status")?;
    Ok(AppToken {
        kind: TokenKind::parse(&kind)
            .ok_or_else(|| workgate_domain::Error::Internal(format!("unknown token kind {kind}")))?,
        grant_id: GrantId::from_trusted(row.get("grant_id")?),
        enterprise_id: EnterpriseId::from_trusted(row.get("enterprise_id")?),
        app_id: AppId::from_trusted(row.get("app_id")?),
        member_id: MemberId::from_trusted(row.get("member_id")?),
        scope: row.get("scope")?,
        auth_time: Timestamp(row.get("auth_time")?),
        issued_at: Timestamp(row.get("issued_at")?),
        expires_at: Timestamp(row.get("expires_at")?),
        spent: row.get::<Option<i64>>("spent_at")?.is_some(),
        grant_revoked: row.get::<Option<i64>>("revoked_at")?.is_some(),
        member_status: MemberStatus::parse(&status)?,
    })
}

fn to_json(list: &[String]) -> String {
    serde_json::Value::from(list.to_vec()).to_string()
}

async fn insert_tokens(c: &mut Conn<'_>, grant: &GrantId, t: &NewTokens) -> Result<()> {
    c.execute(
        sql("INSERT INTO oidc_tokens (token_hash, grant_id, kind, created_at, expires_at) \
             VALUES ($1, $2, 'access', $3, $4), ($5, $2, 'refresh', $3, $6)")
        .bind(t.access_hash.as_str())
        .bind(grant.as_str())
        .bind(t.now.millis())
        .bind(t.access_expires_at.millis())
        .bind(t.refresh_hash.as_str())
        .bind(t.refresh_expires_at.millis()),
    )
    .await?;
    Ok(())
}

#[async_trait]
impl OidcStore for SqlStore {
    async fn insert_app(&self, app: &App, secret_hash: Option<&SecretHash>, audit: &AuditEntry) -> Result<()> {
        let (app, audit, secret_hash) = (app.clone(), audit.clone(), secret_hash.cloned());
        self.write(async move |c| {
            let (app, audit, secret_hash) = (&app, &audit, secret_hash.as_ref());
            c.execute(
                sql(format!("INSERT INTO apps ({APP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"))
                    .bind(app.id.as_str())
                    .bind(app.enterprise_id.as_str())
                    .bind(&app.name)
                    .bind(app.client_type.as_str())
                    .bind(secret_hash.map(SecretHash::as_str))
                    .bind(to_json(&app.redirect_uris))
                    .bind(to_json(&app.post_logout_redirect_uris))
                    .bind(to_json(&app.scopes))
                    .bind(app.created_at.millis())
                    .bind(app.updated_at.millis())
                    .bind(app.id_token_alg.as_str()),
            )
            .await?;
            insert_audit(c, std::slice::from_ref(audit)).await
        })
        .await
    }

    async fn update_app(&self, app: &App, audit: &AuditEntry) -> Result<bool> {
        let (app, audit) = (app.clone(), audit.clone());
        self.write(async move |c| {
            let (app, audit) = (&app, &audit);
            let done = c
                .execute(
                    sql("UPDATE apps SET name = $1, redirect_uris = $2, post_logout_redirect_uris = $3, scopes = $4, \
                         updated_at = $5, id_token_alg = $6 WHERE enterprise_id = $7 AND id = $8")
                    .bind(&app.name)
                    .bind(to_json(&app.redirect_uris))
                    .bind(to_json(&app.post_logout_redirect_uris))
                    .bind(to_json(&app.scopes))
                    .bind(app.updated_at.millis())
                    .bind(app.id_token_alg.as_str())
                    .bind(app.enterprise_id.as_str())
                    .bind(app.id.as_str()),
                )
                .await?;
            audit_if_changed(c, done, audit).await
        })
        .await
    }

    async fn set_app_secret(
        &self,
        enterprise: &EnterpriseId,
        id: &AppId,
        secret_hash: &SecretHash,
        audit: &AuditEntry,
    ) -> Result<bool> {
        let (audit, enterprise, id, secret_hash) = (audit.clone(), enterprise.clone(), id.clone(), secret_hash.clone());
        self.write(async move |c| {
            let (audit, enterprise, id, secret_hash) = (&audit, &enterprise, &id, &secret_hash);
            let done = c
                .execute(
                    sql("UPDATE apps SET secret_hash = $1, updated_at = $2 WHERE enterprise_id = $3 AND id = $4 \
                         AND client_type = 'confidential'")
                    .bind(secret_hash.as_str())
                    .bind(audit.at.millis())
                    .bind(enterprise.as_str())
                    .bind(id.as_str()),
                )
                .await?;
            audit_if_changed(c, done, audit).await
        })
        .await
    }

    async fn delete_app(&self, enterprise: &EnterpriseId, id: &AppId, audit: &AuditEntry) -> Result<bool> {
        let (audit, enterprise, id) = (audit.clone(), enterprise.clone(), id.clone());
        self.write(async move |c| {
            let (audit, enterprise, id) = (&audit, &enterprise, &id);
            // Children first, so neither database depends on cascades being switched on.
            let scoped = "app_id IN (SELECT id FROM apps WHERE enterprise_id = $1 AND id = $2)";
            c.execute(
                sql(format!("DELETE FROM oidc_tokens WHERE grant_id IN (SELECT id FROM oidc_grants WHERE {scoped})"))
                    .bind(enterprise.as_str())
                    .bind(id.as_str()),
            )
            .await?;
            for table in ["oidc_grants", "oidc_codes"] {
                c.execute(
                    sql(format!("DELETE FROM {table} WHERE {scoped}")).bind(enterprise.as_str()).bind(id.as_str()),
                )
                .await?;
            }
            let done = c
                .execute(
                    sql("DELETE FROM apps WHERE enterprise_id = $1 AND id = $2")
                        .bind(enterprise.as_str())
                        .bind(id.as_str()),
                )
                .await?;
            audit_if_changed(c, done, audit).await
        })
        .await
    }

    async fn get_app(&self, enterprise: &EnterpriseId, id: &AppId) -> Result<Option<App>> {
        let row = self
            .reader()
            .fetch_optional(
                sql(format!("SELECT {APP_COLUMNS} FROM apps WHERE enterprise_id = $1 AND id = $2"))
                    .bind(enterprise.as_str())
                    .bind(id.as_str()),
            )
            .await?;
        row.map(|r| app(&r)).transpose()
    }

    async fn find_client(&self, id: &AppId) -> Result<Option<(App, Option<SecretHash>)>> {
        let load = async {
            let row = self
                .reader()
                .fetch_optional(sql(format!("SELECT {APP_COLUMNS} FROM apps WHERE id = $1")).bind(id.as_str()))
                .await?;
            row.map(|r| Ok((app(&r)?, r.get::<Option<String>>("secret_hash")?.map(SecretHash::from_trusted))))
                .transpose()
        };
        read_through(&self.cache, &self.cache.clients, id.as_str().to_owned(), load).await
    }

    async fn list_apps(&self, enterprise: &EnterpriseId) -> Result<Vec<App>> {
        let rows = self
            .reader()
            .fetch_all(
                sql(format!("SELECT {APP_COLUMNS} FROM apps WHERE enterprise_id = $1 ORDER BY id"))
                    .bind(enterprise.as_str()),
            )
            .await?;
        rows.iter().map(app).collect()
    }

    async fn signing_keys(&self, limit: u32) -> Result<Vec<SigningKey>> {
        // Every ID token reads them: kept in the cache until a key is written.
        let load = async {
            let rows = self
                .reader()
                .fetch_all(
                    sql("SELECT generation, kid, alg, private_pem, public_jwk, created_at, signs_from, ec_private, \
                         ec_public_jwk FROM signing_keys ORDER BY generation DESC LIMIT $1")
                    .bind(i64::from(limit)),
                )
                .await?;
            rows.iter().map(signing_key).collect::<Result<Vec<_>>>().map(Some)
        };
        Ok(read_through(&self.cache, &self.cache.signing_keys, limit, load).await?.unwrap_or_default())
    }

    async fn insert_signing_key(&self, key: &SigningKey) -> Result<bool> {
        let ec_public = key.ec.as_ref().map(|ec| ec.public_jwk.to_string());
        let key = key.clone();
        self.write(async move |c| {
            let key = &key;
            let done = c
                .execute(
                    sql("INSERT INTO signing_keys (generation, kid, alg, private_pem, public_jwk, created_at, \
                         signs_from, ec_private, ec_public_jwk) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                         ON CONFLICT (generation) DO NOTHING")
                    .bind(key.generation)
                    .bind(&key.kid)
                    .bind(&key.alg)
                    .bind(&key.private_pem)
                    .bind(key.public_jwk.to_string())
                    .bind(key.created_at.millis())
                    .bind(key.signs_from.millis())
                    .bind(key.ec.as_ref().map(|ec| ec.private.as_str()))
                    .bind(ec_public.as_deref()),
                )
                .await?;
            Ok(done == 1)
        })
        .await
    }

    async fn add_ec_key(&self, generation: i64, ec: &EcKey) -> Result<bool> {
        let ec = ec.clone();
        self.write(async move |c| {
            let ec = &ec;
            let done = c
                .execute(
                    sql("UPDATE signing_keys SET ec_private = $1, ec_public_jwk = $2 \
                         WHERE generation = $3 AND ec_private IS NULL")
                    .bind(ec.private.as_str())
                    .bind(ec.public_jwk.to_string())
                    .bind(generation),
                )
                .await?;
            Ok(done == 1)
        })
        .await
    }

    async fn insert_authorization_code(&self, code: &AuthorizationCode) -> Result<()> {
        let code = code.clone();
        self.write(async move |c| {
            let code = &code;
            c.execute(
                sql(format!(
                    "INSERT INTO oidc_codes ({CODE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL)"
                ))
                .bind(code.code_hash.as_str())
                .bind(code.enterprise_id.as_str())
                .bind(code.app_id.as_str())
                .bind(code.member_id.as_str())
                .bind(code.session_id.as_str())
                .bind(&code.redirect_uri)
                .bind(&code.scope)
                .bind(code.nonce.as_deref())
                .bind(&code.code_challenge)
                .bind(code.auth_time.millis())
                .bind(code.created_at.millis())
                .bind(code.expires_at.millis()),
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn get_authorization_code(&self, code_hash: &SecretHash) -> Result<Option<AuthorizationCode>> {
        let row = self
            .reader()
            .fetch_optional(
                sql(format!("SELECT {CODE_COLUMNS} FROM oidc_codes WHERE code_hash = $1")).bind(code_hash.as_str()),
            )
            .await?;
        row.map(|r| code(&r)).transpose()
    }

    async fn redeem_authorization_code(&self, code_hash: &SecretHash, grant: &NewGrant) -> Result<Redeemed> {
        let (code_hash, grant) = (code_hash.clone(), grant.clone());
        self.write(async move |c| {
            let (code_hash, grant) = (&code_hash, &grant);
            let now = grant.tokens.now;
            let spent = c
                .execute(
                    sql("UPDATE oidc_codes SET used_at = $1, grant_id = $2 WHERE code_hash = $3 AND used_at IS NULL \
                         AND expires_at > $1 AND EXISTS (SELECT 1 FROM members m WHERE m.id = oidc_codes.member_id \
                         AND m.enterprise_id = oidc_codes.enterprise_id AND m.status = 'active')")
                    .bind(now.millis())
                    .bind(grant.id.as_str())
                    .bind(code_hash.as_str()),
                )
                .await?;
            if spent == 1 {
                c.execute(
                    sql(
                        "INSERT INTO oidc_grants (id, enterprise_id, app_id, member_id, scope, auth_time, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(grant.id.as_str())
                    .bind(grant.enterprise_id.as_str())
                    .bind(grant.app_id.as_str())
                    .bind(grant.member_id.as_str())
                    .bind(&grant.scope)
                    .bind(grant.auth_time.millis())
                    .bind(now.millis()),
                )
                .await?;
                insert_tokens(c, &grant.id, &grant.tokens).await?;
                return Ok(Redeemed::Granted);
            }
            let earlier: Option<Option<String>> = c
                .fetch_optional(
                    sql("SELECT grant_id FROM oidc_codes WHERE code_hash = $1 AND used_at IS NOT NULL")
                        .bind(code_hash.as_str()),
                )
                .await?
                .map(|row| row.get("grant_id"))
                .transpose()?;
            match earlier {
                Some(Some(earlier_grant)) => {
                    revoke_one(c, Revocable::Grants, &earlier_grant, EndReason::CodeReplayed, now).await?;
                    Ok(Redeemed::Replayed)
                }
                _ => Ok(Redeemed::Refused),
            }
        })
        .await
    }

    async fn find_app_token(&self, token_hash: &SecretHash) -> Result<Option<AppToken>> {
        let load = async {
            let row = self
                .reader()
                .fetch_optional(sql(format!("{TOKEN_RECORD} WHERE t.token_hash = $1")).bind(token_hash.as_str()))
                .await?;
            row.map(|r| app_token(&r)).transpose()
        };
        read_through(&self.cache, &self.cache.app_tokens, token_hash.as_str().to_owned(), load).await
    }

    async fn app_token_holder(&self, token_hash: &SecretHash) -> Result<Option<AppTokenHolder>> {
        // Userinfo: the token, its member and enterprise in one query.
        static QUERY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            let (columns, tables) = TOKEN_RECORD.split_once(" FROM ").unwrap_or((TOKEN_RECORD, ""));
            format!(
                "{columns}, {} FROM {tables} JOIN enterprises e ON e.id = g.enterprise_id WHERE t.token_hash = $1",
                *MEMBER_AND_ENTERPRISE
            )
        });
        let load = async {
            let row = self.reader().fetch_optional(sql(QUERY.as_str()).bind(token_hash.as_str())).await?;
            let Some(row) = row else { return Ok(None) };
            Ok(Some(AppTokenHolder {
                token: app_token(&row)?,
                member: Prefixed(&row, "m_").member()?,
                enterprise: Prefixed(&row, "e_").enterprise()?,
            }))
        };
        read_through(&self.cache, &self.cache.holders, token_hash.as_str().to_owned(), load).await
    }

    async fn rotate_app_refresh(
        &self,
        presented: &SecretHash,
        app_id: &AppId,
        tokens: &NewTokens,
    ) -> Result<Refreshed> {
        let (app_id, presented, tokens) = (app_id.clone(), presented.clone(), tokens.clone());
        self.write(async move |c| {
            let (app_id, presented, tokens) = (&app_id, &presented, &tokens);
            let now = tokens.now.millis();
            // One conditional update: of concurrent refreshes with one token, one spends it.
            let grant: Option<String> = c
                .optional_value(
                    sql("UPDATE oidc_tokens SET spent_at = $1 WHERE token_hash = $2 AND kind = 'refresh' \
                         AND spent_at IS NULL AND expires_at > $1 AND EXISTS (SELECT 1 FROM oidc_grants g \
                         JOIN members m ON m.id = g.member_id AND m.enterprise_id = g.enterprise_id \
                         WHERE g.id = oidc_tokens.grant_id AND g.app_id = $3 AND g.revoked_at IS NULL \
                         AND m.status = 'active') RETURNING grant_id")
                    .bind(now)
                    .bind(presented.as_str())
                    .bind(app_id.as_str()),
                )
                .await?;
            if let Some(grant) = grant {
                let grant = GrantId::from_trusted(grant);
                insert_tokens(c, &grant, tokens).await?;
                let row = c
                    .fetch_one(
                        sql(format!("{TOKEN_RECORD} WHERE t.token_hash = $1")).bind(tokens.refresh_hash.as_str()),
                    )
                    .await?;
                return Ok(Refreshed::Rotated { grant: app_token(&row)? });
            }
            let spent: Option<String> = c
                .optional_value(
                    sql("SELECT t.grant_id FROM oidc_tokens t JOIN oidc_grants g ON g.id = t.grant_id \
                         WHERE t.token_hash = $1 AND t.kind = 'refresh' AND t.spent_at IS NOT NULL AND g.app_id = $2")
                    .bind(presented.as_str())
                    .bind(app_id.as_str()),
                )
                .await?;
            match spent {
                Some(grant) => {
                    revoke_one(c, Revocable::Grants, &grant, EndReason::RefreshReplayed, tokens.now).await?;
                    Ok(Refreshed::Replayed)
                }
                None => Ok(Refreshed::Refused),
            }
        })
        .await
    }

    async fn revoke_grant(&self, grant: &GrantId, reason: EndReason, now: Timestamp) -> Result<()> {
        let grant = grant.clone();
        self.write(async move |c| revoke_one(c, Revocable::Grants, grant.as_str(), reason, now).await).await
    }

    async fn revoke_app_access_token(&self, token_hash: &SecretHash, now: Timestamp) -> Result<()> {
        let token_hash = token_hash.clone();
        self.write(async move |c| {
            let token_hash = &token_hash;
            c.execute(
                sql("UPDATE oidc_tokens SET spent_at = $1 WHERE token_hash = $2 AND kind = 'access' AND spent_at IS NULL")
                    .bind(now.millis())
                    .bind(token_hash.as_str()),
            )
            .await?;
            Ok(())
        })
        .await
    }
}
