//! Several nodes on one database: each test opens the store more than once (one `Services` per
//! node, as separate processes would) and races the nodes against each other.
//!
//! Every test runs on SQLite (the nodes share one file) and, when `WORKGATE_TEST_POSTGRES` names
//! a PostgreSQL server (e.g. `postgres://postgres@127.0.0.1:5432/test`), on PostgreSQL too, in a
//! schema of its own; without the variable the PostgreSQL half says it was skipped.

use futures::future::join_all;
use std::collections::HashSet;
use std::sync::Arc;
use workgate_domain::Services;
use workgate_domain::audit::Caller;
use workgate_domain::clock::SystemClock;
use workgate_domain::directory::{MemberPatch, NewMemberInput};
use workgate_domain::enterprises::CreateEnterprise;
use workgate_domain::idempotency::Claim;
use workgate_domain::keys::ServerKeys;
use workgate_domain::model::Actor;

const POSTGRES_VARIABLE: &str = "WORKGATE_TEST_POSTGRES";

/// A database for one test, on one backend.
struct TestDb {
    url: String,
    /// The server's URL and the schema, to drop at the end (PostgreSQL).
    schema: Option<(String, String)>,
    /// The master key every node of the database shares (as they would share one key file).
    master: [u8; workgate_domain::keys::MASTER_KEY_LEN],
    _dir: tempfile::TempDir,
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        TestDb {
            url: format!("sqlite://{}", dir.path().join("workgate.db").display()),
            schema: None,
            master: ServerKeys::generate_master(),
            _dir: dir,
        }
    }

    /// A fresh schema on the server named by `WORKGATE_TEST_POSTGRES`, or `None` when it is not set.
    async fn postgres(test: &str) -> Option<TestDb> {
        use sqlx::Connection;
        let Ok(server) = std::env::var(POSTGRES_VARIABLE) else {
            eprintln!("{test}: PostgreSQL skipped, {POSTGRES_VARIABLE} is not set");
            return None;
        };
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        // The naming of the API suite's schemas, whose sweep also removes any left behind here.
        let schema = format!("wg_test_{secs}_{}_{test}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(&server).await.expect("PostgreSQL reachable");
        sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&mut admin).await.expect("schema created");
        let separator = if server.contains('?') { '&' } else { '?' };
        let url = format!("{server}{separator}options[search_path]={schema}");
        Some(TestDb {
            url,
            schema: Some((server, schema)),
            master: ServerKeys::generate_master(),
            _dir: tempfile::tempdir().expect("temp dir"),
        })
    }

    /// The backends of this run: SQLite always, PostgreSQL when configured.
    async fn all(test: &str) -> Vec<TestDb> {
        let mut dbs = vec![TestDb::sqlite().await];
        dbs.extend(TestDb::postgres(test).await);
        dbs
    }

    async fn node(&self) -> Services {
        let store = workgate_store::open(&self.url).await.expect("store opens");
        Services::new(store, Arc::new(SystemClock), ServerKeys::from_master(&self.master)).await.expect("services")
    }

    async fn nodes(&self, n: usize) -> Vec<Services> {
        let mut nodes = Vec::new();
        for _ in 0..n {
            nodes.push(self.node().await);
        }
        nodes
    }

    async fn drop_schema(self) {
        use sqlx::Connection;
        if let Some((server, schema)) = &self.schema {
            let mut admin = sqlx::PgConnection::connect(server).await.expect("PostgreSQL reachable");
            sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&mut admin).await.expect("schema dropped");
        }
    }
}

/// An enterprise with `members` invited members (each with an invitation SMS in the outbox);
/// answers an admin caller.
async fn enterprise(node: &Services, members: usize) -> Caller {
    let created = node
        .create_enterprise(
            CreateEnterprise {
                name: "Acme".into(),
                owner_name: "Owner".into(),
                owner_phone: "13800138000".into(),
                region: "CN".into(),
            },
            Actor::Cli,
        )
        .await
        .expect("enterprise created");
    let caller = node.authenticate_api_key(created.api_key_secret.expose(), None).await.expect("key works");
    for i in 0..members {
        node.add_member(
            &caller,
            NewMemberInput {
                name: format!("Member {i}"),
                phone: format!("1390000{i:04}"),
                userid: None,
                email: None,
                title: None,
                departments: None,
                role: None,
                admin_departments: None,
                invite: None,
            },
        )
        .await
        .expect("member added");
    }
    caller
}

