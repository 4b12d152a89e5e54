//! Bulk import of members (SPEC section 4, "Import"): CSV or JSON, matched to existing members by
//! `userid`, else by phone; idempotent; a bad row fails alone.
//!
//! The whole directory is loaded once and the import is planned in memory, then written in
//! batches of [`BATCH_ROWS`] rows, each batch one atomic write with its audit entries. That keeps
//! an import of 100,000 rows to a few dozen writes instead of a few hundred thousand, and the
//! database writes each index page that a batch touches once per batch rather than once per row.
//! While one batch is being written, the next is planned: on a multi-threaded runtime the write
//! runs on a blocking thread of its own (SQLite's statements run on the thread that calls the
//! store, so that is what lets its batches overlap the planning, on another core); elsewhere (a
//! current-thread runtime, as in some tests) the write is polled every few rows, which overlaps
//! only with a database working apart from this task (PostgreSQL).

use crate::Services;
use crate::audit::Caller;
use crate::directory::{
    DepartmentTree, MAX_DEPARTMENT_DEPTH, MemberPatch, NewMemberInput, apply_patch, build_member, member_diff,
    phone_change_notices,
};
use crate::error::{Error, FieldError, Result};
use crate::ids::DepartmentId;
use crate::model::{AuditEntry, Department, Member};
use crate::store::DirectoryChange;
use crate::values::DepartmentName;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// Rows written per transaction.
pub const BATCH_ROWS: usize = 5000;
/// Rows planned between two polls of the batch being written: often enough that a database
/// working apart from this task rarely waits for its next statement.
const ROWS_PER_POLL: usize = 8;
/// Writes of one row tried, when other writers keep changing the directory, before it fails.
const ROW_ATTEMPTS: usize = 3;
/// Rows accepted in one import.
pub const MAX_ROWS: usize = 200_000;

/// One member as read from the file. `None` means the column is absent (the field is left as it
/// is); for `email` and `title`, an empty cell clears the field.
#[derive(Debug, Clone, Default)]
pub struct ImportRecord {
    pub userid: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub title: Option<String>,
    pub departments: Option<DepartmentRefs>,
    /// JSON only, as in `POST /members`; absent leaves the role as it is (`member` when created).
    pub role: Option<String>,
    pub admin_departments: Option<Vec<String>>,
    /// JSON only, as in `POST /members`: whether a created member is sent an invitation.
    pub invite: Option<bool>,
}

