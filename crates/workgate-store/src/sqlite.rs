//! The SQLite store: the embedded default.
//!
//! Durability: WAL with `synchronous=FULL`, so an acknowledged write survives `kill -9` and power
//! loss. Concurrency: all writes go through one connection and open with `BEGIN IMMEDIATE`, so
//! they queue in order instead of failing with `SQLITE_BUSY`; reads use a pool of their own and
//! never wait for writers (WAL).

use crate::errors::SqlxResultExt;
use crate::rows::{DEPARTMENT_COLUMNS, DomainRow, MEMBER_COLUMNS, join_ids, like_pattern, subtree_upper_bound};
use crate::sqlite_writer::GroupWriter;
use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use workgate_domain::clock::Timestamp;
use workgate_domain::idempotency::{Claim, KEY_LIFETIME_MS, StoredResponse};
use workgate_domain::ids::{ApiKeyId, DepartmentId, EnterpriseId, MemberId};
use workgate_domain::model::{ApiKey, AuditEntry, Department, Enterprise, Member};
use workgate_domain::phone::PhoneNumber;
use workgate_domain::secret::SecretHash;
use workgate_domain::store::{AuditFilter, DirectoryChange, MemberFilter, NewEnterprise, Store};
use workgate_domain::values::MemberStatus;
use workgate_domain::{Error, Result};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    pub(crate) read: SqlitePool,
    /// All writes go through here: one connection, transactions shared by concurrent writers.
    pub(crate) writer: Arc<GroupWriter>,
}

