//! The OpenID Connect scenario: a confidential app is registered; members sign in (SMS logins)
//! and each browser session authorizes the app, making a pool of authorization codes (not
//! measured). Then, measured: code exchanges at the token endpoint per second, and, with the
//! access tokens they gave, userinfo and introspection per second beside `GET /healthz`.

use crate::harness::Server;
use crate::login::{self, Password};
use crate::stats::{CpuUse, Row, print_table, relative_line};
use crate::{Load, MakeRequest, hammer, login_all, print_setup};
use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Args;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Codes wait while the pool is made and used: give them ten minutes instead of one.
pub const SERVER_CONFIG: &str = "[oidc]\ncode_ttl_secs = 600\n";

pub(crate) const REDIRECT: &str = "https://app.example.com/callback";
/// One PKCE verifier for every code of the run (each code is still single-use).
pub(crate) const VERIFIER: &str = "loadgen-pkce-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";

#[derive(Args)]
pub struct OidcArgs {
    /// How the app's ID tokens are signed: RS256 or ES256 (`id_token_signed_response_alg`).
    #[arg(long, default_value = "RS256")]
    pub(crate) alg: String,
    #[arg(long, default_value_t = 32)]
    pub(crate) clients: usize,
    /// Measured seconds of each of: code exchange, userinfo, introspection, /healthz.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    #[arg(long, default_value_t = 1)]
    pub warmup: u64,
    /// Members who sign in; their browser sessions authorize the app, round robin.
    #[arg(long, default_value_t = 100)]
    pub(crate) logins: usize,
    /// Authorization codes made before the exchange is measured; the run says so if they run out.
    #[arg(long, default_value_t = 30_000)]
    pub(crate) codes: usize,
}

pub(crate) fn exchange_form(code: &str) -> [(&'static str, &str); 4] {
    [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT), ("code_verifier", VERIFIER)]
}

/// `GET /oidc/authorize` with the member's session cookie; the code from the redirect.
pub(crate) async fn authorize(
    http: &reqwest::Client,
    base: &str,
    client_id: &str,
    session: &str,
) -> anyhow::Result<String> {
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()));
    let url = format!(
        "{base}/oidc/authorize?response_type=code&client_id={client_id}&redirect_uri={REDIRECT}\
         &scope=openid%20profile%20phone&state=s&nonce=n&code_challenge={challenge}&code_challenge_method=S256"
    );
    let response = http.get(url).header("cookie", format!("wg_access={session}")).send().await?;
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let parsed = reqwest::Url::parse(location)
        .map_err(|_| anyhow::anyhow!("authorize answered {} without a redirect to the app", response.status()))?;
    parsed
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| anyhow::anyhow!("the redirect carries no code: {location}"))
}

pub async fn run(server: &Server, a: &OidcArgs) -> anyhow::Result<()> {
    measure(server, a).await.map(|_| ())
}

