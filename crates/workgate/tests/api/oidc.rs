//! OpenID Connect: a real relying-party library (the `openidconnect` crate) runs the code flow
//! against the server, the browser part going through the Enterprise Login pages; then the
//! negative paths and the races, over plain HTTP.

use crate::helpers::{TestApp, TestEnterprise};
use crate::paths;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreTokenIntrospectionResponse};
use openidconnect::{
    AccessToken, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IntrospectionUrl, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenIntrospectionResponse, TokenResponse,
};
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use workgate_domain::clock::ManualClock;

pub(crate) const PHONE: &str = "+8613900139001";
pub(crate) const REDIRECT: &str = "https://app.example.com/callback";
const LOGOUT_BACK: &str = "https://app.example.com/signed-out";

/// A cookie-keeping client that does not follow redirects: the person's browser.
pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(Policy::none()).build().expect("client")
}

pub(crate) async fn register_app(app: &TestApp, ent: &TestEnterprise, body: Value) -> Value {
    let created = app.post(&paths::apps(), &ent.key, body).await;
    created.assert_status(201);
    created.body
}

pub(crate) async fn confidential_app(app: &TestApp, ent: &TestEnterprise) -> (String, String) {
    let created = register_app(
        app,
        ent,
        json!({"name": "Wiki", "redirect_uris": [REDIRECT], "post_logout_redirect_uris": [LOGOUT_BACK]}),
    )
    .await;
    (created["client_id"].as_str().unwrap().to_string(), created["client_secret"].as_str().unwrap().to_string())
}

pub(crate) fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).map(|i| i + marker.len()).unwrap_or_else(|| panic!("no field {name} in {html}"));
    html[start..].split('"').next().unwrap_or_default().to_string()
}

pub(crate) fn location(resp: &reqwest::Response) -> String {
    resp.headers().get("location").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

/// The query parameters of a URL.
pub(crate) fn query_of(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url).expect("absolute URL").query_pairs().into_owned().collect()
}

/// Follows an authorization URL in `b` through the Enterprise Login pages (code from the SMS
/// outbox); answers where the browser is finally sent back to.
pub(crate) async fn browse_to_callback(
    app: &TestApp,
    b: &reqwest::Client,
    authorize_url: &str,
    sms_before: usize,
) -> String {
    let resp = b.get(authorize_url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303, "no session yet: to the login");
    assert_eq!(location(&resp), "/login");
    let page = b.get(format!("{}/login", app.base)).send().await.unwrap().text().await.unwrap();
    let csrf = field(&page, "csrf");
    let form = [("csrf", csrf.as_str()), ("region", "CN"), ("phone", PHONE)];
    let page = b.post(format!("{}/login", app.base)).form(&form).send().await.unwrap().text().await.unwrap();
    let login_id = field(&page, "login_id");
    let code = app.code_for(PHONE, sms_before + 1).await;
    let form = [("csrf", csrf.as_str()), ("login_id", login_id.as_str()), ("code", code.as_str())];
    let resp = b.post(format!("{}/login/code", app.base)).form(&form).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "a page that continues to the waiting request");
    let page = resp.text().await.unwrap();
    let target = page
        .split("content=\"0;url=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no refresh in {page}"))
        .replace("&amp;", "&");
    assert!(target.starts_with("/oidc/authorize?"), "{target}");
    let resp = b.get(app.url(&target)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    location(&resp)
}

/// A member session in a browser, made through the JSON login (quicker than the pages).
pub(crate) async fn signed_in_browser(app: &TestApp, phone: &str, sms_before: usize) -> reqwest::Client {
    let done = app.sign_in(phone, sms_before).await;
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let base: url::Url = app.base.parse().unwrap();
    jar.add_cookie_str(&format!("wg_access={}; Path=/", done["session"]["access_token"].as_str().unwrap()), &base);
    reqwest::Client::builder().cookie_provider(jar).redirect(Policy::none()).build().unwrap()
}

pub(crate) fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(workgate_domain::secret::random_bytes::<32>());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

pub(crate) fn authorize_path(client_id: &str, challenge: &str, extra: &str) -> String {
    format!(
        "{}?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid%20profile%20phone\
         &state=st4te&nonce=n0nce&code_challenge={challenge}&code_challenge_method=S256{extra}",
        paths::oidc_authorize(),
        crate::helpers::enc(REDIRECT)
    )
}

