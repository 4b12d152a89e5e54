//! Sessions and devices: access-token checks, refresh rotation, revocation, device trust and approval.

use crate::SqlStore;
use crate::cache::read_through;
use crate::directory::audit_if_changed;
use crate::rows::{DEVICE_COLUMNS, DomainRow, LoginRow, MEMBER_AND_ENTERPRISE};
use crate::sql::{Conn, Prefixed, sql};
use async_trait::async_trait;
use workgate_domain::Result;
use workgate_domain::clock::Timestamp;
use workgate_domain::ids::{DeviceId, EnterpriseId, MemberId, SessionId};
use workgate_domain::model::AuditEntry;
use workgate_domain::secret::SecretHash;
use workgate_domain::sessions::{
    AccessRecord, Device, EndReason, RefreshContext, RevokedBy, Rotation, RotationOutcome,
};
use workgate_domain::store::SessionStore;

pub(super) const SESSION_RECORD: &str = "SELECT s.id, s.enterprise_id, s.member_id, s.device_id, s.access_expires_at, s.revoked_at, \
     s.created_at, m.status AS member_status FROM sessions s JOIN members m ON m.id = s.member_id AND m.enterprise_id = s.enterprise_id";

/// What a revocation ends: device sessions, or app grants (whose tokens are judged by them). Both
/// keep when and why they ended.
#[derive(Clone, Copy)]
pub(crate) enum Revocable {
    Sessions,
    Grants,
}

impl Revocable {
    fn table(self) -> &'static str {
        match self {
            Revocable::Sessions => "sessions",
            Revocable::Grants => "oidc_grants",
        }
    }
}

/// Ends one session or grant, unless it has ended already.
pub(crate) async fn revoke_one(
    c: &mut Conn<'_>,
    revocable: Revocable,
    id: &str,
    reason: EndReason,
    now: Timestamp,
) -> Result<()> {
    let text = format!(
        "UPDATE {} SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL",
        revocable.table()
    );
    c.execute(sql(text).bind(now.millis()).bind(reason.as_str()).bind(id)).await?;
    Ok(())
}

/// Ends every session and device trust of a member, and (when departing) their invitations.
pub(crate) async fn revoke_member_access(
    c: &mut Conn<'_>,
    enterprise: &EnterpriseId,
    member: &MemberId,
    reason: EndReason,
    cancel_invitations: bool,
    now: Timestamp,
) -> Result<()> {
    for revocable in [Revocable::Sessions, Revocable::Grants] {
        c.execute(
            sql(format!(
                "UPDATE {} SET revoked_at = $1, revoked_reason = $2 \
                 WHERE enterprise_id = $3 AND member_id = $4 AND revoked_at IS NULL",
                revocable.table()
            ))
            .bind(now.millis())
            .bind(reason.as_str())
            .bind(enterprise.as_str())
            .bind(member.as_str()),
        )
        .await?;
    }
    c.execute(
        sql("UPDATE devices SET state = 'revoked' WHERE enterprise_id = $1 AND member_id = $2")
            .bind(enterprise.as_str())
            .bind(member.as_str()),
    )
    .await?;
    if cancel_invitations {
        c.execute(
            sql("UPDATE invitations SET state = 'cancelled' WHERE enterprise_id = $1 AND member_id = $2 \
                 AND state = 'pending'")
            .bind(enterprise.as_str())
            .bind(member.as_str()),
        )
        .await?;
    }
    Ok(())
}

