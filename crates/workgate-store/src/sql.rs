//! How the store talks to a database, whichever it is.
//!
//! Every query is written once, in the SQL that SQLite and PostgreSQL both accept (`$N`
//! parameters, `ON CONFLICT`, partial indexes, integer times): [`Sql`] holds its text and
//! arguments, and [`Conn`] runs it on a SQLite or PostgreSQL connection or pool. What the two spell
//! differently is in [`Dialect`]: two function names, and the row locks that PostgreSQL needs
//! because it has concurrent writers, where SQLite has one (see `sqlite_writer.rs`).

use crate::cache::Tables;
use crate::errors::{from_sqlite, from_sqlx};
use crate::rows::{ColumnValue, DomainRow};
use crate::sqlite::{Pooled, ReadPool};
use sqlx::postgres::PgRow;
use sqlx::{Database, Encode, PgConnection, PgPool, Row as _, Type};
use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;
use workgate_domain::{Error, Result};

/// What differs between the databases in the text of a query.
pub(crate) struct Dialect {
    /// The smaller of two values: SQLite's scalar `MIN(a, b)`, PostgreSQL's `LEAST(a, b)`.
    pub least: &'static str,
    /// The position of a substring, `(haystack, needle)`: `instr` / `strpos`.
    pub instr: &'static str,
    /// Other connections write at the same time (PostgreSQL, READ COMMITTED): a check followed
    /// by a write must first lock what it checks. SQLite has one writer, so nothing can change
    /// between the two and these locks are left out.
    pub concurrent_writers: bool,
    /// Ends a `SELECT` of a row this transaction is about to change, or whose value its write
    /// depends on: later writers of the row wait for the commit. (Not `FOR UPDATE`, which would
    /// also block inserts elsewhere that merely refer to the row by a foreign key.)
    pub lock_row: &'static str,
    /// Ends a `SELECT` of a row that must not change before this transaction commits.
    pub share_row: &'static str,
    /// Ends a `SELECT` of queue or clean-up rows: rows another transaction holds are passed over.
    pub skip_locked: &'static str,
    /// Serialises the transactions that count against one limit bucket (`$1`).
    pub lock_bucket: Option<&'static str>,
    /// Takes the locks of several buckets (`$1`: their names, one per line) at once, in one order
    /// (of the lock keys), so that two transactions never each hold one while waiting for the
    /// other's. The same keys as `lock_bucket`.
    pub lock_buckets: Option<&'static str>,
}

pub(crate) const SQLITE: Dialect = Dialect {
    least: "MIN",
    instr: "instr",
    concurrent_writers: false,
    lock_row: "",
    share_row: "",
    skip_locked: "",
    lock_bucket: None,
    lock_buckets: None,
};

pub(crate) const POSTGRES: Dialect = Dialect {
    least: "LEAST",
    instr: "strpos",
    concurrent_writers: true,
    lock_row: " FOR NO KEY UPDATE",
    share_row: " FOR SHARE",
    skip_locked: " FOR UPDATE SKIP LOCKED",
    lock_bucket: Some("SELECT pg_advisory_xact_lock(hashtext($1))"),
    lock_buckets: Some(
        "SELECT COUNT(pg_advisory_xact_lock(k)) FROM (SELECT DISTINCT hashtext(b) AS k \
         FROM unnest(string_to_array($1, chr(10))) AS b ORDER BY k) AS keys",
    ),
};

/// One argument of a query.
#[derive(Clone)]
pub(crate) enum Arg<'a> {
    Text(Option<Cow<'a, str>>),
    Int(Option<i64>),
    Bytes(Option<Cow<'a, [u8]>>),
}

impl Arg<'_> {
    fn into_owned(self) -> Arg<'static> {
        match self {
            Arg::Text(v) => Arg::Text(v.map(|v| Cow::Owned(v.into_owned()))),
            Arg::Int(v) => Arg::Int(v),
            Arg::Bytes(v) => Arg::Bytes(v.map(|v| Cow::Owned(v.into_owned()))),
        }
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Some(Cow::Borrowed(v)))
    }
}
impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(Some(Cow::Borrowed(v)))
    }
}
impl From<String> for Arg<'_> {
    fn from(v: String) -> Self {
        Arg::Text(Some(Cow::Owned(v)))
    }
}
impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::Text(v.map(Cow::Borrowed))
    }
}
impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl<'a> From<&'a Vec<u8>> for Arg<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Arg::Bytes(Some(Cow::Borrowed(v)))
    }
}