/// A confidential app, a browser signed in as `PHONE` (who had one SMS before), and a code issued
/// to the app for it with a fresh PKCE pair.
struct CodeIssued {
    client_id: String,
    secret: String,
    b: reqwest::Client,
    verifier: String,
    code: String,
}

async fn code_issued(app: &TestApp, ent: &TestEnterprise) -> CodeIssued {
    let (client_id, secret) = confidential_app(app, ent).await;
    let b = signed_in_browser(app, PHONE, 1).await;
    let (verifier, challenge) = pkce();
    let code = code_for(app, &b, &client_id, &challenge).await;
    CodeIssued { client_id, secret, b, verifier, code }
}

/// A code for the member signed in in `b`.
pub(crate) async fn code_for(app: &TestApp, b: &reqwest::Client, client_id: &str, challenge: &str) -> String {
    let resp = b.get(format!("{}{}", app.base, authorize_path(client_id, challenge, ""))).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303, "{}", resp.text().await.unwrap_or_default());
    let back = location(&resp);
    assert!(back.starts_with(REDIRECT), "{back}");
    query_of(&back)["code"].clone()
}

pub(crate) async fn token_request(app: &TestApp, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = app.client.post(app.url(&paths::oidc_token())).form(form).send().await.unwrap();
    let status = resp.status().as_u16();
    assert_eq!(resp.headers().get("cache-control").map(|v| v.to_str().unwrap()), Some("no-store"));
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn exchange(app: &TestApp, id: &str, secret: &str, code: &str, verifier: &str) -> (u16, Value) {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
        ("client_id", id),
        ("client_secret", secret),
    ];
    token_request(app, &form).await
}

pub(crate) async fn refresh(app: &TestApp, id: &str, secret: &str, token: &str) -> (u16, Value) {
    let form =
        [("grant_type", "refresh_token"), ("refresh_token", token), ("client_id", id), ("client_secret", secret)];
    token_request(app, &form).await
}

pub(crate) async fn introspect(app: &TestApp, id: &str, secret: &str, token: &str) -> Value {
    let resp = app
        .client
        .post(app.url(&paths::oidc_introspect()))
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.unwrap()
}

async fn userinfo(app: &TestApp, token: &str) -> reqwest::Response {
    app.client.get(app.url(&paths::oidc_userinfo())).bearer_auth(token).send().await.unwrap()
}

/// The claims of a JWT, unverified (the verification is the library's, in the first test).
pub(crate) fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}

