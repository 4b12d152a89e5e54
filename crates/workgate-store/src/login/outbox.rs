//! The SMS outbox: messages written with what they belong to, leased to the sender, marked sent or failed.

use crate::SqlStore;
use crate::rows::{LoginRow, OUTBOX_COLUMNS};
use crate::sql::{Conn, sql};
use async_trait::async_trait;
use workgate_domain::Result;
use workgate_domain::clock::Timestamp;
use workgate_domain::ids::{EnterpriseId, SmsId};
use workgate_domain::outbox::OutboxMessage;
use workgate_domain::store::OutboxStore;

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

#[async_trait]
impl OutboxStore for SqlStore {
    async fn lease_due_sms(&self, now: Timestamp, lease_ms: i64, limit: u32) -> Result<Vec<(OutboxMessage, i64)>> {
        // Several senders (nodes) may lease at once: each passes over the rows another holds.
        let skip_locked = self.dialect().skip_locked;
        let rows = self
            .write_alone(
                sql(format!(
                    "UPDATE sms_outbox SET state = 'sending', lease_until = $1, attempts = attempts + 1 \
                     WHERE id IN (SELECT id FROM sms_outbox WHERE (state = 'pending' AND next_attempt_at <= $2) \
                     OR (state = 'sending' AND lease_until <= $2) ORDER BY next_attempt_at LIMIT $3{skip_locked}) \
                     RETURNING {OUTBOX_COLUMNS}"
                ))
                .bind(now.millis() + lease_ms)
                .bind(now.millis())
                .bind(i64::from(limit)),
            )
            .await?;
        rows.iter().map(|r| r.outbox_message()).collect()
    }

    async fn mark_sms_sent(&self, ids: &[SmsId], provider: &str, now: Timestamp) -> Result<()> {
        // Each message's mark stands alone (a message marked twice is marked once): one statement
        // per batch of them.
        for chunk in ids.chunks(crate::directory::ROWS_PER_INSERT) {
            // The body is erased in the same statement: a delivered message keeps no secret.
            let mut q = sql("UPDATE sms_outbox SET state = 'sent', sent_at = $1, provider = $2, lease_until = NULL, \
                             last_error = NULL, body = '' WHERE id IN (");
            q = q.bind(now.millis()).bind(provider);
            for (i, id) in chunk.iter().enumerate() {
                q.push(if i == 0 { "" } else { ", " });
                q.push_bind(id.as_str());
            }
            q.push(")");
            self.write_alone(q).await?;
        }
        Ok(())
    }

    async fn mark_sms_retry(&self, id: &SmsId, error: &str, next_attempt_at: Timestamp) -> Result<()> {
        self.write_alone(
            sql("UPDATE sms_outbox SET state = 'pending', next_attempt_at = $1, last_error = $2, \
                 lease_until = NULL WHERE id = $3")
            .bind(next_attempt_at.millis())
            .bind(error)
            .bind(id.as_str()),
        )
        .await?;
        Ok(())
    }

    async fn mark_sms_failed(&self, id: &SmsId, error: &str, _now: Timestamp) -> Result<()> {
        self.write_alone(
            sql("UPDATE sms_outbox SET state = 'failed', last_error = $1, lease_until = NULL, body = '' WHERE id = $2")
                .bind(error)
                .bind(id.as_str()),
        )
        .await?;
        Ok(())
    }
}
