//! Retention: a pruning pass deletes what is past its retention (challenges, login events,
//! delivered SMS, invitations, used refresh tokens, ended sessions, OIDC codes, tokens and grants,
//! idempotency records, idle rate counters) and keeps what is recent or still in use; the audit
//! log is kept unless its retention is set. On the manual clock: rows are made, the clock moves
//! past every retention, more rows are made, and one pass runs.

use super::oidc_clients::{register, tokens_for};
use crate::helpers::{Backend, TestApp, TestEnterprise};
use crate::paths;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use workgate_domain::clock::{Clock, ManualClock};
use workgate_domain::retention::PruneReport;

const PHONE: &str = "+8613900139055";
const DAY: Duration = Duration::from_secs(86_400);

/// The tables a pass prunes (the audit log only when its retention is set).
const PRUNED: [&str; 11] = [
    "login_challenges",
    "login_events",
    "sms_outbox",
    "invitations",
    "used_refresh_tokens",
    "sessions",
    "oidc_codes",
    "oidc_tokens",
    "oidc_grants",
    "idempotency_keys",
    "rate_counters",
];

/// The time column of each table: rows made before `t` are found by it.
fn time_column(table: &str) -> &'static str {
    match table {
        "login_events" | "audit_log" => "at",
        "used_refresh_tokens" => "used_at",
        "rate_counters" => "window_start",
        _ => "created_at",
    }
}

/// Rows of `table` made before `t` (milliseconds), and from `t` on. (Rate counters count in
/// slots of up to two hours: theirs are told apart a day earlier.)
async fn rows_around(app: &TestApp, table: &str, t: i64) -> (i64, i64) {
    let pool = app.db().await;
    let column = time_column(table);
    let t = if table == "rate_counters" { t - 86_400_000 } else { t };
    let count = |op: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table} WHERE {column} {op} $1"))
                .bind(t)
                .fetch_one(&pool)
                .await
                .unwrap_or_else(|e| panic!("{table}: {e}"))
        }
    };
    let around = (count("<").await, count(">=").await);
    pool.close().await;
    around
}

