//! The third relying-party library: panva's openid-client (npm, v6, strict about the protocol)
//! runs the code flow against the server (`tests/relying_parties/openid_client_rp.mjs`): a
//! confidential app with `client_secret_basic` and `client_secret_post`, a public app, userinfo,
//! refresh, introspection, revocation, logout, `prompt=none`, `prompt=login` and `max_age`.
//! `.ci/run` installs it (`npm ci` in `tests/relying_parties`); where Node or the module is
//! missing, the test says so and passes without running.

use super::helpers::TestApp;
use crate::paths;
use serde_json::json;
use std::process::Command;

const PHONE: &str = "+8613900139001";
const REDIRECT: &str = "https://app.example.com/callback";
const LOGOUT_BACK: &str = "https://app.example.com/signed-out";
const RELYING_PARTIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/relying_parties");

fn openid_client_missing() -> Option<String> {
    let probe = "import('openid-client').then(() => {}, (e) => { console.error(e.message); process.exit(1); })";
    match Command::new("node").current_dir(RELYING_PARTIES).args(["-e", probe]).output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        Err(e) => Some(format!("node cannot run: {e}")),
    }
}

#[tokio::test]
async fn openid_client_runs_the_code_flow_against_the_server() {
    if let Some(reason) = openid_client_missing() {
        eprintln!(
            "SKIPPED: the openid-client relying party needs Node and \
             `npm ci --prefix crates/workgate/tests/relying_parties` ({reason})"
        );
        return;
    }
    let (app, ent) = TestApp::with_acme().await;
    let member = app.add_member(&ent, "Zhang San", PHONE).await;
    let confidential = app
        .post(
            &paths::apps(),
            &ent.key,
            json!({"name": "Node app", "redirect_uris": [REDIRECT], "post_logout_redirect_uris": [LOGOUT_BACK]}),
        )
        .await;
    confidential.assert_status(201);
    let public = app
        .post(
            &paths::apps(),
            &ent.key,
            json!({"name": "Node SPA", "client_type": "public", "redirect_uris": [REDIRECT]}),
        )
        .await;
    public.assert_status(201);
    assert!(public.body.get("client_secret").is_none_or(|s| s.is_null()), "{}", public.text);

    let started = app.start_login(PHONE).await;
    started.assert_status(200);
    let login_id = started.login_id();
    let code = app.code_for(PHONE, 2).await;
    let done = app.submit_code(&login_id, &code).await;
    assert_eq!(done.body["next"], "done", "{}", done.text);

    let script = format!("{RELYING_PARTIES}/openid_client_rp.mjs");
    let args = [
        app.base.as_str(),
        confidential.body["client_id"].as_str().unwrap(),
        confidential.body["client_secret"].as_str().unwrap(),
        public.body["client_id"].as_str().unwrap(),
        REDIRECT,
        LOGOUT_BACK,
        done.body["session"]["access_token"].as_str().unwrap(),
        member["id"].as_str().unwrap(),
        PHONE,
    ];
    let out = tokio::process::Command::new("node")
        .current_dir(RELYING_PARTIES)
        .arg(&script)
        .args(args)
        .output()
        .await
        .expect("node runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the openid-client relying party failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("every step passed"), "{stdout}");
    println!("{stdout}");
}