#[derive(Debug, Clone)]
pub enum DepartmentRefs {
    /// `/`-separated paths below the root (CSV); missing departments are created.
    Paths(Vec<String>),
    /// Department ids (JSON, as in `POST /members`).
    Ids(Vec<String>),
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowStatus {
    Created,
    Updated,
    Unchanged,
    Failed,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct RowError {
    pub code: &'static str,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl From<Error> for RowError {
    fn from(e: Error) -> Self {
        let code = e.code();
        match e {
            Error::Validation(errors) => RowError { code, detail: "Some fields are invalid.".into(), errors },
            Error::InvalidPhone { detail } => RowError { code, detail, errors: vec![] },
            Error::Conflict(detail) => RowError { code, detail, errors: vec![] },
            other => RowError { code, detail: other.to_string(), errors: vec![] },
        }
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct RowResult {
    /// 1 for the first member of the file (the CSV header is not a row).
    pub row: usize,
    pub status: RowStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RowError>,
    /// `deferred` when the member was created without its invitation because the enterprise's
    /// invitation budget was spent; re-send it later (`POST /members/{id}/invitation`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invitation: Option<&'static str>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub failed: usize,
    /// Members created without their invitation (the enterprise's invitation budget was spent).
    pub invitations_deferred: usize,
    pub rows: Vec<RowResult>,
}

/// Reads a CSV file with a header row naming columns among `userid,name,phone,email,title,departments`.
pub fn parse_csv(data: &[u8]) -> Result<Vec<ImportRecord>> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(false).from_reader(data);
    let headers =
        reader.headers().map_err(|e| Error::field("file", format!("the header row could not be read: {e}")))?.clone();
    let mut columns: HashMap<&str, usize> = HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        let name = h.trim_start_matches('\u{feff}').to_ascii_lowercase();
        let known = ["userid", "name", "phone", "email", "title", "departments"];
        let Some(&column) = known.iter().find(|k| **k == name) else {
            return Err(Error::field("file", format!("unknown column '{h}'; columns are {}", known.join(","))));
        };
        if columns.insert(column, i).is_some() {
            return Err(Error::field("file", format!("the column '{column}' appears twice")));
        }
    }
    let mut records = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let row = row.map_err(|e| Error::field("file", format!("row {} could not be read: {e}", i + 1)))?;
        if records.len() >= MAX_ROWS {
            return Err(Error::field("file", format!("an import takes at most {MAX_ROWS} rows; split the file")));
        }
        let cell = |c: &str| columns.get(c).map(|&i| row.get(i).unwrap_or("").to_string());
        records.push(ImportRecord {
            userid: cell("userid").filter(|s| !s.is_empty()),
            name: cell("name"),
            phone: cell("phone"),
            email: cell("email"),
            title: cell("title"),
            departments: cell("departments").filter(|s| !s.is_empty()).map(|s| {
                DepartmentRefs::Paths(s.split(';').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect())
            }),
            ..Default::default()
        });
    }
    Ok(records)
}

/// `POST /members/import` as JSON: `{members: [...]}`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ImportJson {
    pub members: Vec<ImportJsonRow>,
}

/// A row: matched to a member by `userid`, else by `phone`; a new member needs `name` and `phone`.
/// `departments` are department ids.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ImportJsonRow {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub userid: Option<String>,
    pub email: Option<String>,
    pub title: Option<String>,
    pub departments: Option<Vec<String>>,
    pub role: Option<String>,
    pub admin_departments: Option<Vec<String>>,
    /// Whether to send a member created by this row the invitation SMS; defaults to true.
    pub invite: Option<bool>,
}

/// Reads `{members: [...]}` with the fields of `POST /members` (departments as ids).
pub fn parse_json(data: &[u8]) -> Result<Vec<ImportRecord>> {
    let parsed: ImportJson = serde_json::from_slice(data).map_err(|e| Error::field("body", e.to_string()))?;
    if parsed.members.len() > MAX_ROWS {
        return Err(Error::field("members", format!("an import takes at most {MAX_ROWS} rows; split the file")));
    }
    Ok(parsed
        .members
        .into_iter()
        .map(|m| ImportRecord {
            userid: m.userid,
            name: m.name,
            phone: m.phone,
            email: m.email,
            title: m.title,
            departments: m.departments.map(DepartmentRefs::Ids),
            role: m.role,
            admin_departments: m.admin_departments,
            invite: m.invite,
        })
        .collect())
}

/// The directory as the import sees it while planning: members by index, with the two unique keys.
struct Plan {
    tree: DepartmentTree,
    members: Vec<Member>,
    by_userid: HashMap<String, usize>,
    by_phone: HashMap<String, usize>,
    /// Paths resolved so far (segments as trimmed, joined by `/`), so that each distinct path of
    /// the file walks the tree once. Cleared when planned departments are taken back.
    paths: HashMap<String, DepartmentId>,
    /// The enterprise's policy (its `allowed_regions` apply to imported numbers).
    policy: crate::policy::Policy,
    /// The server's keys (the SMS of a number change are sealed as they are planned).
    keys: std::sync::Arc<crate::keys::ServerKeys>,
}

impl Plan {
    fn index(&mut self, i: usize) {
        let m = &self.members[i];
        self.by_userid.insert(m.userid.key(), i);
        self.by_phone.insert(m.phone.as_str().to_string(), i);
    }

