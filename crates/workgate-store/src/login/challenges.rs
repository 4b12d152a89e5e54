//! Enterprise Login challenges and their events: start, wrong and right codes, the steps after, finish.

use super::limits::{FirstTry, hit_all_within, hit_firsts, hit_rest_alone};
use super::outbox::insert_outbox;
use crate::SqlStore;
use crate::rows::{
    CHALLENGE_COLUMNS, DomainRow, EVENT_COLUMNS, LoginRow, MEMBER_AND_ENTERPRISE, MEMBER_COLUMNS, join_enterprises,
};
use crate::sql::Prefixed;
use crate::sql::{Conn, sql};
use async_trait::async_trait;
use workgate_domain::Result;
use workgate_domain::clock::Timestamp;
use workgate_domain::ids::{DeviceId, EnterpriseId, LoginId, MemberId};
use workgate_domain::limits::Limit;
use workgate_domain::login::{LoginChallenge, LoginEvent, LoginStep, StepMove};
use workgate_domain::model::{Enterprise, Member};
use workgate_domain::outbox::OutboxMessage;
use workgate_domain::phone::PhoneNumber;
use workgate_domain::secret::SecretHash;
use workgate_domain::sessions::NewSession;
use workgate_domain::store::{ChallengeStore, LimitStore};