#[tokio::test]
async fn a_relying_party_library_runs_the_whole_code_flow() {
    let (app, ent) = TestApp::with_acme().await;
    let member = app.add_member(&ent, "Zhang San", PHONE).await;
    let (client_id, secret) = confidential_app(&app, &ent).await;

    let http = openidconnect::reqwest::Client::builder()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &http)
        .await
        .expect("discovery");
    let rp = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client_id.clone()),
        Some(ClientSecret::new(secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap())
    .set_introspection_url(IntrospectionUrl::new(app.url(&paths::oidc_introspect())).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, state, nonce) = rp
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("phone".into()))
        .set_pkce_challenge(challenge)
        .url();

    let b = browser();
    let callback = browse_to_callback(&app, &b, authorize_url.as_str(), 1).await;
    assert!(callback.starts_with(REDIRECT), "{callback}");
    let params = query_of(&callback);
    assert_eq!(&params["state"], state.secret());
    assert_eq!(params["iss"], app.base, "RFC 9207 names the issuer");

    let tokens = rp
        .exchange_code(AuthorizationCode::new(params["code"].clone()))
        .expect("token endpoint")
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchanged");
    let id_token = tokens.id_token().expect("an ID token");
    let claims =
        id_token.claims(&rp.id_token_verifier(), &nonce).expect("signature, issuer, audience and nonce check out");
    assert_eq!(claims.subject().as_str(), member["id"].as_str().unwrap());
    assert_eq!(claims.phone_number().map(|p| p.as_str()), Some(PHONE));
    let raw = jwt_claims(&id_token.to_string());
    assert_eq!(raw["enterprise_id"], ent.id);
    assert_eq!(raw["userid"], member["userid"]);
    assert_eq!(raw["name"], "Zhang San");
    assert_eq!(raw["departments"], member["departments"]);
    assert!(raw["auth_time"].as_i64().is_some() && raw["at_hash"].as_str().is_some(), "{raw}");

    let info: Value = userinfo(&app, tokens.access_token().secret()).await.json().await.unwrap();
    assert_eq!(info["sub"], member["id"]);
    assert_eq!(info["phone_number"], PHONE);
    assert_eq!(info["enterprise_id"], ent.id);

    // Refresh rotates: the new tokens work, the used refresh token is refused and ends the family.
    let first_refresh = tokens.refresh_token().expect("a refresh token").clone();
    let refreshed = rp
        .exchange_refresh_token(&first_refresh)
        .expect("token endpoint")
        .request_async(&http)
        .await
        .expect("refreshed");
    let introspected: CoreTokenIntrospectionResponse =
        rp.introspect(refreshed.access_token()).request_async(&http).await.unwrap();
    assert!(introspected.active());
    assert!(rp.exchange_refresh_token(&first_refresh).unwrap().request_async(&http).await.is_err(), "reuse refused");
    let introspected = rp.introspect(refreshed.access_token()).request_async(&http).await.unwrap();
    assert!(!introspected.active(), "reusing a refresh token revokes the grant");

    // Revocation (RFC 7009) of a fresh grant's refresh token ends its access token too.
    let (verifier, challenge) = pkce();
    let code = code_for(&app, &b, &client_id, &challenge).await;
    let (status, fresh) = exchange(&app, &client_id, &secret, &code, &verifier).await;
    assert_eq!(status, 200, "{fresh}");
    let access = AccessToken::new(fresh["access_token"].as_str().unwrap().into());
    assert!(rp.introspect(&access).request_async(&http).await.unwrap().active());
    // (The library sends revocations only over https, so this one goes by hand over loopback.)
    let resp = app
        .client
        .post(app.url(&paths::oidc_revoke()))
        .basic_auth(&client_id, Some(&secret))
        .form(&[("token", fresh["refresh_token"].as_str().unwrap()), ("token_type_hint", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(!rp.introspect(&access).request_async(&http).await.unwrap().active());
    assert_eq!(userinfo(&app, access.secret()).await.status().as_u16(), 401);
}

#[tokio::test]
async fn discovery_and_jwks_describe_what_the_server_does() {
    let app = TestApp::spawn().await;
    let doc: Value = app.client.get(app.url(&paths::discovery())).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["issuer"], app.base);
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(doc["id_token_signing_alg_values_supported"], json!(["RS256", "ES256"]));
    for endpoint in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "introspection_endpoint",
        "revocation_endpoint",
        "end_session_endpoint",
    ] {
        assert!(doc[endpoint].as_str().unwrap().starts_with(&app.base), "{endpoint}");
    }
    let jwks: Value = app.client.get(app.url(&paths::oidc_jwks())).send().await.unwrap().json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "one generation: its RSA key and its P-256 key");
    assert_eq!((keys[0]["kty"].as_str(), keys[0]["alg"].as_str()), (Some("RSA"), Some("RS256")));
    assert_eq!((keys[1]["kty"].as_str(), keys[1]["alg"].as_str()), (Some("EC"), Some("ES256")));
    assert_eq!(keys[1]["kid"], format!("{}-es", keys[0]["kid"].as_str().unwrap()));
    assert!(keys.iter().all(|k| k.get("d").is_none()), "no private part is published");
}

