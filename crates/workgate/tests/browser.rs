//! End-to-end tests in real headless Chromium (Debian's `chromium` and `chromium-driver`, which
//! `.ci/run` installs), driven over WebDriver by `fantoccini`, against the real server. Skipped,
//! with the reason printed, only where Chromium or ChromeDriver is absent.
//!
//! Set `WORKGATE_SCREENSHOTS=<dir>` to save a screenshot of each page visited (the README's come
//! from here).

#[path = "api/helpers.rs"]
mod helpers;
#[path = "api/paths.rs"]
mod paths;
#[path = "common/postgres.rs"]
mod pg_schema;

use fantoccini::{Client, ClientBuilder, Locator};
use helpers::{TestApp, strings};
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const PHONE: &str = "+8613900139001";

struct Browser {
    client: Client,
    driver: Child,
}

impl Browser {
    /// A fresh headless Chromium, or `None` (with the reason printed) where it is not installed.
    async fn open(lang: &str) -> Option<Browser> {
        if !std::path::Path::new(CHROMIUM).exists() || !std::path::Path::new(CHROMEDRIVER).exists() {
            eprintln!("skipped: {CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().expect("profile dir").keep();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=414,900",
                    format!("--lang={lang}"), format!("--user-data-dir={}", profile.display()),
                ],
                "prefs": {"intl.accept_languages": lang},
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let url = format!("http://127.0.0.1:{port}");
        let mut last_error = None;
        for _ in 0..50 {
            match ClientBuilder::new(connector.clone()).capabilities(caps.clone()).connect(&url).await {
                Ok(client) => return Some(Browser { client, driver }),
                Err(e) => last_error = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not accept a session: {last_error:?}");
    }

    async fn shot(&self, name: &str) {
        if let Ok(dir) = std::env::var("WORKGATE_SCREENSHOTS") {
            let png = self.client.screenshot().await.expect("screenshot");
            std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).expect("screenshot written");
        }
    }

    /// The text of the first element matching `css`, waiting (up to 10 s) for it to appear: a
    /// click that submits a form returns before the next page has loaded.
    async fn text(&self, css: &str) -> String {
        // An element of the page being left can go stale between finding and reading it: find again.
        for _ in 0..20 {
            let found = self.client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await;
            if let Ok(element) = found
                && let Ok(text) = element.text().await
            {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let found = self.client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await;
        match found {
            Ok(element) => element.text().await.expect("text"),
            Err(e) => {
                let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
                let source = self.client.source().await.unwrap_or_default();
                panic!("{css} did not appear ({e}) on {url}: {source}");
            }
        }
    }

    async fn close(mut self) {
        let _ = self.client.close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The invitation link in the first SMS to `PHONE`.
async fn invitation_link(app: &TestApp) -> String {
    let sms = app.wait_for_sms(PHONE, 1).await.remove(0);
    let link = sms.body.split_whitespace().find(|w| w.contains("/i/")).expect("a link").to_string();
    // The link carries the configured public URL; the test server listens elsewhere.
    format!("{}/i/{}", app.base, link.rsplit("/i/").next().unwrap_or_default())
}

#[tokio::test]
async fn a_member_opens_the_invitation_signs_in_and_a_disable_ends_the_browser_session() {
    let (app, ent) = TestApp::with_acme().await;
    let member = app.add_member(&ent, "Zhang San", PHONE).await;
    let Some(b) = Browser::open("en").await else { return };
    let c = &b.client;

    c.goto(&invitation_link(&app).await).await.expect("invitation opens");
    assert!(b.text("main").await.contains("Acme"));
    b.shot("invitation").await;
    c.find(Locator::Css("a.button")).await.expect("sign-in link").click().await.expect("click");
    let phone = c.find(Locator::Id("phone")).await.expect("phone field");
    let hint = phone.attr("placeholder").await.expect("placeholder").unwrap_or_default();
    assert!(hint.ends_with("9001") && !hint.contains("13900139001"), "the invited number, masked: {hint}");
    b.shot("login").await;
    c.find(Locator::Css("form[action='/login'] button")).await.expect("send").click().await.expect("click");

    let code = app.code_for(PHONE, 2).await;
    c.find(Locator::Id("code")).await.expect("code field").send_keys(&code).await.expect("type");
    b.shot("code").await;
    c.find(Locator::Css("form[action='/login/code'] button")).await.expect("verify").click().await.expect("click");
    let signed_in = b.text("#signed-in").await;
    assert!(signed_in.contains(PHONE) && signed_in.contains("Acme"), "{signed_in}");
    b.shot("home").await;

    // The admin disables the member; the open page's next action is refused.
    let id = member["id"].as_str().unwrap();
    app.post(&paths::member_disable(id), &ent.key, json!({})).await.assert_status(200);
    c.refresh().await.expect("reload");
    assert!(c.current_url().await.expect("url").path().ends_with("/login"), "sent back to the sign-in page");
    b.close().await;
}

#[tokio::test]
async fn the_chinese_pages_render() {
    let (app, ent) = TestApp::with_acme().await;
    app.add_member(&ent, "张三", PHONE).await;
    let Some(b) = Browser::open("zh-CN").await else { return };
    let c = &b.client;
    c.goto(&format!("{}/login", app.base)).await.expect("login opens");
    assert_eq!(b.text("h1").await, "登录");
    assert!(b.text("button").await.contains("获取验证码"));
    b.shot("login-zh").await;
    c.find(Locator::Id("phone")).await.expect("phone").send_keys("13700137000").await.expect("type");
    c.find(Locator::Css("form[action='/login'] button")).await.expect("send").click().await.expect("click");
    assert!(b.text(".error").await.contains("该手机号未注册"));
    b.close().await;
}

/// Signs `phone` in through the login page of `b` (the number's `sms_before` messages already sent).
async fn sign_in_page(app: &TestApp, b: &Browser, phone: &str, sms_before: usize) {
    let c = &b.client;
    c.goto(&format!("{}/login", app.base)).await.expect("login opens");
    c.find(Locator::Id("phone")).await.expect("phone").send_keys(phone).await.expect("type");
    c.find(Locator::Css("form[action='/login'] button")).await.expect("send").click().await.expect("click");
    let code = app.code_for(phone, sms_before + 1).await;
    c.find(Locator::Id("code")).await.expect("code field").send_keys(&code).await.expect("type");
    c.find(Locator::Css("form[action='/login/code'] button")).await.expect("verify").click().await.expect("click");
    assert!(b.text("#signed-in").await.contains(phone), "signed in");
}

#[tokio::test]
async fn an_admin_adds_imports_and_disables_and_the_members_browser_is_signed_out() {
    let (app, ent) = TestApp::with_acme().await;
    let Some(admin) = Browser::open("en").await else { return };
    let Some(member) = Browser::open("en").await else { return };
    sign_in_page(&app, &admin, "+8613800138000", 0).await;
    let c = &admin.client;

    // Add a member from the console.
    c.goto(&format!("{}/admin/members", app.base)).await.expect("console opens");
    admin.shot("admin-members").await;
    c.find(Locator::Id("new-name")).await.expect("name").send_keys("Zhang San").await.expect("type");
    c.find(Locator::Id("new-phone")).await.expect("phone").send_keys("139 0013 9001").await.expect("type");
    c.find(Locator::Css("form[method='post'][action='/admin/members'] button"))
        .await
        .expect("add")
        .click()
        .await
        .expect("click");
    assert!(admin.text(".notice").await.contains("Member added"));
    let member_page = c.current_url().await.expect("url").to_string();

    // The new member signs in on their own browser.
    sign_in_page(&app, &member, PHONE, 1).await;

    // Import a CSV file with the file picker.
    let dir = tempfile::tempdir().expect("dir");
    let csv = dir.path().join("staff.csv");
    std::fs::write(
        &csv,
        "userid,name,phone,departments\nlisi,Li Si,13900139002,Engineering\nwangwu,Wang Wu,13900139003,Sales\n",
    )
    .expect("csv written");
    c.goto(&format!("{}/admin/import", app.base)).await.expect("import opens");
    c.find(Locator::Id("file")).await.expect("file input").send_keys(&csv.display().to_string()).await.expect("pick");
    c.find(Locator::Css("form#import button")).await.expect("import").click().await.expect("click");
    let summary = admin.text("#summary").await;
    assert!(summary.starts_with("2 created"), "{summary}");
    admin.shot("admin-import").await;
    let listed = app.get(&paths::members_query("q=wang"), &ent.key).await;
    assert_eq!(listed.body["items"][0]["name"], "Wang Wu");

    // Disable the member, through the confirmation.
    c.goto(&member_page).await.expect("member page");
    admin.shot("admin-member").await;
    c.find(Locator::Css("a[href$='action=disable']")).await.expect("disable").click().await.expect("click");
    c.find(Locator::Id("confirm")).await.expect("confirm").click().await.expect("click");
    assert!(admin.text(".notice").await.contains("disabled"));

    // The member's open page is refused at its next action.
    member.client.refresh().await.expect("reload");
    assert!(member.client.current_url().await.expect("url").path().ends_with("/login"));
    member.close().await;
    admin.close().await;
}

/// A company app on loopback: any request gets a page saying the callback was reached.
async fn company_app() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let body = "<!doctype html><title>Wiki</title><p id=\"app\">callback reached</p>";
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    });
    format!("http://127.0.0.1:{port}/callback")
}

#[tokio::test]
async fn a_member_signs_in_to_a_company_app_through_the_login_pages() {
    let (app, ent) = TestApp::with_acme().await;
    let redirect = company_app().await;
    let created = app.post(&paths::apps(), &ent.key, json!({"name": "Wiki", "redirect_uris": [redirect]})).await;
    created.assert_status(201);
    let client_id = created.body["client_id"].as_str().unwrap();
    let Some(b) = Browser::open("en").await else { return };
    let c = &b.client;

    // The app sends the browser to Workgate, which has no session yet: the login pages, then back.
    let verifier = "a-code-verifier-of-more-than-forty-three-characters-0123456789";
    let challenge = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
    };
    let authorize = format!(
        "{}?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid%20profile\
         &state=xyz&nonce=n1&code_challenge={challenge}&code_challenge_method=S256",
        app.url(&paths::oidc_authorize()),
        helpers::enc(&redirect)
    );
    c.goto(&authorize).await.expect("authorize opens");
    assert!(c.current_url().await.expect("url").path().ends_with("/login"));
    c.find(Locator::Id("phone")).await.expect("phone").send_keys("13800138000").await.expect("type");
    c.find(Locator::Css("form[action='/login'] button")).await.expect("send").click().await.expect("click");
    let code = app.code_for("+8613800138000", 1).await;
    c.find(Locator::Id("code")).await.expect("code field").send_keys(&code).await.expect("type");
    c.find(Locator::Css("form[action='/login/code'] button")).await.expect("verify").click().await.expect("click");
    assert_eq!(b.text("#app").await, "callback reached", "the browser arrived at the app");
    let landed = c.current_url().await.expect("url");
    assert!(landed.as_str().starts_with(&redirect), "{landed}");
    let params: std::collections::HashMap<String, String> = landed.query_pairs().into_owned().collect();
    assert_eq!(params["state"], "xyz");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", params["code"].as_str()),
        ("redirect_uri", redirect.as_str()),
        ("code_verifier", verifier),
        ("client_id", client_id),
        ("client_secret", created.body["client_secret"].as_str().unwrap()),
    ];
    let tokens = app.client.post(app.url(&paths::oidc_token())).form(&form).send().await.expect("token");
    assert_eq!(tokens.status().as_u16(), 200);

    // The app is listed in the console.
    c.goto(&format!("{}/admin/apps", app.base)).await.expect("apps page");
    assert!(b.text("table.apps").await.contains("Wiki"));
    b.shot("admin-apps").await;
    b.close().await;
}

/// Replaces the text of the input `id` on the page of `b`.
async fn retype(b: &Browser, id: &str, text: &str) {
    let field = b.client.find(Locator::Id(id)).await.expect("field");
    field.clear().await.expect("clear");
    field.send_keys(text).await.expect("type");
}

async fn click(b: &Browser, css: &str) {
    b.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.expect("click");
}

#[tokio::test]
async fn an_admin_fixes_a_name_and_the_member_keeps_both_departments() {
    let (app, ent) = TestApp::with_acme().await;
    let [eng, sales, ops] = app.add_departments(&ent, ["Engineering", "Sales", "Operations"]).await;
    let member = app
        .add_member_with(
            &ent,
            json!({"name": "Zhang Sna", "phone": PHONE, "email": "zs@acme.example", "departments": [eng, sales]}),
        )
        .await;
    let id = member["id"].as_str().unwrap();
    let Some(b) = Browser::open("en").await else { return };
    sign_in_page(&app, &b, "+8613800138000", 0).await;
    let c = &b.client;

    // The name only.
    c.goto(&format!("{}/admin/members/{id}", app.base)).await.expect("member page");
    retype(&b, "name", "Zhang San").await;
    click(&b, "form#edit-member button[type='submit']").await;
    assert_eq!(b.text(".notice").await, "Saved.");
    let stored = app.get(&paths::member(id), &ent.key).await.body;
    assert_eq!(stored["name"], "Zhang San");
    assert_eq!(strings(&stored["departments"]), vec![eng.clone(), sales.clone()], "both departments stay");
    assert_eq!(stored["email"], "zs@acme.example");

    // Then the departments: out of Sales, into Operations.
    // From a page without the last notice, so that the next one read is the next save's.
    c.goto(&format!("{}/admin/members/{id}", app.base)).await.expect("member page");
    click(&b, &format!("#departments-{sales}")).await;
    click(&b, &format!("#departments-{ops}")).await;
    click(&b, "form#edit-member button[type='submit']").await;
    assert_eq!(b.text(".notice").await, "Saved.");
    let stored = app.get(&paths::member(id), &ent.key).await.body;
    assert_eq!(strings(&stored["departments"]), vec![eng.clone(), ops.clone()]);
    assert_eq!(stored["name"], "Zhang San");

    // A new member in two departments from the add form.
    c.goto(&format!("{}/admin/members", app.base)).await.expect("members page");
    retype(&b, "new-name", "Li Si").await;
    retype(&b, "new-phone", "139 0013 9002").await;
    click(&b, &format!("#new-departments-{}", ent.root_department_id)).await;
    click(&b, &format!("#new-departments-{eng}")).await;
    click(&b, &format!("#new-departments-{sales}")).await;
    click(&b, "form#add-member button[type='submit']").await;
    assert!(b.text(".notice").await.contains("Member added"));
    let added = app.get(&paths::members_query("q=li%20si"), &ent.key).await.body["items"][0].clone();
    let mut departments = strings(&added["departments"]);
    departments.sort();
    let mut expected = vec![eng.clone(), sales.clone()];
    expected.sort();
    assert_eq!(departments, expected, "the root was unticked, Engineering and Sales ticked");
    b.close().await;
}

#[tokio::test]
async fn the_policy_app_and_department_forms_keep_what_the_admin_did_not_change() {
    let (app, ent) = TestApp::with_acme().await;
    let redirect = company_app().await;
    let created = app
        .post(
            &paths::apps(),
            &ent.key,
            json!({"name": "Wiki", "redirect_uris": [redirect, "https://wiki.example.com/cb"],
                   "post_logout_redirect_uris": ["https://wiki.example.com/bye"], "scopes": ["openid", "phone"]}),
        )
        .await;
    created.assert_status(201);
    let app_id = created.body["id"].as_str().unwrap();
    let eng = app.add_department(&ent, "Engineering", None).await;
    let backend = app.add_department(&ent, "Backend", Some(&eng)).await;
    let Some(b) = Browser::open("en").await else { return };
    sign_in_page(&app, &b, "+8613800138000", 0).await;
    // Set after the owner signed in: once new devices wait for approval, this browser would wait too.
    let mut policy = app.get(&paths::policy(), &ent.key).await.body;
    policy.as_object_mut().unwrap().remove("updated_at");
    policy["allowed_regions"] = json!(["CN", "HK"]);
    policy["require_device_approval"] = json!(true);
    app.request(reqwest::Method::PUT, &paths::policy(), Some(&ent.key), Some(policy)).await.assert_status(200);
    let c = &b.client;

    // Policy: one number changed; the regions and the ticks stay.
    c.goto(&format!("{}/admin/policy", app.base)).await.expect("policy page");
    retype(&b, "max_devices", "3").await;
    click(&b, "form#policy button[type='submit']").await;
    assert_eq!(b.text(".notice").await, "Policy saved.");
    let stored = app.get(&paths::policy(), &ent.key).await.body;
    assert_eq!(stored["max_devices"], 3);
    assert_eq!(stored["allowed_regions"], json!(["CN", "HK"]));
    assert_eq!(stored["require_device_approval"], true);

    // App: renamed; the URIs and scopes stay; then a scope is ticked.
    c.goto(&format!("{}/admin/apps/{app_id}", app.base)).await.expect("app page");
    retype(&b, "name", "Team Wiki").await;
    click(&b, "form#edit-app button[type='submit']").await;
    assert_eq!(b.text(".notice").await, "Saved.");
    let stored = app.get(&paths::app(app_id), &ent.key).await.body;
    assert_eq!(stored["name"], "Team Wiki");
    assert_eq!(stored["redirect_uris"], json!([redirect, "https://wiki.example.com/cb"]));
    assert_eq!(stored["post_logout_redirect_uris"], json!(["https://wiki.example.com/bye"]));
    assert_eq!(stored["scopes"], json!(["openid", "phone"]));
    c.goto(&format!("{}/admin/apps/{app_id}", app.base)).await.expect("app page");
    click(&b, "#scope-profile").await;
    click(&b, "form#edit-app button[type='submit']").await;
    assert_eq!(b.text(".notice").await, "Saved.");
    let stored = app.get(&paths::app(app_id), &ent.key).await.body;
    assert_eq!(stored["scopes"], json!(["openid", "profile", "phone"]));

    // Department: renamed, still under Engineering.
    c.goto(&format!("{}/admin/departments/{backend}", app.base)).await.expect("department page");
    retype(&b, "name", "Backend & Infra").await;
    click(&b, "form#edit-department button[type='submit']").await;
    assert_eq!(b.text(".notice").await, "Saved.");
    let stored = app.get(&paths::department(&backend), &ent.key).await.body;
    assert_eq!(stored["name"], "Backend & Infra");
    assert_eq!(stored["parent_id"], eng.as_str());
    b.close().await;
}
