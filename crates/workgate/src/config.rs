//! Settings in effect: flags and environment (through clap) over the TOML file over defaults.

use serde::Deserialize;
use std::net::IpAddr;
use std::path::Path;

/// The TOML file's shape. Every key is optional; unknown keys are an error, so a typo is noticed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub database: Option<String>,
    pub public_url: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub log_format: Option<String>,
    pub limits: Option<FileLimits>,
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
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("the configuration file {} is invalid: {e}", path.display()))
    }
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE: &str = "sqlite://workgate.db";

/// Everything `serve` needs, resolved.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: String,
    pub database: String,
    pub public_url: Option<String>,
    pub trusted_proxies: Vec<IpAddr>,
    pub body_limit: usize,
    pub import_body_limit: usize,
    pub demo: bool,
}

impl ServerConfig {
    /// A configuration for tests and embedding: a database URL, a random port, defaults otherwise.
    pub fn for_database(database: &str) -> Self {
        ServerConfig {
            listen: "127.0.0.1:0".into(),
            database: database.into(),
            public_url: None,
            trusted_proxies: vec![],
            body_limit: workgate_http::DEFAULT_BODY_LIMIT,
            import_body_limit: workgate_http::DEFAULT_IMPORT_BODY_LIMIT,
            demo: false,
        }
    }
}

pub fn parse_proxies(list: &[String]) -> anyhow::Result<Vec<IpAddr>> {
    list.iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse::<IpAddr>().map_err(|_| anyhow::anyhow!("trusted proxy '{s}' is not an IP address")))
        .collect()
}
