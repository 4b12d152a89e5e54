//! Settings in effect: flags and environment (through clap) over the TOML file over defaults.

use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use workgate_domain::phone::Region;
use workgate_domain::retention::RetentionSettings;
use workgate_domain::settings::LoginSettings;

/// The TOML file's shape. Every key is optional; unknown keys are an error, so a typo is noticed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub database: Option<String>,
    /// The key file (see `--key-file`).
    pub key_file: Option<PathBuf>,
    /// Start on database settings that could lose acknowledged writes (see
    /// `--accept-unsafe-durability`).
    pub accept_unsafe_durability: Option<bool>,
    pub public_url: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub log_format: Option<String>,
    pub limits: Option<FileLimits>,
    /// `[sms]`: the provider and its settings (see the `workgate-sms` crate).
    pub sms: Option<workgate_sms::SmsConfig>,
    /// `[login]`: the security numbers of SPEC section 6.
    pub login: Option<FileLogin>,
    /// `[outbox]`: how the SMS sender retries.
    pub outbox: Option<FileOutbox>,
    /// `[oidc]`: the OpenID Connect provider.
    pub oidc: Option<FileOidc>,
    /// Seconds that requests in flight may take to finish after SIGTERM (default 30).
    pub shutdown_grace_secs: Option<u64>,
    /// `[retention]`: how long rows are kept once they are no longer of use.
    pub retention: Option<FileRetention>,
}

/// `[retention]` in the TOML file: days each kind of row is kept (see `workgate_domain::retention`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRetention {
    pub login_challenges_days: Option<i64>,
    pub login_events_days: Option<i64>,
    pub sms_days: Option<i64>,
    pub invitations_days: Option<i64>,
    pub sessions_days: Option<i64>,
    pub oidc_codes_days: Option<i64>,
    /// Unset: the audit log is kept forever.
    pub audit_days: Option<i64>,
    pub interval_secs: Option<u64>,
}

/// The retention in effect: flags and environment over the file over the defaults.
pub fn retention(args: &crate::cli::RetentionArgs, file: Option<&FileRetention>) -> anyhow::Result<RetentionSettings> {
    let mut r = RetentionSettings::default();
    let empty = FileRetention::default();
    let file = file.unwrap_or(&empty);
    macro_rules! set {
        ($($field:ident <- $arg:ident),*) => {
            $( if let Some(v) = args.$arg.or(file.$field) { r.$field = v; } )*
        };
    }
    set!(
        login_challenges_days <- retention_login_challenges_days,
        login_events_days <- retention_login_events_days,
        sms_days <- retention_sms_days,
        invitations_days <- retention_invitations_days,
        sessions_days <- retention_sessions_days,
        oidc_codes_days <- retention_oidc_codes_days,
        interval_secs <- retention_interval_secs
    );
    r.audit_days = args.retention_audit_days.or(file.audit_days);
    r.check().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(r)
}

/// `[oidc]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOidc {
    /// Seconds an authorization code may wait to be redeemed (default 60).
    pub code_ttl_secs: Option<i64>,
    /// Days one ID-token signing key signs before the next takes over (default 30).
    pub key_rotation_days: Option<i64>,
    /// Hours before it signs that the next key is published in the JWKS (default 24).
    pub key_prepublish_hours: Option<i64>,
}