    fn find(&self, record: &ImportRecord, region: crate::phone::Region) -> Option<usize> {
        if let Some(userid) = &record.userid {
            return self.by_userid.get(&userid.trim().to_ascii_lowercase()).copied();
        }
        let raw = record.phone.as_deref()?;
        if let Some(&i) = self.by_phone.get(&e164_as_typed(raw)) {
            return Some(i);
        }
        let phone = crate::phone::PhoneNumber::parse(raw, region).ok()?;
        self.by_phone.get(phone.as_str()).copied()
    }

    /// Resolves `A/B/C` below the root, planning the departments that do not exist yet.
    fn resolve_path(&mut self, path: &str, caller: &Caller, new: &mut Vec<Department>) -> Result<DepartmentId> {
        let root = self.tree.root().ok_or(Error::Internal("enterprise without a root department".into()))?;
        let mut current = root.id.clone();
        let segments: Vec<&str> = path.split('/').map(str::trim).filter(|s| !s.is_empty()).collect();
        if segments.is_empty() {
            return Ok(current);
        }
        let key = segments.join("/");
        if let Some(id) = self.paths.get(&key) {
            return Ok(id.clone());
        }
        if segments.len() + 1 > MAX_DEPARTMENT_DEPTH {
            return Err(Error::field("departments", format!("'{path}' is deeper than {MAX_DEPARTMENT_DEPTH} levels")));
        }
        for segment in segments {
            let name = DepartmentName::parse(segment).map_err(|e| e.in_field("departments"))?;
            current = match self.tree.child_named(&current, name.as_str()) {
                Some(d) => d.id.clone(),
                None => {
                    let d = Department {
                        id: DepartmentId::generate(),
                        enterprise_id: caller.enterprise_id.clone(),
                        name,
                        parent_id: Some(current.clone()),
                        order: self.tree.next_order(&current),
                    };
                    let id = d.id.clone();
                    self.tree.insert(d.clone());
                    new.push(d);
                    id
                }
            };
        }
        self.paths.insert(key, current.clone());
        Ok(current)
    }

    /// Takes back the departments planned for a row that failed.
    fn forget(&mut self, new_departments: &[Department]) {
        if new_departments.is_empty() {
            return;
        }
        let kept: Vec<Department> =
            self.tree.iter().filter(|d| !new_departments.iter().any(|n| n.id == d.id)).cloned().collect();
        self.tree = DepartmentTree::new(kept);
        self.paths.clear();
    }
}

/// A planned row: what to write and the audit entries that go with it.
struct PlannedRow {
    row: usize,
    status: RowStatus,
    member_id: Option<String>,
    changes: Vec<DirectoryChange>,
    audit: Vec<AuditEntry>,
    error: Option<RowError>,
    /// The member was created but the enterprise's invitation budget had no room for its
    /// invitation.
    invitation_deferred: bool,
}

