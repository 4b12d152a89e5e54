//! The `RetentionStore` part: deleting what retention no longer keeps, a batch per statement,
//! written once for both databases, and the lock that lets one PostgreSQL node prune at a time.
//!
//! Each batch is `DELETE … WHERE <key> IN (SELECT <key> … LIMIT n)`, one short transaction: on
//! SQLite one write of the group writer among the requests' writes, on PostgreSQL passing over
//! rows that a request holds locked (`SKIP LOCKED`). Every condition reads a time column that an
//! index of migration 0009 (or an older one) covers.

use crate::errors::SqlxResultExt;
use crate::sql::sql;
use crate::{Db, SqlStore};
use async_trait::async_trait;
use sqlx::{Connection, PgConnection};
use workgate_domain::Result;
use workgate_domain::retention::{Prune, PruningLock, RetentionStore};

/// The first key of the pruning lock (`pg_try_advisory_lock(int, int)`: "WGPR"); the second is
/// the hash of the schema, so that deployments sharing a database in schemas of their own do not
/// wait for each other. The two-key form never collides with the one-key locks of the limits and
/// the migrator.
const LOCK_CLASS: i32 = 0x5747_5052;
const LOCK_ARGS: &str = "$1, hashtext(current_schema())";

/// The query deleting at most `$2` rows that `what` selects (`$1`, and `$3` for sessions).
fn delete_batch(what: &Prune, skip_locked: &str) -> String {
    let one_key = |table: &str, key: &str, condition: &str| {
        format!(
            "DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {condition} LIMIT $2{skip_locked})"
        )
    };
    match what {
        Prune::LoginChallenges { .. } => one_key("login_challenges", "id", "expires_at < $1"),
        Prune::LoginEvents { .. } => one_key("login_events", "id", "at < $1"),
        Prune::Invitations { .. } => one_key("invitations", "id", "expires_at < $1"),
        Prune::Sms { .. } => one_key(
            "sms_outbox",
            "id",
            "state IN ('sent', 'failed') AND created_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM invitations i WHERE i.sms_id = sms_outbox.id)",
        ),
        Prune::UsedRefreshTokens { .. } => one_key("used_refresh_tokens", "token_hash", "used_at < $1"),
        Prune::Sessions { .. } => one_key(
            "sessions",
            "id",
            "revoked_at < $1 OR (refreshed_at < $3 AND access_expires_at < $1 AND revoked_at IS NULL)",
        ),
        Prune::OidcCodes { .. } => one_key("oidc_codes", "code_hash", "expires_at < $1"),
        Prune::OidcTokens { .. } => one_key("oidc_tokens", "token_hash", "expires_at < $1 OR spent_at < $1"),
        Prune::OidcGrants { .. } => one_key(
            "oidc_grants",
            "id",
            "revoked_at < $1 OR (created_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM oidc_tokens t WHERE t.grant_id = oidc_grants.id))",
        ),
        Prune::IdempotencyKeys { .. } => format!(
            "DELETE FROM idempotency_keys WHERE (scope, key) IN (SELECT scope, key FROM idempotency_keys \
             WHERE created_at < $1 LIMIT $2{skip_locked})"
        ),
        Prune::RateCounters { .. } => format!(
            "DELETE FROM rate_counters WHERE (bucket, window_start) IN (SELECT bucket, window_start \
             FROM rate_counters WHERE window_start < $1 LIMIT $2{skip_locked})"
        ),
        Prune::AuditLog { .. } => one_key("audit_log", "id", "at < $1"),
        Prune::FailureLocks { .. } => one_key("failure_locks", "subject", "last_failure_at < $1 AND locked_until < $1"),
    }
}

/// The cut-offs of `what`: `$1`, and `$3` where there is a second.
fn cutoffs(what: &Prune) -> (i64, Option<i64>) {
    match *what {
        Prune::LoginChallenges { expired_before: t }
        | Prune::LoginEvents { before: t }
        | Prune::Invitations { expired_before: t }
        | Prune::Sms { queued_before: t }
        | Prune::UsedRefreshTokens { used_before: t }
        | Prune::OidcCodes { expired_before: t }
        | Prune::OidcTokens { ended_before: t }
        | Prune::OidcGrants { ended_before: t }
        | Prune::IdempotencyKeys { created_before: t }
        | Prune::RateCounters { slot_before: t }
        | Prune::FailureLocks { quiet_since: t }
        | Prune::AuditLog { before: t } => (t.millis(), None),
        Prune::Sessions { ended_before, idle_before } => (ended_before.millis(), Some(idle_before.millis())),
    }
}

/// The PostgreSQL pruning lock: a session advisory lock on a connection taken out of the pool
/// for the pass. If the pass is abandoned without releasing it, dropping the connection closes it,
/// and PostgreSQL releases the lock with the session: it can never stay behind in the pool.
struct PgPruningLock {
    conn: PgConnection,
}

#[async_trait]
impl PruningLock for PgPruningLock {
    async fn release(self: Box<Self>) -> Result<()> {
        let mut conn = self.conn;
        sqlx::query(&format!("SELECT pg_advisory_unlock({LOCK_ARGS})"))
            .bind(LOCK_CLASS)
            .execute(&mut conn)
            .await
            .db()?;
        conn.close().await.db()
    }
}

/// SQLite has one writer process: there is no other node to keep out.
struct NoLock;

#[async_trait]
impl PruningLock for NoLock {
    async fn release(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

#[async_trait]
impl RetentionStore for SqlStore {
    async fn pruning_lock(&self) -> Result<Option<Box<dyn PruningLock>>> {
        match &self.db {
            Db::Sqlite { .. } => Ok(Some(Box::new(NoLock))),
            Db::Postgres { pool, .. } => {
                let mut conn = pool.acquire().await.db()?.detach();
                let locked: bool = sqlx::query_scalar(&format!("SELECT pg_try_advisory_lock({LOCK_ARGS})"))
                    .bind(LOCK_CLASS)
                    .fetch_one(&mut conn)
                    .await
                    .db()?;
                if locked {
                    Ok(Some(Box::new(PgPruningLock { conn })))
                } else {
                    conn.close().await.db()?;
                    Ok(None)
                }
            }
        }
    }

    async fn prune_batch(&self, what: &Prune, limit: u32) -> Result<u64> {
        let (first, second) = cutoffs(what);
        let what = *what;
        self.write(async move |c| {
            let what = &what;
            let mut q = sql(delete_batch(what, c.dialect().skip_locked)).bind(first).bind(i64::from(limit));
            if let Some(second) = second {
                q = q.bind(second);
            }
            c.execute(q).await
        })
        .await
    }
}
