//! The TOML configuration file, read as `workgate serve --config` reads it
//! (`workgate::config::FileConfig::parse`), then applied over the defaults as `serve` applies it.
//!
//! Asserts, for every file accepted: the `[login]` and `[oidc]` keys, once applied, leave the
//! settings inside the ranges that applying them enforces (a refusal is an error, never a
//! setting outside them); `[retention]` resolves only to settings that pass their own check; the
//! trusted proxies resolve to addresses or an error; and the default files derived from
//! `database` are named.

#![no_main]

use libfuzzer_sys::fuzz_target;
use workgate::cli::RetentionArgs;
use workgate::config::{FileConfig, default_key_file, default_outbox_file, parse_proxies, retention};
use workgate_domain::settings::LoginSettings;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = FileConfig::parse(text) else { return };

    let mut settings = LoginSettings::default();
    if let Some(login) = &config.login
        && login.apply(&mut settings).is_ok()
    {
        assert!((4..=10).contains(&settings.code_length));
        assert!((1..=100).contains(&settings.number_failure_ceiling));
        if let Some(region) = &login.default_region {
            assert_eq!(settings.default_region.as_str(), region.trim().to_ascii_uppercase());
        }
    }
    let mut settings = LoginSettings::default();
    if let Some(oidc) = &config.oidc
        && oidc.apply(&mut settings).is_ok()
    {
        assert!((1..=600).contains(&settings.oidc_code_ttl_secs));
        assert!(
            0 <= settings.oidc_key_prepublish_secs
                && settings.oidc_key_prepublish_secs < settings.oidc_key_rotation_secs
        );
    }
    if let Ok(r) = retention(&RetentionArgs::default(), config.retention.as_ref()) {
        assert!(r.check().is_ok());
    }
    if let Some(proxies) = &config.trusted_proxies
        && let Ok(ips) = parse_proxies(proxies)
    {
        assert_eq!(ips.len(), proxies.iter().filter(|p| !p.trim().is_empty()).count());
    }
    if let Some(database) = &config.database {
        assert!(!default_key_file(database).as_os_str().is_empty());
        assert!(!default_outbox_file(database).as_os_str().is_empty());
    }
});
