//! Crash rounds: the server is killed with SIGKILL again and again during a mixed load, started
//! again on the same database after each kill, and checked.
//!
//! The load, which each round runs for a random 100–400 ms before the kill:
//! - two admin writers add members (`POST /members`) and patch the titles of those they added;
//! - an importer posts CSV imports of new members (`POST /members/import`);
//! - two login workers sign members in (`/login/start`, then `/login/{id}/code` with the code read
//!   from the `file` SMS outbox);
//! - a refresher rotates member sessions (`POST /token/refresh`);
//! - a revoker logs sessions out (`POST /me/logout`) and disables a member with live sessions;
//! - an OpenID Connect app gets codes for signed-in members (`GET /oidc/authorize` with PKCE and
//!   the `wg_access` cookie) and redeems most of them (`POST /oidc/token`); a third are left for
//!   after the kill.
//!
//! What an answer acknowledged is the model. A request that the kill cut off is in doubt, and the
//! first look after the restart settles it: either outcome, but all of one (a disable in doubt is
//! the member disabled and every token of theirs refused, or neither).
//!
//! After each kill, before the restart: SQLite's `PRAGMA integrity_check` is `ok`, and the outbox
//! messages still `sending` are noted. After each restart:
//! - every acknowledged member is there with its phone, name, userid, title and status (a member
//!   whose login finished is `active`, a disabled one `disabled`), and the support view finds one
//!   by number;
//! - the sessions of finished logins answer `/me` unless revoked; every token whose end was
//!   acknowledged (rotated away, logged out, its member disabled, its session ended for refresh
//!   reuse, its grant revoked) is refused, access and refresh tokens alike; a refresh token that
//!   was rotated away is refused and ends its session;
//! - a login code that finished a login answers `code_expired`; a redeemed OIDC code answers
//!   `invalid_grant` (and its grant is then revoked: its access token is refused); a code issued
//!   but not redeemed before the kill is redeemed after it, once;
//! - acknowledged grants answer userinfo.
//!
//! At the end the outbox finishes its work and every message went out, each once, except that a
//! message in flight (`sending`) at a kill may go out once more for each kill that caught it so:
//! the file provider had written it and the kill came before the sender recorded it sent. That is
//! the outbox's at-least-once delivery (crash.rs shows it too). It is bounded exactly: each copy
//! after the first must have a kill between it and the copy before, a kill that found the message
//! `sending`; the number of such copies is printed.
//!
//! The normal suite runs 5 rounds per database; `WORKGATE_CRASH_ROUNDS=50` runs the full version
//! (docs/operators.md, "Crash safety"). `WORKGATE_CRASH_SEED` repeats a run's random choices (the
//! timing is the machine's). PostgreSQL runs when `WORKGATE_TEST_POSTGRES` names a server.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::node::{Node, create_enterprise, database};
use common::paths;
use common::postgres::PgSchema;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The number of rounds per database; the normal suite runs [`QUICK_ROUNDS`].
const ROUNDS: &str = "WORKGATE_CRASH_ROUNDS";
const QUICK_ROUNDS: usize = 5;
/// Seeds the random choices (load time, which member, which session).
const SEED: &str = "WORKGATE_CRASH_SEED";
/// Keeps the working directory.
const KEEP: &str = "WORKGATE_CRASH_KEEP";
const REDIRECT: &str = "https://app.example.com/callback";
/// Every life: the file provider, a short lease (so that a message caught in flight goes out again
/// soon), and limits out of the way of a load of logins from 127.0.0.1.
const CONFIG: &str = "[outbox]\nlease_secs = 1\n[login]\nresend_cooldown_secs = 0\nstarts_per_ip_hour = 1000000\n\
    starts_per_network_hour = 1000000\ncodes_per_number_hour = 100000\ncodes_per_number_day = 100000\n\
    sms_budget_server_hour = 1000000\nsms_budget_enterprise_hour = 1000000\n\
    invitation_budget_enterprise_hour = 1000000\n";

#[tokio::test]
async fn crash_rounds_on_sqlite() {
    let dir = work_dir();
    let url = format!("sqlite://{}", dir.path().join("workgate.db").display());
    Run::new("SQLite", url, dir, None).await.run().await;
}

#[tokio::test]
#[cfg_attr(
    not(workgate_test_postgres),
    ignore = "needs PostgreSQL: set WORKGATE_TEST_POSTGRES=postgres://USER@HOST:PORT/DATABASE"
)]
async fn crash_rounds_on_postgresql() {
    let Some(schema) = PgSchema::create("crash_rounds").await else { return };
    let dir = work_dir();
    Run::new("PostgreSQL", schema.url.clone(), dir, Some(schema)).await.run().await;
}

/// The directory of the key file, the SMS file and the servers' logs (and the SQLite database):
/// kept, and named, when `WORKGATE_CRASH_KEEP` is set.
fn work_dir() -> tempfile::TempDir {
    let keep = std::env::var_os(KEEP).is_some();
    let dir = tempfile::Builder::new().prefix("crash-rounds-").disable_cleanup(keep).tempdir().expect("temp dir");
    if keep {
        println!("{KEEP}: the database (SQLite), the SMS file and the servers' logs stay in {}", dir.path().display());
    }
    dir
}

/// xorshift64: the test's random choices, repeatable from the seed it prints.
struct Rng(Cell<u64>);

impl Rng {
    fn next(&self) -> u64 {
        let mut x = self.0.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0.set(x);
        x
    }

    fn below(&self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<T: Copy>(&self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.below(items.len())])
    }
}

/// An answer that arrived whole; `None` from [`send`] is a request the kill cut off.
struct Reply {
    status: u16,
    body: Value,
    location: String,
}

async fn send(request: reqwest::RequestBuilder) -> Option<Reply> {
    let reply = request.send().await.ok()?;
    let status = reply.status().as_u16();
    let location =
        reply.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string).unwrap_or_default();
    let bytes = reply.bytes().await.ok()?;
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Some(Reply { status, body, location })
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Known {
    No,
    Yes,
    /// The request that would make it so was cut off by the kill.
    Maybe,
}

