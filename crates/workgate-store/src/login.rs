//! The `LoginStore` half: SMS delivery, invitations, Enterprise Login, sessions and devices, for
//! both databases. Every decision is one conditional statement (`UPDATE … WHERE <still as
//! expected>`), which PostgreSQL re-checks against the newest row after waiting for a concurrent
//! writer of it, so concurrent requests cannot both pass a check that only one may pass. Where a
//! check reads one row and writes another, the row read is locked first (see `sql::Dialect`).
//!
//! Lock order, to keep PostgreSQL free of deadlocks: enterprise, member, sessions, devices (a
//! login challenge is only ever locked first, by the one request that moves it on).

use crate::SqlStore;
use crate::directory::{audit_if_changed, insert_audit};
use crate::rows::{
    CHALLENGE_COLUMNS, DEVICE_COLUMNS, DomainRow, EVENT_COLUMNS, LoginRow, MEMBER_COLUMNS, OUTBOX_COLUMNS,
    join_enterprises,
};
use crate::sql::{Conn, Prefixed, sql};
use async_trait::async_trait;
use workgate_domain::clock::Timestamp;
use workgate_domain::ids::{DeviceId, EnterpriseId, LoginId, MemberId, SessionId, SmsId};
use workgate_domain::invitations::{Invitation, NewInvitation};
use workgate_domain::limits::Limit;
use workgate_domain::login::{FailureRule, LoginChallenge, LoginEvent, LoginStep};
use workgate_domain::model::AuditEntry;
use workgate_domain::model::{Enterprise, Member};
use workgate_domain::outbox::OutboxMessage;
use workgate_domain::passwords::PasswordState;
use workgate_domain::phone::PhoneNumber;
use workgate_domain::policy::StoredPolicy;
use workgate_domain::secret::SecretHash;
use workgate_domain::sessions::{AccessRecord, Device, NewSession, RefreshContext, Rotation, RotationOutcome};
use workgate_domain::store::LoginStore;
use workgate_domain::{Error, Result};

pub(crate) async fn insert_outbox(c: &mut Conn<'_>, m: &OutboxMessage) -> Result<()> {
    c.execute(
        sql("INSERT INTO sms_outbox (id, enterprise_id, phone, body, purpose, state, attempts, next_attempt_at, \
             created_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6)")
        .bind(m.id.as_str())
        .bind(m.enterprise_id.as_ref().map(EnterpriseId::as_str))
        .bind(m.phone.as_str())
        .bind(m.body.as_stored())
        .bind(m.purpose.as_str())
        .bind(m.created_at.millis()),
    )
    .await?;
    Ok(())
}

pub(crate) async fn insert_events(c: &mut Conn<'_>, events: &[LoginEvent]) -> Result<()> {
    for e in events {
        c.execute(
            sql(format!("INSERT INTO login_events ({EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"))
                .bind(e.id.as_str())
                .bind(e.phone.as_str())
                .bind(e.enterprise_id.as_ref().map(EnterpriseId::as_str))
                .bind(e.member_id.as_ref().map(MemberId::as_str))
                .bind(&e.kind)
                .bind(e.ip.as_deref())
                .bind(e.at.millis())
                .bind(e.details.to_string())
                .bind(join_enterprises(&e.candidates)),
        )
        .await?;
    }
    Ok(())
}

/// Writes an invitation and its SMS (the caller has already retired earlier invitations).
pub(crate) async fn insert_invitation(c: &mut Conn<'_>, new: &NewInvitation) -> Result<()> {
    insert_outbox(c, &new.sms).await?;
    let i = &new.invitation;
    c.execute(
        sql(
            "INSERT INTO invitations (id, enterprise_id, member_id, token_hash, sms_id, state, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7)",
        )
        .bind(i.id.as_str())
        .bind(i.enterprise_id.as_str())
        .bind(i.member_id.as_str())
        .bind(new.token_hash.as_str())
        .bind(new.sms.id.as_str())
        .bind(i.created_at.millis())
        .bind(i.expires_at.millis()),
    )
    .await?;
    Ok(())
}

