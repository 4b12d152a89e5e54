use crate::mock::sms_config;
use std::sync::Arc;
use workgate_domain::sms::SmsProvider;
use workgate_sms::{ProviderKind, SmsConfig};

/// Builds as the server does, with 6-digit codes.
fn build(config: &SmsConfig) -> Result<Arc<dyn SmsProvider>, String> {
    workgate_sms::build(config, 6)
}

/// A complete `[sms.<provider>.templates.mainland]` section.
pub const MAINLAND_TEMPLATES: &str = "login_code = { id = \"1\", params = [\"code\"] }\n\
     invitation = { id = \"2\", params = [\"enterprise\", \"path\"] }\n\
     phone_changed = { id = \"3\", params = [\"enterprise\"] }\n";

#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)]
struct File {
    sms: SmsConfig,
}

fn parse(text: &str) -> Result<SmsConfig, String> {
    toml::from_str::<File>(text).map(|f| f.sms).map_err(|e| e.to_string())
}

fn build_error(text: &str) -> String {
    match build(&sms_config(text)) {
        Ok(provider) => panic!("built {} from {text}", provider.name()),
        Err(e) => e,
    }
}

#[test]
fn unknown_keys_are_refused() {
    let error = parse("[sms]\nprovider = \"log\"\nprovder = \"file\"\n").expect_err("typo");
    assert!(error.contains("provder"), "{error}");
    let error = parse(
        "[sms]\nprovider = \"webhook\"\n[sms.webhook]\nurl = \"https://example.com\"\nsecret = \"s\"\ntimeout = 5\n",
    )
    .expect_err("typo");
    assert!(error.contains("timeout"), "{error}");
    let error = parse("[sms]\nprovider = \"sms77\"\n").expect_err("unknown provider");
    assert!(error.contains("sms77"), "{error}");
}

#[test]
fn the_chosen_section_is_required_except_for_log() {
    assert!(build_error("[sms]\nprovider = \"tencent\"\n").contains("[sms.tencent]"));
    assert!(build_error("[sms]\nprovider = \"file\"\n").contains("[sms.file]"));
    let log = build(&sms_config("[sms]\nprovider = \"log\"\n")).expect("log needs no section");
    assert_eq!(log.name(), "log");
    // Other sections may stay in the file.
    let log = build(&sms_config(
        "[sms]\nprovider = \"log\"\n[sms.webhook]\nurl = \"https://example.com/sms\"\nsecret = \"s\"\n",
    ))
    .expect("log");
    assert_eq!(log.name(), "log");
}

#[test]
fn invalid_settings_are_explained() {
    let webhook = |url: &str, extra: &str| {
        build_error(&format!("[sms]\nprovider = \"webhook\"\n[sms.webhook]\nurl = \"{url}\"\nsecret = \"s\"\n{extra}"))
    };
    assert!(webhook("not a url", "").contains("sms.webhook.url"));
    assert!(webhook("ftp://example.com/", "").contains("http"));
    assert!(webhook("https://example.com/", "timeout_ms = 0").contains("timeout_ms"));
    assert!(
        build_error("[sms]\nprovider = \"webhook\"\n[sms.webhook]\nurl = \"https://example.com/\"\nsecret = \"\"\n")
            .contains("secret")
    );

    let twilio = |lines: &str| {
        build_error(&format!(
            "[sms]\nprovider = \"twilio\"\n[sms.twilio]\naccount_sid = \"AC1\"\nauth_token = \"t\"\n{lines}"
        ))
    };
    assert!(twilio("").contains("from"));
    assert!(twilio("from = \"+15005550006\"\nmessaging_service_sid = \"MG1\"\n").contains("not both"));
    assert!(
        build_error(
            "[sms]\nprovider = \"twilio\"\n[sms.twilio]\naccount_sid = \"AC1/../x\"\nauth_token = \"t\"\nfrom = \"+1\"\n"
        )
        .contains("account_sid")
    );

    assert!(
        build_error(&format!(
            "[sms]\nprovider = \"tencent\"\n[sms.tencent]\nsecret_id = \"id\"\nsecret_key = \"\"\n\
             sms_sdk_app_id = \"1400006666\"\n[sms.tencent.templates.mainland]\n{MAINLAND_TEMPLATES}"
        ))
        .contains("secret_key")
    );
}

fn tencent(extra: &str, templates: &str) -> String {
    format!(
        "[sms]\nprovider = \"tencent\"\n[sms.tencent]\nsecret_id = \"id\"\nsecret_key = \"key\"\n\
         sms_sdk_app_id = \"1400006666\"\n{extra}[sms.tencent.templates.mainland]\n{templates}"
    )
}