impl Services {
    /// Imports `records`, calling `progress(done, total)` after each written batch.
    pub async fn import_members(
        &self,
        caller: &Caller,
        records: Vec<ImportRecord>,
        progress: &(dyn Fn(usize, usize) + Send + Sync),
    ) -> Result<ImportReport> {
        if caller.department_scope().is_some() {
            return Err(Error::Forbidden("bulk import needs an owner, an admin or an API key".into()));
        }
        let enterprise = self.enterprise(caller).await?;
        let mut plan = self.load_plan(caller).await?;
        let total = records.len();
        let mut report = ImportReport::default();
        let mut batch: Vec<(PlannedRow, ImportRecord)> = Vec::with_capacity(BATCH_ROWS);
        let mut writing: Option<InFlight<'_>> = None;
        for (i, record) in records.into_iter().enumerate() {
            if i % ROWS_PER_POLL == 0
                && let Some(w) = writing.as_mut()
            {
                w.poll_once().await;
            }
            let planned = self.plan_one(&mut plan, &enterprise, caller, &record, i + 1);
            batch.push((planned, record));
            if batch.len() == BATCH_ROWS {
                if let Some(w) = writing.take() {
                    if self.finish_write(caller, &enterprise, &mut plan, w, &mut report).await? {
                        batch = self.plan_again(&mut plan, &enterprise, caller, batch);
                    }
                    progress(report.rows.len(), total);
                }
                writing = Some(self.start_write(caller, &enterprise, std::mem::take(&mut batch)));
            }
        }
        if let Some(w) = writing.take()
            && self.finish_write(caller, &enterprise, &mut plan, w, &mut report).await?
        {
            batch = self.plan_again(&mut plan, &enterprise, caller, batch);
        }
        let last = InFlight::here(self.write_whole(caller, &enterprise, batch));
        self.finish_write(caller, &enterprise, &mut plan, last, &mut report).await?;
        progress(total, total);
        // Only a change is audited: importing the same file again, even one with bad rows,
        // leaves the log as it was.
        if report.created + report.updated > 0 {
            let audit = caller.entry(
                self.clock.now(),
                "member.import",
                None,
                json!({"created": report.created, "updated": report.updated, "unchanged": report.unchanged, "failed": report.failed}),
            );
            self.store.apply_directory_changes(&caller.enterprise_id, &[], &[audit]).await?;
        }
        Ok(report)
    }

    /// The directory as it is now, indexed for planning.
    async fn load_plan(&self, caller: &Caller) -> Result<Plan> {
        let (departments, members) = self.store.load_directory(&caller.enterprise_id).await?;
        let mut plan = Plan {
            tree: DepartmentTree::new(departments),
            members,
            by_userid: HashMap::new(),
            by_phone: HashMap::new(),
            paths: HashMap::new(),
            policy: self.policy_of(&caller.enterprise_id).await?.policy,
            keys: self.keys.clone(),
        };
        for i in 0..plan.members.len() {
            plan.index(i);
        }
        Ok(plan)
    }

    /// Plans row number `row` of the file; a row that cannot be planned fails alone.
    fn plan_one(
        &self,
        plan: &mut Plan,
        enterprise: &crate::model::Enterprise,
        caller: &Caller,
        record: &ImportRecord,
        row: usize,
    ) -> PlannedRow {
        let planned = match plan_row(plan, enterprise, caller, record, self.clock.now()) {
            Ok(planned) => planned,
            Err(e) => PlannedRow::failed(e),
        };
        PlannedRow { row, ..planned }
    }

    /// Plans a batch again, after the batch before it was refused and its rows written alone:
    /// it was planned as if that batch had been written whole.
    fn plan_again(
        &self,
        plan: &mut Plan,
        enterprise: &crate::model::Enterprise,
        caller: &Caller,
        batch: Vec<(PlannedRow, ImportRecord)>,
    ) -> Vec<(PlannedRow, ImportRecord)> {
        batch.into_iter().map(|(p, record)| (self.plan_one(plan, enterprise, caller, &record, p.row), record)).collect()
    }

    /// Writes one batch in one transaction, or learns that the database refused it. Needs no
    /// plan, so that the next batch can be planned meanwhile.
    /// The invitation of the member a row creates (SPEC section 2, step 3: adding a member
    /// queues one), unless the row says `invite: false`.
    fn invitation_of(
        &self,
        enterprise: &crate::model::Enterprise,
        row: &PlannedRow,
        record: &ImportRecord,
    ) -> Option<DirectoryChange> {
        if record.invite == Some(false) {
            return None;
        }
        let created = row.changes.iter().find_map(|c| match c {
            DirectoryChange::CreateMember(m) => Some(m),
            _ => None,
        })?;
        Some(DirectoryChange::Invite(Box::new(self.new_invitation(enterprise, created, self.clock.now()))))
    }