/// A query's text and arguments.
#[derive(Clone)]
pub(crate) struct Sql<'a> {
    text: Cow<'a, str>,
    args: Vec<Arg<'a>>,
}

pub(crate) fn sql<'a>(text: impl Into<Cow<'a, str>>) -> Sql<'a> {
    Sql { text: text.into(), args: Vec::new() }
}

impl<'a> Sql<'a> {
    /// The same query, owning its text and arguments (to hand to the SQLite writer thread).
    pub(crate) fn into_owned(self) -> Sql<'static> {
        Sql { text: Cow::Owned(self.text.into_owned()), args: self.args.into_iter().map(Arg::into_owned).collect() }
    }

    /// Adds the argument of the next `$N` of the text.
    pub(crate) fn bind(mut self, value: impl Into<Arg<'a>>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Adds the arguments of the next parameters, in order.
    pub(crate) fn bind_all(mut self, values: impl IntoIterator<Item = Arg<'a>>) -> Self {
        self.args.extend(values);
        self
    }

    /// Appends text (for queries built piece by piece).
    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.to_mut().push_str(text);
        self
    }

    /// Appends a parameter `$N` and its argument.
    pub(crate) fn push_bind(&mut self, value: impl Into<Arg<'a>>) -> &mut Self {
        self.args.push(value.into());
        let n = self.args.len();
        let _ = write!(self.text.to_mut(), "${n}");
        self
    }

    /// Appends `VALUES (…), (…)`: one parenthesised group of parameters per item, each given its
    /// arguments by `bind` (for multi-row inserts).
    pub(crate) fn push_values<T>(
        &mut self,
        items: &'a [T],
        mut bind: impl FnMut(&mut Values<'_, 'a>, &'a T),
    ) -> &mut Self {
        self.push(" VALUES ");
        for (i, item) in items.iter().enumerate() {
            self.push(if i == 0 { "(" } else { ", (" });
            bind(&mut Values { sql: self, first: true }, item);
            self.push(")");
        }
        self
    }

    fn query<DB: Database>(&self) -> sqlx::query::Query<'_, DB, DB::Arguments<'_>>
    where
        for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
        for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
        for<'q> Option<&'q [u8]>: Encode<'q, DB> + Type<DB>,
    {
        let mut query = sqlx::query::<DB>(&self.text);
        for arg in &self.args {
            query = match arg {
                Arg::Text(v) => query.bind(v.as_deref()),
                Arg::Int(v) => query.bind(*v),
                Arg::Bytes(v) => query.bind(v.as_deref()),
            };
        }
        query
    }
}

/// The parameters of one row of [`Sql::push_values`].
pub(crate) struct Values<'s, 'a> {
    sql: &'s mut Sql<'a>,
    first: bool,
}

impl<'a> Values<'_, 'a> {
    pub(crate) fn bind(&mut self, value: impl Into<Arg<'a>>) -> &mut Self {
        if !self.first {
            self.sql.push(", ");
        }
        self.first = false;
        self.sql.push_bind(value);
        self
    }

    pub(crate) fn bind_all(&mut self, values: impl IntoIterator<Item = Arg<'a>>) -> &mut Self {
        for value in values {
            self.bind(value);
        }
        self
    }
}

/// PostgreSQL aborted the transaction to break a deadlock (`40P01`), or could not serialise it
/// (`40001`): running it again may succeed.
pub(crate) fn is_retryable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40P01" | "40001")))
}

/// A row of SQLite, copied out of its statement: the names of the columns (shared by the rows
/// of one query) and the values.
pub(crate) struct SqliteRow {
    columns: Arc<Columns>,
    cells: Vec<Cell>,
    /// The bytes of the row's text and blob values, one after another (one allocation).
    data: Vec<u8>,
}

/// One value of a [`SqliteRow`]; text and blobs are ranges of its `data`.
enum Cell {
    Null,
    Integer(i64),
    Real(f64),
    Text(std::ops::Range<usize>),
    Blob(std::ops::Range<usize>),
}

