//! Passwords: their state per member, setting one, attempts reserved before Argon2 runs.

use super::limits::doubling_lock;
use crate::SqlStore;
use crate::directory::insert_audit;
use crate::rows::DomainRow;
use crate::sql::sql;
use async_trait::async_trait;
use workgate_domain::Result;
use workgate_domain::clock::Timestamp;
use workgate_domain::ids::{EnterpriseId, MemberId};
use workgate_domain::model::AuditEntry;
use workgate_domain::passwords::PasswordState;
use workgate_domain::store::PasswordStore;

#[async_trait]
impl PasswordStore for SqlStore {
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
        let (enterprise, hash, member) = (enterprise.clone(), hash.to_owned(), member.clone());
        self.write(async move |c| {
            let (enterprise, hash, member) = (&enterprise, hash.as_str(), &member);
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
        let (enterprise, member) = (enterprise.clone(), member.clone());
        self.write(async move |c| {
            let (enterprise, member) = (&enterprise, &member);
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
        let (enterprise, member) = (enterprise.clone(), member.clone());
        self.write(async move |c| {
            let (enterprise, member) = (&enterprise, &member);
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
        let (enterprise, member, audit) = (enterprise.clone(), member.clone(), audit.clone());
        self
            .write(async move |c| {
                let (enterprise, member, audit) = (&enterprise, &member, &audit);
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
}