    /// Counts up to `wanted` invitations against the enterprise's budget; answers how many fit.
    async fn take_invitation_budget(&self, enterprise: &crate::model::Enterprise, wanted: usize) -> Result<usize> {
        if wanted == 0 {
            return Ok(0);
        }
        let budget = self.invitation_budget(&enterprise.id);
        let wanted = i64::try_from(wanted).unwrap_or(i64::MAX);
        let granted = self.store.take_from_limit(&budget, wanted, self.clock.now().millis()).await?;
        Ok(usize::try_from(granted).unwrap_or(0))
    }

    /// Starts writing a batch: on a thread of its own on a multi-threaded runtime, so that the
    /// next batch is planned meanwhile whatever the database (SQLite runs its statements on the
    /// thread that calls the store); here, polled between rows, on any other runtime. A write
    /// that has started finishes even if the import is given up meanwhile (it is one atomic
    /// batch with its audit entries, like any other).
    fn start_write<'a>(
        &'a self,
        caller: &'a Caller,
        enterprise: &'a crate::model::Enterprise,
        batch: Vec<(PlannedRow, ImportRecord)>,
    ) -> InFlight<'a> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return InFlight::here(self.write_whole(caller, enterprise, batch));
        };
        if runtime.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return InFlight::here(self.write_whole(caller, enterprise, batch));
        }
        let (services, caller, enterprise) = (self.clone(), caller.clone(), enterprise.clone());
        let handle = runtime.clone();
        let running = self.background_writes.start();
        InFlight::Apart(runtime.spawn_blocking(move || {
            let _running = running;
            handle.block_on(async move { services.write_whole(&caller, &enterprise, batch).await })
        }))
    }

    async fn write_whole(
        &self,
        caller: &Caller,
        enterprise: &crate::model::Enterprise,
        batch: Vec<(PlannedRow, ImportRecord)>,
    ) -> Result<Written> {
        let mut changes: Vec<DirectoryChange> = Vec::new();
        let mut invitations: Vec<DirectoryChange> = Vec::new();
        let mut audit: Vec<AuditEntry> = Vec::new();
        let mut rows = Vec::with_capacity(batch.len());
        let mut records = Vec::with_capacity(batch.len());
        // The invitations this batch would send, as many as the enterprise's budget has room for;
        // the members of the others are created without theirs (`invitation: deferred`).
        let wanted: Vec<Option<DirectoryChange>> =
            batch.iter().map(|(row, record)| self.invitation_of(enterprise, row, record)).collect();
        let mut granted = self.take_invitation_budget(enterprise, wanted.iter().flatten().count()).await?;
        for ((mut row, record), invitation) in batch.into_iter().zip(wanted) {
            if let Some(invitation) = invitation {
                if granted > 0 {
                    granted -= 1;
                    invitations.push(invitation);
                } else {
                    row.invitation_deferred = true;
                }
            }
            changes.append(&mut row.changes);
            audit.append(&mut row.audit);
            rows.push(row);
            records.push(record);
        }
        if changes.is_empty() {
            return Ok(Written::Whole(rows));
        }
        // The invitations after every member they name.
        changes.append(&mut invitations);
        match self.store.apply_directory_changes(&caller.enterprise_id, &changes, &audit).await {
            Ok(()) => {
                if changes.iter().any(queues_sms) {
                    self.outbox_written();
                }
                Ok(Written::Whole(rows))
            }
            Err(Error::Conflict(_) | Error::ChangedMeanwhile(_) | Error::Validation(_)) => {
                Ok(Written::Refused(rows.iter().map(|r| r.row).zip(records).collect()))
            }
            Err(e) => Err(e),
        }
    }

    /// Waits for a batch's write and records its rows. If the database refused the batch, another
    /// admin (or another import) changed the directory since it was loaded: each row of the batch
    /// is planned again on the directory as it is now and written alone, so that only the rows
    /// that really clash fail, with the reason that holds now (a row someone else already wrote
    /// is `unchanged`). Answers whether that happened.
    async fn finish_write(
        &self,
        caller: &Caller,
        enterprise: &crate::model::Enterprise,
        plan: &mut Plan,
        write: InFlight<'_>,
        report: &mut ImportReport,
    ) -> Result<bool> {
        match write.finish().await? {
            Written::Whole(rows) => {
                rows.into_iter().for_each(|r| report.record(r));
                Ok(false)
            }
            Written::Refused(rows) => {
                *plan = self.load_plan(caller).await?;
                for (row_number, record) in rows {
                    let mut attempts = 0;
                    let row = loop {
                        let mut row = self.plan_one(plan, enterprise, caller, &record, row_number);
                        if row.changes.is_empty() {
                            break row;
                        }
                        let mut invitation = self.invitation_of(enterprise, &row, &record);
                        if invitation.is_some() && self.take_invitation_budget(enterprise, 1).await? == 0 {
                            invitation = None;
                            row.invitation_deferred = true;
                        }
                        let changes: Vec<DirectoryChange> = row.changes.iter().cloned().chain(invitation).collect();
                        match self.store.apply_directory_changes(&caller.enterprise_id, &changes, &row.audit).await {
                            Ok(()) => {
                                if changes.iter().any(queues_sms) {
                                    self.outbox_written();
                                }
                                break row;
                            }
                            Err(e @ Error::Internal(_)) => return Err(e),
                            Err(e) => {
                                // The plan counted this row as written: start again from what is
                                // stored, and try the row again while others keep writing.
                                *plan = self.load_plan(caller).await?;
                                attempts += 1;
                                if attempts == ROW_ATTEMPTS {
                                    break PlannedRow { row: row.row, ..PlannedRow::failed(e) };
                                }
                            }
                        }
                    };
                    report.record(row);
                }
                Ok(true)
            }
        }
    }
}

