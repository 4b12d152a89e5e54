//! The OpenID Foundation's Basic OP certification plan, module by module, as our own tests: the
//! suite itself needs Docker, Maven and MongoDB, so each module's checks are written here against
//! the real server, named after the module (`oidcc_…`). `docs/apps.md` has the table of modules
//! and the test behind each.

use super::helpers::{TestApp, enc};
use super::oidc::{
    PHONE, REDIRECT, authorize_path, browser, confidential_app, exchange, introspect, jwt_claims, location, pkce,
    query_of, signed_in_browser,
};
use crate::paths;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use workgate_domain::clock::ManualClock;

/// An enterprise with a member (PHONE, with an e-mail), a confidential app and that member signed
/// in in a browser.
struct World {
    app: TestApp,
    client_id: String,
    secret: String,
    member_id: String,
    /// The enterprise's API key.
    key: String,
    b: reqwest::Client,
}

impl World {
    async fn new() -> World {
        Self::on(TestApp::spawn().await).await
    }

    async fn on(app: TestApp) -> World {
        let ent = app.enterprise("Acme", "13800138000").await;
        let member =
            app.add_member_with(&ent, json!({"name": "Zhang San", "phone": PHONE, "email": "zs@acme.example"})).await;
        let (client_id, secret) = confidential_app(&app, &ent).await;
        let b = signed_in_browser(&app, PHONE, 1).await;
        World { app, client_id, secret, member_id: member["id"].as_str().unwrap().to_string(), key: ent.key.clone(), b }
    }

    /// The authorization request with `scope` and `extra` parameters, sent by the signed-in
    /// browser (or `b`); answers the status and where it sends the browser.
    async fn authorize_in(&self, b: &reqwest::Client, scope: &str, extra: &str) -> (u16, String) {
        let (_, challenge) = pkce();
        let path = authorize_path(&self.client_id, &challenge, extra)
            .replace("scope=openid%20profile%20phone", &format!("scope={}", enc(scope)));
        let resp = b.get(self.app.url(&path)).send().await.unwrap();
        (resp.status().as_u16(), location(&resp))
    }

    async fn authorize(&self, scope: &str, extra: &str) -> (u16, String) {
        self.authorize_in(&self.b, scope, extra).await
    }

    /// Runs the code flow for `scope` with `extra` parameters; answers the token response.
    async fn tokens(&self, scope: &str, extra: &str) -> Value {
        let (verifier, challenge) = pkce();
        let path = authorize_path(&self.client_id, &challenge, extra)
            .replace("scope=openid%20profile%20phone", &format!("scope={}", enc(scope)));
        let resp = self.b.get(self.app.url(&path)).send().await.unwrap();
        let back = location(&resp);
        assert!(back.starts_with(REDIRECT), "a code for {scope} {extra}: {back}");
        let params = query_of(&back);
        assert_eq!(params["iss"], self.app.base, "RFC 9207: the issuer names itself");
        let (status, tokens) = exchange(&self.app, &self.client_id, &self.secret, &params["code"], &verifier).await;
        assert_eq!(status, 200, "{tokens}");
        tokens
    }

    /// The provider's discovery document.
    async fn discovery(&self) -> Value {
        let url = self.app.url(&paths::discovery());
        self.app.client.get(url).send().await.unwrap().json().await.unwrap()
    }

    async fn userinfo(&self, access: &str) -> Value {
        let resp = self.app.client.get(self.app.url(&paths::oidc_userinfo())).bearer_auth(access).send().await;
        let resp = resp.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        resp.json().await.unwrap()
    }
}

/// An error answered at the app's redirect URI: with `iss` and the request's `state`.
fn app_error(status: u16, back: &str, base: &str) -> String {
    assert_eq!(status, 303, "answered by a redirect, not a page: {back}");
    assert!(back.starts_with(REDIRECT), "{back}");
    let params = query_of(back);
    assert_eq!(params.get("iss").map(String::as_str), Some(base), "iss on an error response too: {back}");
    assert_eq!(params.get("state").map(String::as_str), Some("st4te"), "{back}");
    assert!(!params.contains_key("code"), "{back}");
    params["error"].clone()
}

#[tokio::test]
async fn oidcc_server_the_code_flow_gives_an_id_token_with_the_required_claims() {
    let w = World::new().await;
    let tokens = w.tokens("openid", "").await;
    assert_eq!(tokens["token_type"], "Bearer");
    let claims = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["iss"], w.app.base);
    assert_eq!(claims["aud"], w.client_id.as_str());
    assert_eq!(claims["sub"], w.member_id.as_str());
    assert_eq!(claims["nonce"], "n0nce");
    for claim in ["exp", "iat", "auth_time", "at_hash"] {
        assert!(claims[claim].is_number() || claims[claim].is_string(), "{claim} in {claims}");
    }
}