#[tokio::test]
async fn a_wrong_redirect_uri_gets_an_error_page_and_no_redirect() {
    let (app, ent) = TestApp::with_acme().await;
    let (client_id, _) = confidential_app(&app, &ent).await;
    let (_, challenge) = pkce();
    let b = browser();
    for redirect in
        ["https://evil.example.com/callback", "https://app.example.com/callback/extra", "https://app.example.com/"]
    {
        let path = authorize_path(&client_id, &challenge, "")
            .replace(&crate::helpers::enc(REDIRECT), &crate::helpers::enc(redirect));
        let resp = b.get(app.url(&path)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{redirect}");
        assert!(resp.headers().get("location").is_none());
        assert!(resp.text().await.unwrap().contains("redirect_uri"));
    }
    let resp = b
        .get(format!("{}{}", app.base, authorize_path("app_00000000000000000000000000000000", &challenge, "")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.headers().get("location").is_none());
}

#[tokio::test]
async fn missing_or_plain_pkce_is_sent_back_to_the_app_as_invalid_request() {
    let (app, ent) = TestApp::with_acme().await;
    let (client_id, _) = confidential_app(&app, &ent).await;
    let b = browser();
    let (_, challenge) = pkce();
    let cases = [
        authorize_path(&client_id, &challenge, "")
            .replace(&format!("&code_challenge={challenge}&code_challenge_method=S256"), ""),
        authorize_path(&client_id, &challenge, "").replace("code_challenge_method=S256", "code_challenge_method=plain"),
        authorize_path(&client_id, "short", ""),
    ];
    for path in cases {
        let resp = b.get(app.url(&path)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 303, "{path}");
        let back = query_of(&location(&resp));
        assert_eq!(back["error"], "invalid_request", "{path}");
        assert_eq!(back["state"], "st4te");
    }
    let resp = b
        .get(format!("{}{}", app.base, authorize_path(&client_id, &challenge, "").replace("scope=openid%20", "scope=")))
        .send()
        .await
        .unwrap();
    assert_eq!(query_of(&location(&resp))["error"], "invalid_scope");
    // No session and prompt=none: the app hears at once that a login is needed.
    let resp =
        b.get(format!("{}{}", app.base, authorize_path(&client_id, &challenge, "&prompt=none"))).send().await.unwrap();
    assert_eq!(query_of(&location(&resp))["error"], "login_required");
    assert_eq!(app.count("oidc_codes").await, 0);
}

#[tokio::test]
async fn a_code_works_once_and_a_replay_revokes_what_it_gave() {
    let (app, ent) = TestApp::with_acme().await;
    app.add_member(&ent, "Zhang San", PHONE).await;
    let CodeIssued { client_id, secret, b: _, verifier, code } = code_issued(&app, &ent).await;

    let (wrong_verifier, _) = pkce();
    let (status, body) = exchange(&app, &client_id, &secret, &code, &wrong_verifier).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "a wrong verifier");
    let (status, first) = exchange(&app, &client_id, &secret, &code, &verifier).await;
    assert_eq!(status, 200, "{first}");
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(introspect(&app, &client_id, &secret, access).await["active"], true);

    let (status, body) = exchange(&app, &client_id, &secret, &code, &verifier).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(introspect(&app, &client_id, &secret, access).await["active"], false, "the replay revoked the grant");
    let (status, _) = refresh(&app, &client_id, &secret, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_code_is_refused_to_another_client_after_expiry_and_with_a_wrong_secret() {
    let clock = Arc::new(ManualClock::default());
    let (app, ent) = TestApp::acme_on(clock.clone()).await;
    app.add_member(&ent, "Zhang San", PHONE).await;
    let (client_id, secret) = confidential_app(&app, &ent).await;
    let (other_id, other_secret) = confidential_app(&app, &ent).await;
    let b = signed_in_browser(&app, PHONE, 1).await;
    let (verifier, challenge) = pkce();
    let code = code_for(&app, &b, &client_id, &challenge).await;

    let (status, body) = exchange(&app, &other_id, &other_secret, &code, &verifier).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "another client's code");
    let (status, body) = exchange(&app, &client_id, "wgcs_wrong", &code, &verifier).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "https://app.example.com/other"),
        ("code_verifier", verifier.as_str()),
        ("client_id", client_id.as_str()),
        ("client_secret", secret.as_str()),
    ];
    assert_eq!(token_request(&app, &form).await.1["error"], "invalid_grant", "another redirect_uri");

    clock.advance(Duration::from_secs(61));
    let (status, body) = exchange(&app, &client_id, &secret, &code, &verifier).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "an expired code");
    assert_eq!(app.count("oidc_grants").await, 0);
}

