//! Crash safety: the server is killed with SIGKILL and started again on the same database.
//!
//! - Invitations committed before any could be delivered are delivered, each once, after restart.
//! - Killed during a load of admin writes and logins: after restart every write that was
//!   acknowledged is there (members added with 201, sessions of finished logins), and the outbox
//!   finishes its work (every message sent; only those in flight at the kill may go out twice).
//!
//! Each runs on SQLite and, when `WORKGATE_TEST_POSTGRES` names a PostgreSQL server, on PostgreSQL
//! in a schema of its own (without it the PostgreSQL runs are reported as ignored, saying why).

mod common;

use common::node::{Node, create_enterprise, database, read_sms};
use common::paths;
use common::postgres::PgSchema;
use serde_json::{Value, json};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// A database for one test: a SQLite file in its directory, or a PostgreSQL schema of its own.
struct TestDb {
    backend: &'static str,
    url: String,
    _schema: Option<PgSchema>,
    dir: tempfile::TempDir,
}

impl TestDb {
    fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        TestDb {
            backend: "SQLite",
            url: format!("sqlite://{}", dir.path().join("workgate.db").display()),
            _schema: None,
            dir,
        }
    }

    async fn postgres(test: &str) -> Option<TestDb> {
        let schema = PgSchema::create(test).await?;
        Some(TestDb {
            backend: "PostgreSQL",
            url: schema.url.clone(),
            _schema: Some(schema),
            dir: tempfile::tempdir().expect("temp dir"),
        })
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> std::path::PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("file written");
        path
    }

    async fn start(&self, name: &str, config: &Path) -> Node {
        Node::start(name, self.dir.path(), &self.url, &self.path("sms.jsonl"), Some(config)).await
    }
}

#[tokio::test]
async fn invitations_committed_before_a_crash_are_delivered_once_after_restart_on_sqlite() {
    invitations_committed_before_a_crash_are_delivered_once_after_restart(TestDb::sqlite()).await;
}

#[tokio::test]
#[cfg_attr(
    not(workgate_test_postgres),
    ignore = "needs PostgreSQL: set WORKGATE_TEST_POSTGRES=postgres://USER@HOST:PORT/DATABASE"
)]
async fn invitations_committed_before_a_crash_are_delivered_once_after_restart_on_postgresql() {
    let Some(db) = TestDb::postgres("crash_invitations").await else { return };
    invitations_committed_before_a_crash_are_delivered_once_after_restart(db).await;
}

#[tokio::test]
async fn acknowledged_writes_and_logins_survive_sigkill_under_load_on_sqlite() {
    acknowledged_writes_and_logins_survive_sigkill_under_load(TestDb::sqlite()).await;
}

#[tokio::test]
#[cfg_attr(
    not(workgate_test_postgres),
    ignore = "needs PostgreSQL: set WORKGATE_TEST_POSTGRES=postgres://USER@HOST:PORT/DATABASE"
)]
async fn acknowledged_writes_and_logins_survive_sigkill_under_load_on_postgresql() {
    let Some(db) = TestDb::postgres("crash_load").await else { return };
    acknowledged_writes_and_logins_survive_sigkill_under_load(db).await;
}