struct MemberRec {
    phone: String,
    name: String,
    userid: Option<String>,
    /// The titles it may have: one, or two while a patch is in doubt.
    titles: Vec<Option<String>>,
    disabled: Known,
    /// A login of theirs finished: the member is `active` (unless disabled).
    activated: bool,
    /// The device of their last finished login, sent with the next (the policy caps devices).
    device: Option<String>,
    /// A login or a disable of theirs is under way.
    busy: bool,
    /// A login code of an earlier life may still reach their phone: no more logins for them.
    tainted: bool,
    /// The writer that added them, which alone patches them.
    writer: Option<usize>,
    /// When their last login started: a number gets at most one code a second (the shortest
    /// resend cooldown).
    last_start: Option<Instant>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SessionState {
    Live,
    /// A request with its tokens is under way.
    InUse,
    /// A refresh or a logout was cut off by the kill.
    Doubt(Op),
    Revoked,
    /// Rotated by a refresh whose answer was lost: its tokens are unknown (its session is ended).
    Gone,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Refresh,
    Logout,
}

struct SessionRec {
    member: String,
    access: String,
    refresh: String,
    state: SessionState,
    /// Refresh tokens rotated away; presenting one ends the session.
    rotated: Vec<String>,
    /// Rotated since the last check.
    rotated_new: bool,
}

struct GrantRec {
    member: String,
    code: String,
    verifier: String,
    access: String,
    refresh: String,
    live: bool,
    /// Made since the last check.
    new: bool,
    /// Its code was presented again.
    replayed: bool,
}

/// An OIDC code issued and not (known to be) redeemed.
struct CodeRec {
    member: String,
    code: String,
    verifier: String,
    /// Its exchange was sent and cut off by the kill.
    sent: bool,
}

/// A token whose end was acknowledged: refused for ever after.
enum Dead {
    Access(String),
    Refresh(String),
    AppAccess(String),
    AppRefresh(String),
}

#[derive(Default)]
struct Counts {
    members_added: usize,
    members_patched: usize,
    imports: usize,
    imported_members: usize,
    logins: usize,
    refreshes: usize,
    logouts: usize,
    disables: usize,
    oidc_codes: usize,
    oidc_exchanges: usize,
    in_doubt: usize,
    checks: usize,
}

impl Counts {
    /// Operations acknowledged, operations in doubt, checks.
    fn totals(&self) -> (usize, usize, usize) {
        let acked = self.members_added
            + self.members_patched
            + self.imports
            + self.logins
            + self.refreshes
            + self.logouts
            + self.disables
            + self.oidc_codes
            + self.oidc_exchanges;
        (acked, self.in_doubt, self.checks)
    }
}

#[derive(Default)]
struct Model {
    members: BTreeMap<String, MemberRec>,
    sessions: Vec<SessionRec>,
    grants: Vec<GrantRec>,
    codes: Vec<CodeRec>,
    /// `(login_id, code)` of finished logins; `consumed_checked` of them were checked already.
    consumed: Vec<(String, String)>,
    consumed_checked: usize,
    /// `(login_id, code, member)` of code submissions cut off by the kill.
    logins_in_doubt: Vec<(String, String, String)>,
    dead: Vec<Dead>,
    dead_checked: usize,
    /// At each kill: how many messages the SMS file held, and the outbox ids then `sending`.
    kills: Vec<(usize, HashSet<String>)>,
    disables_this_round: usize,
    counts: Counts,
}

impl Model {
    fn revoke_session(&mut self, i: usize) {
        let s = &mut self.sessions[i];
        s.state = SessionState::Revoked;
        let mut dead = vec![Dead::Access(s.access.clone()), Dead::Refresh(s.refresh.clone())];
        dead.extend(s.rotated.drain(..).map(Dead::Refresh));
        self.dead.extend(dead);
    }

    fn revoke_grant(&mut self, i: usize) {
        let g = &mut self.grants[i];
        g.live = false;
        let dead = [Dead::AppAccess(g.access.clone()), Dead::AppRefresh(g.refresh.clone())];
        self.dead.extend(dead);
    }

    /// A live session whose member is not busy, for a refresh, a logout or an authorization.
    fn free_sessions(&self) -> Vec<usize> {
        (0..self.sessions.len())
            .filter(|&i| {
                let s = &self.sessions[i];
                let m = &self.members[&s.member];
                s.state == SessionState::Live && !m.busy && m.disabled == Known::No
            })
            .collect()
    }
}

/// The `file` provider's messages, read incrementally (the file grows for the whole run).
struct SmsTail {
    path: PathBuf,
    offset: u64,
    messages: Vec<workgate_sms::FileMessage>,
}

impl SmsTail {
    fn refresh(&mut self) {
        let Ok(mut file) = std::fs::File::open(&self.path) else { return };
        let mut bytes = Vec::new();
        if file.seek(SeekFrom::Start(self.offset)).is_err() || file.read_to_end(&mut bytes).is_err() {
            return;
        }
        let Some(end) = bytes.iter().rposition(|&b| b == b'\n') else { return };
        // A line that is not a message (none is expected: each is one write) is skipped.
        self.messages.extend(bytes[..end].split(|&b| b == b'\n').filter_map(|l| serde_json::from_slice(l).ok()));
        self.offset += end as u64 + 1;
    }
}

fn code_in(body: &str) -> Option<String> {
    (!body.contains("/i/"))
        .then(|| body.split(|c: char| !c.is_ascii_digit()).find(|w| w.len() == 6))?
        .map(str::to_string)
}

struct Run {
    backend: &'static str,
    url: String,
    dir: tempfile::TempDir,
    _schema: Option<PgSchema>,
    config: PathBuf,
    key: String,
    client_id: String,
    client_secret: String,
    /// A fresh client per life: no pooled connection of a killed server is ever reused.
    http: RefCell<reqwest::Client>,
    rng: Rng,
    seed: u64,
    rounds: usize,
    next: Cell<u64>,
    killed: Cell<bool>,
    m: RefCell<Model>,
    sms: RefCell<SmsTail>,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

impl Run {
    async fn new(backend: &'static str, url: String, dir: tempfile::TempDir, schema: Option<PgSchema>) -> Run {
        let rounds = std::env::var(ROUNDS).ok().map(|v| v.parse().expect("WORKGATE_CRASH_ROUNDS is a number"));
        let seed = std::env::var(SEED).ok().map(|v| v.parse().expect("WORKGATE_CRASH_SEED is a number"));
        let seed = seed.unwrap_or_else(|| {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
            t.as_nanos() as u64 | 1
        });
        let config = dir.path().join("workgate.toml");
        std::fs::write(&config, CONFIG).expect("config written");
        let created = create_enterprise(&url, dir.path(), "Acme", "13800138000");
        let sms = SmsTail { path: dir.path().join("sms.jsonl"), offset: 0, messages: Vec::new() };
        Run {
            backend,
            url,
            _schema: schema,
            config,
            key: created["api_key"].as_str().expect("api key").to_string(),
            client_id: String::new(),
            client_secret: String::new(),
            http: RefCell::new(client()),
            rng: Rng(Cell::new(seed)),
            seed,
            rounds: rounds.unwrap_or(QUICK_ROUNDS),
            next: Cell::new(0),
            killed: Cell::new(false),
            m: RefCell::new(Model::default()),
            sms: RefCell::new(sms),
            dir,
        }
    }