#[tokio::test]
async fn a_member_of_another_enterprise_gets_an_error_page_and_no_code() {
    let app = TestApp::spawn().await;
    let acme = app.enterprise("Acme", "13800138000").await;
    let other = app.enterprise("Other Co", "13700137000").await;
    app.add_member(&other, "Li Si", PHONE).await;
    let (client_id, _) = confidential_app(&app, &acme).await;
    let b = signed_in_browser(&app, PHONE, 1).await;
    let (_, challenge) = pkce();
    let resp = b.get(format!("{}{}", app.base, authorize_path(&client_id, &challenge, ""))).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert!(resp.headers().get("location").is_none());
    let page = resp.text().await.unwrap();
    assert!(page.contains("Wiki"), "{page}");
    assert!(!page.contains("Acme"), "the app's enterprise is not named to a member of another one: {page}");
    assert_eq!(app.count("oidc_codes").await, 0);
}

#[tokio::test]
async fn disabling_a_member_makes_their_app_tokens_inactive_at_once() {
    let (app, ent) = TestApp::with_acme().await;
    let member = app.add_member(&ent, "Zhang San", PHONE).await;
    let CodeIssued { client_id, secret, b: _, verifier, code } = code_issued(&app, &ent).await;
    let (status, tokens) = exchange(&app, &client_id, &secret, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&app, access).await.status().as_u16(), 200);

    let id = member["id"].as_str().unwrap();
    app.disable_member(id, &ent.key).await.assert_status(200);
    assert_eq!(introspect(&app, &client_id, &secret, access).await, json!({"active": false}));
    let resp = userinfo(&app, access).await;
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    let refreshed = refresh(&app, &client_id, &secret, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refreshed.1["error"], "invalid_grant");
    // Enabling the member again does not bring the old tokens back.
    app.post(&paths::member_enable(id), &ent.key, json!({})).await.assert_status(200);
    assert_eq!(introspect(&app, &client_id, &secret, access).await["active"], false);

    // Admins see both sessions, the device's and the app's, and why they ended.
    let sessions = app.get(&paths::member_sessions(id), &ent.key).await;
    sessions.assert_status(200);
    let items = sessions.body["items"].as_array().unwrap();
    let kinds: Vec<&str> = items.iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["app", "device"], "newest first: {items:?}");
    assert_eq!(items[0]["holder_name"], "Wiki");
    assert_eq!(items[0]["holder_id"], client_id.as_str());
    assert!(items.iter().all(|s| s["ended_reason"] == "disabled" && s["ended_at"].is_string()), "{items:?}");
}

#[tokio::test]
async fn parallel_redemptions_of_one_code_and_refreshes_of_one_token_succeed_once() {
    let (app, ent) = TestApp::with_acme().await;
    app.add_member(&ent, "Zhang San", PHONE).await;
    let CodeIssued { client_id, secret, b, verifier, code } = code_issued(&app, &ent).await;
    let outcomes = futures_join(10, || exchange(&app, &client_id, &secret, &code, &verifier)).await;
    assert_eq!(outcomes.iter().filter(|(s, _)| *s == 200).count(), 1, "{outcomes:?}");
    assert_eq!(app.count("oidc_grants").await, 1);

    let (verifier, challenge) = pkce();
    let code = code_for(&app, &b, &client_id, &challenge).await;
    let (_, tokens) = exchange(&app, &client_id, &secret, &code, &verifier).await;
    let token = tokens["refresh_token"].as_str().unwrap();
    let outcomes = futures_join(10, || refresh(&app, &client_id, &secret, token)).await;
    assert_eq!(outcomes.iter().filter(|(s, _)| *s == 200).count(), 1, "{outcomes:?}");
}

/// Runs `n` copies of a request at once.
async fn futures_join<F, Fut, T>(n: usize, make: F) -> Vec<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    futures::future::join_all((0..n).map(|_| make())).await
}

