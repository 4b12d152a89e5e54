//! `TestApp`: the one setup of the black-box suite.
//!
//! The suite runs twice: on SQLite in the `api` test binary (a database file in a temporary
//! directory per test), and on PostgreSQL in `api_postgres` (tests/api_postgres.rs), where each
//! `TestApp` creates a schema of its own in the database named by `WORKGATE_TEST_POSTGRES` and
//! drops it afterwards, so tests still run in parallel and see only their own rows.

#![allow(dead_code)]

use super::paths;
use crate::pg_schema::PgSchema;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use workgate::config::ServerConfig;
use workgate::server::RunningServer;
use workgate_domain::enterprises::CreateEnterprise;
use workgate_domain::model::Actor;

pub struct TestApp {
    pub server: RunningServer,
    pub base: String,
    pub client: reqwest::Client,
    pub database_url: String,
    _dir: tempfile::TempDir,
    _database: TestDatabase,
}

/// The database a test's server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend of this test binary.
    pub fn current() -> Backend {
        if env!("CARGO_CRATE_NAME") == "api_postgres" { Backend::Postgres } else { Backend::Sqlite }
    }
}

/// A database of one test's own: a SQLite file in the test's directory, or on PostgreSQL a schema
/// of its own (first on the `search_path` that the server's URL sets), dropped when the test
/// ends, passed or failed (`tests/common/postgres.rs`, shared with the tests that run server
/// processes). Schemas, not databases: creating a database takes a quarter of a second, a schema
/// milliseconds.
pub struct TestDatabase {
    pub url: String,
    _schema: Option<PgSchema>,
}

/// The variable that names the PostgreSQL server (and database) of the `api_postgres` run.
pub const POSTGRES_VARIABLE: &str = crate::pg_schema::VARIABLE;

/// Test schemas are named `wg_test_<unix seconds>_<process>_<n>`.
const SCHEMA_PREFIX: &str = "wg_test_";

impl TestDatabase {
    pub async fn create(dir: &std::path::Path) -> TestDatabase {
        match Backend::current() {
            Backend::Sqlite => {
                TestDatabase { url: format!("sqlite://{}", dir.join("workgate.db").display()), _schema: None }
            }
            Backend::Postgres => {
                use sqlx::Connection;
                static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
                let server = std::env::var(POSTGRES_VARIABLE)
                    .unwrap_or_else(|_| panic!("{POSTGRES_VARIABLE} names the PostgreSQL server of this run"));
                SWEPT
                    .get_or_init(async || {
                        let mut admin = sqlx::PgConnection::connect(&server)
                            .await
                            .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_VARIABLE}={server}: {e}"));
                        drop_stale_schemas(&mut admin).await;
                        let _ = admin.close().await;
                    })
                    .await;
                let schema = PgSchema::create("api_postgres").await.expect("a schema of the test's own");
                TestDatabase { url: schema.url.clone(), _schema: Some(schema) }
            }
        }
    }
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time after 1970").as_secs()
}

/// Drops the test schemas that earlier runs left behind (an hour old or more), when a run was
/// interrupted before its tests ended.
async fn drop_stale_schemas(admin: &mut sqlx::PgConnection) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT CAST(nspname AS TEXT) FROM pg_namespace WHERE starts_with(nspname, $1)")
            .bind(SCHEMA_PREFIX)
            .fetch_all(&mut *admin)
            .await
            .unwrap_or_default();
    for name in names {
        let created = name[SCHEMA_PREFIX.len()..].split('_').next().and_then(|s| s.parse::<u64>().ok());
        if created.is_some_and(|t| t + 3600 < unix_seconds()) {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")).execute(&mut *admin).await;
        }
    }
}

/// An enterprise created for a test, with its first API key.
#[derive(Debug, Clone)]
pub struct TestEnterprise {
    pub id: String,
    pub key: String,
    pub owner_id: String,
    pub root_department_id: String,
}