/// The names of a query's columns, in one string (one allocation, not one per column).
struct Columns {
    names: String,
    /// Where each name ends in `names`.
    ends: Vec<usize>,
}

impl Columns {
    fn of(stmt: &rusqlite::Statement<'_>) -> Self {
        let mut columns = Columns { names: String::new(), ends: Vec::with_capacity(stmt.column_count()) };
        for name in stmt.column_names() {
            columns.names.push_str(name);
            columns.ends.push(columns.names.len());
        }
        columns
    }

    /// The index of the column named `prefix` + `column`.
    fn position(&self, prefix: &str, column: &str) -> Option<usize> {
        let mut start = 0;
        for (i, &end) in self.ends.iter().enumerate() {
            let name = self.names.get(start..end).unwrap_or_default();
            if name.len() == prefix.len() + column.len() && name.starts_with(prefix) && name.ends_with(column) {
                return Some(i);
            }
            start = end;
        }
        None
    }
}

impl SqliteRow {
    fn get<T: ColumnValue>(&self, prefix: &str, column: &str) -> std::result::Result<T, String> {
        match self.columns.position(prefix, column) {
            Some(i) => self.decode(i),
            None => Err("no such column".to_string()),
        }
    }

    fn decode<T: ColumnValue>(&self, i: usize) -> std::result::Result<T, String> {
        use rusqlite::types::ValueRef;
        let bytes = |r: &std::ops::Range<usize>| self.data.get(r.clone()).unwrap_or_default();
        let value = match self.cells.get(i).ok_or_else(|| "no such column".to_string())? {
            Cell::Null => ValueRef::Null,
            Cell::Integer(v) => ValueRef::Integer(*v),
            Cell::Real(v) => ValueRef::Real(*v),
            Cell::Text(r) => ValueRef::Text(bytes(r)),
            Cell::Blob(r) => ValueRef::Blob(bytes(r)),
        };
        T::column_result(value).map_err(|e| e.to_string())
    }
}

/// A row of either database.
pub(crate) enum Row {
    Sqlite(SqliteRow),
    Pg(PgRow),
}

impl DomainRow for Row {
    fn get<T: ColumnValue>(&self, column: &str) -> Result<T> {
        match self {
            Row::Sqlite(r) => r.get("", column),
            Row::Pg(r) => r.try_get(column).map_err(|e| e.to_string()),
        }
        .map_err(|e| Error::Internal(format!("column {column}: {e}")))
    }
}

/// The columns of a row whose names start with a prefix, under their names without it (for a
/// join that reads two tables with columns of the same names: `m.id AS m_id`).
pub(crate) struct Prefixed<'r>(pub &'r Row, pub &'static str);

impl DomainRow for Prefixed<'_> {
    fn get<T: ColumnValue>(&self, column: &str) -> Result<T> {
        match self.0 {
            Row::Sqlite(r) => {
                r.get(self.1, column).map_err(|e| Error::Internal(format!("column {}{column}: {e}", self.1)))
            }
            Row::Pg(_) => self.0.get(&format!("{}{column}", self.1)),
        }
    }
}

impl Row {
    /// The first column (of a `SELECT` of one value).
    fn first<T: ColumnValue>(&self) -> Result<T> {
        match self {
            Row::Sqlite(r) => r.decode(0),
            Row::Pg(r) => r.try_get(0).map_err(|e| e.to_string()),
        }
        .map_err(|e| Error::Internal(format!("first column: {e}")))
    }
}

enum Target<'c> {
    /// A connection of SQLite's read pool, given back when the `Conn` is dropped.
    SqlitePool(Pooled<'c>),
    /// SQLite's one writer connection, inside the group writer's transaction.
    Sqlite(&'c mut rusqlite::Connection),
    PgPool(&'c PgPool),
    Pg(&'c mut PgConnection),
}

/// The text with each `$N` parameter spelt `?N`, outside quoted strings and names. SQLite takes
/// `$N` as a name and numbers names by first appearance, and finding a name's number is a search
/// through all of them (quadratic for a multi-row insert of thousands of values); `?N` is number
/// N itself.
fn numbered_parameters(text: &str) -> Cow<'_, str> {
    if !text.contains('$') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut quote: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        match quote {
            Some(q) if ch == q => quote = None,
            Some(_) => {}
            None if ch == '\'' || ch == '"' => quote = Some(ch),
            None if ch == '$' && chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push('?');
                continue;
            }
            None => {}
        }
        out.push(ch);
    }
    Cow::Owned(out)
}

