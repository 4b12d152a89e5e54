//! The `Store` half: enterprises, API keys, the department tree, members, the audit log and
//! idempotency keys, for both databases.
//!
//! Concurrency on PostgreSQL (where SQLite's single writer gives it for free): every write that
//! changes the department tree, or that must leave an owner standing, first locks its
//! enterprise's row (`lock_enterprise`), so those writes of one enterprise happen one after
//! another while other enterprises carry on; a member update locks the member's row before
//! comparing it with the record the change was computed from (`ensure_unchanged`).

use crate::SqlStore;
use crate::rows::{
    DEPARTMENT_COLUMNS, DomainRow, MEMBER_AND_ENTERPRISE, MEMBER_COLUMNS, join_ids, like_pattern, subtree_upper_bound,
};
use crate::sql::{Arg, Conn, Prefixed, sql};
use async_trait::async_trait;
use workgate_domain::clock::Timestamp;
use workgate_domain::idempotency::{Claim, KEY_LIFETIME_MS, StoredResponse};
use workgate_domain::ids::{ApiKeyId, DepartmentId, EnterpriseId, MemberId};
use workgate_domain::invitations::NewInvitation;
use workgate_domain::model::{ApiKey, AuditEntry, Department, Enterprise, Member};
use workgate_domain::phone::PhoneNumber;
use workgate_domain::secret::SecretHash;
use workgate_domain::sessions::EndReason;
use workgate_domain::store::{AuditFilter, DirectoryChange, MemberFilter, NewEnterprise, Store};
use workgate_domain::values::MemberStatus;
use workgate_domain::{Error, Result};

/// Rows per multi-row `INSERT` of a bulk write: one statement instead of hundreds (each costs a
/// round trip to the database), well below the bound values a statement may have (SQLite 32,766,
/// PostgreSQL 65,535).
pub(crate) const ROWS_PER_INSERT: usize = 200;

pub(crate) async fn insert_audit(c: &mut Conn<'_>, entries: &[AuditEntry]) -> Result<()> {
    for chunk in entries.chunks(ROWS_PER_INSERT) {
        let mut q = sql("INSERT INTO audit_log (id, enterprise_id, at, actor, action, target, ip, details)");
        q.push_values(chunk, |row, e| {
            row.bind(e.id.as_str())
                .bind(e.enterprise_id.as_str())
                .bind(e.at.millis())
                .bind(&e.actor)
                .bind(&e.action)
                .bind(e.target.as_deref())
                .bind(e.ip.as_deref())
                .bind(e.details.to_string());
        });
        c.execute(q).await?;
    }
    Ok(())
}

/// Writes invitations of new members and their SMS, many to a statement (a bulk import's).
async fn insert_invitations(c: &mut Conn<'_>, invitations: &[&NewInvitation]) -> Result<()> {
    for chunk in invitations.chunks(ROWS_PER_INSERT) {
        let mut q = sql("INSERT INTO sms_outbox (id, enterprise_id, phone, body, purpose, state, attempts, \
                         next_attempt_at, created_at)");
        q.push_values(chunk, |row, n| {
            let m = &n.sms;
            row.bind(m.id.as_str())
                .bind(m.enterprise_id.as_ref().map(EnterpriseId::as_str))
                .bind(m.phone.as_str())
                .bind(m.body.as_stored())
                .bind(m.purpose.as_str())
                .bind("pending")
                .bind(0)
                .bind(m.created_at.millis())
                .bind(m.created_at.millis());
        });
        c.execute(q).await?;
        let mut q = sql("INSERT INTO invitations (id, enterprise_id, member_id, token_hash, sms_id, state, \
                         created_at, expires_at)");
        q.push_values(chunk, |row, n| {
            let i = &n.invitation;
            row.bind(i.id.as_str())
                .bind(i.enterprise_id.as_str())
                .bind(i.member_id.as_str())
                .bind(n.token_hash.as_str())
                .bind(n.sms.id.as_str())
                .bind("pending")
                .bind(i.created_at.millis())
                .bind(i.expires_at.millis());
        });
        c.execute(q).await?;
    }
    Ok(())
}

/// Ends the access a member's earlier state gave, in the transaction that writes the new one:
/// disabling or departing ends every session, device trust and app grant (departing also cancels
/// invitations); so does a new phone number, which is a new authenticator (its pending invitation
/// went to the old number and is cancelled too).
async fn revoke_what_changed(c: &mut Conn<'_>, previous: &Member, member: &Member) -> Result<()> {
    let (reason, cancel_invitations) = match member.status {
        MemberStatus::Disabled => (EndReason::MemberDisabled, false),
        MemberStatus::Departed => (EndReason::MemberDeparted, true),
        _ if previous.phone != member.phone => (EndReason::PhoneChanged, true),
        _ => return Ok(()),
    };
    crate::login::revoke_member_access(
        c,
        &member.enterprise_id,
        &member.id,
        reason,
        cancel_invitations,
        member.updated_at,
    )
    .await
}

