//! A PostgreSQL schema of one test's own, in the database that `WORKGATE_TEST_POSTGRES` names,
//! the way tests/api/helpers.rs `TestDatabase` makes one: `CREATE SCHEMA`, then a URL whose
//! `search_path` puts it first and whose `application_name` tells its connections apart; on drop
//! those connections are ended and the schema dropped. Names start `wg_test_<unix seconds>_`, so
//! the API suite's sweep removes any that an interrupted run left behind.

pub const VARIABLE: &str = "WORKGATE_TEST_POSTGRES";

pub struct PgSchema {
    /// The URL the servers and the test use: the schema first on the `search_path`.
    pub url: String,
    server: String,
    name: String,
}

impl PgSchema {
    /// A fresh, empty schema; `None`, after printing why, when `WORKGATE_TEST_POSTGRES` is unset.
    pub async fn create(test: &str) -> Option<PgSchema> {
        use sqlx::Connection;
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let server = match std::env::var(VARIABLE) {
            Ok(server) if !server.is_empty() => server,
            _ => {
                println!("{test}: skipped, {VARIABLE} is not set (e.g. postgres://postgres@127.0.0.1:5432/test)");
                return None;
            }
        };
        let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("wg_test_{seconds}_{}_p{n}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(&server)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {VARIABLE}={server}: {e}"));
        sqlx::query(&format!("CREATE SCHEMA {name}")).execute(&mut admin).await.expect("schema created");
        let _ = admin.close().await;
        let mut url = reqwest::Url::parse(&server).expect("a postgres:// URL");
        url.query_pairs_mut().append_pair("options[search_path]", &name).append_pair("application_name", &name);
        Some(PgSchema { url: url.to_string(), server, name })
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop cannot await: a thread with a runtime of its own ends the connections and drops.
        let dropped = std::thread::spawn(move || {
            use sqlx::Connection;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&server).await?;
                sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1")
                    .bind(&name)
                    .execute(&mut admin)
                    .await?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")).execute(&mut admin).await?;
                admin.close().await
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("the test schema {} was not dropped: {e}", self.name);
        }
    }
}
