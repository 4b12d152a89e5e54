//! Several nodes acting as one (issue 5): three `workgate serve` processes on loopback ports, all on
//! one PostgreSQL database (a schema of the test's own in the database that
//! `WORKGATE_TEST_POSTGRES` names). Each node's `file` SMS provider writes a file of its own; the
//! tests read them all.
//!
//! Without `WORKGATE_TEST_POSTGRES` the tests are reported as ignored, saying why (build.rs turns the
//! variable into the `workgate_test_postgres` cfg); run anyway with `--ignored`, they print that
//! they were skipped and pass.

mod common;

use common::node::{Node, create_enterprise, database, read_sms};
use common::paths;
use common::postgres::PgSchema;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

const NODES: usize = 3;

/// Three nodes on one fresh schema. Fields drop in order: the nodes, then the schema, then the files.
struct Cluster {
    nodes: Vec<Node>,
    schema: PgSchema,
    _dir: tempfile::TempDir,
    client: reqwest::Client,
}

impl Cluster {
    /// Starts the three nodes at once (with `config` as their TOML file, when given) on an empty
    /// schema, and waits until every one is ready; `None` when PostgreSQL is not configured.
    async fn start(test: &str, config: Option<&str>) -> Option<Cluster> {
        let schema = PgSchema::create(test).await?;
        let dir = tempfile::tempdir().expect("temp dir");
        let config_file = dir.path().join("workgate.toml");
        if let Some(config) = config {
            std::fs::write(&config_file, config).expect("config written");
        }
        let mut nodes: Vec<Node> = (1..=NODES)
            .map(|i| {
                let sms = dir.path().join(format!("sms-node{i}.jsonl"));
                Node::spawn(&format!("node{i}"), dir.path(), &schema.url, &sms, config.map(|_| config_file.as_path()))
            })
            .collect();
        futures::future::join_all(nodes.iter_mut().map(Node::wait_ready)).await;
        Some(Cluster { nodes, schema, _dir: dir, client: reqwest::Client::new() })
    }

    /// Node `n`, counting from 1.
    fn node(&self, n: usize) -> &Node {
        &self.nodes[n - 1]
    }

    fn sms(&self) -> Vec<workgate_sms::FileMessage> {
        let files: Vec<&Path> = self.nodes.iter().map(|n| n.sms_file.as_path()).collect();
        read_sms(&files)
    }

    /// The login codes delivered to `phone` so far, by whichever node's sender.
    fn codes_to(&self, phone: &str) -> Vec<String> {
        self.sms()
            .into_iter()
            .filter(|m| m.to == phone && !m.body.contains("/i/"))
            .map(|m| m.body.split(|c: char| !c.is_ascii_digit()).find(|w| w.len() == 6).expect("a code").to_string())
            .collect()
    }

    /// Waits (up to 10 s) until `phone` has received `count` login codes; returns the newest.
    async fn code_for(&self, phone: &str, count: usize) -> String {
        for _ in 0..500 {
            let codes = self.codes_to(phone);
            if codes.len() >= count {
                return codes[count - 1].clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{phone} did not receive {count} codes: {:?}", self.sms());
    }

    async fn call(
        &self,
        node: usize,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, self.node(node).url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let reply = request.send().await.expect("request sent");
        let status = reply.status().as_u16();
        let text = reply.text().await.expect("body read");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn post(&self, node: usize, path: &str, key: Option<&str>, body: Value) -> (u16, Value) {
        self.call(node, reqwest::Method::POST, path, key, Some(body)).await
    }

    async fn get(&self, node: usize, path: &str, key: &str) -> (u16, Value) {
        self.call(node, reqwest::Method::GET, path, Some(key), None).await
    }
}

#[tokio::test]
#[cfg_attr(
    not(workgate_test_postgres),
    ignore = "needs PostgreSQL: set WORKGATE_TEST_POSTGRES=postgres://USER@HOST:PORT/DATABASE"
)]
async fn three_nodes_starting_at_once_on_an_empty_database_migrate_it_once() {
    let Some(cluster) = Cluster::start("migrate_once", None).await else { return };
    // Every node is ready (Cluster::start waited for all three). Each migration file is applied, once.
    let migrations = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workgate-store/migrations/postgres");
    let mut expected: Vec<i64> = std::fs::read_dir(&migrations)
        .expect("migrations directory")
        .filter_map(|entry| {
            let name = entry.expect("entry").file_name().into_string().expect("UTF-8 name");
            name.ends_with(".sql").then(|| name.split('_').next().expect("version").parse().expect("numbered"))
        })
        .collect();
    expected.sort();
    let db = database(&cluster.schema.url).await;
    let applied: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT version, COUNT(*), SUM(CASE WHEN success THEN 1 ELSE 0 END) FROM _sqlx_migrations \
         GROUP BY version ORDER BY version",
    )
    .fetch_all(&db)
    .await
    .expect("migrations read");
    db.close().await;
    let versions: Vec<i64> = applied.iter().map(|(v, _, _)| *v).collect();
    assert_eq!(versions, expected, "every migration applied");
    for (version, count, succeeded) in applied {
        assert_eq!((count, succeeded), (1, 1), "migration {version} applied once, successfully");
    }
    // And the three serve one directory: an enterprise made beside them is seen by each.
    let ent = create_enterprise(&cluster.schema.url, cluster._dir.path(), "Acme", "13800138000");
    let key = ent["api_key"].as_str().expect("api key");
    for n in 1..=NODES {
        let (status, body) = cluster.get(n, &paths::members(), key).await;
        assert_eq!(status, 200, "node {n}: {body}");
        assert_eq!(body["items"].as_array().map(Vec::len), Some(1), "node {n} sees the owner: {body}");
    }
    // The three created the key file at the same moment, yet share one key: a code sent for a
    // login started on node 1 is accepted by node 3.
    let phone = "+8613900139001";
    let (status, member) =
        cluster.post(2, &paths::members(), Some(key), json!({"name": "Zhang San", "phone": phone})).await;
    assert_eq!(status, 201, "{member}");
    let (status, started) = cluster.post(1, &paths::login_start(), None, json!({"phone": phone})).await;
    assert_eq!(status, 200, "{started}");
    let login = started["login_id"].as_str().expect("login id");
    let code = cluster.code_for(phone, 1).await;
    let (status, done) = cluster.post(3, &paths::login_code(login), None, json!({"code": code})).await;
    assert_eq!((status, done["next"].as_str()), (200, Some("done")), "{done}");
}

