//! The second relying-party library: Authlib (Python, from PyPI) runs the code flow against the
//! server (`tests/relying_parties/authlib_rp.py`). `.ci/run` installs Authlib; where Python or
//! Authlib is missing, the test says so and passes without running.

use crate::helpers::TestApp;
use crate::paths;
use serde_json::json;
use std::process::Command;

const PHONE: &str = "+8613900139001";
const REDIRECT: &str = "https://app.example.com/callback";

fn authlib_missing() -> Option<String> {
    match Command::new("python3").args(["-c", "import authlib, requests"]).output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        Err(e) => Some(format!("python3 cannot run: {e}")),
    }
}

#[tokio::test]
async fn authlib_runs_the_code_flow_against_the_server() {
    if let Some(reason) = authlib_missing() {
        eprintln!("SKIPPED: the Authlib relying party needs `pip install authlib requests` ({reason})");
        return;
    }
    let (app, ent) = TestApp::with_acme().await;
    let member = app.add_member(&ent, "Zhang San", PHONE).await;
    let created = app.post(&paths::apps(), &ent.key, json!({"name": "Python app", "redirect_uris": [REDIRECT]})).await;
    created.assert_status(201);

    let started = app.start_login(PHONE).await;
    let login_id = started.login_id();
    let code = app.code_for(PHONE, 2).await;
    let done = app.submit_code(&login_id, &code).await;
    assert_eq!(done.body["next"], "done", "{}", done.text);

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/relying_parties/authlib_rp.py");
    let args = [
        app.base.as_str(),
        created.body["client_id"].as_str().unwrap(),
        created.body["client_secret"].as_str().unwrap(),
        REDIRECT,
        done.body["session"]["access_token"].as_str().unwrap(),
        member["id"].as_str().unwrap(),
        PHONE,
    ];
    let out = tokio::process::Command::new("python3").arg(script).args(args).output().await.expect("python3 runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the Authlib relying party failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("every step passed"), "{stdout}");
}