    fn http(&self) -> reqwest::Client {
        self.http.borrow().clone()
    }

    fn next(&self) -> u64 {
        self.next.set(self.next.get() + 1);
        self.next.get()
    }

    async fn start(&self, life: &str) -> Node {
        *self.http.borrow_mut() = client();
        let sms = self.sms.borrow().path.clone();
        Node::start(life, self.dir.path(), &self.url, &sms, Some(&self.config)).await
    }

    /// A transport failure is the kill's doing, or a finding.
    fn cut_off(&self, what: &str) {
        assert!(self.killed.get(), "{what}: the request failed before the kill");
        self.m.borrow_mut().counts.in_doubt += 1;
    }

    async fn run(mut self) {
        let began = Instant::now();
        println!("{}: {} rounds, {SEED}={}", self.backend, self.rounds, self.seed);
        let mut server = self.start("life-0").await;
        self.setup(&server.base).await;
        for round in 1..=self.rounds {
            let load = Duration::from_millis(100 + self.rng.below(301) as u64);
            let (acked, in_doubt, checks) = self.m.borrow().counts.totals();
            self.load(&mut server, load).await;
            self.after_kill(round).await;
            let restarted = Instant::now();
            server = self.start(&format!("life-{round}")).await;
            let (restart, checked) = (restarted.elapsed(), Instant::now());
            self.check(&server.base, round, round % 10 == 0).await;
            let now = self.m.borrow().counts.totals();
            println!(
                "{} round {round}: killed after {load:?} with {} operations acknowledged and {} in doubt; \
                 ready again in {restart:.1?}; {} checks in {:.1?}",
                self.backend,
                now.0 - acked,
                now.1 - in_doubt,
                now.2 - checks,
                checked.elapsed(),
            );
        }
        self.finish(&server.base).await;
        drop(server);
        let m = self.m.borrow();
        let c = &m.counts;
        let (acked, in_doubt, checks) = c.totals();
        println!(
            "{}: {} rounds in {:.1?} ({SEED}={}): {acked} operations acknowledged ({} members added, {} patched, {} \
             imports of {} members, {} logins, {} refreshes, {} logouts, {} disables, {} OIDC codes, {} exchanges), \
             {in_doubt} cut off by a kill; {checks} checks ({} members, {} sessions, {} grants, {} revoked tokens \
             followed), no failure",
            self.backend,
            self.rounds,
            began.elapsed(),
            self.seed,
            c.members_added,
            c.members_patched,
            c.imports,
            c.imported_members,
            c.logins,
            c.refreshes,
            c.logouts,
            c.disables,
            c.oidc_codes,
            c.oidc_exchanges,
            m.members.len(),
            m.sessions.len(),
            m.grants.len(),
            m.dead.len(),
        );
    }

    /// First life: the policy (long-lived access tokens, room for devices), an app, members to sign in.
    async fn setup(&mut self, base: &str) {
        let http = self.http();
        let policy = send(http.get(format!("{base}{}", paths::policy())).bearer_auth(&self.key)).await.expect("policy");
        let mut policy = policy.body;
        policy.as_object_mut().expect("a policy").remove("updated_at");
        policy["max_devices"] = json!(100);
        policy["access_token_ttl_seconds"] = json!(86_400);
        let put = send(http.put(format!("{base}{}", paths::policy())).bearer_auth(&self.key).json(&policy)).await;
        let put = put.expect("policy put");
        assert_eq!(put.status, 200, "{}", put.body);
        let app = json!({"name": "Wiki", "redirect_uris": [REDIRECT]});
        let app = send(http.post(format!("{base}{}", paths::apps())).bearer_auth(&self.key).json(&app)).await;
        let app = app.expect("app registered");
        assert_eq!(app.status, 201, "{}", app.body);
        self.client_id = app.body["client_id"].as_str().expect("client_id").to_string();
        self.client_secret = app.body["client_secret"].as_str().expect("client_secret").to_string();
        for i in 0..6 {
            let phone = format!("+86135{i:08}");
            let name = format!("Signing In {i}");
            let body = json!({"name": name, "phone": phone});
            let added = send(http.post(format!("{base}{}", paths::members())).bearer_auth(&self.key).json(&body)).await;
            let added = added.expect("member added");
            assert_eq!(added.status, 201, "{}", added.body);
            self.add_member(&added.body, phone, name, None, None);
        }
    }

    fn add_member(&self, body: &Value, phone: String, name: String, userid: Option<String>, writer: Option<usize>) {
        let id = body["id"].as_str().unwrap_or_else(|| panic!("no id in {body}")).to_string();
        let rec = MemberRec {
            phone,
            name,
            userid,
            titles: vec![None],
            disabled: Known::No,
            activated: false,
            device: None,
            busy: false,
            tainted: false,
            writer,
            last_start: None,
        };
        self.m.borrow_mut().members.insert(id, rec);
    }

    /// Runs the load for `load`, then SIGKILL; returns when every worker has stopped.
    async fn load(&self, server: &mut Node, load: Duration) {
        self.killed.set(false);
        self.m.borrow_mut().disables_this_round = 0;
        let base = server.base.clone();
        let killer = async {
            tokio::time::sleep(load).await;
            server.kill();
            self.killed.set(true);
        };
        futures::join!(
            killer,
            self.writer(&base, 0),
            self.writer(&base, 1),
            self.importer(&base),
            self.login(&base),
            self.login(&base),
            self.refresher(&base),
            self.revoker(&base),
            self.oidc(&base),
        );
    }