/// Whether a change writes an SMS to the outbox (so the sender is woken).
fn queues_sms(change: &DirectoryChange) -> bool {
    matches!(change, DirectoryChange::Invite(_) | DirectoryChange::Notify(_))
}

/// What became of a batch written whole.
enum Written {
    /// Written; its rows as planned.
    Whole(Vec<PlannedRow>),
    /// Refused by the database, nothing written: the rows' numbers and records, to plan again.
    Refused(Vec<(usize, ImportRecord)>),
}

type BatchWrite<'a> = Pin<Box<dyn Future<Output = Result<Written>> + Send + 'a>>;

/// A batch being written while the next one is planned.
enum InFlight<'a> {
    /// On a blocking thread of its own (see [`Services::start_write`]).
    Apart(tokio::task::JoinHandle<Result<Written>>),
    /// On this task: polled every few rows, so that a database working apart from this task
    /// (PostgreSQL) works on one batch while this task plans the next, without a thread.
    /// (SQLite runs its statements on the calling thread: its batch is written whole at the
    /// first poll.)
    Here { write: BatchWrite<'a>, done: Option<Result<Written>> },
}

impl<'a> InFlight<'a> {
    fn here(write: impl Future<Output = Result<Written>> + Send + 'a) -> Self {
        InFlight::Here { write: Box::pin(write), done: None }
    }

    /// Lets the write move on (send its next statement) without waiting for it.
    async fn poll_once(&mut self) {
        let InFlight::Here { write, done } = self else { return };
        if done.is_some() {
            return;
        }
        std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = write.as_mut().poll(cx) {
                *done = Some(result);
            }
            Poll::Ready(())
        })
        .await
    }

    async fn finish(self) -> Result<Written> {
        match self {
            InFlight::Apart(handle) => {
                handle.await.map_err(|e| Error::Internal(format!("writing a batch of the import failed: {e}")))?
            }
            InFlight::Here { done: Some(result), .. } => result,
            InFlight::Here { write, done: None } => write.await,
        }
    }
}