/// Runs `q` on a SQLite connection: prepared once per connection (cached), its `$N` parameters
/// bound by number (as `?N`), and every row it answers handed to `each` (at most `limit` of them; the
/// statement runs to its end only when there is no limit). Answers the rows changed.
///
/// SQLite statements take microseconds here, so they run on the calling thread: no hop to a
/// worker thread and back (which cost more CPU than the query itself).
fn run_sqlite(
    conn: &rusqlite::Connection,
    q: &Sql<'_>,
    limit: Option<usize>,
    mut each: impl FnMut(SqliteRow),
) -> rusqlite::Result<u64> {
    use rusqlite::types::ValueRef;
    // A few parameters are found by name; many (a multi-row insert) by number, as `?N`.
    let many = q.args.len() > 32;
    let mut stmt =
        if many { conn.prepare_cached(&numbered_parameters(&q.text))? } else { conn.prepare_cached(&q.text)? };
    for i in 1..=stmt.parameter_count() {
        let n = if many {
            i
        } else {
            stmt.parameter_name(i).and_then(|name| name.strip_prefix('$')).and_then(|n| n.parse().ok()).unwrap_or(i)
        };
        let arg = q.args.get(n.wrapping_sub(1)).ok_or(rusqlite::Error::InvalidParameterCount(n, q.args.len()))?;
        match arg {
            Arg::Text(v) => stmt.raw_bind_parameter(i, v.as_deref())?,
            Arg::Int(v) => stmt.raw_bind_parameter(i, *v)?,
            Arg::Bytes(v) => stmt.raw_bind_parameter(i, v.as_deref())?,
        }
    }
    let mut columns: Option<Arc<Columns>> = None;
    let mut rows = stmt.raw_query();
    let mut taken = 0;
    while limit.is_none_or(|l| taken < l) {
        let Some(row) = rows.next()? else { break };
        let columns = columns.get_or_insert_with(|| Arc::new(Columns::of(row.as_ref()))).clone();
        let mut cells = Vec::with_capacity(columns.ends.len());
        let mut data = Vec::with_capacity(256);
        for i in 0..columns.ends.len() {
            let mut bytes = |b: &[u8]| {
                data.extend_from_slice(b);
                data.len() - b.len()..data.len()
            };
            cells.push(match row.get_ref(i)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(v) => Cell::Integer(v),
                ValueRef::Real(v) => Cell::Real(v),
                ValueRef::Text(b) => Cell::Text(bytes(b)),
                ValueRef::Blob(b) => Cell::Blob(bytes(b)),
            });
        }
        each(SqliteRow { columns, cells, data });
        taken += 1;
    }
    drop(rows);
    Ok(conn.changes())
}

/// Where queries run: a transaction's connection (writes) or a pool (reads).
pub(crate) struct Conn<'c> {
    target: Target<'c>,
    /// A query failed in a way that running the whole transaction again may cure (a deadlock
    /// broken by PostgreSQL, a serialization failure).
    pub(crate) retryable: bool,
    /// The tables its statements wrote, as far as the token-check cache cares (`cache.rs`).
    pub(crate) written: Tables,
}

/// Runs `q` on SQLite with `run_sqlite` (`$limit` rows at most, mapped by `|$rows| $body` from
/// the `Vec<Row>` collected), or on PostgreSQL with the `sqlx` method `$method`, mapped by
/// `|$out, $wrap| $pg`, where `$wrap` turns the backend's row into a [`Row`].
macro_rules! on_target {
    ($conn:expr, $q:expr, $limit:expr, |$rows:ident, $changed:ident| $body:expr,
     $method:ident, |$out:ident, $wrap:ident| $pg:expr) => {{
        let q = &$q;
        match &mut $conn.target {
            Target::SqlitePool(c) => {
                let mut $rows = Vec::new();
                let outcome = c.connection().and_then(|c| run_sqlite(c, q, $limit, |r| $rows.push(Row::Sqlite(r))));
                $conn.check_sqlite(outcome.map(|$changed| $body))
            }
            Target::Sqlite(c) => {
                let mut $rows = Vec::new();
                let outcome = run_sqlite(c, q, $limit, |r| $rows.push(Row::Sqlite(r)));
                $conn.check_sqlite(outcome.map(|$changed| $body))
            }
            Target::PgPool(p) => {
                let outcome = q.query().$method(*p).await.map(|$out| {
                    let $wrap = Row::Pg;
                    $pg
                });
                $conn.check(outcome)
            }
            Target::Pg(c) => {
                let outcome = q.query().$method(&mut **c).await.map(|$out| {
                    let $wrap = Row::Pg;
                    $pg
                });
                $conn.check(outcome)
            }
        }
    }};
}