    async fn pause(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    async fn writer(&self, base: &str, w: usize) {
        let http = self.http();
        let mut i = 0;
        while !self.killed.get() {
            i += 1;
            let patchable = {
                let m = self.m.borrow();
                let own: Vec<String> = m
                    .members
                    .iter()
                    .filter(|(_, r)| r.writer == Some(w) && r.disabled != Known::Maybe)
                    .map(|(id, _)| id.clone())
                    .collect();
                (!own.is_empty()).then(|| own[self.rng.below(own.len())].clone())
            };
            if i % 3 == 0
                && let Some(id) = patchable
            {
                let title = format!("Title {}", self.next());
                self.m.borrow_mut().members.get_mut(&id).expect("member").titles.push(Some(title.clone()));
                let body = json!({"title": title});
                let request = http.patch(format!("{base}{}", paths::member(&id))).bearer_auth(&self.key).json(&body);
                let Some(reply) = send(request).await else { return self.cut_off("a member patch") };
                assert_eq!(reply.status, 200, "patch of {id}: {}", reply.body);
                assert_eq!(reply.body["title"], title.as_str());
                let mut m = self.m.borrow_mut();
                m.members.get_mut(&id).expect("member").titles = vec![Some(title)];
                m.counts.members_patched += 1;
            } else {
                let n = self.next();
                let (phone, name) = (format!("+86137{w}{n:07}"), format!("Writer {w} {n}"));
                let body = json!({"name": name, "phone": phone});
                let request = http.post(format!("{base}{}", paths::members())).bearer_auth(&self.key).json(&body);
                let Some(reply) = send(request).await else { return self.cut_off("a member add") };
                assert_eq!(reply.status, 201, "add of {phone}: {}", reply.body);
                self.add_member(&reply.body, phone, name, None, Some(w));
                self.m.borrow_mut().counts.members_added += 1;
            }
        }
    }

    async fn importer(&self, base: &str) {
        let http = self.http();
        while !self.killed.get() {
            let rows: Vec<(String, String, String)> = (0..6)
                .map(|_| {
                    let n = self.next();
                    (format!("imp{n}"), format!("Imported {n}"), format!("+86136{n:08}"))
                })
                .collect();
            let mut csv = String::from("userid,name,phone\n");
            for (userid, name, phone) in &rows {
                csv.push_str(&format!("{userid},{name},{phone}\n"));
            }
            let request = http
                .post(format!("{base}{}", paths::members_import()))
                .bearer_auth(&self.key)
                .header("content-type", "text/csv")
                .body(csv);
            let Some(reply) = send(request).await else { return self.cut_off("an import") };
            assert_eq!(reply.status, 200, "import: {}", reply.body);
            assert_eq!(reply.body["created"], rows.len(), "import: {}", reply.body);
            let answered = reply.body["rows"].as_array().expect("rows");
            for ((userid, name, phone), row) in rows.into_iter().zip(answered) {
                assert_eq!(row["status"], "created", "{row}");
                let id = json!({"id": row["member_id"]});
                self.add_member(&id, phone, name, Some(userid), None);
            }
            {
                let mut m = self.m.borrow_mut();
                m.counts.imports += 1;
                m.counts.imported_members += answered.len();
            }
            self.pause(30).await;
        }
    }

    async fn login(&self, base: &str) {
        let http = self.http();
        while !self.killed.get() {
            let picked = {
                let mut m = self.m.borrow_mut();
                let mut live: HashMap<&str, usize> = HashMap::new();
                for s in m.sessions.iter().filter(|s| s.state == SessionState::Live) {
                    *live.entry(s.member.as_str()).or_default() += 1;
                }
                let ids: Vec<&String> = m
                    .members
                    .iter()
                    .filter(|(id, r)| {
                        r.disabled == Known::No
                            && !r.busy
                            && !r.tainted
                            && r.last_start.is_none_or(|t| t.elapsed() > Duration::from_millis(1500))
                            && live.get(id.as_str()).copied().unwrap_or(0) < 3
                    })
                    .map(|(id, _)| id)
                    .collect();
                let picked = (!ids.is_empty()).then(|| ids[self.rng.below(ids.len())].clone());
                picked.map(|id| {
                    let r = m.members.get_mut(&id).expect("member");
                    r.busy = true;
                    r.last_start = Some(Instant::now());
                    (id, r.phone.clone(), r.device.clone())
                })
            };
            let Some((id, phone, device)) = picked else {
                self.pause(10).await;
                continue;
            };
            let finished = self.sign_in(&http, base, &id, &phone, device).await;
            let mut m = self.m.borrow_mut();
            let r = m.members.get_mut(&id).expect("member");
            r.busy = false;
            if !finished {
                return;
            }
        }
    }

    /// One login of member `id`; false when the kill cut it off.
    async fn sign_in(&self, http: &reqwest::Client, base: &str, id: &str, phone: &str, device: Option<String>) -> bool {
        let (from, seen) = {
            let mut sms = self.sms.borrow_mut();
            sms.refresh();
            let seen: HashSet<String> = sms.messages.iter().filter(|m| m.to == phone).map(|m| m.id.clone()).collect();
            (sms.messages.len(), seen)
        };
        let mut body = json!({"phone": phone});
        if let Some(device) = device {
            body["device_id"] = json!(device);
        }
        let taint = || self.m.borrow_mut().members.get_mut(id).expect("member").tainted = true;
        let Some(started) = send(http.post(format!("{base}{}", paths::login_start())).json(&body)).await else {
            taint();
            self.cut_off("a login start");
            return false;
        };
        assert_eq!(started.status, 200, "login start for {phone}: {}", started.body);
        let login = started.body["login_id"].as_str().expect("login_id").to_string();
        let waited = Instant::now();
        let code = loop {
            let code = {
                let mut sms = self.sms.borrow_mut();
                sms.refresh();
                sms.messages[from..]
                    .iter()
                    .filter(|m| m.to == phone && !seen.contains(&m.id))
                    .find_map(|m| code_in(&m.body))
            };
            if let Some(code) = code {
                break code;
            }
            if self.killed.get() {
                taint();
                return false;
            }
            assert!(waited.elapsed() < Duration::from_secs(20), "no code reached {phone}");
            self.pause(5).await;
        };
        let request = http.post(format!("{base}{}", paths::login_code(&login))).json(&json!({"code": code}));
        let Some(done) = send(request).await else {
            self.cut_off("a login code");
            self.m.borrow_mut().logins_in_doubt.push((login, code, id.to_string()));
            return false;
        };
        assert_eq!(done.status, 200, "login code for {phone}: {}", done.body);
        self.signed_in(id, &login, &code, &done.body);
        true
    }

    fn signed_in(&self, id: &str, login: &str, code: &str, done: &Value) {
        assert_eq!(done["next"], "done", "{done}");
        let session = &done["session"];
        let mut m = self.m.borrow_mut();
        let r = m.members.get_mut(id).expect("member");
        r.activated = true;
        r.device = session["device_id"].as_str().map(str::to_string);
        m.sessions.push(SessionRec {
            member: id.to_string(),
            access: session["access_token"].as_str().expect("access token").to_string(),
            refresh: session["refresh_token"].as_str().expect("refresh token").to_string(),
            state: SessionState::Live,
            rotated: Vec::new(),
            rotated_new: false,
        });
        m.consumed.push((login.to_string(), code.to_string()));
        m.counts.logins += 1;
    }

    async fn refresher(&self, base: &str) {
        let http = self.http();
        while !self.killed.get() {
            let picked = {
                let mut m = self.m.borrow_mut();
                let i = self.rng.pick(&m.free_sessions());
                i.map(|i| {
                    m.sessions[i].state = SessionState::InUse;
                    (i, m.sessions[i].refresh.clone())
                })
            };
            let Some((i, refresh)) = picked else {
                self.pause(10).await;
                continue;
            };
            let body = json!({"refresh_token": refresh});
            let Some(reply) = send(http.post(format!("{base}{}", paths::token_refresh())).json(&body)).await else {
                self.m.borrow_mut().sessions[i].state = SessionState::Doubt(Op::Refresh);
                return self.cut_off("a refresh");
            };
            assert_eq!(reply.status, 200, "refresh: {}", reply.body);
            let session = &reply.body["session"];
            {
                let mut m = self.m.borrow_mut();
                let s = &mut m.sessions[i];
                let access = session["access_token"].as_str().expect("access token").to_string();
                let refresh = session["refresh_token"].as_str().expect("refresh token").to_string();
                let old_access = std::mem::replace(&mut s.access, access);
                let old_refresh = std::mem::replace(&mut s.refresh, refresh);
                s.rotated.push(old_refresh);
                s.rotated_new = true;
                s.state = SessionState::Live;
                m.dead.push(Dead::Access(old_access));
                m.counts.refreshes += 1;
            }
            self.pause(15).await;
        }
    }

    async fn revoker(&self, base: &str) {
        let http = self.http();
        while !self.killed.get() {
            self.pause(20 + self.rng.below(40) as u64).await;
            if self.killed.get() {
                return;
            }
            let disable = self.m.borrow().disables_this_round == 0 && self.rng.below(2) == 0;
            if disable {
                let picked = {
                    let mut m = self.m.borrow_mut();
                    let busy: HashSet<&str> = m
                        .sessions
                        .iter()
                        .filter(|s| s.state == SessionState::InUse)
                        .map(|s| s.member.as_str())
                        .collect();
                    let live: HashSet<&str> = m
                        .sessions
                        .iter()
                        .filter(|s| s.state == SessionState::Live)
                        .map(|s| s.member.as_str())
                        .collect();
                    let ids: Vec<&String> = m
                        .members
                        .iter()
                        .filter(|(id, r)| {
                            r.disabled == Known::No
                                && !r.busy
                                && live.contains(id.as_str())
                                && !busy.contains(id.as_str())
                        })
                        .map(|(id, _)| id)
                        .collect();
                    let picked = (!ids.is_empty()).then(|| ids[self.rng.below(ids.len())].clone());
                    if let Some(id) = &picked {
                        m.members.get_mut(id).expect("member").busy = true;
                        m.disables_this_round += 1;
                    }
                    picked
                };
                let Some(id) = picked else { continue };
                let request =
                    http.post(format!("{base}{}", paths::member_disable(&id))).bearer_auth(&self.key).json(&json!({}));
                let reply = send(request).await;
                let mut m = self.m.borrow_mut();
                m.members.get_mut(&id).expect("member").busy = false;
                let Some(reply) = reply else {
                    m.members.get_mut(&id).expect("member").disabled = Known::Maybe;
                    drop(m);
                    return self.cut_off("a disable");
                };
                assert_eq!(reply.status, 200, "disable of {id}: {}", reply.body);
                assert_eq!(reply.body["status"], "disabled");
                m.members.get_mut(&id).expect("member").disabled = Known::Yes;
                for i in 0..m.sessions.len() {
                    if m.sessions[i].member == id && m.sessions[i].state == SessionState::Live {
                        m.revoke_session(i);
                    }
                }
                for i in 0..m.grants.len() {
                    if m.grants[i].member == id && m.grants[i].live {
                        m.revoke_grant(i);
                    }
                }
                m.counts.disables += 1;
            } else {
                let picked = {
                    let mut m = self.m.borrow_mut();
                    let i = self.rng.pick(&m.free_sessions());
                    i.map(|i| {
                        m.sessions[i].state = SessionState::InUse;
                        (i, m.sessions[i].access.clone())
                    })
                };
                let Some((i, access)) = picked else { continue };
                let reply = send(http.post(format!("{base}{}", paths::me_logout())).bearer_auth(access)).await;
                let mut m = self.m.borrow_mut();
                let Some(reply) = reply else {
                    m.sessions[i].state = SessionState::Doubt(Op::Logout);
                    drop(m);
                    return self.cut_off("a logout");
                };
                assert_eq!(reply.status, 204, "logout: {}", reply.body);
                m.revoke_session(i);
                m.counts.logouts += 1;
            }
        }
    }

    fn pkce(&self) -> (String, String) {
        let bytes: Vec<u8> = (0..4).flat_map(|_| self.rng.next().to_le_bytes()).collect();
        let verifier = URL_SAFE_NO_PAD.encode(bytes);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        (verifier, challenge)
    }

    async fn oidc(&self, base: &str) {
        let http = self.http();
        let redirect: String = url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect();
        while !self.killed.get() {
            let picked = {
                let mut m = self.m.borrow_mut();
                let i = self.rng.pick(&m.free_sessions());
                i.map(|i| {
                    m.sessions[i].state = SessionState::InUse;
                    (i, m.sessions[i].access.clone(), m.sessions[i].member.clone())
                })
            };
            let Some((i, access, member)) = picked else {
                self.pause(10).await;
                continue;
            };
            let (verifier, challenge) = self.pkce();
            let path = format!(
                "/oidc/authorize?response_type=code&client_id={}&redirect_uri={redirect}&scope=openid%20profile\
                 &state=st4te&nonce=n0nce&code_challenge={challenge}&code_challenge_method=S256",
                self.client_id
            );
            let request = http.get(format!("{base}{path}")).header("cookie", format!("wg_access={access}"));
            let Some(reply) = send(request).await else {
                self.m.borrow_mut().sessions[i].state = SessionState::Live; // an authorization writes no session
                return self.cut_off("an authorization");
            };
            assert_eq!(reply.status, 303, "authorize: {}", reply.body);
            assert!(reply.location.starts_with(REDIRECT), "{}", reply.location);
            let code = url::Url::parse(&reply.location)
                .expect("a URL")
                .query_pairs()
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_else(|| panic!("no code in {}", reply.location));
            let keep = self.rng.below(3) == 0;
            {
                let mut m = self.m.borrow_mut();
                m.counts.oidc_codes += 1;
                let rec =
                    CodeRec { member: member.clone(), code: code.clone(), verifier: verifier.clone(), sent: !keep };
                m.codes.push(rec);
                if keep {
                    // Left to be redeemed after the kill.
                    m.sessions[i].state = SessionState::Live;
                    continue;
                }
            }
            let reply = self.exchange(&http, base, &code, &verifier).await;
            self.m.borrow_mut().sessions[i].state = SessionState::Live;
            let Some(reply) = reply else { return self.cut_off("a code exchange") };
            assert_eq!(reply.status, 200, "exchange: {}", reply.body);
            {
                let mut m = self.m.borrow_mut();
                m.codes.retain(|c| c.code != code);
                m.grants.push(GrantRec {
                    member,
                    code,
                    verifier,
                    access: reply.body["access_token"].as_str().expect("access_token").into(),
                    refresh: reply.body["refresh_token"].as_str().expect("refresh_token").into(),
                    live: true,
                    new: true,
                    replayed: false,
                });
                m.counts.oidc_exchanges += 1;
            }
            self.pause(10).await;
        }
    }

    async fn exchange(&self, http: &reqwest::Client, base: &str, code: &str, verifier: &str) -> Option<Reply> {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
            ("client_id", &self.client_id),
            ("client_secret", &self.client_secret),
        ];
        send(http.post(format!("{base}/oidc/token")).form(&form)).await
    }

