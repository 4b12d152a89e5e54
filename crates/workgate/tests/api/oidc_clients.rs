//! OAuth client authentication at introspection and revocation: introspection wants an
//! authenticated caller (RFC 7662 section 2.1), so a public app (it has no secret) is refused;
//! revocation lets a public app revoke its own tokens (RFC 7009 section 2.1).

pub(crate) use super::oidc::{REDIRECT, register_app as register, signed_in_browser};
use crate::helpers::TestApp;
use crate::paths;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const PHONE: &str = "+8613900139077";
/// Tokens for the member signed in in `b`, through the code flow with PKCE; `secret` is the
/// app's secret, or `None` for a public app.
pub(crate) async fn tokens_for(app: &TestApp, b: &reqwest::Client, client_id: &str, secret: Option<&str>) -> Value {
    let verifier = URL_SAFE_NO_PAD.encode(workgate_domain::secret::random_bytes::<32>());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let path = format!(
        "{}?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid\
         &state=st4te&nonce=n0nce&code_challenge={challenge}&code_challenge_method=S256",
        paths::oidc_authorize(),
        crate::helpers::enc(REDIRECT)
    );
    let resp = b.get(app.url(&path)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let back = resp.headers().get("location").unwrap().to_str().unwrap().to_string();
    let code = url::Url::parse(&back).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
        ("client_id", client_id),
    ];
    if let Some(s) = secret {
        form.push(("client_secret", s));
    }
    let resp = app.client.post(app.url(&paths::oidc_token())).form(&form).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.unwrap()
}

/// `POST` a form to an OIDC endpoint: the status, the `WWW-Authenticate` header and the JSON body.
async fn post_form(
    app: &TestApp,
    path: &str,
    basic: Option<(&str, Option<&str>)>,
    form: &[(&str, &str)],
) -> (u16, Option<String>, Value) {
    let mut req = app.client.post(app.url(path)).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, secret);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let challenge = resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string());
    (status, challenge, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_public_client_cannot_introspect_but_revokes_its_own_tokens() {
    let (app, ent) = TestApp::with_acme().await;
    app.add_member(&ent, "Zhang San", PHONE).await;
    let public = register(
        &app,
        &ent,
        json!({"name": "SPA", "client_type": "public", "redirect_uris": [REDIRECT], "scopes": ["openid"]}),
    )
    .await;
    let public_id = public["client_id"].as_str().unwrap().to_string();
    let wiki = register(&app, &ent, json!({"name": "Wiki", "redirect_uris": [REDIRECT]})).await;
    let (wiki_id, wiki_secret) =
        (wiki["client_id"].as_str().unwrap().to_string(), wiki["client_secret"].as_str().unwrap().to_string());

    let b = signed_in_browser(&app, PHONE, 1).await; // after the invitation
    let spa_tokens = tokens_for(&app, &b, &public_id, None).await;
    let spa_access = spa_tokens["access_token"].as_str().unwrap();
    let wiki_tokens = tokens_for(&app, &b, &wiki_id, Some(&wiki_secret)).await;
    let wiki_access = wiki_tokens["access_token"].as_str().unwrap();

    // Introspection by the public app: by form field, by HTTP Basic with an empty secret. Either
    // way 401 invalid_client, and nothing about the token is told.
    for basic in [None, Some((public_id.as_str(), None)), Some((public_id.as_str(), Some("")))] {
        let mut form = vec![("token", spa_access)];
        if basic.is_none() {
            form.push(("client_id", public_id.as_str()));
        }
        let (status, challenge, body) = post_form(&app, &paths::oidc_introspect(), basic, &form).await;
        assert_eq!(status, 401, "{basic:?}: {body}");
        assert_eq!(body["error"], "invalid_client", "{body}");
        assert!(body.get("active").is_none(), "{body}");
        assert!(challenge.is_some_and(|c| c.starts_with("Basic")), "a 401 names the scheme");
    }
    // No credentials at all: the same.
    let (status, _, body) = post_form(&app, &paths::oidc_introspect(), None, &[("token", spa_access)]).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));

    // A confidential app of the enterprise still introspects, the public app's token included.
    let basic = Some((wiki_id.as_str(), Some(wiki_secret.as_str())));
    let (status, _, body) = post_form(&app, &paths::oidc_introspect(), basic, &[("token", spa_access)]).await;
    assert_eq!((status, &body["active"]), (200, &json!(true)), "{body}");

    // Revocation by the public app, its client_id alone: another app's token is left alone...
    let form = [("token", wiki_access), ("client_id", public_id.as_str())];
    let (status, _, _) = post_form(&app, &paths::oidc_revoke(), None, &form).await;
    assert_eq!(status, 200, "unknown and foreign tokens are answered alike");
    let (_, _, body) = post_form(&app, &paths::oidc_introspect(), basic, &[("token", wiki_access)]).await;
    assert_eq!(body["active"], true, "the public app cannot revoke the wiki's token");
    // ...its own refresh token ends its grant.
    let spa_refresh = spa_tokens["refresh_token"].as_str().unwrap();
    let form = [("token", spa_refresh), ("client_id", public_id.as_str())];
    let (status, _, body) = post_form(&app, &paths::oidc_revoke(), None, &form).await;
    assert_eq!(status, 200, "{body}");
    let (_, _, body) = post_form(&app, &paths::oidc_introspect(), basic, &[("token", spa_access)]).await;
    assert_eq!(body, json!({"active": false}), "the grant is revoked");
    let pool = app.db().await;
    let revoked: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM oidc_grants WHERE app_id = $1 AND revoked_at IS NOT NULL")
            .bind(&public_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(revoked, 1);
    pool.close().await;

    // A public app cannot pretend to have a secret at revocation either.
    let (status, _, body) =
        post_form(&app, &paths::oidc_revoke(), Some((public_id.as_str(), Some("guess"))), &[("token", spa_access)])
            .await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));

    // Discovery does not offer `none` for introspection, and still does for revocation.
    let discovery: Value = app.client.get(app.url(&paths::discovery())).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        discovery["introspection_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert!(
        discovery["revocation_endpoint_auth_methods_supported"].as_array().unwrap().contains(&json!("none")),
        "{discovery}"
    );
}