#[tokio::test]
async fn a_public_client_uses_pkce_without_a_secret() {
    let (app, ent) = TestApp::with_acme().await;
    app.add_member(&ent, "Zhang San", PHONE).await;
    let created = register_app(
        &app,
        &ent,
        json!({"name": "SPA", "client_type": "public", "redirect_uris": [REDIRECT], "scopes": ["openid"]}),
    )
    .await;
    assert!(created.get("client_secret").is_none());
    let client_id = created["client_id"].as_str().unwrap();
    let b = signed_in_browser(&app, PHONE, 1).await;
    let (_, challenge) = pkce();
    let resp = b.get(format!("{}{}", app.base, authorize_path(client_id, &challenge, ""))).send().await.unwrap();
    assert_eq!(query_of(&location(&resp))["error"], "invalid_scope", "phone and profile are not this app's");
    let (verifier, challenge) = pkce();
    let path = authorize_path(client_id, &challenge, "").replace("scope=openid%20profile%20phone", "scope=openid");
    let resp = b.get(app.url(&path)).send().await.unwrap();
    let code = query_of(&location(&resp))["code"].clone();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
        ("client_id", client_id),
    ];
    let (status, tokens) = token_request(&app, &form).await;
    assert_eq!(status, 200, "{tokens}");
    let claims = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert!(claims.get("phone_number").is_none() && claims.get("name").is_none(), "openid alone: {claims}");
    assert_eq!(claims["nonce"], "n0nce");
}