/// A response, read whole: status, headers and JSON body (`Value::Null` when not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The problem+json `code`, if any.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn assert_status(&self, expected: u16) -> &Self {
        assert_eq!(self.status.as_u16(), expected, "unexpected status; body: {}", self.text);
        self
    }

    /// Asserts a problem+json answer with this status and code.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) -> &Self {
        self.assert_status(status);
        assert_eq!(self.code(), code, "unexpected code; body: {}", self.text);
        let content_type = self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        assert_eq!(content_type, "application/problem+json", "problem content type");
        assert!(self.body["title"].is_string() && self.body["detail"].is_string(), "title and detail: {}", self.text);
        self
    }

    /// The `login_id` of a started sign-in.
    #[track_caller]
    pub fn login_id(&self) -> String {
        self.body["login_id"].as_str().unwrap_or_else(|| panic!("a login_id: {}", self.text)).to_string()
    }

    /// The field names of a `validation_failed` answer.
    pub fn error_fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e["field"].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::launch(|_| {}, std::sync::Arc::new(workgate_domain::clock::SystemClock)).await
    }

    /// A server whose configuration the test adjusts (e.g. lower limits), on a clock it moves.
    pub async fn spawn_configured(
        configure: impl FnOnce(&mut ServerConfig),
        clock: std::sync::Arc<workgate_domain::clock::ManualClock>,
    ) -> TestApp {
        Self::launch(configure, clock).await
    }

    /// A server with one enterprise, Acme, whose owner's number is 13800138000: where most
    /// tests start.
    pub async fn with_acme() -> (TestApp, TestEnterprise) {
        let app = TestApp::spawn().await;
        let ent = app.enterprise("Acme", "13800138000").await;
        (app, ent)
    }

    /// A server on a clock the test moves, with the enterprise Acme.
    pub async fn acme_on(clock: std::sync::Arc<workgate_domain::clock::ManualClock>) -> (TestApp, TestEnterprise) {
        let app = TestApp::spawn_configured(|_| {}, clock).await;
        let ent = app.enterprise("Acme", "13800138000").await;
        (app, ent)
    }

    /// A server on a clock of the test's own making.
    pub async fn spawn_on(clock: workgate_domain::clock::SharedClock) -> TestApp {
        Self::launch(|_| {}, clock).await
    }

    /// A server on a fresh database of this run's backend, with the `file` SMS outbox in the
    /// test's directory.
    async fn launch(configure: impl FnOnce(&mut ServerConfig), clock: workgate_domain::clock::SharedClock) -> TestApp {
        // The server's warnings and errors go to the test's captured output: a failing test shows
        // why the server answered as it did (an unexpected 500 names its cause).
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_max_level(tracing::Level::WARN)
            .with_target(false)
            .try_init();
        let dir = tempfile::tempdir().expect("temp dir");
        let database = TestDatabase::create(dir.path()).await;
        let mut config = ServerConfig::for_database(&database.url);
        config.sms = workgate::config::file_sms(dir.path().join("workgate-sms.jsonl"));
        config.key_file = dir.path().join("workgate.key");
        configure(&mut config);
        let server = workgate::server::start_with_clock(&config, clock).await.expect("server starts");
        let base = server.base_url();
        let database_url = database.url.clone();
        TestApp { server, base, client: reqwest::Client::new(), database_url, _dir: dir, _database: database }
    }

    /// The `file` SMS outbox of this server.
    pub fn sms_file(&self) -> std::path::PathBuf {
        self._dir.path().join("workgate-sms.jsonl")
    }

    /// Every SMS delivered to `phone` (E.164) so far, oldest first.
    pub fn sms_to(&self, phone: &str) -> Vec<workgate_sms::FileMessage> {
        workgate_sms::read_messages(self.sms_file()).into_iter().filter(|m| m.to == phone).collect()
    }

    /// Waits (up to 10 s) until `phone` has received `count` messages, and returns them. The sender
    /// delivers in the background, so a message appears shortly after the request that queued it.
    pub async fn wait_for_sms(&self, phone: &str, count: usize) -> Vec<workgate_sms::FileMessage> {
        for _ in 0..500 {
            let messages = self.sms_to(phone);
            if messages.len() >= count {
                return messages;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("{phone} did not receive {count} SMS; got {:?}", self.sms_to(phone));
    }

    /// The verification code of the newest SMS to `phone`, once `count` messages have arrived.
    pub async fn code_for(&self, phone: &str, count: usize) -> String {
        let messages = self.wait_for_sms(phone, count).await;
        let body = &messages[count - 1].body;
        body.split(|c: char| !c.is_ascii_digit()).find(|w| w.len() == 6).expect("a 6-digit code").to_string()
    }

    /// Signs `phone` in over SMS through the JSON login (the number has had `sms_before` messages
    /// already); answers the finished login (`session`, `member`, `enterprise`).
    pub async fn sign_in(&self, phone: &str, sms_before: usize) -> Value {
        let started = self.start_login(phone).await;
        started.assert_status(200);
        let login_id = started.login_id();
        let code = self.code_for(phone, sms_before + 1).await;
        let done = self.submit_code(&login_id, &code).await;
        done.assert_status(200);
        assert_eq!(done.body["next"], "done", "{}", done.text);
        done.body
    }

    /// POST without credentials (login endpoints).
    pub async fn post_anon(&self, path: &str, body: Value) -> Reply {
        self.request(Method::POST, path, None, Some(body)).await
    }

    /// Starts an SMS sign-in of `phone` (as typed: the server normalises it).
    pub async fn start_login(&self, phone: &str) -> Reply {
        self.post_anon(&paths::login_start(), json!({"phone": phone})).await
    }

    /// Answers a started sign-in with the code its SMS carried (or a guess).
    pub async fn submit_code(&self, login_id: &str, code: &str) -> Reply {
        self.post_anon(&paths::login_code(login_id), json!({"code": code})).await
    }

    /// Creates an enterprise the way `workgate enterprise create` does.
    pub async fn enterprise(&self, name: &str, owner_phone: &str) -> TestEnterprise {
        let created = self
            .server
            .services
            .create_enterprise(
                CreateEnterprise {
                    name: name.into(),
                    owner_name: format!("{name} Owner"),
                    owner_phone: owner_phone.into(),
                    region: "CN".into(),
                },
                Actor::Cli,
            )
            .await
            .expect("enterprise created");
        TestEnterprise {
            id: created.enterprise.id.to_string(),
            key: created.api_key_secret.expose().to_string(),
            owner_id: created.owner.id.to_string(),
            root_department_id: created.root.id.to_string(),
        }
    }

    pub async fn request(&self, method: Method, path: &str, key: Option<&str>, body: Option<Value>) -> Reply {
        let mut req = self.client.request(method, self.url(path));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        Self::read(req.send().await.expect("request sent")).await
    }

    pub async fn read(resp: reqwest::Response) -> Reply {
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body read");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, headers, body, text }
    }

    /// This server's URL of `path`, for requests the helpers do not make (forms, raw headers).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str, key: &str) -> Reply {
        self.request(Method::GET, path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> Reply {
        self.request(Method::POST, path, Some(key), Some(body)).await
    }

    pub async fn patch(&self, path: &str, key: &str, body: Value) -> Reply {
        self.request(Method::PATCH, path, Some(key), Some(body)).await
    }

    pub async fn delete(&self, path: &str, key: &str) -> Reply {
        self.request(Method::DELETE, path, Some(key), None).await
    }

    /// Sends a raw body with a content type (CSV imports, malformed JSON).
    pub async fn post_raw(&self, path: &str, key: &str, content_type: &str, body: impl Into<reqwest::Body>) -> Reply {
        let req = self.client.post(self.url(path)).bearer_auth(key).header("content-type", content_type).body(body);
        Self::read(req.send().await.expect("request sent")).await
    }

    pub async fn get_member(&self, id: &str, key: &str) -> Reply {
        self.get(&paths::member(id), key).await
    }

    pub async fn patch_member(&self, id: &str, key: &str, body: Value) -> Reply {
        self.patch(&paths::member(id), key, body).await
    }

    pub async fn disable_member(&self, id: &str, key: &str) -> Reply {
        self.post(&paths::member_disable(id), key, json!({})).await
    }

    /// Adds a member through the API and returns its JSON.
    pub async fn add_member(&self, ent: &TestEnterprise, name: &str, phone: &str) -> Value {
        let reply = self.post(&paths::members(), &ent.key, json!({"name": name, "phone": phone})).await;
        reply.assert_status(201);
        reply.body
    }

    /// Adds a department under `parent` (the root when `None`) and returns its id.
    pub async fn add_department(&self, ent: &TestEnterprise, name: &str, parent: Option<&str>) -> String {
        let mut body = json!({"name": name});
        if let Some(p) = parent {
            body["parent_id"] = json!(p);
        }
        let reply = self.post(&paths::departments(), &ent.key, body).await;
        reply.assert_status(201);
        reply.body["id"].as_str().expect("department id").to_string()
    }

    /// Adds departments under the root, in order, and returns their ids.
    pub async fn add_departments<const N: usize>(&self, ent: &TestEnterprise, names: [&str; N]) -> [String; N] {
        let mut ids = Vec::with_capacity(N);
        for name in names {
            ids.push(self.add_department(ent, name, None).await);
        }
        ids.try_into().expect("one id per name")
    }

    /// A direct connection to the test's database, for checking state behind the API. The SQL
    /// must read the same on both backends (`$N` parameters, integers and text).
    pub async fn db(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        sqlx::AnyPool::connect(&self.database_url).await.expect("database opens")
    }

    /// Counts rows of `table` (a fixed name from the test, never input).
    pub async fn count(&self, table: &str) -> i64 {
        let pool = self.db().await;
        let n: i64 =
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&pool).await.expect("count");
        pool.close().await;
        n
    }

    /// A snapshot of every row of the directory tables, to show that a refused request changed nothing.
    pub async fn snapshot(&self) -> Vec<String> {
        let pool = self.db().await;
        let mut out = Vec::new();
        for (table, order) in [
            ("enterprises", "id"),
            ("departments", "id"),
            ("members", "id"),
            ("member_departments", "member_id, department_id"),
            ("api_keys", "id"),
            ("audit_log", "id"),
            ("apps", "id"),
        ] {
            // `json_array(*)` is not SQL: name every column, so that a changed value shows.
            let (columns, row) = match Backend::current() {
                Backend::Sqlite => (format!("SELECT name FROM pragma_table_info('{table}')"), "quote(json_array({}))"),
                Backend::Postgres => (
                    format!(
                        "SELECT CAST(column_name AS TEXT) FROM information_schema.columns \
                         WHERE table_schema = current_schema() AND table_name = '{table}' ORDER BY ordinal_position"
                    ),
                    "CAST(json_build_array({}) AS TEXT)",
                ),
            };
            let columns: Vec<String> = sqlx::query_scalar(&columns).fetch_all(&pool).await.expect("table columns");
            assert!(!columns.is_empty(), "table {table} exists");
            let row = row.replace("{}", &columns.join(", "));
            let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT {row} FROM {table} ORDER BY {order}"))
                .fetch_all(&pool)
                .await
                .expect("snapshot rows");
            out.push(format!("{table}: {}", rows.len()));
            out.extend(rows);
        }
        pool.close().await;
        out
    }
}

impl TestApp {
    /// A request without credentials.
    pub async fn anon(&self, method: Method, path: &str) -> Reply {
        self.request(method, path, None, None).await
    }

    /// A request with any `Authorization` header value (or none), to probe authentication. Writes
    /// carry a JSON body so that only the credential can be wrong.
    pub async fn with_authorization(&self, method: Method, path: &str, authorization: Option<&str>) -> Reply {
        let writes = method == Method::POST || method == Method::PATCH;
        let mut req = self.client.request(method, self.url(path));
        if let Some(value) = authorization {
            req = req.header("authorization", value);
        }
        if writes {
            req = req.json(&json!({"name": "X", "phone": "13900000000"}));
        }
        Self::read(req.send().await.expect("request sent")).await
    }

    /// A request with a key and no body at all.
    pub async fn anon_with_key(&self, method: Method, path: &str, key: &str) -> Reply {
        self.request(method, path, Some(key), None).await
    }

    /// Any method, any content type and raw body, with a key.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        key: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let mut req = self.client.request(method, self.url(path)).bearer_auth(key).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        Self::read(req.send().await.expect("request sent")).await
    }

    /// Adds a member from a full JSON body, asserting 201.
    pub async fn add_member_with(&self, ent: &TestEnterprise, body: Value) -> Value {
        let reply = self.post(&paths::members(), &ent.key, body).await;
        reply.assert_status(201);
        reply.body
    }

    /// Every member matching `query` (without `cursor`/`limit`), walking the pages `limit` at a time.
    pub async fn all_members(&self, ent: &TestEnterprise, query: &str, limit: u32) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..1000 {
            let mut path = paths::members_query(&format!("limit={limit}"));
            if !query.is_empty() {
                path.push('&');
                path.push_str(query);
            }
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = self.get(&path, &ent.key).await;
            page.assert_status(200);
            let items = page.body["items"].as_array().expect("items").clone();
            assert!(items.len() <= limit as usize, "a page holds at most `limit` items");
            out.extend(items);
            match page.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => {
                    assert!(page.body["next_cursor"].is_null(), "next_cursor is null on the last page");
                    return out;
                }
            }
        }
        panic!("pagination did not end");
    }

    /// The ids of the members a list answer holds.
    pub fn ids(list: &[Value]) -> Vec<String> {
        list.iter().map(|m| m["id"].as_str().expect("id").to_string()).collect()
    }

    /// The audit entries of an enterprise (newest first), with an optional query string.
    pub async fn audit(&self, ent: &TestEnterprise, query: &str) -> Vec<Value> {
        let path = if query.is_empty() {
            paths::audit_query("limit=500")
        } else {
            paths::audit_query(&format!("limit=500&{query}"))
        };
        let reply = self.get(&path, &ent.key).await;
        reply.assert_status(200);
        reply.body["items"].as_array().expect("items").clone()
    }

    /// The id of the enterprise's first API key, as the audit log names it.
    pub async fn first_key_id(&self, ent: &TestEnterprise) -> String {
        let reply = self.get(&paths::api_keys(), &ent.key).await;
        reply.assert_status(200);
        reply.body["items"][0]["id"].as_str().expect("key id").to_string()
    }
}