impl SqliteStore {
    pub async fn open(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::Internal(format!("invalid database URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let in_memory = url.contains(":memory:");
        // An in-memory database exists once per connection: give it a single shared connection.
        let readers = if in_memory { 1 } else { 8 };
        // The one writer keeps the index pages a bulk import touches in a cache of its own (64 MiB
        // rather than SQLite's 2), and its statement journals (savepoints) in memory rather than
        // in temporary files: neither touches durability.
        let write_options = options.clone().pragma("cache_size", "-65536").pragma("temp_store", "memory");
        let write = SqlitePoolOptions::new().max_connections(1).connect_with(write_options).await.db()?;
        let read = if in_memory {
            write.clone()
        } else {
            SqlitePoolOptions::new().max_connections(readers).connect_with(options.read_only(true)).await.db()?
        };
        MIGRATOR.run(&write).await.map_err(|e| Error::Internal(format!("migrating the database failed: {e}")))?;
        let conn = write.acquire().await.db()?;
        Ok(Self { read, writer: GroupWriter::new(conn) })
    }
}

/// Rows per multi-row `INSERT` of a bulk write: one statement instead of hundreds (each costs a
/// round trip to SQLite's thread), well below SQLite's limit of 32,766 bound values.
const ROWS_PER_INSERT: usize = 200;

pub(crate) async fn insert_audit(conn: &mut SqliteConnection, entries: &[AuditEntry]) -> Result<()> {
    for chunk in entries.chunks(ROWS_PER_INSERT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO audit_log (id, enterprise_id, at, actor, action, target, ip, details) ",
        );
        q.push_values(chunk, |mut row, e| {
            row.push_bind(e.id.as_str())
                .push_bind(e.enterprise_id.as_str())
                .push_bind(e.at.millis())
                .push_bind(&e.actor)
                .push_bind(&e.action)
                .push_bind(e.target.as_deref())
                .push_bind(e.ip.as_deref())
                .push_bind(e.details.to_string());
        });
        q.build().execute(&mut *conn).await.db()?;
    }
    Ok(())
}

async fn insert_department(conn: &mut SqliteConnection, d: &Department, created_at: i64) -> Result<()> {
    let parent_path: Option<String> = match &d.parent_id {
        None => None,
        Some(parent) => Some(
            sqlx::query_scalar("SELECT path FROM departments WHERE enterprise_id = $1 AND id = $2")
                .bind(d.enterprise_id.as_str())
                .bind(parent.as_str())
                .fetch_optional(&mut *conn)
                .await
                .db()?
                .ok_or_else(|| Error::field("parent_id", "no such department in this enterprise"))?,
        ),
    };
    let path = format!("{}{}/", parent_path.as_deref().unwrap_or("/"), d.id);
    sqlx::query(
        "INSERT INTO departments (id, enterprise_id, parent_id, name, sort_order, path, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(d.id.as_str())
    .bind(d.enterprise_id.as_str())
    .bind(d.parent_id.as_ref().map(DepartmentId::as_str))
    .bind(d.name.as_str())
    .bind(d.order)
    .bind(path)
    .bind(created_at)
    .execute(&mut *conn)
    .await
    .db()?;
    Ok(())
}

async fn write_member(conn: &mut SqliteConnection, m: &Member, insert: bool) -> Result<()> {
    let sql = if insert {
        "INSERT INTO members (userid, userid_key, name, name_key, phone, email, title, department_ids, role, \
         admin_department_ids, status, created_at, activated_at, updated_at, id, enterprise_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
    } else {
        "UPDATE members SET userid = $1, userid_key = $2, name = $3, name_key = $4, phone = $5, email = $6, \
         title = $7, department_ids = $8, role = $9, admin_department_ids = $10, status = $11, created_at = $12, \
         activated_at = $13, updated_at = $14 WHERE id = $15 AND enterprise_id = $16"
    };
    let done = sqlx::query(sql)
        .bind(m.userid.as_str())
        .bind(m.userid.key())
        .bind(m.name.as_str())
        .bind(m.name.as_str().to_lowercase())
        .bind(m.phone.as_str())
        .bind(m.email.as_ref().map(|e| e.as_str()))
        .bind(m.title.as_ref().map(|t| t.as_str()))
        .bind(join_ids(&m.departments))
        .bind(m.role.as_str())
        .bind(join_ids(&m.admin_departments))
        .bind(m.status.as_str())
        .bind(m.created_at.millis())
        .bind(m.activated_at.map(|t| t.millis()))
        .bind(m.updated_at.millis())
        .bind(m.id.as_str())
        .bind(m.enterprise_id.as_str())
        .execute(&mut *conn)
        .await
        .db()?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound("member"));
    }
    if !insert {
        sqlx::query("DELETE FROM member_departments WHERE member_id = $1 AND enterprise_id = $2")
            .bind(m.id.as_str())
            .bind(m.enterprise_id.as_str())
            .execute(&mut *conn)
            .await
            .db()?;
    }
    for d in &m.departments {
        sqlx::query("INSERT INTO member_departments (enterprise_id, member_id, department_id) VALUES ($1, $2, $3)")
            .bind(m.enterprise_id.as_str())
            .bind(m.id.as_str())
            .bind(d.as_str())
            .execute(&mut *conn)
            .await
            .db()?;
    }
    Ok(())
}

/// Inserts new members and their department memberships with multi-row statements: a bulk import
/// writes thousands of members at once, and one statement per row would cost more than the
/// writing itself.
async fn insert_members(conn: &mut SqliteConnection, members: &[&Member]) -> Result<()> {
    for chunk in members.chunks(ROWS_PER_INSERT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO members (userid, userid_key, name, name_key, phone, email, title, department_ids, role, \
             admin_department_ids, status, created_at, activated_at, updated_at, id, enterprise_id) ",
        );
        q.push_values(chunk, |mut row, m| {
            row.push_bind(m.userid.as_str())
                .push_bind(m.userid.key())
                .push_bind(m.name.as_str())
                .push_bind(m.name.as_str().to_lowercase())
                .push_bind(m.phone.as_str())
                .push_bind(m.email.as_ref().map(|e| e.as_str()))
                .push_bind(m.title.as_ref().map(|t| t.as_str()))
                .push_bind(join_ids(&m.departments))
                .push_bind(m.role.as_str())
                .push_bind(join_ids(&m.admin_departments))
                .push_bind(m.status.as_str())
                .push_bind(m.created_at.millis())
                .push_bind(m.activated_at.map(|t| t.millis()))
                .push_bind(m.updated_at.millis())
                .push_bind(m.id.as_str())
                .push_bind(m.enterprise_id.as_str());
        });
        q.build().execute(&mut *conn).await.db()?;
    }
    let memberships: Vec<(&Member, &DepartmentId)> =
        members.iter().flat_map(|m| m.departments.iter().map(move |d| (*m, d))).collect();
    for chunk in memberships.chunks(ROWS_PER_INSERT) {
        let mut q =
            QueryBuilder::<Sqlite>::new("INSERT INTO member_departments (enterprise_id, member_id, department_id) ");
        q.push_values(chunk, |mut row, (m, d)| {
            row.push_bind(m.enterprise_id.as_str()).push_bind(m.id.as_str()).push_bind(d.as_str());
        });
        q.build().execute(&mut *conn).await.db()?;
    }
    Ok(())
}