    /// After the kill, before the restart: SQLite's integrity, and what the outbox had in flight.
    async fn after_kill(&self, round: usize) {
        let pool = database(&self.url).await;
        if self.backend == "SQLite" {
            let integrity: Vec<String> =
                sqlx::query_scalar("PRAGMA integrity_check").fetch_all(&pool).await.expect("integrity_check");
            assert_eq!(integrity, vec!["ok".to_string()], "round {round}: integrity_check after the kill");
            self.m.borrow_mut().counts.checks += 1;
        }
        let sending: Vec<String> = sqlx::query_scalar("SELECT id FROM sms_outbox WHERE state = 'sending'")
            .fetch_all(&pool)
            .await
            .expect("outbox read");
        pool.close().await;
        let mut sms = self.sms.borrow_mut();
        sms.refresh();
        self.m.borrow_mut().kills.push((sms.messages.len(), sending.into_iter().collect()));
    }

    // ---- Checks after a restart ------------------------------------------------------------

    async fn get(&self, http: &reqwest::Client, url: String, token: &str) -> Reply {
        send(http.get(url).bearer_auth(token)).await.expect("the restarted server answers")
    }

    async fn me(&self, http: &reqwest::Client, base: &str, access: &str) -> Reply {
        self.get(http, format!("{base}{}", paths::me()), access).await
    }