async fn invitations_committed_before_a_crash_are_delivered_once_after_restart(db: TestDb) {
    let created = create_enterprise(&db.url, db.dir.path(), "Acme", "13800138000");
    let key = created["api_key"].as_str().expect("api key").to_string();

    // First life: the SMS gateway is unreachable, so nothing can be delivered.
    let unreachable = db.write(
        "unreachable.toml",
        "[outbox]\nlease_secs = 1\n[sms]\nprovider = \"webhook\"\n[sms.webhook]\nurl = \"http://127.0.0.1:9/\"\nsecret = \"s\"\ntimeout_ms = 200\n",
    );
    let mut server = db.start("first-life", &unreachable).await;
    let client = reqwest::Client::new();
    let phones = ["+8613900139001", "+8613900139002", "+8613900139003"];
    for (i, phone) in phones.iter().enumerate() {
        let reply = client
            .post(server.url(&paths::members()))
            .bearer_auth(&key)
            .json(&json!({"name": format!("Member {i}"), "phone": phone}))
            .send()
            .await
            .expect("sent");
        assert_eq!(reply.status().as_u16(), 201);
    }
    server.kill(); // SIGKILL: no shutdown, the process dies where it stands
    let outbox = db.path("sms.jsonl");
    assert!(workgate_sms::read_messages(&outbox).is_empty(), "nothing was delivered before the crash");

    // Second life, with the file provider: the outbox is delivered, each message once.
    let short_lease = db.write("short-lease.toml", "[outbox]\nlease_secs = 1\n");
    let server = db.start("second-life", &short_lease).await;
    for _ in 0..400 {
        if workgate_sms::read_messages(&outbox).len() >= phones.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Let the sender run a little longer: a duplicate would show up now.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let delivered = workgate_sms::read_messages(&outbox);
    drop(server);
    for phone in phones {
        let to_phone = delivered.iter().filter(|m| m.to == phone).count();
        assert_eq!(to_phone, 1, "{phone} got {to_phone} messages: {delivered:?}");
    }
}

/// Members whose logins run during the load (each signs in once: the resend cooldown is per number).
const SIGNING_IN: usize = 6;
/// Concurrent admin writers during the load.
const WRITERS: usize = 3;

async fn acknowledged_writes_and_logins_survive_sigkill_under_load(db: TestDb) {
    let created = create_enterprise(&db.url, db.dir.path(), "Acme", "13800138000");
    let key = created["api_key"].as_str().expect("api key").to_string();
    // Both lives: the file provider into one file, a short lease, room for many logins from 127.0.0.1.
    let config = db.write(
        "workgate.toml",
        "[outbox]\nlease_secs = 1\n[login]\nstarts_per_ip_hour = 1000\nstarts_per_network_hour = 1000\n",
    );
    let mut server = db.start("first-life", &config).await;
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let sms_file = db.path("sms.jsonl");
    let signing_in: Vec<String> = (0..SIGNING_IN).map(|i| format!("+86139001390{i:02}")).collect();
    for (i, phone) in signing_in.iter().enumerate() {
        let reply = client
            .post(format!("{base}{}", paths::members()))
            .bearer_auth(&key)
            .json(&json!({"name": format!("Signing In {i}"), "phone": phone}))
            .send()
            .await
            .expect("sent");
        assert_eq!(reply.status().as_u16(), 201);
    }

    // The load: writers add members as fast as they are acknowledged, logins run one after
    // another, and the server is killed once both have made progress, with requests in flight.
    let members: RefCell<Vec<(String, String)>> = RefCell::new(Vec::new());
    let sessions: RefCell<Vec<String>> = RefCell::new(Vec::new());
    let killed = Cell::new(false);
    let writer = |w: usize| {
        let (client, base, key, members, killed) = (&client, &base, &key, &members, &killed);
        async move {
            for i in 0..100_000 {
                let phone = format!("+86137{w}{i:07}");
                let sent = client
                    .post(format!("{base}{}", paths::members()))
                    .bearer_auth(key)
                    .json(&json!({"name": format!("Writer {w} {i}"), "phone": phone}))
                    .send()
                    .await;
                let Ok(reply) = sent else { break };
                let status = reply.status().as_u16();
                let Ok(body) = reply.json::<Value>().await else { break };
                assert_eq!(status, 201, "{body}");
                members.borrow_mut().push((body["id"].as_str().expect("id").to_string(), phone));
                if killed.get() {
                    break;
                }
            }
        }
    };
    let logins = async {
        for phone in &signing_in {
            let Ok(reply) =
                client.post(format!("{base}{}", paths::login_start())).json(&json!({"phone": phone})).send().await
            else {
                break;
            };
            let Ok(started) = reply.json::<Value>().await else { break };
            let login = started["login_id"].as_str().unwrap_or_else(|| panic!("login started: {started}"));
            let Some(code) = code_in(&sms_file, phone, Duration::from_secs(10), &killed).await else { break };
            let Ok(reply) =
                client.post(format!("{base}{}", paths::login_code(login))).json(&json!({"code": code})).send().await
            else {
                break;
            };
            let Ok(done) = reply.json::<Value>().await else { break };
            assert_eq!(done["next"], "done", "{done}");
            sessions.borrow_mut().push(done["session"]["access_token"].as_str().expect("access token").to_string());
        }
    };
    let killer = async {
        let started = Instant::now();
        while (members.borrow().len() < 60 || sessions.borrow().len() < 3)
            && started.elapsed() < Duration::from_secs(20)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.kill();
        killed.set(true);
    };
    futures::join!(futures::future::join_all((1..=WRITERS).map(writer)), logins, killer);
    let members = members.into_inner();
    let sessions = sessions.into_inner();
    assert!(members.len() >= 60 && sessions.len() >= 3, "the load made progress: {members:?} {sessions:?}");

    // What the outbox held at the kill, and what had gone out.
    let pool = database(&db.url).await;
    let at_kill: Vec<(String, String)> =
        sqlx::query_as("SELECT id, state FROM sms_outbox").fetch_all(&pool).await.expect("outbox read");
    pool.close().await;
    let in_flight: HashSet<String> = at_kill.iter().filter(|(_, s)| s == "sending").map(|(id, _)| id.clone()).collect();
    let unsent = at_kill.iter().filter(|(_, s)| s != "sent").count();
    let delivered_before = read_sms(&[&sms_file]).len();

    // Second life.
    let server = db.start("second-life", &config).await;
    for (id, phone) in &members {
        let reply = client.get(server.url(&paths::member(id))).bearer_auth(&key).send().await.expect("sent");
        assert_eq!(reply.status().as_u16(), 200, "the acknowledged member {id} is there after the crash");
        let member: Value = reply.json().await.expect("JSON");
        assert_eq!(member["phone"], phone.as_str());
    }
    for token in &sessions {
        let reply = client.get(server.url(&paths::me())).bearer_auth(token).send().await.expect("sent");
        assert_eq!(reply.status().as_u16(), 200, "an acknowledged login's session is there after the crash");
    }
    let pool = database(&db.url).await;
    let started = Instant::now();
    let states = loop {
        let states: Vec<(String, String)> =
            sqlx::query_as("SELECT id, state FROM sms_outbox").fetch_all(&pool).await.expect("outbox read");
        if states.iter().all(|(_, s)| s == "sent" || s == "failed") || started.elapsed() > Duration::from_secs(20) {
            break states;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    pool.close().await;
    let finished_in = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await; // a late duplicate would show up now
    drop(server);
    let messages = read_sms(&[&sms_file]);
    let twice = messages.len() - messages.iter().map(|m| m.id.as_str()).collect::<HashSet<_>>().len();
    println!(
        "{}: killed after {} acknowledged member writes and {} logins; at the kill the outbox had {} messages, {unsent} \
         not yet sent ({} in flight), {delivered_before} delivered; after restart it finished in {finished_in:?}, \
         {twice} delivered a second time",
        db.backend,
        members.len(),
        sessions.len(),
        at_kill.len(),
        in_flight.len(),
    );
    let not_sent: Vec<&(String, String)> = states.iter().filter(|(_, s)| s != "sent").collect();
    assert!(not_sent.is_empty(), "the outbox finished its work: {not_sent:?}");
    let mut deliveries: HashMap<&str, usize> = HashMap::new();
    for m in &messages {
        *deliveries.entry(m.id.as_str()).or_default() += 1;
    }
    for (id, _) in &states {
        let n = deliveries.get(id.as_str()).copied().unwrap_or(0);
        assert!(n >= 1, "outbox message {id} was delivered");
        assert!(n == 1 || in_flight.contains(id), "message {id} went out {n} times, but was not in flight at the kill");
    }
    assert_eq!(deliveries.len(), states.len(), "every delivered message is in the outbox");
    let phones: HashSet<&str> = messages.iter().map(|m| m.to.as_str()).collect();
    for (id, phone) in &members {
        assert!(phones.contains(phone.as_str()), "the invitation to the acknowledged member {id} went out");
    }
}

/// The newest login code sent to `phone` (waiting up to `within`), or `None` if the server was killed.
async fn code_in(file: &Path, phone: &str, within: Duration, killed: &Cell<bool>) -> Option<String> {
    let started = Instant::now();
    loop {
        let code =
            workgate_sms::read_messages(file).into_iter().rev().find(|m| m.to == phone && !m.body.contains("/i/")).map(
                |m| m.body.split(|c: char| !c.is_ascii_digit()).find(|w| w.len() == 6).expect("a code").to_string(),
            );
        if code.is_some() {
            return code;
        }
        if killed.get() {
            return None;
        }
        assert!(started.elapsed() < within, "no code reached {phone}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
