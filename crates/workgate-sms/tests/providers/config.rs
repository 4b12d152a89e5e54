use crate::mock::sms_config;
use workgate_sms::{ProviderKind, SmsConfig, build};

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
        build_error(
            "[sms]\nprovider = \"tencent\"\n[sms.tencent]\nsecret_id = \"id\"\nsecret_key = \"\"\n\
             sms_sdk_app_id = \"1400006666\"\ntemplate_id = \"1\"\n"
        )
        .contains("secret_key")
    );
}

#[test]
fn tencent_defaults_and_template_modes() {
    let config = sms_config(
        "[sms]\nprovider = \"tencent\"\n[sms.tencent]\nsecret_id = \"id\"\nsecret_key = \"key\"\n\
         sms_sdk_app_id = \"1400006666\"\ntemplate_id = \"1\"\n",
    );
    let tencent = config.tencent.clone().expect("section");
    assert_eq!(tencent.region, "ap-guangzhou");
    assert_eq!(tencent.template_params, workgate_sms::TemplateParams::Code);
    assert_eq!(tencent.endpoint, None);
    assert_eq!(build(&config).expect("tencent").name(), "tencent");
    assert!(
        parse(
            "[sms]\nprovider = \"tencent\"\n[sms.tencent]\nsecret_id = \"id\"\nsecret_key = \"key\"\n\
         sms_sdk_app_id = \"1\"\ntemplate_id = \"1\"\ntemplate_params = \"all\"\n"
        )
        .is_err()
    );
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let config = sms_config(
        "[sms]\nprovider = \"twilio\"\n\
         [sms.twilio]\naccount_sid = \"AC1\"\nauth_token = \"twilio-token-value\"\nfrom = \"+15005550006\"\n\
         [sms.tencent]\nsecret_id = \"id\"\nsecret_key = \"tencent-key-value\"\nsms_sdk_app_id = \"1\"\ntemplate_id = \"1\"\n\
         [sms.webhook]\nurl = \"https://example.com/\"\nsecret = \"webhook-secret-value\"\n",
    );
    let debug = format!("{config:?}");
    for secret in ["twilio-token-value", "tencent-key-value", "webhook-secret-value"] {
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