    async fn refresh(&self, http: &reqwest::Client, base: &str, refresh: &str) -> Reply {
        let body = json!({"refresh_token": refresh});
        send(http.post(format!("{base}{}", paths::token_refresh())).json(&body)).await.expect("answered")
    }

    async fn app_refresh(&self, http: &reqwest::Client, base: &str, refresh: &str) -> Reply {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", &self.client_id),
            ("client_secret", &self.client_secret),
        ];
        send(http.post(format!("{base}/oidc/token")).form(&form)).await.expect("answered")
    }

    fn checked(&self, n: usize) {
        self.m.borrow_mut().counts.checks += n;
    }

    async fn check(&self, base: &str, round: usize, everything: bool) {
        let http = self.http();
        self.check_members(&http, base, round).await;
        self.check_lookup(&http, base, round).await;
        self.check_sessions(&http, base, round).await;
        self.check_logins(&http, base, round, false).await;
        self.check_grants(&http, base, round).await;
        self.check_reuse(&http, base, round).await;
        self.check_dead(&http, base, round, everything).await;
    }

    async fn check_members(&self, http: &reqwest::Client, base: &str, round: usize) {
        let mut listed: HashMap<String, Value> = HashMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{base}{}", paths::members_query("limit=500"));
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let page = self.get(http, url, &self.key).await;
            assert_eq!(page.status, 200, "{}", page.body);
            for item in page.body["items"].as_array().expect("items") {
                listed.insert(item["id"].as_str().expect("id").to_string(), item.clone());
            }
            match page.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        let mut m = self.m.borrow_mut();
        let mut checks = 0;
        for (id, r) in m.members.iter_mut() {
            let Some(v) = listed.get(id) else {
                panic!("round {round}: the acknowledged member {id} ({}) is missing after the restart", r.phone)
            };
            assert_eq!(v["phone"], r.phone.as_str(), "round {round}: member {id}");
            assert_eq!(v["name"], r.name.as_str(), "round {round}: member {id}");
            if let Some(userid) = &r.userid {
                assert_eq!(v["userid"], userid.as_str(), "round {round}: member {id}");
            }
            let title = v["title"].as_str().map(str::to_string);
            assert!(
                r.titles.contains(&title),
                "round {round}: member {id} has title {title:?}, not one of {:?}",
                r.titles
            );
            r.titles = vec![title];
            let status = v["status"].as_str().expect("status");
            match r.disabled {
                Known::Yes => assert_eq!(status, "disabled", "round {round}: the disabled member {id}"),
                Known::No if r.activated => assert_eq!(status, "active", "round {round}: the signed-in member {id}"),
                Known::No => assert_ne!(status, "disabled", "round {round}: member {id}"),
                Known::Maybe => r.disabled = if status == "disabled" { Known::Yes } else { Known::No },
            }
            checks += 1;
        }
        m.counts.checks += checks;
    }

    /// The support view finds an acknowledged member by number. Its first phone number makes the
    /// restarted server load its phone metadata (half a second in a debug build), which the load
    /// then need not wait for.
    async fn check_lookup(&self, http: &reqwest::Client, base: &str, round: usize) {
        let (id, phone) = {
            let m = self.m.borrow();
            let ids: Vec<&String> = m.members.keys().collect();
            let id = ids[self.rng.below(ids.len())].clone();
            let phone = m.members[&id].phone.clone();
            (id, phone)
        };
        let phone_param: String = url::form_urlencoded::byte_serialize(phone.as_bytes()).collect();
        let view = self.get(http, format!("{base}{}", paths::member_lookup_phone(&phone_param)), &self.key).await;
        assert_eq!(view.status, 200, "round {round}: lookup of {phone}: {}", view.body);
        assert_eq!(view.body["member"]["id"], id.as_str(), "round {round}: lookup of {phone}: {}", view.body);
        self.checked(1);
    }

