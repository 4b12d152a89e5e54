//! The web pages over HTTP with a cookie-keeping client (the browser suite drives real Chromium;
//! these check the server side of the same flows quickly).

use crate::helpers::TestApp;
use crate::paths;
use reqwest::redirect::Policy;
use serde_json::json;

pub(super) const PHONE: &str = "+8613900139001";

pub(super) fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(Policy::none()).build().expect("client")
}

/// The value of a hidden form field in a page.
pub(super) fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).map(|i| i + marker.len()).unwrap_or_else(|| panic!("no field {name} in {html}"));
    html[start..].split('"').next().unwrap_or_default().to_string()
}

pub(super) async fn text(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

/// Signs in through the pages; returns the client holding the session cookies.
pub(super) async fn sign_in(app: &TestApp, sms_before: usize) -> reqwest::Client {
    let b = browser();
    let (_, page) = text(b.get(format!("{}/login", app.base)).send().await.unwrap()).await;
    let csrf = field(&page, "csrf");
    let form = [("csrf", csrf.as_str()), ("region", "CN"), ("phone", "139 0013 9001")];
    let (status, page) = text(b.post(format!("{}/login", app.base)).form(&form).send().await.unwrap()).await;
    assert_eq!(status, 200);
    let login_id = field(&page, "login_id");
    let code = app.code_for(PHONE, sms_before + 1).await;
    let form = [("csrf", csrf.as_str()), ("login_id", login_id.as_str()), ("code", code.as_str())];
    let resp = b.post(format!("{}/login/code", app.base)).form(&form).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303, "signed in and sent home");
    let cookies: Vec<String> =
        resp.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    let access = cookies.iter().find(|c| c.starts_with("wg_access=")).expect("session cookie");
    assert!(access.contains("HttpOnly") && access.contains("SameSite=Lax"), "{access}");
    b
}