/// One pass with the server's settings; on PostgreSQL another pass may hold the lock a moment.
pub(crate) async fn prune(app: &TestApp) -> PruneReport {
    for _ in 0..100 {
        if let Some(report) = app.server.prune_now().await.expect("pruning runs") {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the pruning lock stayed taken");
}

/// `POST /departments` with an `Idempotency-Key`, twice: the second is a replay.
async fn idempotent_department(app: &TestApp, ent: &TestEnterprise, n: usize) {
    for _ in 0..2 {
        let resp = app
            .client
            .post(app.url(&paths::departments()))
            .bearer_auth(&ent.key)
            .header("idempotency-key", format!("dept-{n}"))
            .json(&json!({"name": format!("Department {n}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
    }
}

/// A browser holding the session of `access` (as the login page would leave it).
fn browser(app: &TestApp, access: &str) -> reqwest::Client {
    let jar = Arc::new(reqwest::cookie::Jar::default());
    jar.add_cookie_str(&format!("wg_access={access}; Path=/"), &app.base.parse::<url::Url>().unwrap());
    reqwest::Client::builder().cookie_provider(jar).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Everything a pass may prune, once: a login (challenge, events, SMS, session) refreshed once
/// and signed out, another left signed in, an OIDC code exchange and a refresh, the first time an
/// idempotent request; login starts are counted by the limits. Answers the live session and
/// OIDC tokens.
async fn make_rows(
    app: &TestApp,
    clock: &ManualClock,
    ent: &TestEnterprise,
    client: (&str, &str),
    sms_before: usize,
    n: usize,
) -> (Value, Value) {
    let first = app.sign_in(PHONE, sms_before).await["session"].clone();
    let rotated = app.post_anon(&paths::token_refresh(), json!({"refresh_token": first["refresh_token"]})).await;
    rotated.assert_status(200);
    let access = rotated.body["session"]["access_token"].as_str().unwrap().to_string();
    app.request(reqwest::Method::POST, &paths::me_logout(), Some(&access), None).await.assert_status(204);
    clock.advance(Duration::from_secs(61)); // the resend cooldown of the number
    let live = app.sign_in(PHONE, sms_before + 1).await["session"].clone();

    let b = browser(app, live["access_token"].as_str().unwrap());
    let tokens = tokens_for(app, &b, client.0, Some(client.1)).await;
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ("client_id", client.0),
        ("client_secret", client.1),
    ];
    let resp = app.client.post(app.url(&paths::oidc_token())).form(&form).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let oidc: Value = resp.json().await.unwrap();

    if n == 1 {
        // (A claim of a new key forgets expired ones too, so the next round sends none.)
        idempotent_department(app, ent, n).await;
    }
    (live, oidc)
}

#[tokio::test]
async fn a_pass_deletes_what_is_past_its_retention_and_keeps_what_is_recent_or_live() {
    let clock = Arc::new(ManualClock::default());
    let (app, ent) = TestApp::acme_on(clock.clone()).await;
    app.add_member(&ent, "Zhang San", PHONE).await; // an invitation and its SMS
    let wiki = register(&app, &ent, json!({"name": "Wiki", "redirect_uris": [super::oidc_clients::REDIRECT]})).await;
    let client = (wiki["client_id"].as_str().unwrap(), wiki["client_secret"].as_str().unwrap());
    let (old_session, old_oidc) = make_rows(&app, &clock, &ent, client, 1, 1).await;
    // A number that starts a login once and is never seen again: its counters go idle.
    app.add_member(&ent, "Wang Wu", "+8613900139057").await;
    app.start_login("+8613900139057").await.assert_status(200);
    app.wait_for_sms("+8613900139057", 2).await;
    app.wait_for_sms(PHONE, 3).await;

    // A pass now deletes nothing that is in use.
    let report = prune(&app).await;
    for table in ["login_challenges", "sessions", "sms_outbox", "oidc_tokens", "idempotency_keys"] {
        assert_eq!(report.of(table), 0, "{table}: {report:?}");
    }

    // 100 days on: past every default retention. Then a new round of everything.
    clock.advance(100 * DAY);
    let t = clock.now().millis();
    let (live, live_oidc) = make_rows(&app, &clock, &ent, client, 3, 2).await;
    app.add_member(&ent, "Li Si", "+8613900139056").await;
    app.wait_for_sms(PHONE, 5).await;
    app.wait_for_sms("+8613900139056", 1).await;
    let audit_before = app.count("audit_log").await;
    let before: Vec<(i64, i64)> =
        futures::future::join_all(PRUNED.iter().map(|table| rows_around(&app, table, t))).await;
    for (table, (old, new)) in PRUNED.iter().zip(&before) {
        assert!(*old > 0, "{table} has old rows to prune");
        assert!(*new > 0 || *table == "idempotency_keys", "{table} has new rows to keep");
    }

    let report = prune(&app).await;
    for (table, (old, new)) in PRUNED.iter().zip(before) {
        let (old_left, new_left) = rows_around(&app, table, t).await;
        assert_eq!(old_left, 0, "{table}: the old rows are gone");
        assert_eq!(new_left, new, "{table}: the recent rows stay");
        assert_eq!(report.of(table), u64::try_from(old).unwrap(), "{table}: {report:?}");
    }
    assert_eq!(app.count("audit_log").await, audit_before, "the audit log is kept");
    assert!(!report.interrupted);

    // What is live still works: the session, its refresh, the app's tokens.
    app.get(&paths::me(), live["access_token"].as_str().unwrap()).await.assert_status(200);
    let refreshed = app.post_anon(&paths::token_refresh(), json!({"refresh_token": live["refresh_token"]})).await;
    refreshed.assert_status(200);
    let userinfo = app
        .client
        .get(app.url(&paths::oidc_userinfo()))
        .bearer_auth(live_oidc["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status().as_u16(), 200);
    // The old ones are gone, and refused.
    app.get(&paths::me(), old_session["access_token"].as_str().unwrap()).await.assert_problem(401, "unauthorized");
    let old = app
        .client
        .get(app.url(&paths::oidc_userinfo()))
        .bearer_auth(old_oidc["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(old.status().as_u16(), 401);

    idempotent_department(&app, &ent, 2).await;

    // A second pass finds nothing more.
    assert_eq!(prune(&app).await.total(), 0);
}

#[tokio::test]
async fn a_pass_deletes_in_batches_until_nothing_is_old_enough() {
    let clock = Arc::new(ManualClock::default());
    let app = TestApp::spawn_configured(|_| {}, clock.clone()).await;
    let now = clock.now().millis();
    // 2,500 idle counters of numbers seen two days ago: three statements' worth.
    let pool = app.db().await;
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500) \
         INSERT INTO rate_counters (bucket, window_start, count) SELECT 'code:day:test' || i, $1, 1 FROM n",
    )
    .bind(now - 2 * 86_400_000)
    .execute(&pool)
    .await
    .expect("counters inserted");
    sqlx::query("INSERT INTO rate_counters (bucket, window_start, count) VALUES ('code:day:recent', $1, 1)")
        .bind(now - 3_600_000)
        .execute(&pool)
        .await
        .expect("counter inserted");
    pool.close().await;
    let report = prune(&app).await;
    assert_eq!(report.of("rate_counters"), 2500, "{report:?}");
    assert_eq!(app.count("rate_counters").await, 1, "the counter of the last hour stays");
    let metrics = app.client.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("workgate_pruned_rows_total{table=\"rate_counters\"} 2500"), "{metrics}");
}

#[tokio::test]
async fn the_audit_log_is_pruned_only_when_its_retention_is_set() {
    let clock = Arc::new(ManualClock::default());
    let app = TestApp::spawn_configured(|c| c.retention.audit_days = Some(30), clock.clone()).await;
    let ent = app.enterprise("Acme", "13800138000").await;
    app.add_department(&ent, "Sales", None).await;
    let old = app.count("audit_log").await;
    assert!(old >= 2);
    clock.advance(31 * DAY);
    app.add_department(&ent, "Support", None).await;
    let report = prune(&app).await;
    assert_eq!(report.of("audit_log"), u64::try_from(old).unwrap(), "{report:?}");
    let left = app.audit(&ent, "").await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["action"], "department.create");

    // The default keeps it however old.
    let kept = TestApp::spawn_configured(|_| {}, clock.clone()).await;
    let ent = kept.enterprise("Acme", "13800138000").await;
    clock.advance(3650 * DAY);
    assert_eq!(prune(&kept).await.of("audit_log"), 0);
    assert!(!kept.audit(&ent, "").await.is_empty());
}

#[tokio::test]
async fn one_node_prunes_at_a_time() {
    let app = TestApp::spawn().await;
    let store = app.server.services.store.clone();
    let held = store.pruning_lock().await.expect("lock").expect("nobody prunes yet");
    let meanwhile = app.server.prune_now().await.expect("pass");
    match Backend::current() {
        // Another node (here: another connection) holds the advisory lock: this one passes.
        Backend::Postgres => assert!(meanwhile.is_none(), "{meanwhile:?}"),
        // One process writes a SQLite database: there is nobody to wait for.
        Backend::Sqlite => assert!(meanwhile.is_some()),
    }
    held.release().await.expect("released");
    assert!(app.server.prune_now().await.expect("pass").is_some(), "free again");
    // A lock abandoned without release (its pass cancelled) is freed with its connection.
    drop(store.pruning_lock().await.expect("lock").expect("free"));
    prune(&app).await;
}