    async fn check_sessions(&self, http: &reqwest::Client, base: &str, round: usize) {
        let todo: Vec<(usize, SessionState, String, String, String, Known)> = {
            let m = self.m.borrow();
            m.sessions
                .iter()
                .enumerate()
                .filter(|(_, s)| !matches!(s.state, SessionState::Revoked | SessionState::Gone))
                .map(|(i, s)| {
                    (i, s.state, s.access.clone(), s.refresh.clone(), s.member.clone(), m.members[&s.member].disabled)
                })
                .collect()
        };
        for (i, state, access, refresh, member, disabled) in todo {
            let me = self.me(http, base, &access).await;
            if disabled == Known::Yes {
                assert_eq!(me.status, 401, "round {round}: a session of the disabled member {member}: {}", me.body);
                let r = self.refresh(http, base, &refresh).await;
                assert_eq!(r.status, 401, "round {round}: a refresh of the disabled member {member}: {}", r.body);
                self.m.borrow_mut().revoke_session(i);
                self.checked(2);
                continue;
            }
            match state {
                SessionState::Live => {
                    assert_eq!(me.status, 200, "round {round}: an acknowledged session of {member}: {}", me.body);
                    assert_eq!(me.body["member"]["id"], member.as_str());
                }
                SessionState::Doubt(op) => {
                    if me.status == 200 {
                        self.m.borrow_mut().sessions[i].state = SessionState::Live;
                    } else {
                        // The refresh or the logout happened: the refresh token is refused too (for
                        // a refresh that happened, it is rotated away, and presenting it ends the
                        // session whose new tokens the kill kept from us).
                        assert_eq!(me.status, 401, "round {round}: {}", me.body);
                        let r = self.refresh(http, base, &refresh).await;
                        assert_eq!(r.status, 401, "round {round}: the refresh token after a {op:?} in doubt");
                        let mut m = self.m.borrow_mut();
                        m.revoke_session(i);
                        if op == Op::Refresh {
                            m.sessions[i].state = SessionState::Gone;
                        }
                        m.counts.checks += 1;
                    }
                }
                other => panic!("round {round}: a session left {other:?} by the load"),
            }
            self.checked(1);
        }
    }

    /// Finished logins' codes answer `code_expired`; a code submission in doubt finishes at most once.
    async fn check_logins(&self, http: &reqwest::Client, base: &str, round: usize, all: bool) {
        let submit = async |login: &str, code: &str| {
            let request = http.post(format!("{base}{}", paths::login_code(login))).json(&json!({"code": code}));
            send(request).await.expect("answered")
        };
        let doubts = std::mem::take(&mut self.m.borrow_mut().logins_in_doubt);
        for (login, code, member) in doubts {
            let first = submit(&login, &code).await;
            if first.status == 200 {
                self.signed_in(&member, &login, &code, &first.body);
            } else {
                assert_eq!(first.body["code"], "code_expired", "round {round}: a login in doubt: {}", first.body);
                self.m.borrow_mut().consumed.push((login.clone(), code.clone()));
            }
        }
        let consumed: Vec<(String, String)> = {
            let m = self.m.borrow();
            m.consumed[if all { 0 } else { m.consumed_checked }..].to_vec()
        };
        for (login, code) in &consumed {
            let again = submit(login, code).await;
            assert_eq!(
                again.status, 410,
                "round {round}: the code of a finished login {login} worked again: {}",
                again.body
            );
            assert_eq!(again.body["code"], "code_expired");
        }
        let mut m = self.m.borrow_mut();
        m.consumed_checked = m.consumed.len();
        m.counts.checks += consumed.len();
    }

    async fn check_grants(&self, http: &reqwest::Client, base: &str, round: usize) {
        // Acknowledged grants answer userinfo, unless their member was disabled.
        let live: Vec<(usize, String, String, Known)> = {
            let m = self.m.borrow();
            (m.grants.iter().enumerate())
                .filter(|(_, g)| g.live)
                .map(|(i, g)| (i, g.access.clone(), g.member.clone(), m.members[&g.member].disabled))
                .collect()
        };
        for (i, access, member, disabled) in live {
            let info = self.get(http, format!("{base}/oidc/userinfo"), &access).await;
            if disabled == Known::Yes {
                assert_eq!(info.status, 401, "round {round}: a grant of the disabled member {member}");
                self.m.borrow_mut().revoke_grant(i);
            } else {
                assert_eq!(info.status, 200, "round {round}: an acknowledged grant of {member}: {}", info.body);
                assert_eq!(info.body["sub"], member.as_str());
            }
            self.checked(1);
        }
        // Codes issued before the kill: one never sent is redeemed now; one whose exchange was cut
        // off is redeemed now or was then; either way a second exchange is refused.
        let codes = std::mem::take(&mut self.m.borrow_mut().codes);
        for c in codes {
            let disabled = self.m.borrow().members[&c.member].disabled;
            let first = self.exchange(http, base, &c.code, &c.verifier).await.expect("answered");
            let granted = first.status == 200;
            if !granted {
                assert_eq!(first.status, 400, "round {round}: {}", first.body);
                assert_eq!(first.body["error"], "invalid_grant", "round {round}: {}", first.body);
            }
            if !c.sent {
                assert_eq!(
                    granted,
                    disabled == Known::No,
                    "round {round}: a code issued before the kill and not sent, member disabled: {disabled:?}: {}",
                    first.body
                );
            }
            self.checked(1);
            if granted {
                self.m.borrow_mut().grants.push(GrantRec {
                    member: c.member,
                    code: c.code,
                    verifier: c.verifier,
                    access: first.body["access_token"].as_str().expect("access_token").into(),
                    refresh: first.body["refresh_token"].as_str().expect("refresh_token").into(),
                    live: true,
                    new: true,
                    replayed: false,
                });
            } else if c.sent {
                let second = self.exchange(http, base, &c.code, &c.verifier).await.expect("answered");
                assert_eq!(
                    second.body["error"], "invalid_grant",
                    "round {round}: a code exchanged twice: {}",
                    second.body
                );
                self.checked(1);
            }
        }
        // Every other new grant: its code again is refused, and revokes the grant.
        let new: Vec<(usize, String, String, String)> = {
            let mut m = self.m.borrow_mut();
            let mut out = Vec::new();
            for (i, g) in m.grants.iter_mut().enumerate() {
                if g.new {
                    g.new = false;
                    if g.live && i % 2 == 0 {
                        g.replayed = true;
                        out.push((i, g.code.clone(), g.verifier.clone(), g.access.clone()));
                    }
                }
            }
            out
        };
        for (i, code, verifier, access) in new {
            let again = self.exchange(http, base, &code, &verifier).await.expect("answered");
            assert_eq!(again.status, 400, "round {round}: a redeemed code worked again: {}", again.body);
            assert_eq!(again.body["error"], "invalid_grant", "round {round}: {}", again.body);
            let info = self.get(http, format!("{base}/oidc/userinfo"), &access).await;
            assert_eq!(info.status, 401, "round {round}: the grant of a replayed code still answers: {}", info.body);
            self.m.borrow_mut().revoke_grant(i);
            self.checked(2);
        }
    }