#[tokio::test]
async fn migrations_run_once_when_nodes_start_together_on_an_empty_database() {
    // SQLite is one node's database: only PostgreSQL is started from several nodes at once.
    let Some(db) = TestDb::postgres("migrations").await else { return };
    let opened = join_all((0..6).map(|_| workgate_store::open(&db.url))).await;
    for store in &opened {
        assert!(store.is_ok(), "every node starts: {:?}", store.as_ref().err());
    }
    let pool = sqlx::PgPool::connect(&db.url).await.expect("connects");
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&pool)
        .await
        .expect("migrations table");
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres")).expect("migrations");
    // Each file's version is the number its name starts with (`0007_….sql`).
    let mut versions: Vec<i64> =
        files.filter_map(|f| f.ok()?.file_name().to_str()?.split('_').next()?.parse().ok()).collect();
    versions.sort_unstable();
    assert_eq!(applied, versions, "each migration applied once");
    pool.close().await;
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_never_send_one_message_twice() {
    for db in TestDb::all("sms_leases").await {
        let nodes = db.nodes(2).await;
        enterprise(&nodes[0], 40).await;
        let store = |i: usize| nodes[i % 2].store.clone();
        let now = nodes[0].clock.now();
        // Many small leases at once from both nodes, until the outbox is empty.
        let leases = join_all((0..16).map(|i| {
            let store = store(i);
            async move {
                let mut mine = Vec::new();
                loop {
                    let batch = store.lease_due_sms(now, 60_000, 3).await.expect("lease");
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch.into_iter().map(|(m, _)| m.id.to_string()));
                }
            }
        }))
        .await;
        let all: Vec<String> = leases.into_iter().flatten().collect();
        let distinct: HashSet<&String> = all.iter().collect();
        assert_eq!(all.len(), 40, "each invitation leased, on {}", db.url);
        assert_eq!(distinct.len(), all.len(), "no message leased twice, on {}", db.url);
        db.drop_schema().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_limit_holds_across_nodes() {
    for db in TestDb::all("limits").await {
        let nodes = db.nodes(3).await;
        let now = nodes[0].clock.now().millis();
        let hits = join_all((0..60).map(|i| {
            let store = nodes[i % 3].store.clone();
            async move { store.hit_limit("phone:+8613900000000", now, 3_600_000, 10).await.expect("hit") }
        }))
        .await;
        let allowed = hits.iter().filter(|refused| refused.is_none()).count();
        assert_eq!(allowed, 10, "exactly the limit is let through, on {}", db.url);
        db.drop_schema().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_request_claims_an_idempotency_key_across_nodes() {
    for db in TestDb::all("idempotency").await {
        let nodes = db.nodes(2).await;
        let now = nodes[0].clock.now();
        let claims = join_all((0..20).map(|i| {
            let store = nodes[i % 2].store.clone();
            async move { store.claim_idempotency_key("scope", "key-1", "fingerprint", now).await.expect("claim") }
        }))
        .await;
        let claimed = claims.iter().filter(|c| matches!(c, Claim::Claimed)).count();
        let waiting = claims.iter().filter(|c| matches!(c, Claim::InProgress)).count();
        assert_eq!((claimed, waiting), (1, 19), "one claim, the others told to wait, on {}", db.url);
        db.drop_schema().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_owners_demoting_each_other_on_two_nodes_leave_one_owner() {
    for db in TestDb::all("owners").await {
        let nodes = db.nodes(2).await;
        for round in 0..5 {
            let caller = enterprise(&nodes[0], 1).await;
            let members = nodes[0].list_members(&caller, Default::default()).await.expect("members").items;
            let ids: Vec<String> = members.iter().map(|m| m.id.to_string()).collect();
            let promote = MemberPatch { role: Some("owner".into()), ..Default::default() };
            nodes[0].update_member(&caller, &ids[1], promote).await.expect("second owner");
            // Each node demotes a different owner, at the same time.
            let demotions = join_all(ids.iter().enumerate().map(|(i, id)| {
                let (node, caller) = (nodes[i % 2].clone(), caller.clone());
                async move {
                    let demote = MemberPatch { role: Some("admin".into()), ..Default::default() };
                    node.update_member(&caller, id, demote).await
                }
            }))
            .await;
            let done = demotions.iter().filter(|d| d.is_ok()).count();
            assert_eq!(done, 1, "one demotion stands, the other is refused (round {round}, {})", db.url);
            let members = nodes[1].list_members(&caller, Default::default()).await.expect("members").items;
            let owners = members.iter().filter(|m| m.role.as_str() == "owner").count();
            assert_eq!(owners, 1, "an owner is left (round {round}, {})", db.url);
        }
        db.drop_schema().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_policy_changed_on_one_node_is_read_by_the_others() {
    use workgate_domain::policy::Policy;
    for db in TestDb::all("policy").await {
        let nodes = db.nodes(2).await;
        let caller = enterprise(&nodes[0], 0).await;
        // Both nodes have read the defaults (and may keep them in their caches).
        for node in &nodes {
            assert!(!node.policy_of(&caller.enterprise_id).await.expect("policy").policy.require_password);
        }
        let strict = Policy { require_password: true, ..Policy::default() };
        nodes[0].put_policy(&caller, strict, None).await.expect("policy changed");
        let written = std::time::Instant::now();
        assert!(
            nodes[0].policy_of(&caller.enterprise_id).await.expect("policy").policy.require_password,
            "the writing node reads its change at once, on {}",
            db.url
        );
        // The other node: at once on PostgreSQL once it hears of the write; on SQLite (one node's
        // database, here two stores on one file) when its cached read is a second old. Polled, with
        // room for a slow machine.
        loop {
            if nodes[1].policy_of(&caller.enterprise_id).await.expect("policy").policy.require_password {
                eprintln!("seen by the other node after {:?} on {}", written.elapsed(), db.url);
                break;
            }
            assert!(written.elapsed() < std::time::Duration::from_secs(3), "not seen in time on {}", db.url);
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        db.drop_schema().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_policy_change_on_another_node_is_made_on_the_policy_as_stored() {
    use workgate_domain::Error;
    use workgate_domain::policy::Policy;
    for db in TestDb::all("policy_change").await {
        let nodes = db.nodes(2).await;
        let caller = enterprise(&nodes[0], 0).await;
        // The second node has read (and may have cached) the defaults.
        let before = nodes[1].policy_of(&caller.enterprise_id).await.expect("policy");
        let strict = Policy { require_password: true, ..Policy::default() };
        let first = nodes[0].put_policy(&caller, strict, None).await.expect("policy changed");
        // At once on the second node, cache or not: a change of one field is made on the policy
        // the first node stored, not on the one the second node read before ...
        let merged = nodes[1]
            .change_policy(&caller, |current| Ok(Policy { max_devices: 3, ..current.policy.clone() }))
            .await
            .expect("policy changed again");
        assert!(merged.policy.require_password, "the first change stands, on {}", db.url);
        assert_eq!(merged.policy.max_devices, 3, "on {}", db.url);
        assert!(merged.updated_at > first.updated_at, "on {}", db.url);
        // ... and a whole policy put back on what the first node answered is refused now.
        let stale = first.updated_at_text();
        let refused = nodes[0].put_policy(&caller, before.policy.clone(), stale.as_deref()).await;
        assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?} on {}", db.url);
        // Naming the version just written goes through on either node.
        let named = merged.updated_at_text();
        let last = nodes[0].put_policy(&caller, Policy::default(), named.as_deref()).await.expect("put on what read");
        // Eight admins on both nodes put back what they read of that one version at once: one
        // change stands, the others are refused.
        let (read_at, admin) = (last.updated_at_text(), &caller);
        let puts = join_all((0..8u32).map(|i| {
            let (node, read_at) = (&nodes[i as usize % 2], read_at.clone());
            let policy = Policy { max_devices: 2 + i, ..Policy::default() };
            async move { node.put_policy(admin, policy, read_at.as_deref()).await }
        }))
        .await;
        let stood: Vec<_> = puts.iter().filter_map(|p| p.as_ref().ok()).collect();
        assert_eq!(stood.len(), 1, "one of the parallel changes stands on {}: {puts:?}", db.url);
        assert!(puts.iter().all(|p| p.is_ok() || matches!(p, Err(Error::Conflict(_)))), "{puts:?}");
        // (A change that keeps everything: it is made on the policy as stored.)
        let stored = nodes[0].change_policy(&caller, |current| Ok(current.policy.clone())).await.expect("read");
        assert_eq!(stored.policy.max_devices, stood[0].policy.max_devices, "on {}", db.url);
        db.drop_schema().await;
    }
}