#[tokio::test]
#[cfg_attr(
    not(workgate_test_postgres),
    ignore = "needs PostgreSQL: set WORKGATE_TEST_POSTGRES=postgres://USER@HOST:PORT/DATABASE"
)]
async fn a_member_disabled_through_node_2_is_refused_by_node_3_within_a_second() {
    let Some(cluster) = Cluster::start("revocation", None).await else { return };
    let ent = create_enterprise(&cluster.schema.url, cluster._dir.path(), "Acme", "13800138000");
    let key = ent["api_key"].as_str().expect("api key");
    let phone = "+8613900139001";
    let (status, member) =
        cluster.post(1, &paths::members(), Some(key), json!({"name": "Zhang San", "phone": phone})).await;
    assert_eq!(status, 201, "{member}");
    let id = member["id"].as_str().expect("member id");

    // Enterprise Login on node 1.
    let (status, started) = cluster.post(1, &paths::login_start(), None, json!({"phone": phone})).await;
    assert_eq!(status, 200, "{started}");
    let login = started["login_id"].as_str().expect("login id");
    let code = cluster.code_for(phone, 1).await;
    let (status, done) = cluster.post(1, &paths::login_code(login), None, json!({"code": code})).await;
    assert_eq!((status, done["next"].as_str()), (200, Some("done")), "{done}");
    let access = done["session"]["access_token"].as_str().expect("access token");
    for n in 1..=NODES {
        let (status, me) = cluster.get(n, &paths::me(), access).await;
        assert_eq!(status, 200, "node {n} accepts the token before the disable: {me}");
    }

    // Disable through node 2; node 3 refuses the token.
    let sent = Instant::now();
    let (status, disabled) = cluster.post(2, &paths::member_disable(id), Some(key), json!({})).await;
    let acknowledged = sent.elapsed();
    assert_eq!(status, 200, "{disabled}");
    let mut tries = 0;
    let refused = loop {
        tries += 1;
        let (status, me) = cluster.get(3, &paths::me(), access).await;
        if status == 401 {
            break sent.elapsed();
        }
        assert_eq!(status, 200, "node 3 either serves or refuses the token: {me}");
        assert!(sent.elapsed() < Duration::from_secs(1), "node 3 still accepts the token a second after the disable");
    };
    println!(
        "revocation: disable acknowledged by node 2 after {acknowledged:?}; node 3 refused the token {refused:?} after \
         the disable was sent (request {tries} to node 3)"
    );
    assert!(refused < Duration::from_secs(1), "node 3 refused the token only after {refused:?}");
    for n in [1, 2] {
        let (status, me) = cluster.get(n, &paths::me(), access).await;
        assert_eq!(status, 401, "node {n} refuses the token too: {me}");
    }
}