/// Appends `audit` if the statement before it changed rows (`changed`); answers whether it did
/// (`false`: nothing of that id in this enterprise, nothing written).
pub(crate) async fn audit_if_changed(c: &mut Conn<'_>, changed: u64, audit: &AuditEntry) -> Result<bool> {
    if changed == 0 {
        return Ok(false);
    }
    insert_audit(c, std::slice::from_ref(audit)).await?;
    Ok(true)
}

/// Makes the writes of one enterprise that check something before writing (the department tree,
/// the standing owners) wait for each other. Nothing to do on SQLite: its writes never overlap.
async fn lock_enterprise(c: &mut Conn<'_>, enterprise: &EnterpriseId) -> Result<()> {
    let d = c.dialect();
    if d.concurrent_writers {
        c.execute(sql(format!("SELECT id FROM enterprises WHERE id = $1{}", d.lock_row)).bind(enterprise.as_str()))
            .await?;
    }
    Ok(())
}

async fn department_path(c: &mut Conn<'_>, enterprise: &EnterpriseId, id: &DepartmentId) -> Result<Option<String>> {
    c.optional_value(
        sql("SELECT path FROM departments WHERE enterprise_id = $1 AND id = $2")
            .bind(enterprise.as_str())
            .bind(id.as_str()),
    )
    .await
}