/// `run`, answering the rate and the server's CPU of: code exchange, userinfo, introspection, /healthz.
pub(crate) async fn measure(server: &Server, a: &OidcArgs) -> anyhow::Result<[(f64, CpuUse); 4]> {
    server.seed(a.logins).await?;
    let sessions = Arc::new(login_all(server, a.logins, a.clients, Password::None).await?);
    let app = server
        .admin_post(
            "/api/v1/apps",
            json!({"name": "Loadgen app", "redirect_uris": [REDIRECT], "id_token_signed_response_alg": a.alg}),
        )
        .await?;
    let client_id = app["client_id"].as_str().unwrap_or_default().to_string();
    let secret = app["client_secret"].as_str().unwrap_or_default().to_string();

    // The pool of codes (not measured).
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut makers = Vec::new();
    for _ in 0..a.clients {
        let (next, sessions, base, client_id, total) =
            (next.clone(), sessions.clone(), server.node(makers.len()).to_string(), client_id.clone(), a.codes);
        makers.push(tokio::spawn(async move {
            let http = login::http_client();
            let mut codes = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                codes.push(authorize(&http, &base, &client_id, &sessions[i % sessions.len()]).await?);
            }
            anyhow::Ok(codes)
        }));
    }
    let mut codes = Vec::with_capacity(a.codes);
    for m in makers {
        codes.extend(m.await??);
    }
    eprintln!("made {} authorization codes in {:.1} s (not measured)", codes.len(), started.elapsed().as_secs_f64());

    // A few codes give the access tokens that userinfo and introspection use (not measured).
    let reserved = codes.split_off(codes.len().saturating_sub(a.clients.max(8)));
    let mut tokens = Vec::new();
    let http = login::http_client();
    for code in &reserved {
        let answer: Value = http
            .post(format!("{}/oidc/token", server.base))
            .basic_auth(&client_id, Some(&secret))
            .form(&exchange_form(code))
            .send()
            .await?
            .json()
            .await?;
        tokens.push(answer["access_token"].as_str().context("a code exchange gave no access token")?.to_string());
    }
    let tokens = Arc::new(tokens);

    // Code exchanges: each request redeems the next code of the pool.
    let exchange: MakeRequest = {
        let (codes, client_id, secret) = (Arc::new(codes), client_id.clone(), secret.clone());
        let urls = server.urls("/oidc/token");
        Arc::new(move |http: &reqwest::Client, n: usize| {
            let code = codes.get(n).map_or("exhausted", String::as_str);
            http.post(&urls[n % urls.len()]).basic_auth(&client_id, Some(&secret)).form(&exchange_form(code))
        })
    };
    let load = Load { clients: a.clients, warmup: a.warmup, seconds: a.seconds };
    let (exchanged, exchange_cpu) = hammer(server, load, exchange).await;
    if !exchanged.errors.is_empty() {
        eprintln!("warning: some exchanges failed (the codes may have run out: raise --codes)");
    }

    let userinfo: MakeRequest = {
        let (tokens, urls) = (tokens.clone(), server.urls("/oidc/userinfo"));
        Arc::new(move |http: &reqwest::Client, n: usize| {
            http.get(&urls[n % urls.len()]).bearer_auth(&tokens[n % tokens.len()])
        })
    };
    let introspect: MakeRequest = {
        let (tokens, urls) = (tokens.clone(), server.urls("/oidc/introspect"));
        let (client_id, secret) = (client_id.clone(), secret.clone());
        Arc::new(move |http: &reqwest::Client, n: usize| {
            http.post(&urls[n % urls.len()])
                .basic_auth(&client_id, Some(&secret))
                .form(&[("token", tokens[n % tokens.len()].as_str())])
        })
    };
    let healthz: MakeRequest = {
        let urls = server.urls("/healthz");
        Arc::new(move |http: &reqwest::Client, n: usize| http.get(&urls[n % urls.len()]))
    };
    let (info, info_cpu) = hammer(server, load, userinfo).await;
    let (intro, intro_cpu) = hammer(server, load, introspect).await;
    let (health, health_cpu) = hammer(server, load, healthz).await;

    print_setup(server, "oidc", a.clients, a.seconds, a.warmup);
    let secs = a.seconds as f64;
    let rate = |t: &crate::Tally| t.lat.len() as f64 / secs;
    print_table(&[
        Row { what: "POST /oidc/token (code exchange)", per_sec: Some(rate(&exchanged)), lat: &exchanged.lat },
        Row { what: "GET /oidc/userinfo", per_sec: Some(rate(&info)), lat: &info.lat },
        Row { what: "POST /oidc/introspect", per_sec: Some(rate(&intro)), lat: &intro.lat },
        Row { what: "GET /healthz", per_sec: Some(rate(&health)), lat: &health.lat },
    ]);
    for (what, cpu) in
        [("token", exchange_cpu), ("userinfo", info_cpu), ("introspect", intro_cpu), ("healthz", health_cpu)]
    {
        println!("{what}: {cpu}");
    }
    for (what, t) in [("token", &exchanged), ("userinfo", &info), ("introspect", &intro), ("healthz", &health)] {
        for (k, v) in &t.errors {
            println!("  {what} errors: {v:>7}  {k}");
        }
    }
    for (what, t, cpu) in [
        ("GET /healthz", &health, &health_cpu),
        ("code exchange", &exchanged, &exchange_cpu),
        ("userinfo", &info, &info_cpu),
        ("introspection", &intro, &intro_cpu),
    ] {
        println!("{}", relative_line(what, rate(t), cpu, rate(&health)));
    }
    Ok([
        (rate(&exchanged), exchange_cpu),
        (rate(&info), info_cpu),
        (rate(&intro), intro_cpu),
        (rate(&health), health_cpu),
    ])
}