    /// Every other session refreshed in the round: a refresh token it rotated away is refused
    /// and ends the session (reuse detection), its current access token with it.
    async fn check_reuse(&self, http: &reqwest::Client, base: &str, round: usize) {
        let probes: Vec<(usize, String, String)> = {
            let mut m = self.m.borrow_mut();
            let mut out = Vec::new();
            let mut toggle = round.is_multiple_of(2);
            for (i, s) in m.sessions.iter_mut().enumerate() {
                if std::mem::take(&mut s.rotated_new) && s.state == SessionState::Live {
                    toggle = !toggle;
                    if toggle {
                        out.push((i, s.rotated[0].clone(), s.access.clone()));
                    }
                }
            }
            out
        };
        for (i, old, access) in probes {
            let reused = self.refresh(http, base, &old).await;
            assert_eq!(reused.status, 401, "round {round}: a refresh token rotated away worked again: {}", reused.body);
            let me = self.me(http, base, &access).await;
            assert_eq!(me.status, 401, "round {round}: a session ended for refresh reuse still answers");
            self.m.borrow_mut().revoke_session(i);
            self.checked(2);
        }
    }

    /// Tokens whose end was acknowledged are refused: those that ended since the last check, or all.
    async fn check_dead(&self, http: &reqwest::Client, base: &str, round: usize, all: bool) {
        let from = if all { 0 } else { self.m.borrow().dead_checked };
        let upto = self.m.borrow().dead.len();
        for k in from..upto {
            let dead = match &self.m.borrow().dead[k] {
                Dead::Access(t) => Dead::Access(t.clone()),
                Dead::Refresh(t) => Dead::Refresh(t.clone()),
                Dead::AppAccess(t) => Dead::AppAccess(t.clone()),
                Dead::AppRefresh(t) => Dead::AppRefresh(t.clone()),
            };
            let (what, reply, expected) = match &dead {
                Dead::Access(t) => ("access token", self.me(http, base, t).await, 401),
                Dead::Refresh(t) => ("refresh token", self.refresh(http, base, t).await, 401),
                Dead::AppAccess(t) => {
                    ("app access token", self.get(http, format!("{base}/oidc/userinfo"), t).await, 401)
                }
                Dead::AppRefresh(t) => ("app refresh token", self.app_refresh(http, base, t).await, 400),
            };
            assert_eq!(reply.status, expected, "round {round}: a revoked {what} came back: {}", reply.body);
        }
        let mut m = self.m.borrow_mut();
        m.dead_checked = upto;
        m.counts.checks += upto - from;
    }

    /// The last life: everything checked once more, every redeemed OIDC code presented again, the
    /// outbox finished, each message out once or once more per kill that caught it in flight.
    async fn finish(&self, base: &str) {
        let http = self.http();
        self.check_logins(&http, base, self.rounds, true).await;
        self.check_dead(&http, base, self.rounds, true).await;
        let codes: Vec<(String, String)> = {
            let mut m = self.m.borrow_mut();
            let unreplayed = m.grants.iter_mut().filter(|g| !g.replayed);
            unreplayed.map(|g| (g.code.clone(), g.verifier.clone())).collect()
        };
        for (code, verifier) in &codes {
            let again = self.exchange(&http, base, code, verifier).await.expect("answered");
            assert_eq!(again.body["error"], "invalid_grant", "a redeemed code worked again: {}", again.body);
        }
        self.checked(codes.len());
        let pool = database(&self.url).await;
        let started = Instant::now();
        let states: Vec<(String, String)> = loop {
            let states: Vec<(String, String)> =
                sqlx::query_as("SELECT id, state FROM sms_outbox").fetch_all(&pool).await.expect("outbox read");
            if states.iter().all(|(_, s)| s == "sent" || s == "failed") || started.elapsed() > Duration::from_secs(60) {
                break states;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        pool.close().await;
        tokio::time::sleep(Duration::from_millis(1500)).await; // past the lease: a late duplicate shows now
        let not_sent: Vec<&(String, String)> = states.iter().filter(|(_, s)| s != "sent").collect();
        assert!(not_sent.is_empty(), "the outbox finished its work: {not_sent:?}");
        let mut sms = self.sms.borrow_mut();
        sms.refresh();
        // Where in the file each message went out.
        let mut copies: HashMap<&str, Vec<usize>> = HashMap::new();
        for (at, message) in sms.messages.iter().enumerate() {
            copies.entry(message.id.as_str()).or_default().push(at);
        }
        let m = self.m.borrow();
        let mut again = 0;
        for (id, _) in &states {
            let at = copies.get(id.as_str()).map(Vec::as_slice).unwrap_or_default();
            assert!(!at.is_empty(), "outbox message {id} was never delivered");
            // A copy after the first must follow a kill that found the message `sending` when the
            // copy before had already been written: a resend of a delivery the kill kept from
            // being recorded, nothing else.
            for pair in at.windows(2) {
                let resent =
                    m.kills.iter().any(|(mark, sending)| pair[0] < *mark && *mark <= pair[1] && sending.contains(id));
                assert!(
                    resent,
                    "message {id} went out again (file lines {pair:?}) without a kill catching it in flight"
                );
                again += 1;
            }
        }
        assert_eq!(copies.len(), states.len(), "every delivered message is in the outbox");
        let caught: usize = m.kills.iter().map(|(_, sending)| sending.len()).sum();
        println!(
            "{}: {} messages in the outbox, all sent; the {} kills found {caught} sending, {again} of which went out a \
             second time (the file provider had written them, the kill kept the sender from recording it)",
            self.backend,
            states.len(),
            m.kills.len(),
        );
    }
}