async fn insert_department(c: &mut Conn<'_>, d: &Department, created_at: i64) -> Result<()> {
    let parent_path = match &d.parent_id {
        None => None,
        Some(parent) => Some(
            department_path(c, &d.enterprise_id, parent)
                .await?
                .ok_or_else(|| Error::field("parent_id", "no such department in this enterprise"))?,
        ),
    };
    let path = format!("{}{}/", parent_path.as_deref().unwrap_or("/"), d.id);
    c.execute(
        sql("INSERT INTO departments (id, enterprise_id, parent_id, name, sort_order, path, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(d.id.as_str())
        .bind(d.enterprise_id.as_str())
        .bind(d.parent_id.as_ref().map(DepartmentId::as_str))
        .bind(d.name.as_str())
        .bind(d.order)
        .bind(path)
        .bind(created_at),
    )
    .await?;
    Ok(())
}

/// A member's values, in the order in which `write_member` and `insert_members` name the columns.
fn member_values(m: &Member) -> [Arg<'_>; 16] {
    [
        m.userid.as_str().into(),
        m.userid.key().into(),
        m.name.as_str().into(),
        m.name.as_str().to_lowercase().into(),
        m.phone.as_str().into(),
        m.email.as_ref().map(|e| e.as_str()).into(),
        m.title.as_ref().map(|t| t.as_str()).into(),
        join_ids(&m.departments).into(),
        m.role.as_str().into(),
        join_ids(&m.admin_departments).into(),
        m.status.as_str().into(),
        m.created_at.millis().into(),
        m.activated_at.map(|t| t.millis()).into(),
        m.updated_at.millis().into(),
        m.id.as_str().into(),
        m.enterprise_id.as_str().into(),
    ]
}

async fn write_member(c: &mut Conn<'_>, m: &Member, insert: bool) -> Result<()> {
    let text = if insert {
        "INSERT INTO members (userid, userid_key, name, name_key, phone, email, title, department_ids, role, \
         admin_department_ids, status, created_at, activated_at, updated_at, id, enterprise_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
    } else {
        "UPDATE members SET userid = $1, userid_key = $2, name = $3, name_key = $4, phone = $5, email = $6, \
         title = $7, department_ids = $8, role = $9, admin_department_ids = $10, status = $11, created_at = $12, \
         activated_at = $13, updated_at = $14 WHERE id = $15 AND enterprise_id = $16"
    };
    let done = c.execute(sql(text).bind_all(member_values(m))).await?;
    if done == 0 {
        return Err(Error::NotFound("member"));
    }
    if !insert {
        c.execute(
            sql("DELETE FROM member_departments WHERE member_id = $1 AND enterprise_id = $2")
                .bind(m.id.as_str())
                .bind(m.enterprise_id.as_str()),
        )
        .await?;
    }
    for d in &m.departments {
        c.execute(
            sql("INSERT INTO member_departments (enterprise_id, member_id, department_id) VALUES ($1, $2, $3)")
                .bind(m.enterprise_id.as_str())
                .bind(m.id.as_str())
                .bind(d.as_str()),
        )
        .await?;
    }
    Ok(())
}

/// Inserts new members and their department memberships with multi-row statements: a bulk import
/// writes thousands of members at once, and one statement per row would cost more than the
/// writing itself.
async fn insert_members(c: &mut Conn<'_>, members: &[&Member]) -> Result<()> {
    for chunk in members.chunks(ROWS_PER_INSERT) {
        let mut q =
            sql("INSERT INTO members (userid, userid_key, name, name_key, phone, email, title, department_ids, \
             role, admin_department_ids, status, created_at, activated_at, updated_at, id, enterprise_id)");
        q.push_values(chunk, |row, m| {
            row.bind_all(member_values(m));
        });
        c.execute(q).await?;
    }
    let memberships: Vec<(&Member, &DepartmentId)> =
        members.iter().flat_map(|m| m.departments.iter().map(move |d| (*m, d))).collect();
    for chunk in memberships.chunks(ROWS_PER_INSERT) {
        let mut q = sql("INSERT INTO member_departments (enterprise_id, member_id, department_id)");
        q.push_values(chunk, |row, (m, d)| {
            row.bind(m.enterprise_id.as_str()).bind(m.id.as_str()).bind(d.as_str());
        });
        c.execute(q).await?;
    }
    Ok(())
}

/// Optimistic concurrency, checked inside the writing transaction: the stored member must still
/// be the record that a change was computed from. On PostgreSQL the row stays locked until the
/// commit, so nobody changes it between this check and the write.
async fn ensure_unchanged(c: &mut Conn<'_>, previous: &Member) -> Result<()> {
    let lock = c.dialect().lock_row;
    let row = c
        .fetch_optional(
            sql(format!("SELECT {MEMBER_COLUMNS} FROM members WHERE enterprise_id = $1 AND id = $2{lock}"))
                .bind(previous.enterprise_id.as_str())
                .bind(previous.id.as_str()),
        )
        .await?;
    match row.map(|r| r.member()).transpose()? {
        None => Err(Error::NotFound("member")),
        Some(stored) if stored == *previous => Ok(()),
        Some(_) => Err(Error::ChangedMeanwhile("member")),
    }
}

/// "At least one owner always exists", checked inside the writing transaction (which holds the
/// enterprise's lock on PostgreSQL, so two demotions cannot each count the other as standing).
async fn ensure_an_owner_stands(c: &mut Conn<'_>, enterprise: &EnterpriseId) -> Result<()> {
    let owners: i64 = c
        .value(
            sql("SELECT COUNT(*) FROM members WHERE enterprise_id = $1 AND role = 'owner' \
                 AND status IN ('invited', 'active')")
            .bind(enterprise.as_str()),
        )
        .await?;
    if owners == 0 {
        return Err(Error::Conflict(
            "this is the enterprise's last owner: make another member owner before demoting, disabling or departing this one"
                .into(),
        ));
    }
    Ok(())
}

async fn insert_api_key(c: &mut Conn<'_>, key: &ApiKey, hash: &SecretHash) -> Result<()> {
    c.execute(
        sql("INSERT INTO api_keys (id, enterprise_id, name, prefix, secret_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(key.id.as_str())
        .bind(key.enterprise_id.as_str())
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(hash.as_str())
        .bind(key.created_at.millis()),
    )
    .await?;
    Ok(())
}

/// Claims a key nobody holds by inserting it: of two requests racing for it, one inserts it and
/// the other (after waiting for the first's commit, on PostgreSQL) finds it taken.
async fn claim_new_key(c: &mut Conn<'_>, scope: &str, key: &str, fingerprint: &str, now: Timestamp) -> Result<bool> {
    let inserted = c
        .execute(
            sql("INSERT INTO idempotency_keys (scope, key, fingerprint, state, created_at) \
                 VALUES ($1, $2, $3, 'pending', $4) ON CONFLICT (scope, key) DO NOTHING")
            .bind(scope)
            .bind(key)
            .bind(fingerprint)
            .bind(now.millis()),
        )
        .await?;
    Ok(inserted == 1)
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> Result<()> {
        self.reader().execute(sql("SELECT 1")).await?;
        Ok(())
    }

    async fn create_enterprise(&self, new: NewEnterprise<'_>) -> Result<()> {
        let owned = (
            new.enterprise.clone(),
            new.root.clone(),
            new.owner.clone(),
            new.api_key.clone(),
            new.api_key_hash.clone(),
            new.audit.to_vec(),
        );
        self.write(async move |c| {
            let (enterprise, root, owner, api_key, api_key_hash, audit) = &owned;
            let new = NewEnterprise { enterprise, root, owner, api_key, api_key_hash, audit };
            let e = new.enterprise;
            c.execute(
                sql("INSERT INTO enterprises (id, name, region, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(e.id.as_str())
                    .bind(e.name.as_str())
                    .bind(e.region.as_str())
                    .bind(e.created_at.millis()),
            )
            .await?;
            insert_department(c, new.root, e.created_at.millis()).await?;
            write_member(c, new.owner, true).await?;
            insert_api_key(c, new.api_key, new.api_key_hash).await?;
            insert_audit(c, new.audit).await?;
            Ok(())
        })
        .await
    }

    async fn get_enterprise(&self, id: &EnterpriseId) -> Result<Option<Enterprise>> {
        let row = self
            .reader()
            .fetch_optional(sql("SELECT id, name, region, created_at FROM enterprises WHERE id = $1").bind(id.as_str()))
            .await?;
        row.map(|r| r.enterprise()).transpose()
    }

    async fn count_enterprises(&self) -> Result<i64> {
        self.reader().value(sql("SELECT COUNT(*) FROM enterprises")).await
    }

    async fn find_api_key(&self, hash: &SecretHash) -> Result<Option<ApiKey>> {
        let row = self
            .reader()
            .fetch_optional(
                sql("SELECT id, enterprise_id, name, prefix, created_at FROM api_keys WHERE secret_hash = $1")
                    .bind(hash.as_str()),
            )
            .await?;
        row.map(|r| r.api_key()).transpose()
    }

    async fn list_api_keys(&self, enterprise: &EnterpriseId) -> Result<Vec<ApiKey>> {
        let rows = self
            .reader()
            .fetch_all(
                sql("SELECT id, enterprise_id, name, prefix, created_at FROM api_keys WHERE enterprise_id = $1 \
                     ORDER BY id")
                .bind(enterprise.as_str()),
            )
            .await?;
        rows.iter().map(|r| r.api_key()).collect()
    }

    async fn insert_api_key(&self, key: &ApiKey, hash: &SecretHash, audit: &AuditEntry) -> Result<()> {
        let (audit, hash, key) = (audit.clone(), hash.clone(), key.clone());
        self.write(async move |c| {
            let (audit, hash, key) = (&audit, &hash, &key);
            insert_api_key(c, key, hash).await?;
            insert_audit(c, std::slice::from_ref(audit)).await?;
            Ok(())
        })
        .await
    }

    async fn delete_api_key(&self, enterprise: &EnterpriseId, id: &ApiKeyId, audit: &AuditEntry) -> Result<bool> {
        let (audit, enterprise, id) = (audit.clone(), enterprise.clone(), id.clone());
        self.write(async move |c| {
            let (audit, enterprise, id) = (&audit, &enterprise, &id);
            let done = c
                .execute(
                    sql("DELETE FROM api_keys WHERE enterprise_id = $1 AND id = $2")
                        .bind(enterprise.as_str())
                        .bind(id.as_str()),
                )
                .await?;
            audit_if_changed(c, done, audit).await
        })
        .await
    }

    async fn list_departments(&self, enterprise: &EnterpriseId) -> Result<Vec<Department>> {
        let rows = self
            .reader()
            .fetch_all(
                sql(format!("SELECT {DEPARTMENT_COLUMNS} FROM departments WHERE enterprise_id = $1"))
                    .bind(enterprise.as_str()),
            )
            .await?;
        rows.iter().map(|r| r.department()).collect()
    }

    async fn get_department(&self, enterprise: &EnterpriseId, id: &DepartmentId) -> Result<Option<Department>> {
        let row = self
            .reader()
            .fetch_optional(
                sql(format!("SELECT {DEPARTMENT_COLUMNS} FROM departments WHERE enterprise_id = $1 AND id = $2"))
                    .bind(enterprise.as_str())
                    .bind(id.as_str()),
            )
            .await?;
        row.map(|r| r.department()).transpose()
    }

    async fn insert_department(&self, department: &Department, audit: &AuditEntry) -> Result<()> {
        let (audit, department) = (audit.clone(), department.clone());
        self.write(async move |c| {
            let (audit, department) = (&audit, &department);
            // The parent's path is read and copied: it must not move meanwhile.
            lock_enterprise(c, &department.enterprise_id).await?;
            insert_department(c, department, audit.at.millis()).await?;
            insert_audit(c, std::slice::from_ref(audit)).await?;
            Ok(())
        })
        .await
    }

    async fn update_department(&self, d: &Department, audit: &AuditEntry) -> Result<()> {
        let (audit, d) = (audit.clone(), d.clone());
        self.write(async move |c| {
            let (audit, d) = (&audit, &d);
            let ent = &d.enterprise_id;
            lock_enterprise(c, ent).await?;
            let old_path = department_path(c, ent, &d.id).await?.ok_or(Error::NotFound("department"))?;
            let new_path = match &d.parent_id {
                None => old_path.clone(),
                Some(parent) => {
                    let parent_path = department_path(c, ent, parent)
                        .await?
                        .ok_or_else(|| Error::field("parent_id", "no such department in this enterprise"))?;
                    if parent_path.starts_with(&old_path) {
                        return Err(Error::field("parent_id", "a department cannot be moved under itself"));
                    }
                    format!("{parent_path}{}/", d.id)
                }
            };
            c.execute(
                sql("UPDATE departments SET name = $1, sort_order = $2, parent_id = $3 \
                     WHERE enterprise_id = $4 AND id = $5")
                .bind(d.name.as_str())
                .bind(d.order)
                .bind(d.parent_id.as_ref().map(DepartmentId::as_str))
                .bind(ent.as_str())
                .bind(d.id.as_str()),
            )
            .await?;
            if new_path != old_path {
                c.execute(
                    sql("UPDATE departments SET path = $1 || substr(path, length($2) + 1) \
                         WHERE enterprise_id = $3 AND path >= $2 AND path < $4")
                    .bind(&new_path)
                    .bind(&old_path)
                    .bind(ent.as_str())
                    .bind(subtree_upper_bound(&old_path)),
                )
                .await?;
            }
            insert_audit(c, std::slice::from_ref(audit)).await?;
            Ok(())
        })
        .await
    }

    async fn delete_department(&self, enterprise: &EnterpriseId, id: &DepartmentId, audit: &AuditEntry) -> Result<()> {
        let (audit, enterprise, id) = (audit.clone(), enterprise.clone(), id.clone());
        self.write(async move |c| {
            let (audit, enterprise, id) = (&audit, &enterprise, &id);
            let ent = enterprise.as_str();
            lock_enterprise(c, enterprise).await?;
            let children: i64 = c
                .value(
                    sql("SELECT COUNT(*) FROM departments WHERE enterprise_id = $1 AND parent_id = $2")
                        .bind(ent)
                        .bind(id.as_str()),
                )
                .await?;
            if children > 0 {
                return Err(Error::Conflict(format!(
                    "the department has {children} sub-department(s); move or delete them first"
                )));
            }
            let members: i64 = c
                .value(
                    sql("SELECT COUNT(*) FROM member_departments md JOIN members m ON m.id = md.member_id \
                         WHERE md.enterprise_id = $1 AND md.department_id = $2 AND m.status <> 'departed'")
                    .bind(ent)
                    .bind(id.as_str()),
                )
                .await?;
            if members > 0 {
                return Err(Error::Conflict(format!(
                    "the department has {members} member(s); move them elsewhere first"
                )));
            }
            let instr = c.dialect().instr;
            let admins: i64 = c
                .value(
                    sql(format!(
                        "SELECT COUNT(*) FROM members WHERE enterprise_id = $1 AND status <> 'departed' \
                         AND {instr}(',' || admin_department_ids || ',', ',' || $2 || ',') > 0"
                    ))
                    .bind(ent)
                    .bind(id.as_str()),
                )
                .await?;
            if admins > 0 {
                return Err(Error::Conflict(format!(
                    "{admins} department admin(s) administer this department; change their admin_departments first"
                )));
            }
            // Departed members keep their record, not their place in a department that is gone.
            c.execute(
                sql("DELETE FROM member_departments WHERE enterprise_id = $1 AND department_id = $2")
                    .bind(ent)
                    .bind(id.as_str()),
            )
            .await?;
            let done = c
                .execute(
                    sql("DELETE FROM departments WHERE enterprise_id = $1 AND id = $2").bind(ent).bind(id.as_str()),
                )
                .await?;
            if done == 0 {
                return Err(Error::NotFound("department"));
            }
            insert_audit(c, std::slice::from_ref(audit)).await?;
            Ok(())
        })
        .await
    }

    async fn insert_member(
        &self,
        member: &Member,
        audit: &AuditEntry,
        invitation: Option<&workgate_domain::invitations::NewInvitation>,
    ) -> Result<()> {
        let (audit, invitation, member) = (audit.clone(), invitation.cloned(), member.clone());
        self.write(async move |c| {
            let (audit, invitation, member) = (&audit, invitation.as_ref(), &member);
            if !member.admin_departments.is_empty() {
                // A department admin's departments are checked for admins when one is deleted.
                lock_enterprise(c, &member.enterprise_id).await?;
            }
            write_member(c, member, true).await?;
            if let Some(invitation) = invitation {
                crate::login::insert_invitation(c, invitation).await?;
            }
            insert_audit(c, std::slice::from_ref(audit)).await?;
            Ok(())
        })
        .await
    }

    async fn update_member(&self, previous: &Member, member: &Member, audit: &AuditEntry) -> Result<()> {
        let (audit, member, previous) = (audit.clone(), member.clone(), previous.clone());
        self.write(async move |c| {
            let (audit, member, previous) = (&audit, &member, &previous);
            lock_enterprise(c, &member.enterprise_id).await?;
            ensure_unchanged(c, previous).await?;
            write_member(c, member, false).await?;
            revoke_what_changed(c, previous, member).await?;
            ensure_an_owner_stands(c, &member.enterprise_id).await?;
            insert_audit(c, std::slice::from_ref(audit)).await?;
            Ok(())
        })
        .await
    }

    async fn get_member(&self, enterprise: &EnterpriseId, id: &MemberId) -> Result<Option<Member>> {
        let row = self
            .reader()
            .fetch_optional(
                sql(format!("SELECT {MEMBER_COLUMNS} FROM members WHERE enterprise_id = $1 AND id = $2"))
                    .bind(enterprise.as_str())
                    .bind(id.as_str()),
            )
            .await?;
        row.map(|r| r.member()).transpose()
    }

    async fn member_and_enterprise(
        &self,
        enterprise: &EnterpriseId,
        id: &MemberId,
    ) -> Result<Option<(Member, Enterprise)>> {
        static QUERY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "SELECT {} FROM members m JOIN enterprises e ON e.id = m.enterprise_id \
                 WHERE m.enterprise_id = $1 AND m.id = $2",
                *MEMBER_AND_ENTERPRISE
            )
        });
        let row = self.reader().fetch_optional(sql(QUERY.as_str()).bind(enterprise.as_str()).bind(id.as_str())).await?;
        row.map(|r| Ok((Prefixed(&r, "m_").member()?, Prefixed(&r, "e_").enterprise()?))).transpose()
    }

    async fn list_members(&self, enterprise: &EnterpriseId, filter: &MemberFilter) -> Result<Vec<Member>> {
        let mut c = self.reader();
        let mut q = sql(format!("SELECT {MEMBER_COLUMNS} FROM members m WHERE m.enterprise_id = "));
        q.push_bind(enterprise.as_str());
        if filter.statuses.is_empty() {
            q.push(" AND m.status <> 'departed'");
        } else {
            q.push(" AND m.status IN (");
            for (i, s) in filter.statuses.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.push_bind(s.as_str());
            }
            q.push(")");
        }
        if let Some(after) = &filter.after {
            q.push(" AND m.id > ").push_bind(after.as_str());
        }
        if let Some(text) = &filter.query {
            let pattern = like_pattern(&text.to_lowercase());
            q.push(" AND (m.name_key LIKE ").push_bind(pattern.clone()).push(" ESCAPE '\\'");
            q.push(" OR m.userid_key LIKE ").push_bind(pattern).push(" ESCAPE '\\'");
            let digits: String = text.chars().filter(char::is_ascii_digit).collect();
            if digits.len() >= 3 && text.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c)) {
                q.push(" OR m.phone LIKE ").push_bind(like_pattern(&digits)).push(" ESCAPE '\\'");
            }
            q.push(")");
        }
        if let Some(department) = &filter.department {
            let Some(path) = department_path(&mut c, enterprise, department).await? else { return Ok(vec![]) };
            q.push(
                " AND EXISTS (SELECT 1 FROM member_departments md JOIN departments d ON d.id = md.department_id \
                 WHERE md.member_id = m.id AND d.enterprise_id = ",
            )
            .push_bind(enterprise.as_str())
            .push(" AND d.path >= ")
            .push_bind(path.clone())
            .push(" AND d.path < ")
            .push_bind(subtree_upper_bound(&path))
            .push(")");
        }
        if !filter.within.is_empty() {
            // A department admin's scope: members in any of these subtrees.
            let mut paths = Vec::new();
            for root in &filter.within {
                paths.extend(department_path(&mut c, enterprise, root).await?);
            }
            if paths.is_empty() {
                return Ok(vec![]);
            }
            q.push(
                " AND EXISTS (SELECT 1 FROM member_departments md JOIN departments d ON d.id = md.department_id \
                 WHERE md.member_id = m.id AND d.enterprise_id = ",
            )
            .push_bind(enterprise.as_str())
            .push(" AND (");
            for (i, path) in paths.iter().enumerate() {
                if i > 0 {
                    q.push(" OR ");
                }
                q.push("(d.path >= ")
                    .push_bind(path.clone())
                    .push(" AND d.path < ")
                    .push_bind(subtree_upper_bound(path));
                q.push(")");
            }
            q.push("))");
        }
        q.push(" ORDER BY m.id LIMIT ").push_bind(i64::from(filter.limit));
        let rows = c.fetch_all(q).await?;
        rows.iter().map(|r| r.member()).collect()
    }

    async fn find_members_by_phone(&self, enterprise: &EnterpriseId, phone: &PhoneNumber) -> Result<Vec<Member>> {
        let rows = self
            .reader()
            .fetch_all(
                sql(format!(
                    "SELECT {MEMBER_COLUMNS} FROM members WHERE enterprise_id = $1 AND phone = $2 ORDER BY id"
                ))
                .bind(enterprise.as_str())
                .bind(phone.as_str()),
            )
            .await?;
        rows.iter().map(|r| r.member()).collect()
    }

    async fn load_directory(&self, enterprise: &EnterpriseId) -> Result<(Vec<Department>, Vec<Member>)> {
        // Members are read a page at a time, so that a large directory is not held twice (as rows
        // and as members), in one read transaction, so that the pages are one snapshot.
        const PAGE: i64 = 5000;
        self.read_snapshot(async |c| {
            let rows = c
                .fetch_all(
                    sql(format!("SELECT {DEPARTMENT_COLUMNS} FROM departments WHERE enterprise_id = $1"))
                        .bind(enterprise.as_str()),
                )
                .await?;
            let departments = rows.iter().map(|r| r.department()).collect::<Result<Vec<_>>>()?;
            let mut members: Vec<Member> = Vec::new();
            loop {
                let after = members.last().map_or(String::new(), |m| m.id.to_string());
                let rows = c
                    .fetch_all(
                        sql(format!(
                            "SELECT {MEMBER_COLUMNS} FROM members WHERE enterprise_id = $1 AND status <> 'departed' \
                             AND id > $2 ORDER BY id LIMIT $3"
                        ))
                        .bind(enterprise.as_str())
                        .bind(after)
                        .bind(PAGE),
                    )
                    .await?;
                for row in &rows {
                    members.push(row.member()?);
                }
                if (rows.len() as i64) < PAGE {
                    break;
                }
            }
            Ok((departments, members))
        })
        .await
    }

    async fn apply_directory_changes(
        &self,
        enterprise: &EnterpriseId,
        changes: &[DirectoryChange],
        audit: &[AuditEntry],
    ) -> Result<()> {
        let (audit, changes, enterprise) = (audit.to_vec(), changes.to_vec(), enterprise.clone());
        self.write(async move |c| {
            let (audit, changes, enterprise) = (&audit[..], &changes[..], &enterprise);
            lock_enterprise(c, enterprise).await?;
            let mut touched_owner = false;
            // Consecutive new members are inserted together; the order of the changes is kept.
            let mut new_members: Vec<&Member> = Vec::new();
            let mut invitations = Vec::new();
            for (i, change) in changes.iter().enumerate() {
                match change {
                    DirectoryChange::Invite(new) if &new.invitation.enterprise_id == enterprise => {
                        invitations.push(&**new)
                    }
                    DirectoryChange::CreateMember(m) if &m.enterprise_id == enterprise => {
                        new_members.push(m);
                        if !matches!(changes.get(i + 1), Some(DirectoryChange::CreateMember(_))) {
                            insert_members(c, &std::mem::take(&mut new_members)).await?;
                        }
                    }
                    DirectoryChange::CreateDepartment(d) if &d.enterprise_id == enterprise => {
                        insert_department(c, d, audit.first().map_or(0, |a| a.at.millis())).await?
                    }
                    DirectoryChange::UpdateMember { previous, member } if &member.enterprise_id == enterprise => {
                        // Any update may demote, disable or depart an owner.
                        touched_owner = true;
                        ensure_unchanged(c, previous).await?;
                        write_member(c, member, false).await?;
                        revoke_what_changed(c, previous, member).await?
                    }
                    DirectoryChange::Notify(sms) if sms.enterprise_id.as_ref() == Some(enterprise) => {
                        crate::login::insert_outbox(c, sms).await?
                    }
                    _ => return Err(Error::Internal("a directory change named another enterprise".into())),
                }
            }
            if touched_owner {
                ensure_an_owner_stands(c, enterprise).await?;
            }
            // After the members they name (the changes list them last).
            insert_invitations(c, &invitations).await?;
            insert_audit(c, audit).await?;
            Ok(())
        })
        .await
    }

    async fn claim_idempotency_key(&self, scope: &str, key: &str, fingerprint: &str, now: Timestamp) -> Result<Claim> {
        let (fingerprint, key, scope) = (fingerprint.to_owned(), key.to_owned(), scope.to_owned());
        self.write(async move |c| {
            let (fingerprint, key, scope) = (fingerprint.as_str(), key.as_str(), scope.as_str());
            let d = c.dialect();
            let mut claimed = claim_new_key(c, scope, key, fingerprint, now).await?;
            if !claimed {
                // The key exists: read it, locked, so that two requests cannot both take it over
                // once it has expired.
                let row = c
                    .fetch_optional(
                        sql(format!(
                            "SELECT fingerprint, state, status, content_type, body, created_at FROM idempotency_keys \
                             WHERE scope = $1 AND key = $2{}",
                            d.lock_row
                        ))
                        .bind(scope)
                        .bind(key),
                    )
                    .await?;
                match row {
                    // Forgotten meanwhile (expired and cleaned up by another request).
                    None => claimed = claim_new_key(c, scope, key, fingerprint, now).await?,
                    Some(row) if row.get::<i64>("created_at")? + KEY_LIFETIME_MS > now.millis() => {
                        let stored_fingerprint: String = row.get("fingerprint")?;
                        let state: String = row.get("state")?;
                        return Ok(if stored_fingerprint != fingerprint {
                            Claim::Mismatch
                        } else if state == "pending" {
                            Claim::InProgress
                        } else {
                            let status: i64 = row.get("status")?;
                            Claim::Replay(StoredResponse {
                                status: u16::try_from(status).unwrap_or(500),
                                content_type: row.get::<Option<String>>("content_type")?.unwrap_or_default(),
                                body: row.get::<Option<Vec<u8>>>("body")?.unwrap_or_default(),
                            })
                        });
                    }
                    Some(_) => {
                        c.execute(
                            sql("UPDATE idempotency_keys SET fingerprint = $1, state = 'pending', status = NULL, \
                                 content_type = NULL, body = NULL, created_at = $2 WHERE scope = $3 AND key = $4")
                            .bind(fingerprint)
                            .bind(now.millis())
                            .bind(scope)
                            .bind(key),
                        )
                        .await?;
                        claimed = true;
                    }
                }
            }
            if !claimed {
                // Someone else claimed it in the meantime.
                return Ok(Claim::InProgress);
            }
            // Expired keys of anyone are forgotten here, a few at a time, so the table stays small.
            c.execute(
                sql(format!(
                    "DELETE FROM idempotency_keys WHERE (scope, key) IN \
                     (SELECT scope, key FROM idempotency_keys WHERE created_at < $1 LIMIT 100{})",
                    d.skip_locked
                ))
                .bind(now.millis() - KEY_LIFETIME_MS),
            )
            .await?;
            Ok(Claim::Claimed)
        })
        .await
    }

    async fn complete_idempotency_key(&self, scope: &str, key: &str, response: &StoredResponse) -> Result<()> {
        let (key, response, scope) = (key.to_owned(), response.clone(), scope.to_owned());
        self.write(async move |c| {
            let (key, response, scope) = (key.as_str(), &response, scope.as_str());
            c.execute(
                sql("UPDATE idempotency_keys SET state = 'done', status = $1, content_type = $2, body = $3 \
                     WHERE scope = $4 AND key = $5")
                .bind(i64::from(response.status))
                .bind(&response.content_type)
                .bind(&response.body)
                .bind(scope)
                .bind(key),
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn release_idempotency_key(&self, scope: &str, key: &str) -> Result<()> {
        let (key, scope) = (key.to_owned(), scope.to_owned());
        self.write(async move |c| {
            let (key, scope) = (key.as_str(), scope.as_str());
            c.execute(
                sql("DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND state = 'pending'")
                    .bind(scope)
                    .bind(key),
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn list_audit(&self, enterprise: &EnterpriseId, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let mut q = sql(
            "SELECT id, enterprise_id, at, actor, action, target, ip, details FROM audit_log WHERE enterprise_id = ",
        );
        q.push_bind(enterprise.as_str());
        if let Some(since) = filter.since {
            q.push(" AND at >= ").push_bind(since.millis());
        }
        if let Some(actor) = &filter.actor {
            q.push(" AND actor = ").push_bind(actor.as_str());
        }
        if let Some(action) = &filter.action {
            // `member` matches `member.create`, `member.update`, …; `member.create` only itself.
            q.push(" AND (action = ").push_bind(action.as_str());
            // Compared as text, not LIKE: `_` (as in `api_key`) and `%` are ordinary characters here.
            let prefix = format!("{action}.");
            let length = i64::try_from(prefix.chars().count()).unwrap_or(i64::MAX);
            q.push(" OR substr(action, 1, CAST(")
                .push_bind(length)
                .push(" AS INTEGER)) = ")
                .push_bind(prefix)
                .push(")");
        }
        if let Some(before) = &filter.before {
            q.push(" AND id < ").push_bind(before.as_str());
        }
        q.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(filter.limit));
        let rows = self.reader().fetch_all(q).await?;
        rows.iter().map(|r| r.audit_entry()).collect()
    }
}