/// Optimistic concurrency, checked inside the writing transaction: the stored member must still
/// be the record that a change was computed from.
async fn ensure_unchanged(conn: &mut SqliteConnection, previous: &Member) -> Result<()> {
    let row = sqlx::query(&format!("SELECT {MEMBER_COLUMNS} FROM members WHERE enterprise_id = $1 AND id = $2"))
        .bind(previous.enterprise_id.as_str())
        .bind(previous.id.as_str())
        .fetch_optional(&mut *conn)
        .await
        .db()?;
    match row.map(|r| r.member()).transpose()? {
        None => Err(Error::NotFound("member")),
        Some(stored) if stored == *previous => Ok(()),
        Some(_) => Err(Error::Conflict(
            "this member was changed by someone else at the same time; reload it and try again".into(),
        )),
    }
}

/// "At least one owner always exists", checked inside the writing transaction.
async fn ensure_an_owner_stands(conn: &mut SqliteConnection, enterprise: &EnterpriseId) -> Result<()> {
    let owners: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM members WHERE enterprise_id = $1 AND role = 'owner' AND status IN ('invited', 'active')",
    )
    .bind(enterprise.as_str())
    .fetch_one(&mut *conn)
    .await
    .db()?;
    if owners == 0 {
        return Err(Error::Conflict(
            "this is the enterprise's last owner: make another member owner before demoting, disabling or departing this one"
                .into(),
        ));
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await.db()?;
        Ok(())
    }

    async fn create_enterprise(&self, new: NewEnterprise<'_>) -> Result<()> {
        self.writer
            .write(async |tx| {
                let e = new.enterprise;
                sqlx::query("INSERT INTO enterprises (id, name, region, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(e.id.as_str())
                    .bind(e.name.as_str())
                    .bind(e.region.as_str())
                    .bind(e.created_at.millis())
                    .execute(&mut *tx)
                    .await
                    .db()?;
                insert_department(tx, new.root, e.created_at.millis()).await?;
                write_member(tx, new.owner, true).await?;
                insert_api_key(tx, new.api_key, new.api_key_hash).await?;
                insert_audit(tx, new.audit).await?;
                Ok(())
            })
            .await
    }

    async fn get_enterprise(&self, id: &EnterpriseId) -> Result<Option<Enterprise>> {
        let row = sqlx::query("SELECT id, name, region, created_at FROM enterprises WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.read)
            .await
            .db()?;
        row.map(|r| r.enterprise()).transpose()
    }

    async fn count_enterprises(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM enterprises").fetch_one(&self.read).await.db()
    }

    async fn find_api_key(&self, hash: &SecretHash) -> Result<Option<ApiKey>> {
        let row =
            sqlx::query("SELECT id, enterprise_id, name, prefix, created_at FROM api_keys WHERE secret_hash = $1")
                .bind(hash.as_str())
                .fetch_optional(&self.read)
                .await
                .db()?;
        row.map(|r| r.api_key()).transpose()
    }

    async fn list_api_keys(&self, enterprise: &EnterpriseId) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(
            "SELECT id, enterprise_id, name, prefix, created_at FROM api_keys WHERE enterprise_id = $1 ORDER BY id",
        )
        .bind(enterprise.as_str())
        .fetch_all(&self.read)
        .await
        .db()?;
        rows.iter().map(|r| r.api_key()).collect()
    }

    async fn insert_api_key(&self, key: &ApiKey, hash: &SecretHash, audit: &AuditEntry) -> Result<()> {
        self.writer
            .write(async |tx| {
                insert_api_key(tx, key, hash).await?;
                insert_audit(tx, std::slice::from_ref(audit)).await?;
                Ok(())
            })
            .await
    }

    async fn delete_api_key(&self, enterprise: &EnterpriseId, id: &ApiKeyId, audit: &AuditEntry) -> Result<bool> {
        self.writer
            .write(async |tx| {
                let done = sqlx::query("DELETE FROM api_keys WHERE enterprise_id = $1 AND id = $2")
                    .bind(enterprise.as_str())
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await
                    .db()?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                insert_audit(tx, std::slice::from_ref(audit)).await?;
                Ok(true)
            })
            .await
    }

    async fn list_departments(&self, enterprise: &EnterpriseId) -> Result<Vec<Department>> {
        let rows = sqlx::query(&format!("SELECT {DEPARTMENT_COLUMNS} FROM departments WHERE enterprise_id = $1"))
            .bind(enterprise.as_str())
            .fetch_all(&self.read)
            .await
            .db()?;
        rows.iter().map(|r| r.department()).collect()
    }

    async fn get_department(&self, enterprise: &EnterpriseId, id: &DepartmentId) -> Result<Option<Department>> {
        let row =
            sqlx::query(&format!("SELECT {DEPARTMENT_COLUMNS} FROM departments WHERE enterprise_id = $1 AND id = $2"))
                .bind(enterprise.as_str())
                .bind(id.as_str())
                .fetch_optional(&self.read)
                .await
                .db()?;
        row.map(|r| r.department()).transpose()
    }

    async fn insert_department(&self, department: &Department, audit: &AuditEntry) -> Result<()> {
        self.writer
            .write(async |tx| {
                insert_department(tx, department, audit.at.millis()).await?;
                insert_audit(tx, std::slice::from_ref(audit)).await?;
                Ok(())
            })
            .await
    }

    async fn update_department(&self, d: &Department, audit: &AuditEntry) -> Result<()> {
        self.writer
            .write(async |tx| {
                let ent = d.enterprise_id.as_str();
                let old_path: String =
                    sqlx::query_scalar("SELECT path FROM departments WHERE enterprise_id = $1 AND id = $2")
                        .bind(ent)
                        .bind(d.id.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .db()?
                        .ok_or(Error::NotFound("department"))?;
                let new_path = match &d.parent_id {
                    None => old_path.clone(),
                    Some(parent) => {
                        let parent_path: String =
                            sqlx::query_scalar("SELECT path FROM departments WHERE enterprise_id = $1 AND id = $2")
                                .bind(ent)
                                .bind(parent.as_str())
                                .fetch_optional(&mut *tx)
                                .await
                                .db()?
                                .ok_or_else(|| Error::field("parent_id", "no such department in this enterprise"))?;
                        if parent_path.starts_with(&old_path) {
                            return Err(Error::field("parent_id", "a department cannot be moved under itself"));
                        }
                        format!("{parent_path}{}/", d.id)
                    }
                };
                sqlx::query(
            "UPDATE departments SET name = $1, sort_order = $2, parent_id = $3 WHERE enterprise_id = $4 AND id = $5",
        )
        .bind(d.name.as_str())
        .bind(d.order)
        .bind(d.parent_id.as_ref().map(DepartmentId::as_str))
        .bind(ent)
        .bind(d.id.as_str())
        .execute(&mut *tx)
        .await
        .db()?;
                if new_path != old_path {
                    sqlx::query(
                        "UPDATE departments SET path = $1 || substr(path, length($2) + 1) \
                 WHERE enterprise_id = $3 AND path >= $2 AND path < $4",
                    )
                    .bind(&new_path)
                    .bind(&old_path)
                    .bind(ent)
                    .bind(subtree_upper_bound(&old_path))
                    .execute(&mut *tx)
                    .await
                    .db()?;
                }
                insert_audit(tx, std::slice::from_ref(audit)).await?;
                Ok(())
            })
            .await
    }

    async fn delete_department(&self, enterprise: &EnterpriseId, id: &DepartmentId, audit: &AuditEntry) -> Result<()> {
        self.writer
            .write(async |tx| {
                let ent = enterprise.as_str();
                let children: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM departments WHERE enterprise_id = $1 AND parent_id = $2")
                        .bind(ent)
                        .bind(id.as_str())
                        .fetch_one(&mut *tx)
                        .await
                        .db()?;
                if children > 0 {
                    return Err(Error::Conflict(format!(
                        "the department has {children} sub-department(s); move or delete them first"
                    )));
                }
                let members: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM member_departments md JOIN members m ON m.id = md.member_id \
             WHERE md.enterprise_id = $1 AND md.department_id = $2 AND m.status <> 'departed'",
                )
                .bind(ent)
                .bind(id.as_str())
                .fetch_one(&mut *tx)
                .await
                .db()?;
                if members > 0 {
                    return Err(Error::Conflict(format!(
                        "the department has {members} member(s); move them elsewhere first"
                    )));
                }
                let admins: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM members WHERE enterprise_id = $1 AND status <> 'departed' \
                     AND instr(',' || admin_department_ids || ',', ',' || $2 || ',') > 0",
                )
                .bind(ent)
                .bind(id.as_str())
                .fetch_one(&mut *tx)
                .await
                .db()?;
                if admins > 0 {
                    return Err(Error::Conflict(format!(
                        "{admins} department admin(s) administer this department; change their admin_departments first"
                    )));
                }
                // Departed members keep their record, not their place in a department that is gone.
                sqlx::query("DELETE FROM member_departments WHERE enterprise_id = $1 AND department_id = $2")
                    .bind(ent)
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await
                    .db()?;
                let done = sqlx::query("DELETE FROM departments WHERE enterprise_id = $1 AND id = $2")
                    .bind(ent)
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await
                    .db()?;
                if done.rows_affected() == 0 {
                    return Err(Error::NotFound("department"));
                }
                insert_audit(tx, std::slice::from_ref(audit)).await?;
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
        self.writer
            .write(async |tx| {
                write_member(tx, member, true).await?;
                if let Some(invitation) = invitation {
                    crate::sqlite_login::insert_invitation(tx, invitation).await?;
                }
                insert_audit(tx, std::slice::from_ref(audit)).await?;
                Ok(())
            })
            .await
    }

    async fn update_member(&self, previous: &Member, member: &Member, audit: &AuditEntry) -> Result<()> {
        self.writer
            .write(async |tx| {
                ensure_unchanged(tx, previous).await?;
                write_member(tx, member, false).await?;
                if matches!(member.status, MemberStatus::Disabled | MemberStatus::Departed) {
                    let departed = member.status == MemberStatus::Departed;
                    crate::sqlite_login::revoke_member_access(
                        tx,
                        &member.enterprise_id,
                        &member.id,
                        member.status.as_str(),
                        departed,
                        member.updated_at,
                    )
                    .await?;
                }
                ensure_an_owner_stands(tx, &member.enterprise_id).await?;
                insert_audit(tx, std::slice::from_ref(audit)).await?;
                Ok(())
            })
            .await
    }

    async fn get_member(&self, enterprise: &EnterpriseId, id: &MemberId) -> Result<Option<Member>> {
        let row = sqlx::query(&format!("SELECT {MEMBER_COLUMNS} FROM members WHERE enterprise_id = $1 AND id = $2"))
            .bind(enterprise.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.read)
            .await
            .db()?;
        row.map(|r| r.member()).transpose()
    }

    async fn list_members(&self, enterprise: &EnterpriseId, filter: &MemberFilter) -> Result<Vec<Member>> {
        let mut q =
            QueryBuilder::<Sqlite>::new(format!("SELECT {MEMBER_COLUMNS} FROM members m WHERE m.enterprise_id = "));
        q.push_bind(enterprise.as_str());
        if filter.statuses.is_empty() {
            q.push(" AND m.status <> 'departed'");
        } else {
            q.push(" AND m.status IN (");
            let mut list = q.separated(", ");
            for s in &filter.statuses {
                list.push_bind(s.as_str());
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
            let path: Option<String> =
                sqlx::query_scalar("SELECT path FROM departments WHERE enterprise_id = $1 AND id = $2")
                    .bind(enterprise.as_str())
                    .bind(department.as_str())
                    .fetch_optional(&self.read)
                    .await
                    .db()?;
            let Some(path) = path else { return Ok(vec![]) };
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
                let path: Option<String> =
                    sqlx::query_scalar("SELECT path FROM departments WHERE enterprise_id = $1 AND id = $2")
                        .bind(enterprise.as_str())
                        .bind(root.as_str())
                        .fetch_optional(&self.read)
                        .await
                        .db()?;
                paths.extend(path);
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
        let rows = q.build().fetch_all(&self.read).await.db()?;
        rows.iter().map(|r| r.member()).collect()
    }

    async fn find_members_by_phone(&self, enterprise: &EnterpriseId, phone: &PhoneNumber) -> Result<Vec<Member>> {
        let rows = sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS} FROM members WHERE enterprise_id = $1 AND phone = $2 ORDER BY id"
        ))
        .bind(enterprise.as_str())
        .bind(phone.as_str())
        .fetch_all(&self.read)
        .await
        .db()?;
        rows.iter().map(|r| r.member()).collect()
    }

    async fn load_directory(&self, enterprise: &EnterpriseId) -> Result<(Vec<Department>, Vec<Member>)> {
        // Members are read a page at a time, so that a large directory is not held twice (as rows
        // and as members), in one read transaction, so that the pages are one snapshot.
        const PAGE: i64 = 5000;
        let mut tx = self.read.begin().await.db()?;
        let rows = sqlx::query(&format!("SELECT {DEPARTMENT_COLUMNS} FROM departments WHERE enterprise_id = $1"))
            .bind(enterprise.as_str())
            .fetch_all(&mut *tx)
            .await
            .db()?;
        let departments = rows.iter().map(|r| r.department()).collect::<Result<Vec<_>>>()?;
        let mut members: Vec<Member> = Vec::new();
        loop {
            let after = members.last().map_or(String::new(), |m| m.id.to_string());
            let rows = sqlx::query(&format!(
                "SELECT {MEMBER_COLUMNS} FROM members WHERE enterprise_id = $1 AND status <> 'departed' AND id > $2 \
                 ORDER BY id LIMIT $3"
            ))
            .bind(enterprise.as_str())
            .bind(after)
            .bind(PAGE)
            .fetch_all(&mut *tx)
            .await
            .db()?;
            for row in &rows {
                members.push(row.member()?);
            }
            if (rows.len() as i64) < PAGE {
                break;
            }
        }
        tx.rollback().await.db()?;
        Ok((departments, members))
    }

    async fn apply_directory_changes(
        &self,
        enterprise: &EnterpriseId,
        changes: &[DirectoryChange],
        audit: &[AuditEntry],
    ) -> Result<()> {
        self.writer
            .write(async |tx| {
                let mut touched_owner = false;
                // Consecutive new members are inserted together; the order of the changes is kept.
                let mut new_members: Vec<&Member> = Vec::new();
                for (i, change) in changes.iter().enumerate() {
                    match change {
                        DirectoryChange::CreateMember(m) if &m.enterprise_id == enterprise => {
                            new_members.push(m);
                            if !matches!(changes.get(i + 1), Some(DirectoryChange::CreateMember(_))) {
                                insert_members(tx, &std::mem::take(&mut new_members)).await?;
                            }
                        }
                        DirectoryChange::CreateDepartment(d) if &d.enterprise_id == enterprise => {
                            insert_department(tx, d, audit.first().map_or(0, |a| a.at.millis())).await?
                        }
                        DirectoryChange::UpdateMember { previous, member } if &member.enterprise_id == enterprise => {
                            // Any update may demote, disable or depart an owner.
                            touched_owner = true;
                            ensure_unchanged(tx, previous).await?;
                            write_member(tx, member, false).await?
                        }
                        _ => return Err(Error::Internal("a directory change named another enterprise".into())),
                    }
                }
                if touched_owner {
                    ensure_an_owner_stands(tx, enterprise).await?;
                }
                insert_audit(tx, audit).await?;
                Ok(())
            })
            .await
    }

    async fn claim_idempotency_key(&self, scope: &str, key: &str, fingerprint: &str, now: Timestamp) -> Result<Claim> {
        self.writer.write(async |tx| {
        let row = sqlx::query(
            "SELECT fingerprint, state, status, content_type, body, created_at FROM idempotency_keys \
             WHERE scope = $1 AND key = $2",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await
        .db()?;
        if let Some(row) = row {
            let created_at: i64 = row.try_get("created_at").db()?;
            if created_at + KEY_LIFETIME_MS > now.millis() {
                let stored_fingerprint: String = row.try_get("fingerprint").db()?;
                let state: String = row.try_get("state").db()?;
                return Ok(if stored_fingerprint != fingerprint {
                    Claim::Mismatch
                } else if state == "pending" {
                    Claim::InProgress
                } else {
                    let status: i64 = row.try_get("status").db()?;
                    Claim::Replay(StoredResponse {
                        status: u16::try_from(status).unwrap_or(500),
                        content_type: row.try_get::<Option<String>, _>("content_type").db()?.unwrap_or_default(),
                        body: row.try_get::<Option<Vec<u8>>, _>("body").db()?.unwrap_or_default(),
                    })
                });
            }
        }
        sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, state, created_at) VALUES ($1, $2, $3, 'pending', $4) \
             ON CONFLICT (scope, key) DO UPDATE SET fingerprint = excluded.fingerprint, state = 'pending', \
             status = NULL, content_type = NULL, body = NULL, created_at = excluded.created_at",
        )
        .bind(scope)
        .bind(key)
        .bind(fingerprint)
        .bind(now.millis())
        .execute(&mut *tx)
        .await
        .db()?;
        // Expired keys of anyone are forgotten here, a few at a time, so the table stays small.
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE rowid IN \
             (SELECT rowid FROM idempotency_keys WHERE created_at < $1 LIMIT 100)",
        )
        .bind(now.millis() - KEY_LIFETIME_MS)
        .execute(&mut *tx)
        .await
        .db()?;
        Ok(Claim::Claimed)
        }).await
    }

    async fn complete_idempotency_key(&self, scope: &str, key: &str, response: &StoredResponse) -> Result<()> {
        self.writer
            .write(async |c| {
                sqlx::query(
                    "UPDATE idempotency_keys SET state = 'done', status = $1, content_type = $2, body = $3 \
                 WHERE scope = $4 AND key = $5",
                )
                .bind(i64::from(response.status))
                .bind(&response.content_type)
                .bind(&response.body)
                .bind(scope)
                .bind(key)
                .execute(&mut *c)
                .await
                .db()?;
                Ok(())
            })
            .await
    }

    async fn release_idempotency_key(&self, scope: &str, key: &str) -> Result<()> {
        self.writer
            .write(async |c| {
                sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND state = 'pending'")
                    .bind(scope)
                    .bind(key)
                    .execute(&mut *c)
                    .await
                    .db()?;
                Ok(())
            })
            .await
    }

    async fn list_audit(&self, enterprise: &EnterpriseId, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let mut q = QueryBuilder::<Sqlite>::new(
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
            q.push(" OR substr(action, 1, ").push_bind(length).push(") = ").push_bind(prefix).push(")");
        }
        if let Some(before) = &filter.before {
            q.push(" AND id < ").push_bind(before.as_str());
        }
        q.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(filter.limit));
        let rows = q.build().fetch_all(&self.read).await.db()?;
        rows.iter().map(|r| r.audit_entry()).collect()
    }
}

async fn insert_api_key(conn: &mut SqliteConnection, key: &ApiKey, hash: &SecretHash) -> Result<()> {
    sqlx::query("INSERT INTO api_keys (id, enterprise_id, name, prefix, secret_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(key.id.as_str())
        .bind(key.enterprise_id.as_str())
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(hash.as_str())
        .bind(key.created_at.millis())
        .execute(&mut *conn)
        .await
        .db()?;
    Ok(())
}