#[async_trait]
impl SessionStore for SqlStore {
    async fn session_by_access(&self, access_hash: &SecretHash) -> Result<Option<AccessRecord>> {
        // Every authenticated request: the session, its member and enterprise in one query.
        static QUERY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "SELECT s.id, s.enterprise_id, s.member_id, s.device_id, s.access_expires_at, s.revoked_at, \
                 s.created_at, m.status AS member_status, {} FROM sessions s \
                 JOIN members m ON m.id = s.member_id AND m.enterprise_id = s.enterprise_id \
                 JOIN enterprises e ON e.id = s.enterprise_id WHERE s.access_hash = $1",
                *MEMBER_AND_ENTERPRISE
            )
        });
        let load = async {
            let row = self.reader().fetch_optional(sql(QUERY.as_str()).bind(access_hash.as_str())).await?;
            let Some(row) = row else { return Ok(None) };
            Ok(Some(AccessRecord {
                session: row.session_record()?,
                member: Prefixed(&row, "m_").member()?,
                enterprise: Prefixed(&row, "e_").enterprise()?,
            }))
        };
        read_through(&self.cache, &self.cache.access, access_hash.as_str().to_owned(), load).await
    }

    async fn rotate_refresh(&self, r: &Rotation) -> Result<RotationOutcome> {
        let r = r.clone();
        self.write(async move |c| {
            let r = &r;
            // One conditional update: of concurrent refreshes with one token, one rotates; the others
            // wait for it, find the token gone, and then find it among the used ones below.
            let rotated: Option<String> = c
                .optional_value(
                    sql("UPDATE sessions SET access_hash = $1, access_expires_at = $2, refresh_hash = $3, \
                         refreshed_at = $4 WHERE refresh_hash = $5 AND revoked_at IS NULL AND refreshed_at > $6 \
                         AND EXISTS (SELECT 1 FROM members m WHERE m.id = sessions.member_id AND m.status = 'active') \
                         RETURNING id")
                    .bind(r.access_hash.as_str())
                    .bind(r.access_expires_at.millis())
                    .bind(r.refresh_hash.as_str())
                    .bind(r.now.millis())
                    .bind(r.presented.as_str())
                    .bind(r.refreshed_after.millis()),
                )
                .await?;
            if let Some(id) = rotated {
                c.execute(
                    sql("INSERT INTO used_refresh_tokens (token_hash, session_id, used_at) VALUES ($1, $2, $3)")
                        .bind(r.presented.as_str())
                        .bind(&id)
                        .bind(r.now.millis()),
                )
                .await?;
                c.execute(
                    sql("UPDATE devices SET last_seen_at = $1, app_version = COALESCE($3, app_version) \
                         WHERE id = (SELECT device_id FROM sessions WHERE id = $2)")
                    .bind(r.now.millis())
                    .bind(&id)
                    .bind(r.app_version.as_deref()),
                )
                .await?;
                let session =
                    c.fetch_one(sql(format!("{SESSION_RECORD} WHERE s.id = $1")).bind(&id)).await?.session_record()?;
                return Ok(RotationOutcome::Rotated { session });
            }
            let reused: Option<String> = c
                .optional_value(
                    sql("SELECT session_id FROM used_refresh_tokens WHERE token_hash = $1").bind(r.presented.as_str()),
                )
                .await?;
            let Some(session_id) = reused else { return Ok(RotationOutcome::Refused) };
            c.execute(
                sql("UPDATE sessions SET revoked_at = $1, revoked_reason = 'refresh_reuse' \
                     WHERE id = $2 AND revoked_at IS NULL")
                .bind(r.now.millis())
                .bind(&session_id),
            )
            .await?;
            let session = c
                .fetch_one(sql(format!("{SESSION_RECORD} WHERE s.id = $1")).bind(&session_id))
                .await?
                .session_record()?;
            Ok(RotationOutcome::Reused { session })
        })
        .await
    }

    async fn revoke_session(&self, id: &SessionId, reason: EndReason, now: Timestamp) -> Result<()> {
        let id = id.clone();
        self.write(async move |c| revoke_one(c, Revocable::Sessions, id.as_str(), reason, now).await).await
    }

    async fn get_device(&self, id: &DeviceId) -> Result<Option<Device>> {
        let row = self
            .reader()
            .fetch_optional(sql(format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1")).bind(id.as_str()))
            .await?;
        row.map(|r| r.device()).transpose()
    }

    async fn list_devices(&self, enterprise: &EnterpriseId, member: &MemberId) -> Result<Vec<Device>> {
        let rows = self
            .reader()
            .fetch_all(
                sql(format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices WHERE enterprise_id = $1 AND member_id = $2 \
                     ORDER BY first_seen_at, id"
                ))
                .bind(enterprise.as_str())
                .bind(member.as_str()),
            )
            .await?;
        rows.iter().map(|r| r.device()).collect()
    }

    async fn revoke_device(
        &self,
        enterprise: &EnterpriseId,
        member: &MemberId,
        device: &DeviceId,
        by: RevokedBy,
        now: Timestamp,
    ) -> Result<bool> {
        let (device, enterprise, member) = (device.clone(), enterprise.clone(), member.clone());
        self.write(async move |c| {
            let (device, enterprise, member) = (&device, &enterprise, &member);
            // A device never changes hands, so this check needs no lock; sessions are written before
            // the device, in the order a refresh writes them.
            let found: Option<String> = c
                .optional_value(
                    sql("SELECT id FROM devices WHERE enterprise_id = $1 AND member_id = $2 AND id = $3")
                        .bind(enterprise.as_str())
                        .bind(member.as_str())
                        .bind(device.as_str()),
                )
                .await?;
            if found.is_none() {
                return Ok(false);
            }
            c.execute(
                sql("UPDATE sessions SET revoked_at = $1, revoked_reason = $2 WHERE device_id = $3 \
                     AND enterprise_id = $4 AND revoked_at IS NULL")
                .bind(now.millis())
                .bind(EndReason::DeviceRevoked(by).as_str())
                .bind(device.as_str())
                .bind(enterprise.as_str()),
            )
            .await?;
            c.execute(
                sql("UPDATE devices SET state = 'revoked' WHERE enterprise_id = $1 AND member_id = $2 AND id = $3")
                    .bind(enterprise.as_str())
                    .bind(member.as_str())
                    .bind(device.as_str()),
            )
            .await?;
            Ok(true)
        })
        .await
    }

    async fn refresh_context(&self, refresh_hash: &SecretHash) -> Result<Option<RefreshContext>> {
        let mut c = self.reader();
        let row = c
            .fetch_optional(
                sql("SELECT s.id, s.enterprise_id, s.member_id, s.device_id, s.access_expires_at, s.revoked_at, \
                     s.refreshed_at, s.revoked_reason, s.created_at, m.status AS member_status FROM sessions s \
                     JOIN members m ON m.id = s.member_id AND m.enterprise_id = s.enterprise_id \
                     WHERE s.refresh_hash = $1")
                .bind(refresh_hash.as_str()),
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let session = row.session_record()?;
        let device = c
            .fetch_one(
                sql(format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1")).bind(session.device_id.as_str()),
            )
            .await?
            .device()?;
        Ok(Some(RefreshContext {
            refreshed_at: Timestamp(row.get("refreshed_at")?),
            revoked_reason: row
                .get::<Option<String>>("revoked_reason")?
                .as_deref()
                .map(EndReason::parse)
                .transpose()?,
            session,
            device,
        }))
    }

    async fn hold_device(&self, d: &Device) -> Result<()> {
        let d = d.clone();
        self.write(async move |c| {
            let d = &d;
            c.execute(
                sql("INSERT INTO devices (id, enterprise_id, member_id, name, platform, ip, state, first_seen_at, \
                     last_seen_at, verified_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $7, $7) \
                     ON CONFLICT (id) DO UPDATE SET state = 'pending', last_seen_at = $7, ip = $6 \
                     WHERE devices.member_id = $3 AND devices.enterprise_id = $2")
                .bind(d.id.as_str())
                .bind(d.enterprise_id.as_str())
                .bind(d.member_id.as_str())
                .bind(d.name.as_deref())
                .bind(d.platform.as_deref())
                .bind(d.ip.as_deref())
                .bind(d.first_seen_at.millis()),
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn count_devices(&self, enterprise: &EnterpriseId, member: &MemberId, except: &DeviceId) -> Result<i64> {
        self.reader()
            .value(
                sql("SELECT COUNT(*) FROM devices WHERE enterprise_id = $1 AND member_id = $2 AND id <> $3 \
                     AND state IN ('trusted', 'pending')")
                .bind(enterprise.as_str())
                .bind(member.as_str())
                .bind(except.as_str()),
            )
            .await
    }

    async fn approve_device(
        &self,
        enterprise: &EnterpriseId,
        member: &MemberId,
        device: &DeviceId,
        audit: &AuditEntry,
    ) -> Result<bool> {
        let (audit, device, enterprise, member) = (audit.clone(), device.clone(), enterprise.clone(), member.clone());
        self.write(async move |c| {
            let (audit, device, enterprise, member) = (&audit, &device, &enterprise, &member);
            let done = c
                .execute(
                    sql(
                        "UPDATE devices SET state = 'trusted' WHERE enterprise_id = $1 AND member_id = $2 AND id = $3 \
                         AND state = 'pending'",
                    )
                    .bind(enterprise.as_str())
                    .bind(member.as_str())
                    .bind(device.as_str()),
                )
                .await?;
            audit_if_changed(c, done, audit).await
        })
        .await
    }

    async fn list_member_sessions(
        &self,
        enterprise: &EnterpriseId,
        member: &MemberId,
        limit: u32,
    ) -> Result<Vec<workgate_domain::sessions::SessionSummary>> {
        let mut c = self.reader();
        let devices = c
            .fetch_all(
                sql(
                    "SELECT s.id, s.device_id AS holder_id, COALESCE(d.name, d.platform) AS holder_name, s.created_at, \
                     s.refreshed_at AS last_used_at, s.revoked_at AS ended_at, s.revoked_reason AS ended_reason \
                     FROM sessions s JOIN devices d ON d.id = s.device_id \
                     WHERE s.enterprise_id = $1 AND s.member_id = $2 ORDER BY s.created_at DESC LIMIT $3",
                )
                .bind(enterprise.as_str())
                .bind(member.as_str())
                .bind(i64::from(limit)),
            )
            .await?;
        let apps = c
            .fetch_all(
                sql("SELECT g.id, g.app_id AS holder_id, a.name AS holder_name, g.created_at, \
                     (SELECT MAX(t.created_at) FROM oidc_tokens t WHERE t.grant_id = g.id) AS last_used_at, \
                     g.revoked_at AS ended_at, g.revoked_reason AS ended_reason \
                     FROM oidc_grants g JOIN apps a ON a.id = g.app_id \
                     WHERE g.enterprise_id = $1 AND g.member_id = $2 ORDER BY g.created_at DESC LIMIT $3")
                .bind(enterprise.as_str())
                .bind(member.as_str())
                .bind(i64::from(limit)),
            )
            .await?;
        let summary = |kind: &'static str, r: &crate::sql::Row| -> Result<workgate_domain::sessions::SessionSummary> {
            let created: i64 = r.get("created_at")?;
            Ok(workgate_domain::sessions::SessionSummary {
                id: r.get("id")?,
                kind,
                holder_id: r.get("holder_id")?,
                holder_name: r.get("holder_name")?,
                created_at: Timestamp(created),
                last_used_at: Timestamp(r.get::<Option<i64>>("last_used_at")?.unwrap_or(created)),
                ended_at: r.get::<Option<i64>>("ended_at")?.map(Timestamp),
                ended_reason: r.get::<Option<String>>("ended_reason")?.as_deref().map(EndReason::parse).transpose()?,
            })
        };
        let mut all = devices
            .iter()
            .map(|r| summary("device", r))
            .chain(apps.iter().map(|r| summary("app", r)))
            .collect::<Result<Vec<_>>>()?;
        all.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        Ok(all)
    }
}
