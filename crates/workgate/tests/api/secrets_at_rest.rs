//! No secret at rest in plaintext: SMS bodies are kept encrypted under a key from the key file
//! (outside the database) and erased once delivered; the key of the code hashes lives in the key
//! file too. A copy of the database alone hands out neither codes nor invitation links.

use crate::helpers::{TestApp, contains_token};
use crate::paths;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use workgate_domain::clock::ManualClock;

const OWNER: &str = "+8613800138000";
const MEMBER: &str = "+8613900139001";

/// Waits until every message in the outbox has been delivered (state `sent`).
async fn wait_until_delivered(app: &TestApp) {
    let pool = app.db().await;
    for _ in 0..500 {
        let waiting: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sms_outbox WHERE state <> 'sent'")
            .fetch_one(&pool)
            .await
            .expect("outbox count");
        if waiting == 0 {
            pool.close().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the outbox was not delivered");
}

fn code_of(body: &str) -> String {
    body.split(|c: char| !c.is_ascii_digit()).find(|w| w.len() == 6).expect("a 6-digit code").to_string()
}

async fn sign_in_with(app: &TestApp, phone: &str, invitation: Option<&str>, sms_before: usize) -> String {
    let mut body = json!({"phone": phone});
    if let Some(token) = invitation {
        body["invitation"] = json!(token);
    }
    let started = app.post_anon(&paths::login_start(), body).await;
    started.assert_status(200);
    let messages = app.wait_for_sms(phone, sms_before + 1).await;
    let code = code_of(&messages[sms_before].body);
    let login = started.body["login_id"].as_str().expect("login_id");
    let done = app.submit_code(login, &code).await;
    done.assert_status(200);
    assert_eq!(done.body["next"], "done", "{}", done.text);
    code
}

#[tokio::test]
async fn neither_codes_nor_invitation_links_are_kept_in_the_database() {
    let (app, ent) = TestApp::with_acme().await;
    app.add_member(&ent, "Zhang San", "139 0013 9001").await;
    let invitation = app.wait_for_sms(MEMBER, 1).await.remove(0);
    let link = invitation.body.split_whitespace().find(|w| w.contains("/i/")).expect("the link").to_string();
    let token = link.split("/i/").nth(1).expect("the token").to_string();
    // The member accepts the invitation by signing in with it; the owner signs in by code.
    let member_code = sign_in_with(&app, MEMBER, Some(&token), 1).await;
    let owner_code = sign_in_with(&app, OWNER, None, 0).await;
    wait_until_delivered(&app).await;

    let pool = app.db().await;
    let kept: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sms_outbox WHERE body <> ''").fetch_one(&pool).await.expect("bodies");
    assert_eq!(kept, 0, "delivered messages keep no body");
    let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM server_secrets WHERE name = 'code_hmac_key'")
        .fetch_one(&pool)
        .await
        .expect("server secrets");
    assert_eq!(keys, 0, "the code key is not in the database");
    pool.close().await;

    let stored = app.stored_bytes().await;
    assert!(!stored.is_empty());
    for secret in [&token, &link] {
        assert!(!contains_token(&stored, secret.as_bytes()), "{secret} is in the database");
    }
    for code in [&member_code, &owner_code] {
        assert!(!contains_token(&stored, code.as_bytes()), "the code {code} is in the database");
    }
    assert!(!stored.windows(18).any(|w| w == b"verification code."), "no SMS text is in the database, even erased");
    assert!(!stored.windows(11).any(|w| w == b"invited to "), "no invitation text is in the database");
}

#[tokio::test]
async fn a_message_waiting_at_shutdown_is_sent_after_a_restart_with_the_same_key_file() {
    // First life: the gateway is unreachable, so the invitation waits in the outbox, encrypted.
    let app = TestApp::spawn_configured(
        |c| {
            c.sms = serde_json::from_value(json!({
                "provider": "webhook",
                "webhook": {"url": "http://127.0.0.1:9/", "secret": "s", "timeout_ms": 200}
            }))
            .expect("webhook settings");
            c.login.outbox_lease_secs = 1;
        },
        Arc::new(ManualClock::default()),
    )
    .await;
    let ent = app.enterprise("Acme", "13800138000").await;
    app.add_member(&ent, "Zhang San", "139 0013 9001").await;
    let pool = app.db().await;
    let mut waiting = None;
    for _ in 0..500 {
        let row: Option<(String, i64, String)> = sqlx::query_as(
            "SELECT state, attempts, body FROM sms_outbox WHERE purpose = 'invitation' AND attempts > 0",
        )
        .fetch_optional(&pool)
        .await
        .expect("outbox row");
        if let Some(row) = row.filter(|(state, _, _)| state == "pending") {
            waiting = Some(row);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pool.close().await;
    let (_, _, body) = waiting.expect("the invitation failed once and waits for a retry");
    assert!(body.starts_with("v1:") && !body.contains("/i/") && !body.contains("Acme"), "kept encrypted: {body}");
    assert!(app.sms_to(MEMBER).is_empty());

    // Second life, same database and key file, a gateway that works: the invitation goes out.
    let app = app.restart(|_| {}).await;
    let delivered = app.wait_for_sms(MEMBER, 1).await;
    assert!(delivered[0].body.contains("/i/wgi_") && delivered[0].body.contains("Acme"), "{}", delivered[0].body);
    wait_until_delivered(&app).await;
    // And the codes it hashes under the key file's key still verify.
    sign_in_with(&app, OWNER, None, 0).await;
}

#[tokio::test]
async fn a_missing_malformed_or_other_key_file_stops_the_start_with_a_clear_error() {
    let (app, ent) = TestApp::with_acme().await;
    app.add_member(&ent, "Zhang San", "139 0013 9001").await;
    app.wait_for_sms(MEMBER, 1).await;
    let key_file = app.key_file();
    let original = std::fs::read_to_string(&key_file).expect("the key file was created on first start");
    assert_eq!(original.trim().len(), 64, "256 bits in hexadecimal");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).expect("key file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "readable by its owner only");
    }
    assert!(!app.stored_bytes().await.windows(64).any(|w| w == original.trim().as_bytes()), "the key is not stored");

    // Lost: a new key file would be created, but the database was set up with the old one.
    std::fs::remove_file(&key_file).expect("removed");
    let error = app.start_another(|_| {}).await.err().expect("refused without the key file");
    assert!(error.contains("did not exist") && error.contains("Restore the key file"), "{error}");
    assert!(!key_file.exists(), "the new key file is not left in the way of the restored one");

    // Another key: refused.
    let other = "ab".repeat(32);
    std::fs::write(&key_file, &other).expect("written");
    let error = app.start_another(|_| {}).await.err().expect("refused with another key");
    assert!(error.contains("does not match this database"), "{error}");

    // Malformed, or unreadable (a directory in its place).
    std::fs::write(&key_file, "not a key\n").expect("written");
    let error = app.start_another(|_| {}).await.err().expect("refused with a malformed key file");
    assert!(error.contains("is malformed"), "{error}");
    std::fs::remove_file(&key_file).expect("removed");
    std::fs::create_dir(&key_file).expect("a directory");
    let error = app.start_another(|_| {}).await.err().expect("refused with an unreadable key file");
    assert!(error.contains("cannot read the key file"), "{error}");
    std::fs::remove_dir(&key_file).expect("removed");

    // The original file put back: the server starts, and the outbox still opens.
    std::fs::write(&key_file, &original).expect("restored");
    let again = app.start_another(|_| {}).await.expect("starts with the original key file");
    again.shutdown().await.expect("stops");
}

#[test]
fn the_key_file_defaults_to_beside_a_sqlite_database() {
    use std::path::PathBuf;
    use workgate::config::default_key_file;
    assert_eq!(
        default_key_file("sqlite:///var/lib/workgate/workgate.db"),
        PathBuf::from("/var/lib/workgate/workgate.key")
    );
    assert_eq!(default_key_file("sqlite://data/main.db?mode=rwc"), PathBuf::from("data/main.key"));
    assert_eq!(default_key_file("sqlite://workgate.db"), PathBuf::from("workgate.key"));
    assert_eq!(default_key_file("postgres://db.internal/workgate"), PathBuf::from("workgate.key"));
}

#[tokio::test]
async fn the_id_token_signing_key_is_kept_encrypted() {
    let app = TestApp::spawn().await;
    let jwks = app.request(reqwest::Method::GET, &paths::oidc_jwks(), None, None).await;
    jwks.assert_status(200);
    assert!(!jwks.body["keys"].as_array().expect("keys").is_empty(), "a signing key was made");
    let pool = app.db().await;
    let kept: Vec<String> =
        sqlx::query_scalar("SELECT private_pem FROM signing_keys").fetch_all(&pool).await.expect("signing keys");
    pool.close().await;
    assert!(!kept.is_empty());
    assert!(kept.iter().all(|k| k.starts_with("v1:") && !k.contains("PRIVATE KEY")), "{kept:?}");
    assert!(!app.stored_bytes().await.windows(11).any(|w| w == b"PRIVATE KEY"), "no private key in plaintext");
}
