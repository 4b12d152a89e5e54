//! The durability check on a real PostgreSQL (`durability.rs`): a database whose
//! `synchronous_commit` is off for Workgate's connections (from the URL's `options`, or from its
//! role) is refused before anything is written, and opens when the operator accepts it.
//! SQLite's half is in `src/sqlite.rs` and `src/durability.rs` (the check over the values read).
//!
//! Runs when `WORKGATE_TEST_POSTGRES` names a server (e.g. `postgres://postgres@127.0.0.1:5432/test`);
//! says it was skipped otherwise.

use sqlx::Connection;
use workgate_store::{Durability, OpenError};

const POSTGRES_VARIABLE: &str = "WORKGATE_TEST_POSTGRES";

/// The server's URL, or `None` after saying why the test is skipped.
fn server(test: &str) -> Option<String> {
    match std::env::var(POSTGRES_VARIABLE) {
        Ok(server) if !server.is_empty() => Some(server),
        _ => {
            println!("{test}: skipped, {POSTGRES_VARIABLE} is not set (e.g. postgres://postgres@127.0.0.1:5432/test)");
            None
        }
    }
}

/// A name of this test's own, in the API suite's naming (whose sweep removes schemas left behind).
fn name(test: &str) -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    format!("wg_test_{secs}_{}_{test}", std::process::id())
}

async fn admin(server: &str) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(server).await.expect("PostgreSQL reachable")
}

async fn run(conn: &mut sqlx::PgConnection, statement: &str) {
    sqlx::query(statement).execute(conn).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
}

/// Tables in `schema` (the migrations create them, `_sqlx_migrations` included).
async fn tables(server: &str, schema: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = $1")
        .bind(schema)
        .fetch_one(&mut admin(server).await)
        .await
        .expect("tables counted")
}

fn with_params(server: &str, params: &str) -> String {
    let separator = if server.contains('?') { '&' } else { '?' };
    format!("{server}{separator}{params}")
}

#[tokio::test]
async fn synchronous_commit_off_in_the_url_is_refused_before_migrating_and_accepted_when_the_operator_says_so() {
    let Some(server) = server("synchronous_commit_off_in_the_url") else { return };
    let schema = name("durability_url");
    run(&mut admin(&server).await, &format!("CREATE SCHEMA {schema}")).await;
    let url = |synchronous_commit: &str| {
        with_params(&server, &format!("options[search_path]={schema}&options[synchronous_commit]={synchronous_commit}"))
    };

    let refused = workgate_store::open_with(&url("off"), Durability::Required).await;
    let tables_after_refusal = tables(&server, &schema).await;
    let accepted = workgate_store::open_with(&url("off"), Durability::AcceptUnsafe).await.map(|_| ());
    let tables_after_acceptance = tables(&server, &schema).await;
    // `local` flushes the commit to PostgreSQL's own disk before acknowledging it, as `on` does.
    let local = workgate_store::open_with(&url("local"), Durability::Required).await.map(|_| ());
    let plain =
        workgate_store::open(&with_params(&server, &format!("options[search_path]={schema}"))).await.map(|_| ());
    run(&mut admin(&server).await, &format!("DROP SCHEMA {schema} CASCADE")).await;

    let Err(OpenError::UnsafeDurability(refusal)) = refused else {
        panic!("synchronous_commit=off must be refused, got {:?}", refused.map(|_| ()))
    };
    assert_eq!(refusal.database, "PostgreSQL");
    assert_eq!(refusal.findings.len(), 1, "{refusal}");
    assert_eq!((refusal.findings[0].setting, refusal.findings[0].value.as_str()), ("synchronous_commit", "off"));
    let message = refusal.to_string();
    assert!(
        message.starts_with(
            "the database could lose acknowledged writes in a crash: PostgreSQL synchronous_commit is 'off', \
             expected 'on' (or 'local', 'remote_write', 'remote_apply'): "
        ),
        "{message}"
    );
    assert_eq!(tables_after_refusal, 0, "nothing is written before the check");
    accepted.expect("opens when the operator accepts unsafe durability");
    assert!(tables_after_acceptance > 0, "and then migrates");
    local.expect("synchronous_commit=local is durable on PostgreSQL's own disk");
    plain.expect("the server's defaults are safe");
}

#[tokio::test]
async fn synchronous_commit_off_for_the_role_is_refused() {
    let Some(server) = server("synchronous_commit_off_for_the_role") else { return };
    let role = name("durability_role");
    let mut conn = admin(&server).await;
    run(&mut conn, &format!("CREATE ROLE {role} LOGIN")).await;
    run(&mut conn, &format!("ALTER ROLE {role} SET synchronous_commit = off")).await;
    // The server's URL with the role as its user (trust authentication, as for the test user).
    let (scheme, rest) = server.split_once("://").expect("a postgres:// URL");
    let host = rest.split_once('@').map_or(rest, |(_, host)| host);
    let url = format!("{scheme}://{role}@{host}");

    let refused = workgate_store::open_with(&url, Durability::Required).await.map(|_| ());
    run(&mut conn, &format!("DROP ROLE {role}")).await;

    match refused {
        Err(OpenError::UnsafeDurability(refusal)) => {
            assert_eq!(refusal.findings.iter().map(|f| f.setting).collect::<Vec<_>>(), ["synchronous_commit"]);
        }
        other => panic!("a role with synchronous_commit=off must be refused, got {other:?}"),
    }
}
