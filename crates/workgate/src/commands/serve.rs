//! `workgate serve`.

use crate::cli::{Cli, ServeArgs};
use crate::commands::{database_url, demo, durability, key_file};
use crate::config::{
    DEFAULT_LISTEN, DEFAULT_SHUTDOWN_GRACE, FileConfig, ServerConfig, default_outbox_file, file_sms, parse_proxies,
    retention,
};
use crate::server;
use std::time::Duration;
use workgate_domain::settings::LoginSettings;

pub fn resolve(cli: &Cli, args: &ServeArgs, file: &FileConfig) -> anyhow::Result<ServerConfig> {
    let limits = file.limits.as_ref();
    let database = database_url(cli, file);
    let listen = args.listen.clone().or_else(|| file.listen.clone()).unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let public_url = args.public_url.clone().or_else(|| file.public_url.clone());
    let mut login = LoginSettings {
        public_url: public_url.clone().unwrap_or_else(|| format!("http://{listen}")),
        ..LoginSettings::default()
    };
    if let Some(l) = &file.login {
        l.apply(&mut login)?;
    }
    if let Some(o) = &file.oidc {
        o.apply(&mut login)?;
    }
    if let Some(o) = &file.outbox {
        login.outbox_lease_secs = o.lease_secs.unwrap_or(login.outbox_lease_secs).max(1);
        login.outbox_max_attempts = o.max_attempts.unwrap_or(login.outbox_max_attempts).max(1);
    }
    if args.hide_membership {
        login.hide_membership = true;
    }
    if let Some(n) = args.invitation_budget_enterprise_hour {
        login.invitation_budget_enterprise_hour = n;
    }
    let mut sms = file.sms.clone().unwrap_or_else(|| file_sms(default_outbox_file(&database)));
    if let Some(kind) = &args.sms_provider {
        sms.provider = kind.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    if let Some(path) = &args.sms_outbox_file {
        sms.file = Some(workgate_sms::FileConfig { path: path.clone() });
    } else if sms.provider == workgate_sms::ProviderKind::File && sms.file.is_none() {
        sms.file = Some(workgate_sms::FileConfig { path: default_outbox_file(&database) });
    }
    let proxies = args.trusted_proxies.clone().or_else(|| file.trusted_proxies.clone()).unwrap_or_default();
    let grace = args.shutdown_grace_secs.or(file.shutdown_grace_secs).map(Duration::from_secs);
    Ok(ServerConfig {
        listen,
        key_file: key_file(cli, file, &database),
        accept_unsafe_durability: durability(cli, file) == workgate_store::Durability::AcceptUnsafe,
        database,
        public_url,
        trusted_proxies: parse_proxies(&proxies)?,
        body_limit: limits.and_then(|l| l.body_bytes).unwrap_or(workgate_http::DEFAULT_BODY_LIMIT),
        import_body_limit: limits.and_then(|l| l.import_body_bytes).unwrap_or(workgate_http::DEFAULT_IMPORT_BODY_LIMIT),
        demo: args.demo,
        login,
        sms,
        shutdown_grace: grace.unwrap_or(DEFAULT_SHUTDOWN_GRACE),
        retention: retention(&args.retention, file.retention.as_ref())?,
    })
}

pub async fn run(config: ServerConfig) -> anyhow::Result<()> {
    let mut running = server::start(&config).await?;
    let base = config.public_url.clone().unwrap_or_else(|| running.base_url());
    tracing::info!(listen = %running.addr, database = %redact(&config.database), public_url = %base, "workgate is serving");
    match (&config.sms.provider, &config.sms.file) {
        (workgate_sms::ProviderKind::File, Some(f)) => tracing::warn!(
            "DEVELOPMENT SETUP: SMS messages are written to {} and reach no phone; configure [sms] with a real provider for production",
            f.path.display()
        ),
        (workgate_sms::ProviderKind::Log, _) => {
            tracing::warn!("DEVELOPMENT SETUP: SMS messages are only logged and reach no phone")
        }
        _ => {}
    }
    if base.starts_with("http://") && !workgate_http::web::is_loopback_http(&base) {
        tracing::warn!(
            "the public URL {base} is plain http: the web pages' cookies are Secure, so browsers sign in only over https; \
             serve them behind TLS and set --public-url https://…"
        );
    }
    if !config.trusted_proxies.is_empty() {
        tracing::info!(proxies = ?config.trusted_proxies, "X-Forwarded-For is believed from these peers only");
    }
    if config.demo {
        match demo::seed_if_empty(&running.services).await? {
            Some(d) => {
                println!();
                println!("  Demo enterprise \"Demo Co\" created ({}).", d.enterprise_id);
                println!("  Owner's number: {}", d.owner_phone);
                println!("  Admin API key (shown once): {}", d.api_key);
                println!();
                let file_provider =
                    matches!((&config.sms.provider, &config.sms.file), (workgate_sms::ProviderKind::File, Some(_)));
                println!("  In a browser on this machine:");
                println!("    {base}/login      sign in with the owner's number");
                if file_provider {
                    println!("    {base}/dev/sms    the SMS codes and invitations sent");
                }
                println!("    {base}/admin      the console, once signed in");
                println!();
                let codes_at = match (&config.sms.provider, &config.sms.file) {
                    (workgate_sms::ProviderKind::File, Some(f)) => format!("the file {}", f.path.display()),
                    (kind, _) => format!("the '{kind}' SMS provider"),
                };
                println!("  Sign in as the owner (SMS codes go to {codes_at}):");
                println!(
                    "    curl -H 'Content-Type: application/json' -d '{{\"phone\": \"{}\"}}' {base}/api/v1/login/start",
                    d.owner_phone
                );
                println!("    # then, with the 6-digit code from the newest line of the outbox:");
                println!(
                    "    curl -H 'Content-Type: application/json' -d '{{\"code\": \"123456\"}}' {base}/api/v1/login/<login_id>/code"
                );
                println!("    curl -H 'Authorization: Bearer <access_token>' {base}/api/v1/me");
                println!();
                println!("  Try the admin API:");
                println!("    curl -H 'Authorization: Bearer {}' {base}/api/v1/members", d.api_key);
                println!("    curl -H 'Authorization: Bearer {}' {base}/api/v1/departments", d.api_key);
                println!("    curl {base}/openapi.json");
                println!();
            }
            None => println!("  --demo: the database already has enterprises; nothing seeded."),
        }
    }
    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(|e| anyhow::anyhow!("cannot watch SIGTERM: {e}"))?;
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        anyhow::Ok(())
    };
    let failed = tokio::select! {
        result = shutdown => { result?; None }
        result = running.wait_ref() => Some(result),
    };
    if let Some(result) = failed {
        // The HTTP server stopped by itself: stop the rest before the error is reported.
        running.shutdown().await?;
        return Ok(result?);
    }
    tracing::info!(
        grace_secs = config.shutdown_grace.as_secs(),
        "shutting down: no new connections; finishing the requests in flight"
    );
    running.shutdown().await?;
    tracing::info!("stopped");
    Ok(())
}

/// A database URL with any password hidden, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}://{user}:***@{}", &url[..scheme], &url[at + 1..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