/// Ends every session and device trust of a member, and (when departing) their invitations.
pub(crate) async fn revoke_member_access(
    c: &mut Conn<'_>,
    enterprise: &EnterpriseId,
    member: &MemberId,
    reason: &str,
    cancel_invitations: bool,
    now: Timestamp,
) -> Result<()> {
    c.execute(
        sql("UPDATE sessions SET revoked_at = $1, revoked_reason = $2 \
             WHERE enterprise_id = $3 AND member_id = $4 AND revoked_at IS NULL")
        .bind(now.millis())
        .bind(reason)
        .bind(enterprise.as_str())
        .bind(member.as_str()),
    )
    .await?;
    crate::oidc::revoke_member_grants(c, enterprise, member, reason, now).await?;
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

/// `locked_until` after one more failure, counted by `count` (the SQL of the new count): from
/// `$limit` failures on, `$now` + base × 2^(failures − limit), at most a day.
fn doubling_lock(least: &str, count: &str, limit: &str, now: &str, base: &str) -> String {
    format!("{now} + {least}({base} * (1 << CAST({least}({count} - {limit}, 10) AS INTEGER)), 86400000)")
}

/// Counts one hit for `bucket` unless the window is full (then: milliseconds until it has room).
async fn hit_one(c: &mut Conn<'_>, bucket: &str, now_ms: i64, window_ms: i64, max: i64) -> Result<Option<i64>> {
    // Hits are kept in twelfths of the window; the window is the last twelve of them.
    let slot_ms = (window_ms / 12).max(1);
    let slot = now_ms - now_ms.rem_euclid(slot_ms);
    let oldest_counted = now_ms - window_ms;
    let d = c.dialect();
    if let Some(lock) = d.lock_bucket {
        // The sum the upsert below checks is read before its insert: on PostgreSQL, other
        // hits on this bucket wait here until this one commits.
        c.execute(sql(lock).bind(bucket)).await?;
    }
    // Count the hit only if the window has room: one conditional upsert (logins hit 7
    // limits). It also tells whether the bucket holds counts that no window reaches any more.
    let counted = c
        .fetch_optional(
            sql("INSERT INTO rate_counters (bucket, window_start, count) SELECT $1, $2, 1 \
                     WHERE (SELECT COALESCE(SUM(count), 0) FROM rate_counters WHERE bucket = $1 \
                     AND window_start > $3) < $4 \
                     ON CONFLICT (bucket, window_start) DO UPDATE SET count = rate_counters.count + 1 \
                     RETURNING count, (SELECT COUNT(*) FROM (SELECT 1 FROM rate_counters AS s \
                     WHERE s.bucket = $1 AND s.window_start <= $5 LIMIT 1) AS x) AS stale")
            .bind(bucket)
            .bind(slot)
            .bind(oldest_counted)
            .bind(max)
            .bind(oldest_counted - slot_ms),
        )
        .await?
        .map(|row| Ok::<_, Error>((row.get::<i64>("count")?, row.get::<i64>("stale")?)))
        .transpose()?;
    let Some((count, stale)) = counted else {
        let oldest: Option<i64> = c
            .value(
                sql("SELECT MIN(window_start) FROM rate_counters WHERE bucket = $1 AND window_start > $2")
                    .bind(bucket)
                    .bind(oldest_counted),
            )
            .await?;
        let room_at = oldest.map_or(now_ms + slot_ms, |o| o + window_ms + 1);
        return Ok(Some((room_at - now_ms).max(1)));
    };
    if count > 1 || stale == 0 {
        // Not a new slot (the stale ones were pruned when it began), or nothing to prune
        // (a bucket seen for the first time, such as a number's).
        return Ok(None);
    }
    // A new slot: forget counts that no window reaches any more, a few at a time.
    c.execute(
        sql(format!(
            "DELETE FROM rate_counters WHERE (bucket, window_start) IN (SELECT bucket, window_start \
                 FROM rate_counters WHERE bucket = $1 AND window_start <= $2 LIMIT 20{})",
            d.skip_locked
        ))
        .bind(bucket)
        .bind(oldest_counted - slot_ms),
    )
    .await?;
    Ok(None)
}

/// Writes a login challenge, its SMS (if any) and its login events.
async fn insert_challenge(
    c: &mut Conn<'_>,
    ch: &LoginChallenge,
    sms: Option<&OutboxMessage>,
    events: &[LoginEvent],
) -> Result<()> {
    c.execute(
        sql(format!(
            "INSERT INTO login_challenges ({CHALLENGE_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        ))
        .bind(ch.id.as_str())
        .bind(ch.phone.as_str())
        .bind(ch.code_hash.as_str())
        .bind(ch.code_sent_at.millis())
        .bind(ch.expires_at.millis())
        .bind(ch.failed_attempts)
        .bind(ch.step.as_str())
        .bind(ch.enterprise_id.as_ref().map(EnterpriseId::as_str))
        .bind(ch.invitation_id.as_ref().map(|i| i.as_str()))
        .bind(ch.device_id.as_ref().map(DeviceId::as_str))
        .bind(ch.device_name.as_deref())
        .bind(ch.ip.as_deref())
        .bind(ch.created_at.millis())
        .bind(ch.member_id.as_ref().map(MemberId::as_str))
        .bind(join_enterprises(&ch.candidates)),
    )
    .await?;
    if let Some(sms) = sms {
        insert_outbox(c, sms).await?;
    }
    insert_events(c, events).await?;
    Ok(())
}

const SESSION_RECORD: &str = "SELECT s.id, s.enterprise_id, s.member_id, s.device_id, s.access_expires_at, s.revoked_at, \
     s.created_at, m.status AS member_status FROM sessions s JOIN members m ON m.id = s.member_id AND m.enterprise_id = s.enterprise_id";

#[async_trait]
impl LoginStore for SqlStore {
    async fn server_secret(&self, name: &str, candidate: &str, now: Timestamp) -> Result<String> {
        self.write(async |c| {
            c.execute(
                sql("INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO NOTHING")
                .bind(name)
                .bind(candidate)
                .bind(now.millis()),
            )
            .await?;
            c.value(sql("SELECT value FROM server_secrets WHERE name = $1").bind(name)).await
        })
        .await
    }

    async fn hit_limit(&self, bucket: &str, now_ms: i64, window_ms: i64, max: i64) -> Result<Option<i64>> {
        self.write(async |c| hit_one(c, bucket, now_ms, window_ms, max).await).await
    }

    async fn hit_limits(&self, limits: &[Limit], now_ms: i64) -> Result<Option<(usize, i64)>> {
        let one_write = async |c: &mut Conn<'_>| {
            for (i, l) in limits.iter().enumerate() {
                if let Some(wait_ms) = hit_one(c, &l.bucket, now_ms, l.window_secs * 1000, l.max).await? {
                    return Ok(Some((i, wait_ms)));
                }
            }
            Ok(None)
        };
        match &self.db {
            // SQLite: all in one write, so one commit (each is a wait for the disk) for them all.
            crate::Db::Sqlite { .. } => self.write(one_write).await,
            // PostgreSQL: one transaction per limit, so that no transaction holds the lock of
            // one bucket while it waits for another's.
            crate::Db::Postgres { .. } => {
                for (i, l) in limits.iter().enumerate() {
                    if let Some(wait_ms) = self.hit_limit(&l.bucket, now_ms, l.window_secs * 1000, l.max).await? {
                        return Ok(Some((i, wait_ms)));
                    }
                }
                Ok(None)
            }
        }
    }

    async fn take_from_limit(&self, limit: &Limit, n: i64, now_ms: i64) -> Result<i64> {
        if n <= 0 {
            return Ok(0);
        }
        let window_ms = limit.window_secs * 1000;
        let slot_ms = (window_ms / 12).max(1);
        let slot = now_ms - now_ms.rem_euclid(slot_ms);
        self.write(async |c| {
            if let Some(lock) = c.dialect().lock_bucket {
                c.execute(sql(lock).bind(&limit.bucket)).await?;
            }
            // The same counters as `hit_one`, in the same twelfths of the window.
            let used: i64 = c
                .value(
                    sql("SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM rate_counters WHERE bucket = $1 \
                         AND window_start > $2")
                    .bind(&limit.bucket)
                    .bind(now_ms - window_ms),
                )
                .await?;
            let granted = n.min(limit.max - used).max(0);
            if granted > 0 {
                c.execute(
                    sql("INSERT INTO rate_counters (bucket, window_start, count) VALUES ($1, $2, $3) \
                         ON CONFLICT (bucket, window_start) DO UPDATE SET count = rate_counters.count + $3")
                    .bind(&limit.bucket)
                    .bind(slot)
                    .bind(granted),
                )
                .await?;
            }
            Ok(granted)
        })
        .await
    }

    async fn lease_due_sms(&self, now: Timestamp, lease_ms: i64, limit: u32) -> Result<Vec<(OutboxMessage, i64)>> {
        self.write(async |c| {
            // Several senders (nodes) may lease at once: each passes over the rows another holds.
            let rows = c
                .fetch_all(
                    sql(format!(
                        "UPDATE sms_outbox SET state = 'sending', lease_until = $1, attempts = attempts + 1 \
                         WHERE id IN (SELECT id FROM sms_outbox WHERE (state = 'pending' AND next_attempt_at <= $2) \
                         OR (state = 'sending' AND lease_until <= $2) ORDER BY next_attempt_at LIMIT $3{}) \
                         RETURNING {OUTBOX_COLUMNS}",
                        c.dialect().skip_locked
                    ))
                    .bind(now.millis() + lease_ms)
                    .bind(now.millis())
                    .bind(i64::from(limit)),
                )
                .await?;
            rows.iter().map(|r| r.outbox_message()).collect()
        })
        .await
    }

    async fn mark_sms_sent(&self, ids: &[SmsId], provider: &str, now: Timestamp) -> Result<()> {
        self.write(async |c| {
            for id in ids {
                c.execute(
                    // The body is erased in the same statement: a delivered message keeps no secret.
                    sql("UPDATE sms_outbox SET state = 'sent', sent_at = $1, provider = $2, lease_until = NULL, \
                         last_error = NULL, body = '' WHERE id = $3")
                    .bind(now.millis())
                    .bind(provider)
                    .bind(id.as_str()),
                )
                .await?;
            }
            Ok(())
        })
        .await
    }

    async fn mark_sms_retry(&self, id: &SmsId, error: &str, next_attempt_at: Timestamp) -> Result<()> {
        self.write(async |c| {
            c.execute(
                sql("UPDATE sms_outbox SET state = 'pending', next_attempt_at = $1, last_error = $2, \
                     lease_until = NULL WHERE id = $3")
                .bind(next_attempt_at.millis())
                .bind(error)
                .bind(id.as_str()),
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn mark_sms_failed(&self, id: &SmsId, error: &str, _now: Timestamp) -> Result<()> {
        self.write(async |c| {
            c.execute(
                sql("UPDATE sms_outbox SET state = 'failed', last_error = $1, lease_until = NULL, body = '' WHERE id = $2")
                    .bind(error)
                    .bind(id.as_str()),
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn replace_invitation(&self, new: &NewInvitation, audit: &AuditEntry) -> Result<()> {
        self.write(async |c| {
            let (ent, mem) = (new.invitation.enterprise_id.as_str(), new.invitation.member_id.as_str());
            // Two re-sends at once: the second waits here, then replaces the first's invitation.
            let lock = c.dialect().lock_row;
            if c.dialect().concurrent_writers {
                c.execute(
                    sql(format!("SELECT id FROM members WHERE enterprise_id = $1 AND id = $2{lock}"))
                        .bind(ent)
                        .bind(mem),
                )
                .await?;
            }
            c.execute(
                sql("UPDATE invitations SET state = 'replaced' WHERE enterprise_id = $1 AND member_id = $2 \
                     AND state = 'pending'")
                .bind(ent)
                .bind(mem),
            )
            .await?;
            insert_invitation(c, new).await?;
            insert_audit(c, std::slice::from_ref(audit)).await?;
            Ok(())
        })
        .await
    }

    async fn find_invitation(&self, token_hash: &SecretHash) -> Result<Option<Invitation>> {
        let row = self
            .reader()
            .fetch_optional(
                sql("SELECT i.id, i.enterprise_id, i.member_id, i.state, i.created_at, i.expires_at, \
                     o.state AS sms_state, o.attempts AS sms_attempts, o.last_error AS sms_last_error, \
                     o.sent_at AS sms_sent_at \
                     FROM invitations i LEFT JOIN sms_outbox o ON o.id = i.sms_id WHERE i.token_hash = $1")
                .bind(token_hash.as_str()),
            )
            .await?;
        row.map(|r| r.invitation()).transpose()
    }

    async fn list_invitations(&self, enterprise: &EnterpriseId, member: &MemberId) -> Result<Vec<Invitation>> {
        let rows = self
            .reader()
            .fetch_all(
                sql("SELECT i.id, i.enterprise_id, i.member_id, i.state, i.created_at, i.expires_at, \
                     o.state AS sms_state, o.attempts AS sms_attempts, o.last_error AS sms_last_error, \
                     o.sent_at AS sms_sent_at \
                     FROM invitations i LEFT JOIN sms_outbox o ON o.id = i.sms_id \
                     WHERE i.enterprise_id = $1 AND i.member_id = $2 ORDER BY i.id DESC")
                .bind(enterprise.as_str())
                .bind(member.as_str()),
            )
            .await?;
        rows.iter().map(|r| r.invitation()).collect()
    }

    async fn memberships_by_phone(&self, phone: &PhoneNumber) -> Result<Vec<(Enterprise, Member)>> {
        let mut c = self.reader();
        let rows = c
            .fetch_all(
                sql(format!(
                    "SELECT {MEMBER_COLUMNS} FROM members WHERE phone = $1 AND status <> 'departed' \
                     ORDER BY created_at, id"
                ))
                .bind(phone.as_str()),
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let member = row.member()?;
            let enterprise = c
                .fetch_one(
                    sql("SELECT id, name, region, created_at FROM enterprises WHERE id = $1")
                        .bind(member.enterprise_id.as_str()),
                )
                .await?
                .enterprise()?;
            out.push((enterprise, member));
        }
        Ok(out)
    }

    async fn start_login_within(
        &self,
        limits: &[Limit],
        now_ms: i64,
        ch: &LoginChallenge,
        sms: Option<&OutboxMessage>,
        events: &[LoginEvent],
    ) -> Result<Option<(usize, i64)>> {
        if let crate::Db::Postgres { .. } = &self.db {
            // One transaction per limit (see `hit_limits`), then the challenge.
            if let Some(full) = self.hit_limits(limits, now_ms).await? {
                return Ok(Some(full));
            }
            self.start_login(ch, sms, events).await?;
            return Ok(None);
        }
        // SQLite: one write, so one commit (a wait for the disk) for the hits and the challenge.
        self.write(async |c| {
            for (i, l) in limits.iter().enumerate() {
                if let Some(wait_ms) = hit_one(c, &l.bucket, now_ms, l.window_secs * 1000, l.max).await? {
                    return Ok(Some((i, wait_ms)));
                }
            }
            insert_challenge(c, ch, sms, events).await?;
            Ok(None)
        })
        .await
    }

    async fn start_login(&self, ch: &LoginChallenge, sms: Option<&OutboxMessage>, events: &[LoginEvent]) -> Result<()> {
        self.write(async |c| insert_challenge(c, ch, sms, events).await).await
    }

    async fn get_login(&self, id: &LoginId) -> Result<Option<LoginChallenge>> {
        let row = self
            .reader()
            .fetch_optional(
                sql(format!("SELECT {CHALLENGE_COLUMNS} FROM login_challenges WHERE id = $1")).bind(id.as_str()),
            )
            .await?;
        row.map(|r| r.challenge()).transpose()
    }

    async fn record_wrong_code(&self, id: &LoginId, max: i64, events: &[LoginEvent]) -> Result<Option<i64>> {
        self.write(async |c| {
            let counted: Option<i64> = c
                .optional_value(
                    sql("UPDATE login_challenges SET failed_attempts = failed_attempts + 1, \
                         step = CASE WHEN failed_attempts + 1 >= $1 THEN 'locked' ELSE step END \
                         WHERE id = $2 AND step = 'code' AND failed_attempts < $1 RETURNING failed_attempts")
                    .bind(max)
                    .bind(id.as_str()),
                )
                .await?;
            if counted.is_some() {
                insert_events(c, events).await?;
            }
            Ok(counted)
        })
        .await
    }

    async fn pass_code(
        &self,
        id: &LoginId,
        code_hash: &SecretHash,
        expires_at: Timestamp,
        events: &[LoginEvent],
    ) -> Result<bool> {
        self.write(async |c| {
            let done = c
                .execute(
                    sql("UPDATE login_challenges SET step = 'enterprise', expires_at = $1 \
                         WHERE id = $2 AND step = 'code' AND code_hash = $3")
                    .bind(expires_at.millis())
                    .bind(id.as_str())
                    .bind(code_hash.as_str()),
                )
                .await?;
            if done == 0 {
                return Ok(false);
            }
            insert_events(c, events).await?;
            Ok(true)
        })
        .await
    }

    async fn replace_code(
        &self,
        id: &LoginId,
        code_hash: &SecretHash,
        sent_at: Timestamp,
        expires_at: Timestamp,
        sms: Option<&OutboxMessage>,
        events: &[LoginEvent],
    ) -> Result<bool> {
        self.write(async |c| {
            let done = c
                .execute(
                    sql("UPDATE login_challenges SET code_hash = $1, code_sent_at = $2, expires_at = $3 \
                         WHERE id = $4 AND step = 'code'")
                    .bind(code_hash.as_str())
                    .bind(sent_at.millis())
                    .bind(expires_at.millis())
                    .bind(id.as_str()),
                )
                .await?;
            if done == 0 {
                return Ok(false);
            }
            if let Some(sms) = sms {
                insert_outbox(c, sms).await?;
            }
            insert_events(c, events).await?;
            Ok(true)
        })
        .await
    }

    async fn finish_login(
        &self,
        id: &LoginId,
        from: LoginStep,
        code_hash: &SecretHash,
        s: &NewSession,
        events: &[LoginEvent],
    ) -> Result<Option<Member>> {
        self.write(async |c| {
            let now = s.now.millis();
            let moved = c
                .execute(
                    sql("UPDATE login_challenges SET step = 'done', enterprise_id = $1 \
                         WHERE id = $2 AND step = $3 AND code_hash = $4 AND expires_at > $5")
                    .bind(s.enterprise_id.as_str())
                    .bind(id.as_str())
                    .bind(from.as_str())
                    .bind(code_hash.as_str())
                    .bind(now),
                )
                .await?;
            if moved == 0 {
                return Ok(None);
            }
            let (ent, mem) = (s.enterprise_id.as_str(), s.member_id.as_str());
            let activated = c
                .execute(
                    sql("UPDATE members SET status = 'active', activated_at = $1, updated_at = $1 \
                         WHERE enterprise_id = $2 AND id = $3 AND status = 'invited'")
                    .bind(now)
                    .bind(ent)
                    .bind(mem),
                )
                .await?;
            if activated > 0 {
                c.execute(
                    sql("UPDATE invitations SET state = 'used' WHERE enterprise_id = $1 AND member_id = $2 \
                         AND state = 'pending'")
                    .bind(ent)
                    .bind(mem),
                )
                .await?;
            }
            // Shared lock until the commit: a concurrent disable or departure either happened before
            // (and is seen here) or waits for this session, and then revokes it with the others.
            let share = c.dialect().share_row;
            let member = c
                .fetch_one(
                    sql(format!("SELECT {MEMBER_COLUMNS} FROM members WHERE enterprise_id = $1 AND id = $2{share}"))
                        .bind(ent)
                        .bind(mem),
                )
                .await?
                .member()?;
            if member.status != workgate_domain::values::MemberStatus::Active {
                return Ok(None); // disabled or departed meanwhile: no session
            }
            c.execute(
                sql("INSERT INTO devices (id, enterprise_id, member_id, name, platform, ip, state, first_seen_at, \
                     last_seen_at, verified_at) VALUES ($1, $2, $3, $4, $5, $6, 'trusted', $7, $7, $7) \
                     ON CONFLICT (id) DO UPDATE SET state = 'trusted', last_seen_at = $7, verified_at = $7, ip = $6, \
                     name = COALESCE($4, devices.name), platform = COALESCE($5, devices.platform) \
                     WHERE devices.member_id = $3 AND devices.enterprise_id = $2")
                .bind(s.device_id.as_str())
                .bind(ent)
                .bind(mem)
                .bind(s.device_name.as_deref())
                .bind(s.platform.as_deref())
                .bind(s.ip.as_deref())
                .bind(now),
            )
            .await?;
            c.execute(
                sql("INSERT INTO sessions (id, enterprise_id, member_id, device_id, access_hash, access_expires_at, \
                     refresh_hash, created_at, refreshed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)")
                .bind(s.id.as_str())
                .bind(ent)
                .bind(mem)
                .bind(s.device_id.as_str())
                .bind(s.access_hash.as_str())
                .bind(s.access_expires_at.millis())
                .bind(s.refresh_hash.as_str())
                .bind(now),
            )
            .await?;
            insert_events(c, events).await?;
            Ok(Some(member))
        })
        .await
    }

    async fn record_login_events(&self, events: &[LoginEvent]) -> Result<()> {
        self.write(async |c| insert_events(c, events).await).await
    }

    async fn login_events_for_phone(
        &self,
        phone: &PhoneNumber,
        viewer: &EnterpriseId,
        limit: u32,
    ) -> Result<Vec<LoginEvent>> {
        let rows = self
            .reader()
            .fetch_all(
                sql(format!(
                    "SELECT {EVENT_COLUMNS} FROM login_events WHERE phone = $1 \
                     AND (enterprise_id = $2 OR (enterprise_id IS NULL AND candidates LIKE $3)) \
                     ORDER BY id DESC LIMIT $4"
                ))
                .bind(phone.as_str())
                .bind(viewer.as_str())
                .bind(format!("%{viewer}%"))
                .bind(i64::from(limit)),
            )
            .await?;
        rows.iter().map(|r| r.login_event()).collect()
    }

    async fn record_failures(&self, phone: &PhoneNumber, rules: &[FailureRule], now: Timestamp) -> Result<()> {
        self.write(async |c| {
            let lock = doubling_lock(c.dialect().least, "failure_locks.consecutive + 1", "$3", "$4", "$5");
            for rule in rules {
                c.execute(
                    sql(format!(
                        "INSERT INTO failure_locks (subject, phone, consecutive, locked_until, last_failure_at) \
                         VALUES ($1, $2, 1, 0, $4) \
                         ON CONFLICT (subject) DO UPDATE SET consecutive = failure_locks.consecutive + 1, \
                         last_failure_at = $4, \
                         locked_until = CASE WHEN failure_locks.consecutive + 1 >= $3 THEN {lock} \
                         ELSE failure_locks.locked_until END"
                    ))
                    .bind(&rule.subject)
                    .bind(phone.as_str())
                    .bind(rule.limit)
                    .bind(now.millis())
                    .bind(rule.base_lock_ms),
                )
                .await?;
            }
            Ok(())
        })
        .await
    }

    async fn failures_locked_until(&self, subjects: &[String]) -> Result<i64> {
        // One read at every code step: the latest lock of all the subjects at once.
        if subjects.is_empty() {
            return Ok(0);
        }
        let placeholders: Vec<String> = (1..=subjects.len()).map(|i| format!("${i}")).collect();
        let mut query =
            sql(format!("SELECT MAX(locked_until) FROM failure_locks WHERE subject IN ({})", placeholders.join(", ")));
        for subject in subjects {
            query = query.bind(subject.as_str());
        }
        let until: Option<Option<i64>> = self.reader().optional_value(query).await?;
        Ok(until.flatten().unwrap_or(0))
    }

    async fn phone_locked_until(&self, phone: &PhoneNumber) -> Result<i64> {
        let until: Option<Option<i64>> = self
            .reader()
            .optional_value(sql("SELECT MAX(locked_until) FROM failure_locks WHERE phone = $1").bind(phone.as_str()))
            .await?;
        Ok(until.flatten().unwrap_or(0))
    }

    async fn clear_failures(&self, phone: &PhoneNumber, subjects: Option<&[String]>) -> Result<()> {
        // Every successful login clears; most numbers have nothing to clear, and a read costs no
        // turn on SQLite's one writer. A failure that is not yet committed is concurrent with this
        // success, so leaving it counted is a valid order (and the stricter one).
        let recorded: Option<String> = self
            .reader()
            .optional_value(sql("SELECT subject FROM failure_locks WHERE phone = $1 LIMIT 1").bind(phone.as_str()))
            .await?;
        if recorded.is_none() {
            return Ok(());
        }
        self.write(async |c| {
            match subjects {
                None => {
                    c.execute(sql("DELETE FROM failure_locks WHERE phone = $1").bind(phone.as_str())).await?;
                }
                Some(subjects) => {
                    for subject in subjects {
                        c.execute(
                            sql("DELETE FROM failure_locks WHERE subject = $1 AND phone = $2")
                                .bind(subject.as_str())
                                .bind(phone.as_str()),
                        )
                        .await?;
                    }
                }
            }
            Ok(())
        })
        .await
    }

    async fn session_by_access(&self, access_hash: &SecretHash) -> Result<Option<AccessRecord>> {
        // Every authenticated request: the session, its member and enterprise in one query.
        static QUERY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            let member: Vec<String> =
                MEMBER_COLUMNS.split(',').map(str::trim).map(|c| format!("m.{c} AS m_{c}")).collect();
            format!(
                "SELECT s.id, s.enterprise_id, s.member_id, s.device_id, s.access_expires_at, s.revoked_at, \
                 s.created_at, m.status AS member_status, {}, e.id AS e_id, e.name AS e_name, \
                 e.region AS e_region, e.created_at AS e_created_at FROM sessions s \
                 JOIN members m ON m.id = s.member_id AND m.enterprise_id = s.enterprise_id \
                 JOIN enterprises e ON e.id = s.enterprise_id WHERE s.access_hash = $1",
                member.join(", ")
            )
        });
        let row = self.reader().fetch_optional(sql(QUERY.as_str()).bind(access_hash.as_str())).await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(AccessRecord {
            session: row.session_record()?,
            member: Prefixed(&row, "m_").member()?,
            enterprise: Prefixed(&row, "e_").enterprise()?,
        }))
    }

    async fn rotate_refresh(&self, r: &Rotation) -> Result<RotationOutcome> {
        self.write(async |c| {
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

    async fn revoke_session(&self, id: &SessionId, reason: &str, now: Timestamp) -> Result<()> {
        self.write(async |c| {
            c.execute(
                sql("UPDATE sessions SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL")
                    .bind(now.millis())
                    .bind(reason)
                    .bind(id.as_str()),
            )
            .await?;
            Ok(())
        })
        .await
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
        reason: &str,
        now: Timestamp,
    ) -> Result<bool> {
        self.write(async |c| {
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
                .bind(format!("device_revoked:{reason}"))
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

    async fn get_policy(&self, enterprise: &EnterpriseId) -> Result<Option<StoredPolicy>> {
        let row = self
            .reader()
            .fetch_optional(
                sql("SELECT settings, tightened_at, updated_at FROM policies WHERE enterprise_id = $1")
                    .bind(enterprise.as_str()),
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let settings: String = row.get("settings")?;
        let policy = serde_json::from_str(&settings).map_err(|e| Error::Internal(format!("stored policy: {e}")))?;
        Ok(Some(StoredPolicy {
            policy,
            tightened_at: Timestamp(row.get("tightened_at")?),
            updated_at: Timestamp(row.get("updated_at")?),
        }))
    }

    async fn put_policy(&self, enterprise: &EnterpriseId, policy: &StoredPolicy, audit: &AuditEntry) -> Result<()> {
        let settings = serde_json::to_string(&policy.policy).map_err(|e| Error::Internal(e.to_string()))?;
        self.write(async |c| {
            c.execute(
                sql(
                    "INSERT INTO policies (enterprise_id, settings, tightened_at, updated_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (enterprise_id) DO UPDATE SET settings = excluded.settings, \
                     tightened_at = excluded.tightened_at, updated_at = excluded.updated_at",
                )
                .bind(enterprise.as_str())
                .bind(&settings)
                .bind(policy.tightened_at.millis())
                .bind(policy.updated_at.millis()),
            )
            .await?;
            insert_audit(c, std::slice::from_ref(audit)).await
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
            revoked_reason: row.get("revoked_reason")?,
            session,
            device,
        }))
    }

    async fn password_state(&self, enterprise: &EnterpriseId, member: &MemberId) -> Result<PasswordState> {
        let row = self
            .reader()
            .fetch_optional(
                sql("SELECT hash, must_reset, failures, locked_until FROM member_passwords \
                     WHERE enterprise_id = $1 AND member_id = $2")
                .bind(enterprise.as_str())
                .bind(member.as_str()),
            )
            .await?;
        let Some(row) = row else { return Ok(PasswordState::default()) };
        Ok(PasswordState {
            hash: row.get("hash")?,
            must_reset: row.get::<i64>("must_reset")? != 0,
            failures: row.get("failures")?,
            locked_until: row.get("locked_until")?,
        })
    }

    async fn set_password(
        &self,
        enterprise: &EnterpriseId,
        member: &MemberId,
        hash: &str,
        now: Timestamp,
    ) -> Result<()> {
        self.write(async |c| {
            c.execute(
                sql(
                    "INSERT INTO member_passwords (member_id, enterprise_id, hash, must_reset, failures, locked_until, \
                     set_at) VALUES ($1, $2, $3, 0, 0, 0, $4) ON CONFLICT (member_id) DO UPDATE SET \
                     hash = excluded.hash, must_reset = 0, failures = 0, locked_until = 0, set_at = excluded.set_at",
                )
                .bind(member.as_str())
                .bind(enterprise.as_str())
                .bind(hash)
                .bind(now.millis()),
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn reserve_password_attempt(
        &self,
        enterprise: &EnterpriseId,
        member: &MemberId,
        limit: i64,
        base_lock_ms: i64,
        now: Timestamp,
    ) -> Result<Option<i64>> {
        self.write(async |c| {
            // Counted as a failure before it is judged: the attempt that reaches the limit sets
            // the lock in the same statement, and every attempt after it finds the lock.
            let lock = doubling_lock(c.dialect().least, "failures + 1", "$1", "$2", "$3");
            c.optional_value(
                sql(format!(
                    "UPDATE member_passwords SET failures = failures + 1, \
                     locked_until = CASE WHEN failures + 1 >= $1 THEN {lock} ELSE locked_until END \
                     WHERE enterprise_id = $4 AND member_id = $5 AND locked_until <= $2 RETURNING failures"
                ))
                .bind(limit)
                .bind(now.millis())
                .bind(base_lock_ms)
                .bind(enterprise.as_str())
                .bind(member.as_str()),
            )
            .await
        })
        .await
    }

    async fn clear_password_failures(&self, enterprise: &EnterpriseId, member: &MemberId) -> Result<()> {
        self.write(async |c| {
            c.execute(
                sql("UPDATE member_passwords SET failures = 0, locked_until = 0 WHERE enterprise_id = $1 \
                     AND member_id = $2")
                .bind(enterprise.as_str())
                .bind(member.as_str()),
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn require_password_reset(
        &self,
        enterprise: &EnterpriseId,
        member: &MemberId,
        audit: &AuditEntry,
    ) -> Result<()> {
        self.write(async |c| {
            c.execute(
                sql("INSERT INTO member_passwords (member_id, enterprise_id, hash, must_reset) VALUES ($1, $2, NULL, 1) \
                     ON CONFLICT (member_id) DO UPDATE SET must_reset = 1")
                .bind(member.as_str())
                .bind(enterprise.as_str()),
            )
            .await?;
            insert_audit(c, std::slice::from_ref(audit)).await
        })
        .await
    }

    async fn advance_login(
        &self,
        id: &LoginId,
        from: LoginStep,
        to: LoginStep,
        code_hash: &SecretHash,
        enterprise: &EnterpriseId,
        member: &MemberId,
        device: Option<&DeviceId>,
        expires_at: Timestamp,
    ) -> Result<bool> {
        self.write(async |c| {
            let done = c
                .execute(
                    sql("UPDATE login_challenges SET step = $1, enterprise_id = $2, member_id = $3, \
                         device_id = COALESCE($4, device_id), expires_at = $5 \
                         WHERE id = $6 AND step = $7 AND code_hash = $8")
                    .bind(to.as_str())
                    .bind(enterprise.as_str())
                    .bind(member.as_str())
                    .bind(device.map(DeviceId::as_str))
                    .bind(expires_at.millis())
                    .bind(id.as_str())
                    .bind(from.as_str())
                    .bind(code_hash.as_str()),
                )
                .await?;
            Ok(done == 1)
        })
        .await
    }

    async fn hold_device(&self, d: &Device) -> Result<()> {
        self.write(async |c| {
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
        self.write(async |c| {
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
                ended_reason: r.get("ended_reason")?,
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