impl FileOidc {
    pub fn apply(&self, settings: &mut LoginSettings) -> anyhow::Result<()> {
        if let Some(v) = self.code_ttl_secs {
            settings.oidc_code_ttl_secs = v;
        }
        // A number of days or hours too large to count in seconds is refused, not wrapped around.
        if let Some(days) = self.key_rotation_days {
            settings.oidc_key_rotation_secs =
                days.checked_mul(86_400).ok_or_else(|| anyhow::anyhow!("oidc.key_rotation_days is too large"))?;
        }
        if let Some(hours) = self.key_prepublish_hours {
            settings.oidc_key_prepublish_secs =
                hours.checked_mul(3600).ok_or_else(|| anyhow::anyhow!("oidc.key_prepublish_hours is too large"))?;
        }
        if !(1..=600).contains(&settings.oidc_code_ttl_secs) {
            anyhow::bail!("oidc.code_ttl_secs must be between 1 and 600 (RFC 6749 recommends at most 10 minutes)");
        }
        if settings.oidc_key_prepublish_secs < 0 || settings.oidc_key_prepublish_secs >= settings.oidc_key_rotation_secs
        {
            anyhow::bail!("oidc.key_prepublish_hours must be shorter than oidc.key_rotation_days");
        }
        Ok(())
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOutbox {
    /// Seconds a sender owns a message it took (above the provider's timeout).
    pub lease_secs: Option<i64>,
    pub max_attempts: Option<i64>,
}

/// `[login]` in the TOML file: every key optional, defaults from SPEC section 6.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLogin {
    pub default_region: Option<String>,
    pub hide_membership: Option<bool>,
    pub code_length: Option<u32>,
    pub code_ttl_secs: Option<i64>,
    pub max_code_attempts: Option<i64>,
    pub resend_cooldown_secs: Option<i64>,
    pub codes_per_number_hour: Option<i64>,
    pub codes_per_number_day: Option<i64>,
    pub starts_per_ip_hour: Option<i64>,
    pub starts_per_network_hour: Option<i64>,
    pub sms_budget_server_hour: Option<i64>,
    pub sms_budget_enterprise_hour: Option<i64>,
    pub invitation_budget_enterprise_hour: Option<i64>,
    pub consecutive_failures_limit: Option<i64>,
    pub number_failure_ceiling: Option<i64>,
    pub failure_lock_base_secs: Option<i64>,
    pub invitation_ttl_secs: Option<i64>,
    pub access_token_ttl_secs: Option<i64>,
    pub refresh_token_ttl_secs: Option<i64>,
}

impl FileLogin {
    /// Applies the keys that are set over `settings`.
    pub fn apply(&self, settings: &mut LoginSettings) -> anyhow::Result<()> {
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = self.$field { settings.$field = v; } )* };
        }
        set!(
            hide_membership,
            code_length,
            code_ttl_secs,
            max_code_attempts,
            resend_cooldown_secs,
            codes_per_number_hour,
            codes_per_number_day,
            starts_per_ip_hour,
            starts_per_network_hour,
            sms_budget_server_hour,
            sms_budget_enterprise_hour,
            invitation_budget_enterprise_hour,
            consecutive_failures_limit,
            number_failure_ceiling,
            failure_lock_base_secs,
            invitation_ttl_secs,
            access_token_ttl_secs,
            refresh_token_ttl_secs
        );
        if let Some(region) = &self.default_region {
            settings.default_region = Region::parse(region)
                .map_err(|_| anyhow::anyhow!("login.default_region '{region}' is not a region code"))?;
        }
        if !(1..=100).contains(&settings.number_failure_ceiling) {
            anyhow::bail!(
                "login.number_failure_ceiling must be between 1 and 100 (NIST SP 800-63B allows at most 100)"
            );
        }
        if !(4..=10).contains(&settings.code_length) {
            anyhow::bail!("login.code_length must be between 4 and 10");
        }
        Ok(())
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimits {
    pub body_bytes: Option<usize>,
    pub import_body_bytes: Option<usize>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else { return Ok(FileConfig::default()) };
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read the configuration file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("the configuration file {} is invalid: {e}", path.display()))
    }

    /// Reads the text of a configuration file (what [`FileConfig::load`] does once it has read
    /// the file).
    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE: &str = "sqlite://workgate.db";
/// How long requests in flight may take to finish after SIGTERM, by default.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Everything `serve` needs, resolved.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: String,
    pub database: String,
    /// The key file holding the master key (outside the database).
    pub key_file: PathBuf,
    /// Start, with a warning, on database settings that could lose acknowledged writes in a
    /// crash, instead of refusing to.
    pub accept_unsafe_durability: bool,
    pub public_url: Option<String>,
    pub trusted_proxies: Vec<IpAddr>,
    pub body_limit: usize,
    pub import_body_limit: usize,
    pub demo: bool,
    pub login: LoginSettings,
    pub sms: workgate_sms::SmsConfig,
    /// After SIGTERM: how long requests in flight (and the SMS sender's batch) may take.
    pub shutdown_grace: Duration,
    pub retention: RetentionSettings,
}