#[tokio::test]
async fn signing_keys_rotate_with_the_next_key_published_before_it_signs() {
    let clock = Arc::new(ManualClock::default());
    let (app, ent) = TestApp::acme_on(clock.clone()).await;
    app.add_member(&ent, "Zhang San", PHONE).await;
    let (client_id, secret) = confidential_app(&app, &ent).await;
    // The RSA kids (each generation also publishes its P-256 key as `<kid>-es`, rotating with it).
    let kids = || async {
        let jwks: Value = app.client.get(app.url(&paths::oidc_jwks())).send().await.unwrap().json().await.unwrap();
        let all: Vec<String> =
            jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_string()).collect();
        let rsa: Vec<String> = all.iter().filter(|k| !k.ends_with("-es")).cloned().collect();
        assert!(rsa.iter().all(|k| all.contains(&format!("{k}-es"))), "each generation's P-256 key beside it: {all:?}");
        rsa
    };
    // Each signing signs in again: the clock moves by days, past any session's life.
    let (app, client_id, secret) = (&app, client_id.as_str(), secret.as_str());
    let signer = |sms_before: usize| async move {
        let b = signed_in_browser(app, PHONE, sms_before).await;
        let (verifier, challenge) = pkce();
        let code = code_for(app, &b, client_id, &challenge).await;
        let (status, tokens) = exchange(app, client_id, secret, &code, &verifier).await;
        assert_eq!(status, 200, "{tokens}");
        let header = tokens["id_token"].as_str().unwrap().split('.').next().unwrap().to_string();
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        header["kid"].as_str().unwrap().to_string()
    };
    let first = kids().await;
    assert_eq!(first.len(), 1);
    assert_eq!(signer(1).await, first[0]);

    // A day before the rotation is due, the next key is published but does not sign yet.
    clock.advance(Duration::from_secs(29 * 86_400 + 60));
    let both = kids().await;
    assert_eq!(both.len(), 2, "{both:?}");
    assert_eq!(signer(2).await, first[0]);
    // Once due, the new key signs; the old one stays published for tokens it signed.
    clock.advance(Duration::from_secs(86_400));
    let next = both.iter().find(|k| **k != first[0]).unwrap().clone();
    assert_eq!(signer(3).await, next);
    assert!(kids().await.contains(&first[0]));
    // At the next rotation, a third key is published first; the first key goes once it signs.
    clock.advance(Duration::from_secs(30 * 86_400));
    let three = kids().await;
    assert_eq!(three.len(), 3, "{three:?}");
    assert_eq!(signer(4).await, next);
    clock.advance(Duration::from_secs(86_400));
    let third = three.iter().find(|k| **k != first[0] && **k != next).unwrap().clone();
    assert_eq!(signer(5).await, third);
    assert_eq!(kids().await, vec![third, next], "newest first; the first key is gone");
    assert_eq!(app.count("signing_keys").await, 3);
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_browser_session_and_returns_to_the_app() {
    let (app, ent) = TestApp::with_acme().await;
    app.add_member(&ent, "Zhang San", PHONE).await;
    let CodeIssued { client_id, secret, b, verifier, code } = code_issued(&app, &ent).await;
    let (_, tokens) = exchange(&app, &client_id, &secret, &code, &verifier).await;
    let hint = tokens["id_token"].as_str().unwrap();

    // Without a hint, a bare GET only asks to confirm.
    let resp = b.get(app.url(&paths::oidc_logout())).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(b.get(format!("{}/", app.base)).send().await.unwrap().status().as_u16(), 200, "still signed in");
    // An unregistered return address is refused.
    let resp = b
        .get(format!(
            "{}?id_token_hint={hint}&post_logout_redirect_uri={}",
            app.url(&paths::oidc_logout()),
            crate::helpers::enc("https://evil.example.com/")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let resp = b
        .get(format!(
            "{}?id_token_hint={hint}&post_logout_redirect_uri={}&state=bye",
            app.url(&paths::oidc_logout()),
            crate::helpers::enc(LOGOUT_BACK)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(location(&resp), format!("{LOGOUT_BACK}?state=bye"));
    let resp = b.get(format!("{}/", app.base)).send().await.unwrap();
    assert_eq!(location(&resp), "/login", "the browser session ended");
}

#[tokio::test]
async fn apps_are_managed_by_admins_with_the_secret_shown_once() {
    let (app, ent) = TestApp::with_acme().await;
    let other = app.enterprise("Other Co", "13700137000").await;
    let created = register_app(&app, &ent, json!({"name": "Wiki", "redirect_uris": [REDIRECT]})).await;
    let id = created["id"].as_str().unwrap();
    let secret = created["client_secret"].as_str().unwrap();
    assert!(secret.starts_with("wgcs_"));
    assert_eq!(created["client_type"], "confidential");
    assert_eq!(created["scopes"], json!(["openid", "profile", "email", "phone"]));
    let db = app.db().await;
    let stored: String = sqlx::query_scalar("SELECT secret_hash FROM apps").fetch_one(&db).await.unwrap();
    assert!(!stored.contains(secret) && stored.len() == 64, "only a hash is stored");

    let got = app.get(&paths::app(id), &ent.key).await;
    got.assert_status(200);
    assert!(got.body.get("client_secret").is_none());
    assert_eq!(app.get(&paths::apps(), &ent.key).await.body["items"].as_array().unwrap().len(), 1);
    let patched = app.patch(&paths::app(id), &ent.key, json!({"name": "Team Wiki", "scopes": ["openid"]})).await;
    patched.assert_status(200);
    assert_eq!(patched.body["scopes"], json!(["openid"]));

    let bad = app
        .post(
            &paths::apps(),
            &ent.key,
            json!({"name": "", "redirect_uris": ["http://app.example.com/cb", "https://x/#f"], "scopes": ["address"]}),
        )
        .await;
    bad.assert_problem(422, "validation_failed");
    let fields = bad.error_fields();
    for f in ["name", "redirect_uris[0]", "redirect_uris[1]", "scopes[0]"] {
        assert!(fields.contains(&f.to_string()), "{fields:?}");
    }

    // Another enterprise's key sees nothing and changes nothing.
    app.get(&paths::app(id), &other.key).await.assert_problem(404, "not_found");
    app.delete(&paths::app(id), &other.key).await.assert_problem(404, "not_found");
    app.post(&paths::app_secret(id), &other.key, json!({})).await.assert_problem(404, "not_found");
    assert_eq!(app.get(&paths::apps(), &other.key).await.body["items"], json!([]));

    let rotated = app.post(&paths::app_secret(id), &ent.key, json!({})).await;
    rotated.assert_status(200);
    let new_secret = rotated.body["client_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    let probe = |s: String| {
        let app = &app;
        let id = id.to_string();
        async move {
            let resp = app
                .client
                .post(app.url(&paths::oidc_introspect()))
                .basic_auth(&id, Some(s))
                .form(&[("token", "x")])
                .send()
                .await
                .unwrap();
            resp.status().as_u16()
        }
    };
    assert_eq!(probe(secret.to_string()).await, 401, "the old secret stopped working");
    assert_eq!(probe(new_secret.to_string()).await, 200);

    app.delete(&paths::app(id), &ent.key).await.assert_status(204);
    assert_eq!(app.count("apps").await, 0);
    let actions: Vec<String> =
        app.audit(&ent, "").await.iter().map(|e| e["action"].as_str().unwrap().to_string()).collect();
    for a in ["app.create", "app.update", "app.secret_rotate", "app.delete"] {
        assert!(actions.contains(&a.to_string()), "{actions:?}");
    }
}
