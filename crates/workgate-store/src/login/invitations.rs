//! Invitations: a new link replaces the pending one; found by its token's hash.

use super::outbox::insert_outbox;
use crate::SqlStore;
use crate::directory::insert_audit;
use crate::rows::LoginRow;
use crate::sql::{Conn, sql};
use async_trait::async_trait;
use workgate_domain::Result;
use workgate_domain::ids::{EnterpriseId, MemberId};
use workgate_domain::invitations::{Invitation, NewInvitation};
use workgate_domain::model::AuditEntry;
use workgate_domain::secret::SecretHash;
use workgate_domain::store::InvitationStore;

/// An invitation with the state of its SMS (decoded by `DomainRow::invitation`).
const INVITATION_WITH_SMS: &str = "SELECT i.id, i.enterprise_id, i.member_id, i.state, i.created_at, i.expires_at, \
     o.state AS sms_state, o.attempts AS sms_attempts, o.last_error AS sms_last_error, o.sent_at AS sms_sent_at \
     FROM invitations i LEFT JOIN sms_outbox o ON o.id = i.sms_id";

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

#[async_trait]
impl InvitationStore for SqlStore {
    async fn replace_invitation(&self, new: &NewInvitation, audit: &AuditEntry) -> Result<()> {
        let (audit, new) = (audit.clone(), new.clone());
        self.write(async move |c| {
            let (audit, new) = (&audit, &new);
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
            .fetch_optional(sql(format!("{INVITATION_WITH_SMS} WHERE i.token_hash = $1")).bind(token_hash.as_str()))
            .await?;
        row.map(|r| r.invitation()).transpose()
    }

    async fn list_invitations(&self, enterprise: &EnterpriseId, member: &MemberId) -> Result<Vec<Invitation>> {
        let rows = self
            .reader()
            .fetch_all(
                sql(format!(
                    "{INVITATION_WITH_SMS} WHERE i.enterprise_id = $1 AND i.member_id = $2 ORDER BY i.id DESC"
                ))
                .bind(enterprise.as_str())
                .bind(member.as_str()),
            )
            .await?;
        rows.iter().map(|r| r.invitation()).collect()
    }
}