#[tokio::test]
async fn oidcc_response_type_missing_is_an_error_at_the_app() {
    let w = World::new().await;
    let (_, back) = w.authorize("openid", "").await;
    assert!(back.contains("code="), "the control: with response_type there is a code");
    let (_, challenge) = pkce();
    let path = authorize_path(&w.client_id, &challenge, "").replace("response_type=code&", "");
    let resp = w.b.get(w.app.url(&path)).send().await.unwrap();
    let error = app_error(resp.status().as_u16(), &location(&resp), &w.app.base);
    assert!(error == "unsupported_response_type" || error == "invalid_request", "{error}");
}

#[tokio::test]
async fn oidcc_userinfo_get_post_header_and_post_body() {
    let w = World::new().await;
    let access = w.tokens("openid profile", "").await["access_token"].as_str().unwrap().to_string();
    let url = w.app.url(&paths::oidc_userinfo());
    let by_get = w.userinfo(&access).await;
    assert_eq!(by_get["sub"], w.member_id.as_str());
    assert_eq!(by_get["name"], "Zhang San");
    let by_post_header: Value =
        w.app.client.post(&url).bearer_auth(&access).send().await.unwrap().json().await.unwrap();
    assert_eq!(by_post_header, by_get);
    let resp = w.app.client.post(&url).form(&[("access_token", access.as_str())]).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), by_get);
    // Both at once is a malformed request (RFC 6750 section 2); neither is a 401 with a challenge.
    let resp = w.app.client.post(&url).bearer_auth(&access).form(&[("access_token", access.as_str())]).send().await;
    assert_eq!(resp.unwrap().status().as_u16(), 400);
    let resp = w.app.client.post(&url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn oidcc_ensure_request_without_nonce_succeeds_for_code_flow() {
    let w = World::new().await;
    let (verifier, challenge) = pkce();
    let path = authorize_path(&w.client_id, &challenge, "").replace("&nonce=n0nce", "");
    let back = location(&w.b.get(w.app.url(&path)).send().await.unwrap());
    let code = query_of(&back)["code"].clone();
    let (status, tokens) = exchange(&w.app, &w.client_id, &w.secret, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    assert!(jwt_claims(tokens["id_token"].as_str().unwrap()).get("nonce").is_none());
}

#[tokio::test]
async fn oidcc_scope_profile_email_address_phone_and_all() {
    let w = World::new().await;
    let cases: [(&str, &[&str], &[&str]); 5] = [
        ("openid profile", &["name", "userid"], &["email", "phone_number"]),
        ("openid email", &["email", "email_verified"], &["name", "phone_number"]),
        // `address` is not a scope of this server: ignored, the request still succeeds.
        ("openid address", &[], &["address", "name", "email", "phone_number"]),
        ("openid phone", &["phone_number", "phone_number_verified"], &["name", "email"]),
        ("openid profile email address phone", &["name", "email", "phone_number"], &["address"]),
    ];
    for (scope, present, absent) in cases {
        let tokens = w.tokens(scope, "").await;
        let info = w.userinfo(tokens["access_token"].as_str().unwrap()).await;
        for claim in present {
            assert!(info.get(*claim).is_some(), "{scope}: {claim} in {info}");
        }
        for claim in absent {
            assert!(info.get(*claim).is_none(), "{scope}: no {claim} in {info}");
        }
    }
    let info = w.userinfo(w.tokens("openid email", "").await["access_token"].as_str().unwrap()).await;
    assert_eq!((info["email"].as_str(), info["email_verified"].as_bool()), (Some("zs@acme.example"), Some(false)));
}

#[tokio::test]
async fn oidcc_ensure_other_scope_order_succeeds() {
    let w = World::new().await;
    let tokens = w.tokens("phone openid profile", "").await;
    let claims = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["phone_number"], PHONE);
    assert_eq!(claims["name"], "Zhang San");
}

#[tokio::test]
async fn oidcc_display_page_and_popup_and_unknown_parameters_are_accepted() {
    let w = World::new().await;
    for extra in ["&display=page", "&display=popup", "&extra=foobar&claims_locales=zh-CN&acr_values=1"] {
        w.tokens("openid", extra).await;
    }
}

#[tokio::test]
async fn oidcc_prompt_login_signs_in_again_even_with_a_session() {
    let w = World::new().await;
    let (status, back) = w.authorize("openid", "&prompt=login").await;
    assert_eq!((status, back.as_str()), (303, "/login"));
}

#[tokio::test]
async fn oidcc_prompt_none_not_logged_in_is_login_required_at_the_app() {
    let w = World::new().await;
    let (status, back) = w.authorize_in(&browser(), "openid", "&prompt=none").await;
    assert_eq!(app_error(status, &back, &w.app.base), "login_required");
    // prompt=none with another value is malformed.
    let (status, back) = w.authorize("openid", "&prompt=none%20login").await;
    assert_eq!(app_error(status, &back, &w.app.base), "invalid_request");
}

#[tokio::test]
async fn oidcc_prompt_none_logged_in_answers_at_once() {
    let w = World::new().await;
    w.tokens("openid", "&prompt=none").await;
}

#[tokio::test]
async fn oidcc_prompt_none_never_shows_a_page_to_a_member_of_another_enterprise() {
    let w = World::new().await;
    w.app.enterprise("Globex", "13700137000").await;
    let outsider = signed_in_browser(&w.app, "+8613700137000", 0).await;
    let (status, back) = w.authorize_in(&outsider, "openid", "&prompt=none").await;
    assert_eq!(app_error(status, &back, &w.app.base), "login_required");
    // Without prompt=none the person is told on a page, as before.
    let (status, back) = w.authorize_in(&outsider, "openid", "").await;
    assert_eq!((status, back.as_str()), (403, ""));
}

#[tokio::test]
async fn oidcc_max_age_1_signs_in_again_and_max_age_10000_does_not() {
    let clock = Arc::new(ManualClock::default());
    let w = World::on(TestApp::spawn_configured(|_| {}, clock.clone()).await).await;
    let claims = jwt_claims(w.tokens("openid", "&max_age=10000").await["id_token"].as_str().unwrap());
    let auth_time = claims["auth_time"].as_i64().expect("auth_time when max_age was asked for");
    clock.advance(Duration::from_secs(2));
    let (status, back) = w.authorize("openid", "&max_age=1").await;
    assert_eq!((status, back.as_str()), (303, "/login"), "a sign-in 2 s old is older than max_age=1");
    let claims = jwt_claims(w.tokens("openid", "&max_age=10000").await["id_token"].as_str().unwrap());
    assert_eq!(claims["auth_time"].as_i64(), Some(auth_time), "the same sign-in");
    let (status, back) = w.authorize("openid", "&max_age=soon").await;
    assert_eq!(app_error(status, &back, &w.app.base), "invalid_request");
}

#[tokio::test]
async fn oidcc_id_token_hint_with_prompt_none_answers_for_the_same_member_only() {
    let w = World::new().await;
    let id_token = w.tokens("openid", "").await["id_token"].as_str().unwrap().to_string();
    w.tokens("openid", &format!("&prompt=none&id_token_hint={id_token}")).await;
    // Another member signed in in this browser: the hint names someone else.
    w.app.enterprise("Globex", "13700137000").await;
    let other = signed_in_browser(&w.app, "+8613700137000", 0).await;
    let (status, back) = w.authorize_in(&other, "openid", &format!("&prompt=none&id_token_hint={id_token}")).await;
    assert_eq!(app_error(status, &back, &w.app.base), "login_required");
    // A hint this server did not sign is refused.
    let (status, back) = w.authorize("openid", "&id_token_hint=eyJhbGciOiJub25lIn0.e30.").await;
    assert_eq!(app_error(status, &back, &w.app.base), "invalid_request");
}

#[tokio::test]
async fn oidcc_login_hint_fills_in_the_number_on_the_login_page() {
    let w = World::new().await;
    let b = browser();
    let (status, back) = w.authorize_in(&b, "openid", "&login_hint=13900139001").await;
    assert_eq!(status, 303);
    assert!(back.starts_with("/login?") && back.contains("login_hint=13900139001"), "{back}");
    let page = b.get(w.app.url(&back)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("value=\"13900139001\""), "the number is filled in: {page}");
}

#[tokio::test]
async fn oidcc_ui_locales_picks_the_language_of_the_login_page() {
    let w = World::new().await;
    let b = browser();
    let (_, back) = w.authorize_in(&b, "openid", "&ui_locales=fr-FR%20zh-CN%20en").await;
    assert!(back.contains("lang=zh-CN"), "the first language the pages speak: {back}");
    let page = b.get(w.app.url(&back)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<h1>登录</h1>"), "{page}");
}

#[tokio::test]
async fn oidcc_ensure_registered_redirect_uri_is_compared_exactly() {
    let w = World::new().await;
    let (_, challenge) = pkce();
    let path = authorize_path(&w.client_id, &challenge, "")
        .replace(&enc(REDIRECT), &enc("https://app.example.com/callback?x=1"));
    let resp = w.b.get(w.app.url(&path)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.headers().get("location").is_none(), "never sent to an unregistered address");
}

#[tokio::test]
async fn oidcc_codereuse_and_codereuse_30seconds_are_refused_and_revoke_the_tokens() {
    let clock = Arc::new(ManualClock::default());
    let w = World::on(TestApp::spawn_configured(|_| {}, clock.clone()).await).await;
    for wait in [0, 30] {
        let (verifier, challenge) = pkce();
        let back = location(
            &w.b.get(format!("{}{}", w.app.base, authorize_path(&w.client_id, &challenge, ""))).send().await.unwrap(),
        );
        let code = query_of(&back)["code"].clone();
        let (status, first) = exchange(&w.app, &w.client_id, &w.secret, &code, &verifier).await;
        assert_eq!(status, 200, "{first}");
        clock.advance(Duration::from_secs(wait));
        let (status, again) = exchange(&w.app, &w.client_id, &w.secret, &code, &verifier).await;
        assert_eq!((status, again["error"].as_str()), (400, Some("invalid_grant")), "reused after {wait} s");
        let access = first["access_token"].as_str().unwrap();
        assert_eq!(introspect(&w.app, &w.client_id, &w.secret, access).await["active"], false);
    }
}

#[tokio::test]
async fn oidcc_claims_parameter_is_not_supported_and_a_malformed_one_is_refused() {
    let w = World::new().await;
    let discovery = w.discovery().await;
    assert_eq!(discovery["claims_parameter_supported"], false);
    // A well-formed request is served by its scopes: the essential claim asked for alone is not added.
    let claims = enc(r#"{"userinfo":{"name":{"essential":true}}}"#);
    let tokens = w.tokens("openid", &format!("&claims={claims}")).await;
    assert!(w.userinfo(tokens["access_token"].as_str().unwrap()).await.get("name").is_none());
    let (status, back) = w.authorize("openid", "&claims=not-json").await;
    assert_eq!(app_error(status, &back, &w.app.base), "invalid_request");
}

#[tokio::test]
async fn oidcc_request_objects_are_refused_as_unsupported() {
    let w = World::new().await;
    let (status, back) = w.authorize("openid", "&request=eyJhbGciOiJub25lIn0.e30.").await;
    assert_eq!(app_error(status, &back, &w.app.base), "request_not_supported");
    let (status, back) = w.authorize("openid", &format!("&request_uri={}", enc("https://app.example.com/r"))).await;
    assert_eq!(app_error(status, &back, &w.app.base), "request_uri_not_supported");
}

#[tokio::test]
async fn the_authorization_endpoint_takes_post_as_well_as_get() {
    let w = World::new().await;
    let (verifier, challenge) = pkce();
    let form = [
        ("response_type", "code"),
        ("client_id", w.client_id.as_str()),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
        ("state", "st4te"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let resp = w.b.post(w.app.url(&paths::oidc_authorize())).form(&form).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let back = query_of(&location(&resp));
    let (status, tokens) = exchange(&w.app, &w.client_id, &w.secret, &back["code"], &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    // Without a session, a POST request waits for the login like a GET one.
    let resp = browser().post(w.app.url(&paths::oidc_authorize())).form(&form).send().await.unwrap();
    assert_eq!(location(&resp), "/login");
}

/// A clock a millisecond later at every reading: time moves while the server works, as it does
/// under load.
struct TickingClock(std::sync::atomic::AtomicI64);

impl workgate_domain::clock::Clock for TickingClock {
    fn now(&self) -> workgate_domain::clock::Timestamp {
        let base = workgate_domain::clock::SystemClock.now().millis();
        workgate_domain::clock::Timestamp(base + self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
    }
}

#[tokio::test]
async fn the_first_id_token_of_a_new_server_is_signed_while_time_moves_under_it() {
    // The first code exchange makes the first signing key; it must sign that very ID token.
    let w = World::on(TestApp::spawn_on(Arc::new(TickingClock(Default::default()))).await).await;
    let tokens = w.tokens("openid", "").await;
    assert!(tokens["id_token"].is_string(), "{tokens}");
}

/// The verified claims of an ID token, checked with the key the server publishes under its kid.
async fn verified(w: &World, id_token: &str) -> (jsonwebtoken::Header, Value) {
    let header = jsonwebtoken::decode_header(id_token).expect("a JWS header");
    let kid = header.kid.clone().expect("a kid");
    let jwks: Value = w.app.client.get(w.app.url(&paths::oidc_jwks())).send().await.unwrap().json().await.unwrap();
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid.as_str()).expect("published").clone();
    let part = |name: &str| jwk[name].as_str().unwrap_or_else(|| panic!("{name} in {jwk}")).to_string();
    let key = match header.alg {
        jsonwebtoken::Algorithm::RS256 => jsonwebtoken::DecodingKey::from_rsa_components(&part("n"), &part("e")),
        jsonwebtoken::Algorithm::ES256 => {
            assert_eq!((jwk["kty"].as_str(), jwk["crv"].as_str()), (Some("EC"), Some("P-256")));
            jsonwebtoken::DecodingKey::from_ec_components(&part("x"), &part("y"))
        }
        other => panic!("unexpected {other:?}"),
    }
    .expect("a usable published key");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[&w.client_id]);
    validation.set_issuer(&[&w.app.base]);
    let claims = jsonwebtoken::decode::<Value>(id_token, &key, &validation).expect("the signature verifies").claims;
    (header, claims)
}

/// `id_token_signed_response_alg`: RS256 unless the app registers for ES256; the P-256 key is
/// published in the JWKS, its tokens serve as `id_token_hint`, and other algorithms are refused.
#[tokio::test]
async fn an_app_registered_for_es256_gets_id_tokens_signed_with_a_published_p256_key() {
    let w = World::new().await;
    let rs = w.tokens("openid", "").await;
    let (header, _) = verified(&w, rs["id_token"].as_str().unwrap()).await;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256, "RS256 by default");

    let path = paths::app(&w.client_id);
    let changed = w.app.patch(&path, &w.key, json!({"id_token_signed_response_alg": "ES256"})).await;
    changed.assert_status(200);
    assert_eq!(changed.body["id_token_signed_response_alg"], "ES256");
    let es = w.tokens("openid profile", "").await;
    let id_token = es["id_token"].as_str().unwrap().to_string();
    let (header, claims) = verified(&w, &id_token).await;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    assert!(header.kid.as_deref().is_some_and(|kid| kid.ends_with("-es")), "{header:?}");
    assert_eq!(claims["sub"], w.member_id.as_str());
    assert_eq!(claims["name"], "Zhang San");
    // The ES256 token is a hint this server signed.
    w.tokens("openid", &format!("&prompt=none&id_token_hint={id_token}")).await;

    w.app
        .patch(&path, &w.key, json!({"id_token_signed_response_alg": "HS256"}))
        .await
        .assert_problem(422, "validation_failed");
    let (_, again) = verified(&w, w.tokens("openid", "").await["id_token"].as_str().unwrap()).await;
    assert_eq!(again["sub"], w.member_id.as_str(), "a refused change changes nothing");
    let stored = w.app.get(&path, &w.key).await;
    assert_eq!(stored.body["id_token_signed_response_alg"], "ES256");
    let discovery = w.discovery().await;
    assert_eq!(discovery["id_token_signing_alg_values_supported"], json!(["RS256", "ES256"]));
}

/// Signing keys made before P-256 keys existed get theirs the first time an ES256 app needs one,
/// published and kept (encrypted) for every later token.
#[tokio::test]
async fn a_generation_without_a_p256_key_gets_one_when_an_es256_app_first_needs_it() {
    let w = World::new().await;
    w.tokens("openid", "").await;
    let db = w.app.db().await;
    sqlx::query("UPDATE signing_keys SET ec_private = NULL, ec_public_jwk = NULL").execute(&db).await.unwrap();
    // The server's own cache of the keys answers for at most a second after a write it did not make.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let path = paths::app(&w.client_id);
    w.app.patch(&path, &w.key, json!({"id_token_signed_response_alg": "ES256"})).await.assert_status(200);
    let first = w.tokens("openid", "").await["id_token"].as_str().unwrap().to_string();
    let (header, _) = verified(&w, &first).await;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    let (stored,): (Option<String>,) =
        sqlx::query_as("SELECT ec_private FROM signing_keys").fetch_one(&db).await.unwrap();
    let stored = stored.expect("the P-256 key is kept");
    assert!(stored.starts_with("v1:"), "kept encrypted: {stored}");
    let second = w.tokens("openid", "").await["id_token"].as_str().unwrap().to_string();
    assert_eq!(jsonwebtoken::decode_header(&second).unwrap().kid, header.kid, "the same key signs again");
}