/// The strings of a JSON list (ids of departments, say).
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array().expect("a list").iter().map(|x| x.as_str().expect("text").to_string()).collect()
}

/// A 6-digit code that is not `code` (the next one up), for a wrong guess.
pub fn wrong_code(code: &str) -> String {
    let n: u32 = code.parse().expect("digits");
    format!("{:06}", (n + 1) % 1_000_000)
}

/// Percent-encodes a query value (`+` and spaces in phone numbers, `:` in times).
pub fn enc(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl TestApp {
    /// This server's key file (in the test's directory).
    pub fn key_file(&self) -> std::path::PathBuf {
        self._dir.path().join("workgate.key")
    }

    /// The configuration this test's server starts with, on its database, key file and outbox.
    pub fn config(&self) -> ServerConfig {
        let mut config = ServerConfig::for_database(&self.database_url);
        config.sms = workgate::config::file_sms(self.sms_file());
        config.key_file = self.key_file();
        config
    }

    /// Stops the server and starts another on the same database, key file and outbox, with
    /// `configure` applied to its configuration.
    pub async fn restart(self, configure: impl FnOnce(&mut ServerConfig)) -> TestApp {
        let mut config = self.config();
        configure(&mut config);
        let TestApp { server, client, database_url, _dir, _database, .. } = self;
        server.shutdown().await.expect("the server stops");
        let server = workgate::server::start(&config).await.expect("server restarts");
        let base = server.base_url();
        TestApp { server, base, client, database_url, _dir, _database }
    }

    /// Starts a second server on this test's database, key file and outbox with `configure`
    /// applied; the error it stops with, as the command line shows it, when it refuses to start.
    pub async fn start_another(&self, configure: impl FnOnce(&mut ServerConfig)) -> Result<RunningServer, String> {
        let mut config = self.config();
        configure(&mut config);
        workgate::server::start(&config).await.map_err(|e| format!("{e:#}"))
    }

    /// The raw bytes the database keeps: on SQLite the main file and its write-ahead log; on
    /// PostgreSQL the text of every row of every table of the test's schema.
    pub async fn stored_bytes(&self) -> Vec<u8> {
        match Backend::current() {
            Backend::Sqlite => {
                let path = self.database_url.trim_start_matches("sqlite://").to_string();
                let mut bytes = std::fs::read(&path).expect("the database file");
                bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
                bytes
            }
            Backend::Postgres => {
                let pool = self.db().await;
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
                     WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
                )
                .fetch_all(&pool)
                .await
                .expect("tables");
                assert!(tables.len() > 10, "the schema's tables are found: {tables:?}");
                let mut bytes = Vec::new();
                for table in tables {
                    let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT CAST(t AS TEXT) FROM {table} t"))
                        .fetch_all(&pool)
                        .await
                        .expect("rows as text");
                    for row in rows {
                        bytes.extend(row.into_bytes());
                        bytes.push(b'\n');
                    }
                }
                pool.close().await;
                bytes
            }
        }
    }
}

/// Whether `needle` occurs in `haystack` as a token of its own: not inside a longer run of letters
/// and digits (so that a 6-digit code is not "found" inside a random hexadecimal hash or id).
pub fn contains_token(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).enumerate().any(|(i, w)| {
        w == needle
            && (i == 0 || !haystack[i - 1].is_ascii_alphanumeric())
            && haystack.get(i + needle.len()).is_none_or(|b| !b.is_ascii_alphanumeric())
    })
}