#[test]
fn tencent_defaults_and_templates() {
    let config = sms_config(&tencent("", MAINLAND_TEMPLATES));
    let section = config.tencent.clone().expect("section");
    assert_eq!(section.region, "ap-guangzhou");
    assert_eq!(section.endpoint, None);
    assert_eq!(build(&config).expect("tencent").name(), "tencent");
    // The single template of earlier versions is refused by name.
    assert!(parse(&tencent("template_id = \"1\"\n", MAINLAND_TEMPLATES)).unwrap_err().contains("template_id"));
    // A kind without its template, an unknown parameter, a template without an id.
    let missing = MAINLAND_TEMPLATES.replace("phone_changed = { id = \"3\", params = [\"enterprise\"] }\n", "");
    let error = build_error(&tencent("", &missing));
    assert!(error.contains("sms.tencent.templates.mainland.phone_changed is missing"), "{error}");
    let error = build_error(&tencent("", &MAINLAND_TEMPLATES.replace("[\"code\"]", "[\"code\", \"name\"]")));
    assert!(error.contains("'name'") && error.contains("code, minutes"), "{error}");
    let error = build_error(&tencent("", &MAINLAND_TEMPLATES.replace("id = \"2\"", "id = \" \"")));
    assert!(error.contains("invitation.id"), "{error}");
    let error = build_error(
        "[sms]\nprovider = \"tencent\"\n[sms.tencent]\nsecret_id = \"id\"\nsecret_key = \"key\"\n\
         sms_sdk_app_id = \"1\"\n[sms.tencent.templates]\n",
    );
    assert!(error.contains("has no templates"), "{error}");
}

#[test]
fn tencent_follows_the_code_length_it_can_send() {
    let config = sms_config(&tencent("", MAINLAND_TEMPLATES));
    for digits in [4, 6, 8] {
        assert!(workgate_sms::build(&config, digits).is_ok(), "{digits} digits");
    }
    for digits in [3, 9, 10] {
        let error = workgate_sms::build(&config, digits).err().expect("refused");
        assert!(error.contains("code_length") && error.contains("4 to 8"), "{error}");
    }
}

#[test]
fn alibaba_needs_its_keys_signature_and_templates() {
    let alibaba = |lines: &str| {
        format!(
            "[sms]\nprovider = \"alibaba\"\n[sms.alibaba]\n{lines}[sms.alibaba.templates.international]\n{MAINLAND_TEMPLATES}"
        )
    };
    let config = sms_config(&alibaba("access_key_id = \"LTAI\"\naccess_key_secret = \"s\"\nsign_name = \"阿里\"\n"));
    assert_eq!(build(&config).expect("alibaba").name(), "alibaba");
    let error = build_error(&alibaba("access_key_id = \"LTAI\"\naccess_key_secret = \"\"\nsign_name = \"阿里\"\n"));
    assert!(error.contains("access_key_secret"), "{error}");
    let error = build_error(&alibaba("access_key_id = \"LTAI\"\naccess_key_secret = \"s\"\nsign_name = \"\"\n"));
    assert!(error.contains("sign_name"), "{error}");
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let config = sms_config(
        "[sms]\nprovider = \"twilio\"\n\
         [sms.twilio]\naccount_sid = \"AC1\"\nauth_token = \"twilio-token-value\"\nfrom = \"+15005550006\"\n\
         [sms.tencent]\nsecret_id = \"id\"\nsecret_key = \"tencent-key-value\"\nsms_sdk_app_id = \"1\"\n\
         [sms.tencent.templates]\n\
         [sms.alibaba]\naccess_key_id = \"id\"\naccess_key_secret = \"alibaba-key-value\"\nsign_name = \"s\"\n\
         [sms.alibaba.templates]\n\
         [sms.webhook]\nurl = \"https://example.com/\"\nsecret = \"webhook-secret-value\"\n",
    );
    let debug = format!("{config:?}");
    for secret in ["twilio-token-value", "tencent-key-value", "alibaba-key-value", "webhook-secret-value"] {
        assert!(!debug.contains(secret), "{debug}");
    }
}

#[test]
fn provider_names_parse() {
    for kind in ProviderKind::ALL {
        assert_eq!(kind.as_str().parse::<ProviderKind>(), Ok(kind));
        assert_eq!(kind.to_string(), kind.as_str());
    }
    assert!("smtp".parse::<ProviderKind>().is_err());
}