/// Writes a login challenge, its SMS (if any) and its login events.
pub(super) async fn insert_challenge(
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

/// Writes login events: one statement for all of them (a step writes one to three).
pub(crate) async fn insert_events(c: &mut Conn<'_>, events: &[LoginEvent]) -> Result<()> {
    for chunk in events.chunks(crate::directory::ROWS_PER_INSERT) {
        let mut q = sql(format!("INSERT INTO login_events ({EVENT_COLUMNS})"));
        q.push_values(chunk, |row, e| {
            row.bind(e.id.as_str())
                .bind(e.phone.as_str())
                .bind(e.enterprise_id.as_ref().map(EnterpriseId::as_str))
                .bind(e.member_id.as_ref().map(MemberId::as_str))
                .bind(&e.kind)
                .bind(e.ip.as_deref())
                .bind(e.at.millis())
                .bind(e.details.to_string())
                .bind(join_enterprises(&e.candidates));
        });
        c.execute(q).await?;
    }
    Ok(())
}

#[async_trait]
impl ChallengeStore for SqlStore {
    async fn memberships_by_phone(&self, phone: &PhoneNumber) -> Result<Vec<(Enterprise, Member)>> {
        // The memberships and their enterprises in one query: a read at every login start and code.
        static QUERY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "SELECT {} FROM members m JOIN enterprises e ON e.id = m.enterprise_id \
                 WHERE m.phone = $1 AND m.status <> 'departed' ORDER BY m.created_at, m.id",
                *MEMBER_AND_ENTERPRISE
            )
        });
        let rows = self.reader().fetch_all(sql(QUERY.as_str()).bind(phone.as_str())).await?;
        rows.iter().map(|row| Ok((Prefixed(row, "e_").enterprise()?, Prefixed(row, "m_").member()?))).collect()
    }

    async fn start_login_within(
        &self,
        limits: &[Limit],
        apart: usize,
        now_ms: i64,
        ch: &LoginChallenge,
        sms: Option<&OutboxMessage>,
        events: &[LoginEvent],
    ) -> Result<Option<(usize, i64)>> {
        if let crate::Db::Postgres { .. } = &self.db {
            // The counters every start from a shared address locks, in a transaction of their own:
            // held to the end of the start's longer one, they would queue every login behind it.
            let (shared, limits) = limits.split_at(apart.min(limits.len()));
            if !shared.is_empty()
                && let Some(full) = self.hit_limits(shared, now_ms).await?
            {
                return Ok(Some(full));
            }
            let after_shared = |(i, wait_ms): (usize, i64)| Some((shared.len() + i, wait_ms));
            // The limits' first counters and the challenge in one transaction; where a sliced
            // limit's first counter is full, the rest as `hit_limits` counts it, then the challenge.
            let owned = (limits.to_vec(), ch.clone(), sms.cloned(), events.to_vec());
            let tried = self
                .write(async move |c| {
                    let (limits, ch, sms, events) = &owned;
                    let sms = sms.as_ref();
                    let tried = hit_firsts(c, limits, now_ms).await?;
                    if let FirstTry::All = tried {
                        insert_challenge(c, ch, sms, events).await?;
                    }
                    Ok(tried)
                })
                .await?;
            let from = match tried {
                FirstTry::All => return Ok(None),
                FirstTry::Full(i, wait_ms) => return Ok(after_shared((i, wait_ms))),
                FirstTry::SliceFull(i) => i,
            };
            if let Some(full) = hit_rest_alone(self, limits, from, now_ms).await? {
                return Ok(after_shared(full));
            }
            self.start_login(ch, sms, events).await?;
            return Ok(None);
        }
        // SQLite: one write, so one commit (a wait for the disk) for the hits and the challenge.
        let owned = (limits.to_vec(), ch.clone(), sms.cloned(), events.to_vec());
        self.write(async move |c| {
            let (limits, ch, sms, events) = &owned;
            let sms = sms.as_ref();
            if let Some(full) = hit_all_within(c, limits, now_ms).await? {
                return Ok(Some(full));
            }
            insert_challenge(c, ch, sms, events).await?;
            Ok(None)
        })
        .await
    }

    async fn start_login(&self, ch: &LoginChallenge, sms: Option<&OutboxMessage>, events: &[LoginEvent]) -> Result<()> {
        let (ch, sms, events) = (ch.clone(), sms.cloned(), events.to_vec());
        self.write(async move |c| insert_challenge(c, &ch, sms.as_ref(), &events).await).await
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
        let (id, events) = (id.clone(), events.to_vec());
        self.write(async move |c| {
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
                insert_events(c, &events).await?;
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
        let (id, code_hash, events) = (id.clone(), code_hash.clone(), events.to_vec());
        self.write(async move |c| {
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
            insert_events(c, &events).await?;
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
        let (id, code_hash, sms, events) = (id.clone(), code_hash.clone(), sms.cloned(), events.to_vec());
        self.write(async move |c| {
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
            if let Some(sms) = &sms {
                insert_outbox(c, sms).await?;
            }
            insert_events(c, &events).await?;
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
        let (id, code_hash, s, events) = (id.clone(), code_hash.clone(), s.clone(), events.to_vec());
        self.write(async move |c| {
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
            // A member seen active needs nothing here (one statement fewer at most logins).
            let activated = if !s.activates {
                0
            } else {
                c.execute(
                    sql("UPDATE members SET status = 'active', activated_at = $1, updated_at = $1 \
                         WHERE enterprise_id = $2 AND id = $3 AND status = 'invited'")
                    .bind(now)
                    .bind(ent)
                    .bind(mem),
                )
                .await?
            };
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
            insert_events(c, &events).await?;
            Ok(Some(member))
        })
        .await
    }

    async fn record_login_events(&self, events: &[LoginEvent]) -> Result<()> {
        let events = events.to_vec();
        self.write(async move |c| insert_events(c, &events).await).await
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

    async fn advance_login(&self, step: &StepMove<'_>) -> Result<bool> {
        let StepMove { id, from, code_hash, to, enterprise, member, device, expires_at } = *step;
        let (id, code_hash, enterprise, member, device) =
            (id.clone(), code_hash.clone(), enterprise.clone(), member.clone(), device.cloned());
        self.write(async move |c| {
            let done = c
                .execute(
                    sql("UPDATE login_challenges SET step = $1, enterprise_id = $2, member_id = $3, \
                         device_id = COALESCE($4, device_id), expires_at = $5 \
                         WHERE id = $6 AND step = $7 AND code_hash = $8")
                    .bind(to.as_str())
                    .bind(enterprise.as_str())
                    .bind(member.as_str())
                    .bind(device.as_ref().map(DeviceId::as_str))
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
}