impl<'c> Conn<'c> {
    pub(crate) fn sqlite(conn: &'c mut rusqlite::Connection) -> Self {
        Conn { target: Target::Sqlite(conn), retryable: false, written: Tables::NONE }
    }

    pub(crate) fn sqlite_pool(pool: &'c ReadPool) -> Self {
        Conn { target: Target::SqlitePool(pool.take()), retryable: false, written: Tables::NONE }
    }

    pub(crate) fn pg(conn: &'c mut PgConnection) -> Self {
        Conn { target: Target::Pg(conn), retryable: false, written: Tables::NONE }
    }

    pub(crate) fn pg_pool(pool: &'c PgPool) -> Self {
        Conn { target: Target::PgPool(pool), retryable: false, written: Tables::NONE }
    }

    pub(crate) fn dialect(&self) -> &'static Dialect {
        match self.target {
            Target::SqlitePool(_) | Target::Sqlite(_) => &SQLITE,
            Target::PgPool(_) | Target::Pg(_) => &POSTGRES,
        }
    }

    fn check<T>(&mut self, outcome: sqlx::Result<T>) -> Result<T> {
        outcome.map_err(|e| {
            self.retryable |= is_retryable(&e);
            from_sqlx(e)
        })
    }

    fn check_sqlite<T>(&mut self, outcome: rusqlite::Result<T>) -> Result<T> {
        outcome.map_err(from_sqlite)
    }

    /// Runs a statement; answers how many rows it changed.
    pub(crate) async fn execute(&mut self, q: Sql<'_>) -> Result<u64> {
        self.written.insert(Tables::written_by(&q.text));
        on_target!(self, q, None, |_rows, changed| changed, execute, |done, _wrap| done.rows_affected())
    }

    pub(crate) async fn fetch_optional(&mut self, q: Sql<'_>) -> Result<Option<Row>> {
        self.written.insert(Tables::written_by(&q.text));
        on_target!(self, q, Some(1), |rows, _changed| rows.pop(), fetch_optional, |row, wrap| row.map(wrap))
    }

    pub(crate) async fn fetch_all(&mut self, q: Sql<'_>) -> Result<Vec<Row>> {
        self.written.insert(Tables::written_by(&q.text));
        on_target!(self, q, None, |rows, _changed| rows, fetch_all, |rows, wrap| rows.into_iter().map(wrap).collect())
    }

    pub(crate) async fn fetch_one(&mut self, q: Sql<'_>) -> Result<Row> {
        self.fetch_optional(q).await?.ok_or_else(|| Error::Internal("a query answered no row".into()))
    }

    /// The one value a query answers in one row (`SELECT COUNT(*) …`).
    pub(crate) async fn value<T: ColumnValue>(&mut self, q: Sql<'_>) -> Result<T> {
        self.fetch_one(q).await?.first()
    }

    /// The value of the first column of the first row, if there is a row.
    pub(crate) async fn optional_value<T: ColumnValue>(&mut self, q: Sql<'_>) -> Result<Option<T>> {
        self.fetch_optional(q).await?.map(|row| row.first()).transpose()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parameters_are_numbered_outside_strings() {
        assert_eq!(
            super::numbered_parameters("SELECT $2, $10 WHERE a = '$1' AND \"$3\" = $1"),
            "SELECT ?2, ?10 WHERE a = '$1' AND \"$3\" = ?1"
        );
        assert_eq!(super::numbered_parameters("SELECT 1"), "SELECT 1");
    }
}