/// The per-number cap on codes is counted once across the nodes: rounds of concurrent
/// `login/start`s, one to each node, each round a little more than the (lowered) cooldown after
/// the last, send exactly `CAP` codes in all; then the hourly limit refuses.
#[tokio::test]
#[cfg_attr(
    not(workgate_test_postgres),
    ignore = "needs PostgreSQL: set WORKGATE_TEST_POSTGRES=postgres://USER@HOST:PORT/DATABASE"
)]
async fn a_numbers_code_cap_is_counted_across_the_three_nodes() {
    const CAP: usize = 3;
    const ROUNDS: usize = CAP + 2;
    let config = format!("[login]\nresend_cooldown_secs = 1\ncodes_per_number_hour = {CAP}\n");
    let Some(cluster) = Cluster::start("sms_cap", Some(&config)).await else { return };
    let ent = create_enterprise(&cluster.schema.url, cluster._dir.path(), "Acme", "13800138000");
    let key = ent["api_key"].as_str().expect("api key");
    let phone = "+8613900139001";
    let (status, member) =
        cluster.post(2, &paths::members(), Some(key), json!({"name": "Zhang San", "phone": phone})).await;
    assert_eq!(status, 201, "{member}");

    let mut accepted = Vec::new();
    let mut hourly_refusals = 0;
    let login_start = paths::login_start();
    for round in 0..ROUNDS {
        let replies = futures::future::join_all(
            (1..=NODES).map(|n| cluster.post(n, &login_start, None, json!({"phone": phone}))),
        )
        .await;
        for (node, (status, body)) in (1..=NODES).zip(replies) {
            match status {
                200 => accepted.push((round, node)),
                429 => {
                    assert_eq!(body["code"], "rate_limited", "{body}");
                    // The cooldown's wait is a second; the hourly cap's, most of an hour.
                    if body["retry_after"].as_i64().expect("retry_after") > 60 {
                        hourly_refusals += 1;
                    }
                }
                _ => panic!("round {round}, node {node}: unexpected {status} {body}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(1100)).await; // past the cooldown
    }
    println!("codes accepted (round, node): {accepted:?}; refusals by the hourly cap: {hourly_refusals}");
    assert_eq!(accepted.len(), CAP, "exactly the cap, counted across the nodes: {accepted:?}");
    assert!(hourly_refusals >= 1, "the hourly cap refused once the codes were used up");
    cluster.code_for(phone, CAP).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cluster.codes_to(phone).len(), CAP, "one SMS per accepted start");
}

/// 500 invitations queued through node 1 (members added one by one, 16 requests at a time) while the
/// three nodes' senders run: each number gets exactly one message, and every outbox row ends `sent`.
/// (A bulk import queues no invitations, so it cannot fill the outbox.)
#[tokio::test]
#[cfg_attr(
    not(workgate_test_postgres),
    ignore = "needs PostgreSQL: set WORKGATE_TEST_POSTGRES=postgres://USER@HOST:PORT/DATABASE"
)]
async fn five_hundred_queued_sms_are_delivered_exactly_once_by_three_senders() {
    use futures::StreamExt;
    const MEMBERS: usize = 500;
    let Some(cluster) = Cluster::start("outbox_once", None).await else { return };
    let ent = create_enterprise(&cluster.schema.url, cluster._dir.path(), "Acme", "13800138000");
    let key = ent["api_key"].as_str().expect("api key");
    let phones: Vec<String> = (0..MEMBERS).map(|i| format!("+861390000{i:04}")).collect();
    let members = paths::members();
    let started = Instant::now();
    let added: Vec<(u16, Value)> = futures::stream::iter(phones.iter().enumerate())
        .map(|(i, phone)| cluster.post(1, &members, Some(key), json!({"name": format!("Member {i}"), "phone": phone})))
        .buffer_unordered(16)
        .collect()
        .await;
    let queued_in = started.elapsed();
    for (status, body) in &added {
        assert_eq!(*status, 201, "{body}");
    }

    while cluster.sms().len() < MEMBERS && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered_in = started.elapsed();
    // Let the senders run a little longer: a second delivery would show up now.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let messages = cluster.sms();
    let per_node: Vec<usize> = cluster.nodes.iter().map(|n| workgate_sms::read_messages(&n.sms_file).len()).collect();
    println!(
        "{MEMBERS} invitations queued in {queued_in:?}; {} messages delivered {delivered_in:?} after the first was \
         queued, by node: {per_node:?}",
        messages.len()
    );
    let mut per_phone: HashMap<&str, usize> = HashMap::new();
    for m in &messages {
        *per_phone.entry(m.to.as_str()).or_default() += 1;
    }
    for phone in &phones {
        assert_eq!(per_phone.get(phone.as_str()), Some(&1), "{phone} gets exactly one invitation");
    }
    assert_eq!(messages.len(), MEMBERS, "no other message was sent");
    let ids: HashSet<&str> = messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), MEMBERS, "each outbox message delivered once");

    let db = database(&cluster.schema.url).await;
    let states: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, COUNT(*) FROM sms_outbox GROUP BY state ORDER BY state")
            .fetch_all(&db)
            .await
            .expect("outbox read");
    db.close().await;
    assert_eq!(states, vec![("sent".to_string(), MEMBERS as i64)], "every outbox row is sent");
}