#[tokio::test]
async fn a_member_signs_in_through_the_pages_and_sees_their_page() {
    let (app, ent) = TestApp::with_acme().await;
    app.add_member(&ent, "Zhang San", PHONE).await;
    let b = sign_in(&app, 1).await;
    let (status, page) = text(b.get(format!("{}/", app.base)).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(page.contains("Zhang San") && page.contains("Acme") && page.contains(PHONE), "{page}");
}

#[tokio::test]
async fn a_form_without_the_csrf_token_sends_nothing() {
    let (app, ent) = TestApp::with_acme().await;
    app.add_member(&ent, "Zhang San", PHONE).await;
    let b = browser();
    b.get(format!("{}/login", app.base)).send().await.unwrap();
    let form = [("csrf", "forged-token-forged-token-forged-token"), ("region", "CN"), ("phone", "13900139001")];
    let (_, page) = text(b.post(format!("{}/login", app.base)).form(&form).send().await.unwrap()).await;
    assert!(page.contains("The form expired"), "{page}");
    app.wait_for_sms(PHONE, 1).await;
    assert_eq!(app.sms_to(PHONE).len(), 1, "only the invitation, no code");
}

#[tokio::test]
async fn a_disabled_members_browser_session_is_refused_at_its_next_action() {
    let (app, ent) = TestApp::with_acme().await;
    let m = app.add_member(&ent, "Zhang San", PHONE).await;
    let b = sign_in(&app, 1).await;
    assert_eq!(b.get(format!("{}/", app.base)).send().await.unwrap().status().as_u16(), 200);
    app.disable_member(m["id"].as_str().unwrap(), &ent.key).await;
    let resp = b.get(format!("{}/", app.base)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(resp.headers()["location"], "/login");
}

#[tokio::test]
async fn errors_are_shown_in_the_persons_language() {
    let app = TestApp::spawn().await;
    app.enterprise("Acme", "13800138000").await;
    let b = browser();
    let (_, page) =
        text(b.get(format!("{}/login", app.base)).header("accept-language", "zh-CN,zh;q=0.9").send().await.unwrap())
            .await;
    assert!(page.contains("lang=\"zh-CN\"") && page.contains("获取验证码"), "{page}");
    let csrf = field(&page, "csrf");
    let form = [("csrf", csrf.as_str()), ("region", "CN"), ("phone", "13700137000")];
    let req = b.post(format!("{}/login", app.base)).header("accept-language", "zh-CN").form(&form);
    let (_, page) = text(req.send().await.unwrap()).await;
    assert!(page.contains("该手机号未注册"), "{page}");
    // The switch is remembered.
    let (_, page) = text(b.get(format!("{}/login?lang=en", app.base)).send().await.unwrap()).await;
    assert!(page.contains("Send code"));
    let (_, page) =
        text(b.get(format!("{}/login", app.base)).header("accept-language", "zh-CN").send().await.unwrap()).await;
    assert!(page.contains("Send code"), "the cookie from the switch wins over Accept-Language");
}

#[tokio::test]
async fn the_invitation_landing_leads_to_the_login_with_the_number_masked() {
    let (app, ent) = TestApp::with_acme().await;
    app.add_member(&ent, "Zhang San", PHONE).await;
    let sms = app.wait_for_sms(PHONE, 1).await.remove(0);
    let link = sms.body.split_whitespace().find(|w| w.contains("/i/")).unwrap();
    let token = link.rsplit("/i/").next().unwrap();
    let b = browser();
    let resp = b.get(format!("{}/i/{token}", app.base)).send().await.unwrap();
    assert_eq!(resp.headers()["referrer-policy"], "no-referrer");
    assert!(resp.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    let (_, page) = text(resp).await;
    assert!(page.contains("Acme") && page.contains("+86*******9001"), "{page}");
    let (_, login) = text(b.get(format!("{}/login?invitation={token}", app.base)).send().await.unwrap()).await;
    assert!(login.contains("placeholder=\"+86*******9001\""), "the number is hinted, masked: {login}");
    assert!(!login.contains("13900139001"), "and never shown whole: {login}");
    let (status, expired) = text(b.get(format!("{}/i/wgi_not-a-real-token", app.base)).send().await.unwrap()).await;
    assert_eq!(status, 410);
    assert!(expired.contains("This invitation has expired"));
}

#[tokio::test]
async fn the_dev_sms_page_shows_the_latest_messages() {
    let (app, ent) = TestApp::with_acme().await;
    app.add_member(&ent, "Zhang San", PHONE).await;
    app.wait_for_sms(PHONE, 1).await;
    let (status, page) = text(browser().get(format!("{}/dev/sms", app.base)).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(page.contains(PHONE) && page.contains("invited to join Acme"), "{page}");
}

#[tokio::test]
async fn the_console_is_for_admins_only_and_its_forms_need_the_csrf_token() {
    let (app, ent) = TestApp::with_acme().await;
    app.add_member(&ent, "Zhang San", PHONE).await;
    // A plain member is refused; a visitor without a session is sent to sign in.
    let member = sign_in(&app, 1).await;
    assert_eq!(member.get(format!("{}/admin/members", app.base)).send().await.unwrap().status().as_u16(), 403);
    let visitor = browser();
    let resp = visitor.get(format!("{}/admin/members", app.base)).send().await.unwrap();
    assert_eq!(resp.headers()["location"], "/login");
    // An admin whose form lacks the token changes nothing.
    let id =
        app.get(&paths::members_query("q=zhang"), &ent.key).await.body["items"][0]["id"].as_str().unwrap().to_string();
    app.patch_member(&id, &ent.key, json!({"role": "admin"})).await.assert_status(200);
    let form = [("csrf", "forged-token-forged-token-forged-token"), ("action", "depart")];
    member.post(format!("{}/admin/members/{id}/status", app.base)).form(&form).send().await.unwrap();
    assert_eq!(app.get_member(&id, &ent.key).await.body["status"], "active");
}

#[tokio::test]
async fn an_admin_manages_departments_from_the_console() {
    let (app, ent) = TestApp::with_acme().await;
    let engineering = app.add_department(&ent, "Engineering", None).await;
    let sales = app.add_department(&ent, "Sales", None).await;
    // The owner signs in through the pages.
    let (b, csrf) = owner_browser(&app).await;

    let (status, page) =
        text(b.get(format!("{}/admin/departments/{engineering}", app.base)).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(page.contains("Engineering"));
    let form = [("csrf", csrf.as_str()), ("name", "R&D"), ("parent_id", sales.as_str()), ("order", "0")];
    let resp = b.post(format!("{}/admin/departments/{engineering}", app.base)).form(&form).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let moved = app.get(&paths::department(&engineering), &ent.key).await;
    assert_eq!(moved.body["name"], "R&D");
    assert_eq!(moved.body["parent_id"], sales.as_str());
    // A non-empty department is not deleted; an empty one is.
    let form = [("csrf", csrf.as_str())];
    b.post(format!("{}/admin/departments/{sales}/delete", app.base)).form(&form).send().await.unwrap();
    app.get(&paths::department(&sales), &ent.key).await.assert_status(200);
    b.post(format!("{}/admin/departments/{engineering}/delete", app.base)).form(&form).send().await.unwrap();
    app.get(&paths::department(&engineering), &ent.key).await.assert_problem(404, "not_found");
}

/// The owner of `ent` (number 13800138000) signed in through the pages; answers the client and
/// its CSRF token.
pub(super) async fn owner_browser(app: &TestApp) -> (reqwest::Client, String) {
    let b = browser();
    let (_, page) = text(b.get(format!("{}/login", app.base)).send().await.unwrap()).await;
    let csrf = field(&page, "csrf");
    let form = [("csrf", csrf.as_str()), ("region", "CN"), ("phone", "13800138000")];
    let (_, page) = text(b.post(format!("{}/login", app.base)).form(&form).send().await.unwrap()).await;
    let login_id = field(&page, "login_id");
    let code = app.code_for("+8613800138000", 1).await;
    let form = [("csrf", csrf.as_str()), ("login_id", login_id.as_str()), ("code", code.as_str())];
    b.post(format!("{}/login/code", app.base)).form(&form).send().await.unwrap();
    (b, csrf)
}

#[tokio::test]
async fn an_admin_registers_an_app_in_the_console_and_sees_its_secret_once() {
    let (app, ent) = TestApp::with_acme().await;
    let (b, csrf) = owner_browser(&app).await;
    let form = [
        ("csrf", csrf.as_str()),
        ("name", "Wiki"),
        ("client_type", "confidential"),
        ("redirect_uris", "https://wiki.example.com/cb\r\n\r\nhttps://wiki.example.com/cb2\r\n"),
        ("post_logout_redirect_uris", ""),
        ("scopes", "openid"),
        ("scopes", "profile"),
    ];
    let (status, page) = text(b.post(format!("{}/admin/apps", app.base)).form(&form).send().await.unwrap()).await;
    assert_eq!(status, 200);
    let secret = page.split("id=\"new-secret\">").nth(1).and_then(|r| r.split('<').next()).expect("the secret, once");
    assert!(secret.starts_with("wgcs_"));
    let listed = app.get(&paths::apps(), &ent.key).await;
    let apps = listed.body["items"].as_array().unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0]["redirect_uris"], json!(["https://wiki.example.com/cb", "https://wiki.example.com/cb2"]));
    assert_eq!(apps[0]["scopes"], json!(["openid", "profile"]), "the ticked scopes, no more");
    let (_, page) = text(b.get(format!("{}/admin/apps", app.base)).send().await.unwrap()).await;
    assert!(page.contains("Wiki") && !page.contains(secret), "a reload does not show the secret again");

    // A bad redirect URI is explained and registers nothing.
    let form = [
        ("csrf", csrf.as_str()),
        ("name", "Bad"),
        ("client_type", "public"),
        ("redirect_uris", "http://evil.example.com/"),
    ];
    let resp = b.post(format!("{}/admin/apps", app.base)).form(&form).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert!(resp.headers()["location"].to_str().unwrap().contains("notice="));
    assert_eq!(app.count("apps").await, 1);

    let id = apps[0]["id"].as_str().unwrap();
    let form = [("csrf", csrf.as_str())];
    let (status, page) =
        text(b.post(format!("{}/admin/apps/{id}/secret", app.base)).form(&form).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"new-secret\">wgcs_") && !page.contains(secret));
    b.post(format!("{}/admin/apps/{id}/delete", app.base)).form(&form).send().await.unwrap();
    assert_eq!(app.count("apps").await, 0);
}