impl ServerConfig {
    /// A configuration for tests and embedding: a database URL, a random port, defaults otherwise.
    pub fn for_database(database: &str) -> Self {
        ServerConfig {
            listen: "127.0.0.1:0".into(),
            database: database.into(),
            key_file: default_key_file(database),
            accept_unsafe_durability: false,
            public_url: None,
            trusted_proxies: vec![],
            body_limit: workgate_http::DEFAULT_BODY_LIMIT,
            import_body_limit: workgate_http::DEFAULT_IMPORT_BODY_LIMIT,
            demo: false,
            login: LoginSettings::default(),
            sms: file_sms(default_outbox_file(database)),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            retention: RetentionSettings::default(),
        }
    }
}

/// The `file` SMS provider writing to `path`.
pub fn file_sms(path: PathBuf) -> workgate_sms::SmsConfig {
    workgate_sms::SmsConfig {
        file: Some(workgate_sms::FileConfig { path }),
        ..workgate_sms::SmsConfig::new(workgate_sms::ProviderKind::File)
    }
}

/// `workgate-sms.jsonl` beside a SQLite database file; in the working directory otherwise.
pub fn default_outbox_file(database: &str) -> PathBuf {
    let file = database.strip_prefix("sqlite://").or_else(|| database.strip_prefix("sqlite:")).map(|rest| {
        let path = rest.split('?').next().unwrap_or(rest);
        Path::new(path).parent().map(|dir| dir.join("workgate-sms.jsonl"))
    });
    match file.flatten() {
        Some(p) if !p.as_os_str().is_empty() && p.parent().is_some_and(|d| !d.as_os_str().is_empty()) => p,
        _ => PathBuf::from("workgate-sms.jsonl"),
    }
}

/// The key file beside a SQLite database file, named after it (`workgate.db` → `workgate.key`);
/// `workgate.key` in the working directory for PostgreSQL (every node must use the same file) and
/// in-memory databases.
pub fn default_key_file(database: &str) -> PathBuf {
    let file = database.strip_prefix("sqlite://").or_else(|| database.strip_prefix("sqlite:")).and_then(|rest| {
        let path = Path::new(rest.split('?').next().unwrap_or(rest));
        let stem = path.file_stem().filter(|s| !s.is_empty() && *s != ":memory:")?;
        let mut name = stem.to_os_string();
        name.push(".key");
        Some(path.with_file_name(name))
    });
    file.unwrap_or_else(|| PathBuf::from("workgate.key"))
}

pub fn parse_proxies(list: &[String]) -> anyhow::Result<Vec<IpAddr>> {
    list.iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse::<IpAddr>().map_err(|_| anyhow::anyhow!("trusted proxy '{s}' is not an IP address")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oidc_periods_too_large_to_count_in_seconds_are_refused() {
        // Found while writing the `config_toml` fuzz target (its seed `oidc-overflow.toml`):
        // `days * 86_400` overflowed (a panic in a debug build, a wrapped-around key rotation
        // period in a release build).
        for text in
            ["[oidc]\nkey_rotation_days = 9223372036854775807", "[oidc]\nkey_prepublish_hours = 9223372036854775807"]
        {
            let oidc = FileConfig::parse(text).unwrap().oidc.unwrap();
            let refused = oidc.apply(&mut LoginSettings::default()).unwrap_err().to_string();
            assert!(refused.contains("is too large"), "{refused}");
        }
        let oidc = FileConfig::parse("[oidc]\nkey_rotation_days = 7\nkey_prepublish_hours = 12").unwrap().oidc.unwrap();
        let mut settings = LoginSettings::default();
        oidc.apply(&mut settings).unwrap();
        assert_eq!((settings.oidc_key_rotation_secs, settings.oidc_key_prepublish_secs), (7 * 86_400, 12 * 3600));
    }
}