/// `raw` without the separators people type (` -.()`): the E.164 form when `raw` was typed as
/// `+` and the whole number. A stored number (always E.164, always valid) equal to it is the
/// number that parsing `raw` would give, so the import can skip parsing it again.
fn e164_as_typed(raw: &str) -> String {
    raw.trim().chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect()
}

impl PlannedRow {
    /// A row that fails: nothing written, no member to name.
    fn failed(e: Error) -> Self {
        PlannedRow {
            row: 0,
            status: RowStatus::Failed,
            member_id: None,
            changes: vec![],
            audit: vec![],
            error: Some(e.into()),
            invitation_deferred: false,
        }
    }
}

impl ImportReport {
    fn record(&mut self, row: PlannedRow) {
        match row.status {
            RowStatus::Created => self.created += 1,
            RowStatus::Updated => self.updated += 1,
            RowStatus::Unchanged => self.unchanged += 1,
            RowStatus::Failed => self.failed += 1,
        }
        if row.invitation_deferred {
            self.invitations_deferred += 1;
        }
        let invitation = row.invitation_deferred.then_some("deferred");
        self.rows.push(RowResult {
            row: row.row,
            status: row.status,
            member_id: row.member_id,
            error: row.error,
            invitation,
        });
    }
}

fn plan_row(
    plan: &mut Plan,
    enterprise: &crate::model::Enterprise,
    caller: &Caller,
    record: &ImportRecord,
    now: crate::clock::Timestamp,
) -> Result<PlannedRow> {
    let mut new_departments = Vec::new();
    let departments = match &record.departments {
        None => None,
        Some(DepartmentRefs::Ids(ids)) => Some(ids.clone()),
        Some(DepartmentRefs::Paths(paths)) => {
            // A row that fails must not leave planned departments behind.
            let mut ids = Vec::new();
            for path in paths {
                match plan.resolve_path(path, caller, &mut new_departments) {
                    Ok(id) => ids.push(id.to_string()),
                    Err(e) => {
                        plan.forget(&new_departments);
                        return Err(e);
                    }
                }
            }
            Some(ids)
        }
    };
    let existing = plan.find(record, enterprise.region);
    let result = match existing {
        Some(i) => plan_update(plan, enterprise, caller, record, departments, i, now),
        None => plan_create(plan, enterprise, caller, record, departments, now),
    };
    match result {
        Ok(mut row) => {
            let mut changes: Vec<DirectoryChange> =
                new_departments.iter().cloned().map(DirectoryChange::CreateDepartment).collect();
            let mut audit: Vec<AuditEntry> = new_departments
                .iter()
                .map(|d| {
                    caller.entry(
                        now,
                        "department.create",
                        Some(d.id.as_str()),
                        json!({"name": d.name.as_str(), "parent_id": d.parent_id, "via": "import"}),
                    )
                })
                .collect();
            changes.append(&mut row.changes);
            audit.append(&mut row.audit);
            row.changes = changes;
            row.audit = audit;
            Ok(row)
        }
        Err(e) => {
            plan.forget(&new_departments);
            Err(e)
        }
    }
}

fn plan_create(
    plan: &mut Plan,
    enterprise: &crate::model::Enterprise,
    caller: &Caller,
    record: &ImportRecord,
    departments: Option<Vec<String>>,
    now: crate::clock::Timestamp,
) -> Result<PlannedRow> {
    let input = NewMemberInput {
        name: record.name.clone().unwrap_or_default(),
        phone: record.phone.clone().unwrap_or_default(),
        userid: record.userid.clone(),
        email: record.email.clone().filter(|e| !e.is_empty()),
        title: record.title.clone().filter(|t| !t.is_empty()),
        departments,
        role: record.role.clone(),
        admin_departments: record.admin_departments.clone(),
        invite: record.invite,
    };
    let member = build_member(enterprise, &plan.tree, &input, now)?;
    caller.check_member_write(&plan.tree, &plan.policy, None, &member)?;
    if plan.by_phone.contains_key(member.phone.as_str()) {
        return Err(Error::Conflict(format!("another member already has the number {}", member.phone)));
    }
    if plan.by_userid.contains_key(&member.userid.key()) {
        return Err(Error::Conflict(format!("another member already has the userid '{}'", member.userid)));
    }
    let audit = caller.entry(
        now,
        "member.create",
        Some(member.id.as_str()),
        json!({"userid": member.userid.as_str(), "phone": member.phone.as_str(), "via": "import"}),
    );
    let id = member.id.to_string();
    plan.members.push(member.clone());
    plan.index(plan.members.len() - 1);
    Ok(PlannedRow {
        row: 0,
        status: RowStatus::Created,
        member_id: Some(id),
        changes: vec![DirectoryChange::CreateMember(member)],
        audit: vec![audit],
        error: None,
        invitation_deferred: false,
    })
}

fn plan_update(
    plan: &mut Plan,
    enterprise: &crate::model::Enterprise,
    caller: &Caller,
    record: &ImportRecord,
    departments: Option<Vec<String>>,
    i: usize,
    now: crate::clock::Timestamp,
) -> Result<PlannedRow> {
    let current = plan.members[i].clone();
    // The number as stored, typed in E.164 with separators or without: no need to parse it again.
    let phone = record.phone.clone().filter(|p| e164_as_typed(p) != current.phone.as_str());
    let patch = MemberPatch {
        name: record.name.clone(),
        phone,
        userid: record.userid.clone(),
        email: record.email.clone().map(|e| Some(e).filter(|e| !e.is_empty())),
        title: record.title.clone().map(|t| Some(t).filter(|t| !t.is_empty())),
        departments: departments.filter(|d| !d.is_empty()),
        role: record.role.clone(),
        admin_departments: record.admin_departments.clone(),
    };
    let updated = apply_patch(enterprise, &plan.tree, &current, &patch, now)?;
    let member_id = Some(current.id.to_string());
    if updated == current {
        return Ok(PlannedRow {
            row: 0,
            status: RowStatus::Unchanged,
            member_id,
            changes: vec![],
            audit: vec![],
            error: None,
            invitation_deferred: false,
        });
    }
    caller.check_member_write(&plan.tree, &plan.policy, Some(&current), &updated)?;
    if plan.by_phone.get(updated.phone.as_str()).is_some_and(|&j| j != i) {
        return Err(Error::Conflict(format!("another member already has the number {}", updated.phone)));
    }
    if plan.by_userid.get(&updated.userid.key()).is_some_and(|&j| j != i) {
        return Err(Error::Conflict(format!("another member already has the userid '{}'", updated.userid)));
    }
    let mut details = member_diff(&current, &updated);
    details["via"] = json!("import");
    // A new number is a new authenticator: the store signs the member out with the change, and
    // both numbers are told.
    let notices = if updated.phone != current.phone {
        details["signed_out"] = json!(true);
        phone_change_notices(&plan.keys, enterprise, &current, &updated).to_vec()
    } else {
        vec![]
    };
    let audit = caller.entry(now, "member.update", Some(updated.id.as_str()), details);
    plan.by_phone.remove(current.phone.as_str());
    plan.by_userid.remove(&current.userid.key());
    plan.members[i] = updated.clone();
    plan.index(i);
    Ok(PlannedRow {
        row: 0,
        status: RowStatus::Updated,
        member_id,
        changes: std::iter::once(DirectoryChange::UpdateMember { previous: Box::new(current), member: updated })
            .chain(notices.into_iter().map(|m| DirectoryChange::Notify(Box::new(m))))
            .collect(),
        audit: vec![audit],
        error: None,
        invitation_deferred: false,
    })
}
