//! The `tencent` provider: Tencent Cloud SMS, action `SendSms` of API version 2021-01-11, over
//! `https://sms.tencentcloudapi.com` signed with TC3-HMAC-SHA256 (Tencent Cloud API 3.0,
//! "signature v3").
//!
//! # Templates
//!
//! Tencent Cloud does not send free text: it sends an approved template, filled with parameters
//! (`{1}`, `{2}`, …). Each kind of message has its own template, and numbers of mainland China
//! and other numbers have their own (`[sms.tencent.templates.mainland]`,
//! `[sms.tencent.templates.international]`), each naming the message's parameters it takes in
//! order: see [`crate::templates`]. Tencent's verification-code templates take codes of 4 to 8
//! digits, so a `code_length` outside that range stops the start.
//!
//! # Signing (TC3-HMAC-SHA256)
//!
//! ```text
//! CanonicalRequest = "POST\n/\n\n"
//!                  + "content-type:application/json; charset=utf-8\nhost:<host>\n\n"
//!                  + "content-type;host\n"
//!                  + hex(SHA256(payload))
//! StringToSign     = "TC3-HMAC-SHA256\n<timestamp>\n<date>/sms/tc3_request\n" + hex(SHA256(CanonicalRequest))
//! SecretDate       = HMAC("TC3" + SecretKey, date)       date = UTC date of the timestamp, YYYY-MM-DD
//! SecretService    = HMAC(SecretDate, "sms")
//! SecretSigning    = HMAC(SecretService, "tc3_request")
//! Signature        = hex(HMAC(SecretSigning, StringToSign))
//! Authorization    = "TC3-HMAC-SHA256 Credential=<SecretId>/<date>/sms/tc3_request, "
//!                  + "SignedHeaders=content-type;host, Signature=<Signature>"
//! ```
//!
//! and the headers `X-TC-Action: SendSms`, `X-TC-Version: 2021-01-11`, `X-TC-Timestamp`,
//! `X-TC-Region`. The signing function is checked against the example that Tencent's documentation
//! works through (CVM `DescribeInstances`, timestamp 1551113065).
//!
//! # Errors
//!
//! Tencent answers HTTP 200 for API errors too, and reports the message's own status in
//! `SendStatusSet[0].Code`. Retryable are only what a later attempt can get past: the gateway's
//! own trouble (`InternalError.*`), the API's request rate (`RequestLimitExceeded`) and the
//! 30-second windows per number (`LimitExceeded.PhoneNumberThirtySecondLimit`,
//! `LimitExceeded.DeliveryFrequencyLimit`), which the outbox's backoff outlasts. Everything else
//! is final, the message failed and the reason kept where admins see it (an invitation's
//! delivery): the hourly and daily limits per number and per application, blacklists, a wrong
//! signature, template or parameter, a clock the signature says is off (`AuthFailure.*`), an empty
//! balance. A non-2xx HTTP status is mapped like every HTTP provider (408/429/5xx retryable), as
//! are timeouts and connection failures.

use crate::Secret;
use crate::http;
use crate::templates::{TemplateSet, Templates};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;
use time::OffsetDateTime;
use time::macros::format_description;
use workgate_domain::sms::{SendError, SmsMessage, SmsProvider};

pub const DEFAULT_ENDPOINT: &str = "https://sms.tencentcloudapi.com";
pub const DEFAULT_REGION: &str = "ap-guangzhou";
const SERVICE: &str = "sms";
const ACTION: &str = "SendSms";
const VERSION: &str = "2021-01-11";
const CONTENT_TYPE: &str = "application/json; charset=utf-8";
const ALGORITHM: &str = "TC3-HMAC-SHA256";
const SIGNED_HEADERS: &str = "content-type;host";
/// The lengths of code a verification-code template takes.
const CODE_DIGITS: std::ops::RangeInclusive<u32> = 4..=8;

/// `[sms.tencent]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TencentConfig {
    /// API key pair (CAM), `SecretId`…
    pub secret_id: String,
    /// …and `SecretKey`.
    pub secret_key: Secret,
    /// `X-TC-Region`: `ap-guangzhou` (default), `ap-beijing` or `ap-nanjing`.
    #[serde(default = "default_region")]
    pub region: String,
    /// The SMS application's `SmsSdkAppId` (e.g. `1400006666`).
    pub sms_sdk_app_id: String,
    /// The approved signature (`SignName`); required for mainland China numbers.
    #[serde(default)]
    pub sign_name: Option<String>,
    /// The approved templates, per region class and kind of message (see [`crate::templates`]).
    pub templates: Templates,
    /// The API's base URL; `https://sms.tencentcloudapi.com` when absent (tests point it elsewhere).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Timeout of one request, in milliseconds; 10 000 when absent.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

fn default_region() -> String {
    DEFAULT_REGION.into()
}

pub struct TencentProvider {
    config: TencentConfig,
    templates: TemplateSet,
    url: reqwest::Url,
    /// `host[:port]` of the endpoint, lowercase: the signed `host` header and the one sent.
    host: String,
    timeout: Duration,
    client: reqwest::Client,
}

impl TencentProvider {
    /// `code_length` is the number of digits of the login codes the server sends.
    pub fn new(config: TencentConfig, code_length: u32) -> Result<Self, String> {
        http::required("sms.tencent.secret_id", &config.secret_id)?;
        http::required("sms.tencent.secret_key", config.secret_key.expose())?;
        http::required("sms.tencent.region", &config.region)?;
        http::required("sms.tencent.sms_sdk_app_id", &config.sms_sdk_app_id)?;
        let templates = TemplateSet::new("tencent", config.templates.clone())?;
        if templates.sends_codes() && !CODE_DIGITS.contains(&code_length) {
            return Err(format!(
                "login.code_length is {code_length}, but Tencent Cloud's verification-code templates take {} to {} digits",
                CODE_DIGITS.start(),
                CODE_DIGITS.end()
            ));
        }
        if let Some(sign_name) = &config.sign_name {
            http::required("sms.tencent.sign_name", sign_name)?;
        }
        let endpoint = config.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT);
        let url = http::parse_url("sms.tencent.endpoint", endpoint)?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("sms.tencent.endpoint '{endpoint}' must not have a query or a fragment"));
        }
        let host = http::host_header("sms.tencent.endpoint", endpoint, &url)?;
        let timeout = http::timeout("tencent", config.timeout_ms)?;
        Ok(TencentProvider { url, host, timeout, client: http::client(timeout)?, config, templates })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SendSmsRequest<'a> {
    phone_number_set: [&'a str; 1],
    sms_sdk_app_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sign_name: Option<&'a str>,
    template_id: &'a str,
    template_param_set: Vec<&'a str>,
    /// Returned as is in the answer and in delivery receipts: the outbox id.
    session_context: &'a str,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "Response")]
    response: ResponseBody,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResponseBody {
    #[serde(default)]
    error: Option<ApiError>,
    #[serde(default)]
    send_status_set: Vec<SendStatus>,
    #[serde(default)]
    request_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApiError {
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendStatus {
    code: String,
    #[serde(default)]
    message: String,
}

#[async_trait]
impl SmsProvider for TencentProvider {
    fn name(&self) -> &'static str {
        "tencent"
    }

    async fn send(&self, message_id: &str, to: &str, message: &SmsMessage) -> Result<(), SendError> {
        let filled = self.templates.fill(to, message)?;
        let payload = serde_json::to_vec(&SendSmsRequest {
            phone_number_set: [to],
            sms_sdk_app_id: &self.config.sms_sdk_app_id,
            sign_name: self.config.sign_name.as_deref(),
            template_id: filled.template_id,
            template_param_set: filled.params.iter().map(|(_, value)| value.as_str()).collect(),
            session_context: message_id,
        })
        .map_err(|e| SendError::Permanent(format!("tencent: cannot encode the request: {e}")))?;

        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        let signed = sign(&Tc3Input {
            secret_id: &self.config.secret_id,
            secret_key: self.config.secret_key.expose(),
            service: SERVICE,
            canonical_uri: self.url.path(),
            host: &self.host,
            content_type: CONTENT_TYPE,
            payload: &payload,
            timestamp,
        })
        .map_err(|e| SendError::Permanent(format!("tencent: cannot sign the request: {e}")))?;

        let response = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::HOST, &self.host)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .header(reqwest::header::AUTHORIZATION, signed.authorization)
            .header("X-TC-Action", ACTION)
            .header("X-TC-Version", VERSION)
            .header("X-TC-Timestamp", timestamp.to_string())
            .header("X-TC-Region", &self.config.region)
            .body(payload)
            .send()
            .await
            .map_err(|e| http::transport_error("tencent", e, self.timeout))?;
        let status = response.status();
        let text =
            response.text().await.map_err(|e| http::transport_error("tencent", e.without_url(), self.timeout))?;
        if !status.is_success() {
            return Err(http::status_error("tencent", status, &http::excerpt(&text, 200)));
        }
        interpret(&text)
    }
}

/// Maps a 2xx answer's body to the outcome.
fn interpret(text: &str) -> Result<(), SendError> {
    let envelope: Envelope = serde_json::from_str(text)
        .map_err(|e| SendError::Retryable(format!("tencent: unreadable answer ({e}): {}", http::excerpt(text, 200))))?;
    let response = envelope.response;
    let request_id = response.request_id.as_deref().unwrap_or("none");
    if let Some(error) = response.error {
        let message = format!("tencent: {}: {} (RequestId {request_id})", error.code, error.message);
        return Err(if is_retryable_code(&error.code) {
            SendError::Retryable(message)
        } else {
            SendError::Permanent(message)
        });
    }
    let Some(status) = response.send_status_set.first() else {
        return Err(SendError::Retryable(format!("tencent: the answer has no SendStatusSet (RequestId {request_id})")));
    };
    if status.code == "Ok" {
        return Ok(());
    }
    let message = format!("tencent: {}: {} (RequestId {request_id})", status.code, status.message);
    Err(if is_retryable_code(&status.code) { SendError::Retryable(message) } else { SendError::Permanent(message) })
}

/// Tencent error codes are dotted (`LimitExceeded.PhoneNumberDailyLimit`); these are temporary:
/// the gateway's own trouble, the API's request rate, and the limits of a 30-second window.
fn is_retryable_code(code: &str) -> bool {
    const SHORT_WINDOWS: [&str; 2] =
        ["LimitExceeded.PhoneNumberThirtySecondLimit", "LimitExceeded.DeliveryFrequencyLimit"];
    ["InternalError", "RequestLimitExceeded"]
        .iter()
        .any(|family| code == *family || code.strip_prefix(family).is_some_and(|rest| rest.starts_with('.')))
        || SHORT_WINDOWS.contains(&code)
}

/// What TC3-HMAC-SHA256 signs, for a POST without a query string. Only `content-type` and
/// `host` are signed headers.
pub struct Tc3Input<'a> {
    pub secret_id: &'a str,
    pub secret_key: &'a str,
    pub service: &'a str,
    pub canonical_uri: &'a str,
    pub host: &'a str,
    pub content_type: &'a str,
    pub payload: &'a [u8],
    pub timestamp: i64,
}

/// The intermediate strings (for debugging a refused signature against Tencent's API Explorer)
/// and the result.
#[derive(Debug)]
pub struct Tc3Signature {
    pub canonical_request: String,
    pub string_to_sign: String,
    pub signature: String,
    pub authorization: String,
}

/// TC3-HMAC-SHA256, as Tencent Cloud API 3.0 documents it (see the module documentation). Fails
/// only for a timestamp outside the years 1 to 9999.
pub fn sign(input: &Tc3Input<'_>) -> Result<Tc3Signature, String> {
    let date = OffsetDateTime::from_unix_timestamp(input.timestamp)
        .map_err(|e| format!("timestamp {} is out of range: {e}", input.timestamp))?
        .format(format_description!("[year]-[month]-[day]"))
        .map_err(|e| format!("cannot format the date: {e}"))?;
    // Header names and values are lowercased and trimmed; each header line ends with "\n".
    let canonical_headers = format!(
        "content-type:{}\nhost:{}\n",
        input.content_type.trim().to_ascii_lowercase(),
        input.host.trim().to_ascii_lowercase()
    );
    let canonical_request = format!(
        "POST\n{}\n\n{canonical_headers}\n{SIGNED_HEADERS}\n{}",
        input.canonical_uri,
        hex::encode(Sha256::digest(input.payload))
    );
    let scope = format!("{date}/{}/tc3_request", input.service);
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{scope}\n{}",
        input.timestamp,
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let secret_date = http::hmac_sha256(format!("TC3{}", input.secret_key).as_bytes(), date.as_bytes());
    let secret_service = http::hmac_sha256(&secret_date, input.service.as_bytes());
    let secret_signing = http::hmac_sha256(&secret_service, b"tc3_request");
    let signature = hex::encode(http::hmac_sha256(&secret_signing, string_to_sign.as_bytes()));
    let authorization = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={SIGNED_HEADERS}, Signature={signature}",
        input.secret_id
    );
    Ok(Tc3Signature { canonical_request, string_to_sign, signature, authorization })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example worked through in Tencent Cloud's "Signature v3" documentation: CVM
    /// `DescribeInstances` in ap-guangzhou at 1551113065 (2019-02-25 UTC).
    const DOC_PAYLOAD: &str =
        r#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;

    fn doc_input(secret_key: &str) -> Tc3Input<'_> {
        Tc3Input {
            secret_id: "AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******",
            secret_key,
            service: "cvm",
            canonical_uri: "/",
            host: "cvm.tencentcloudapi.com",
            content_type: "application/json; charset=utf-8",
            payload: DOC_PAYLOAD.as_bytes(),
            timestamp: 1_551_113_065,
        }
    }

    #[test]
    fn signs_tencents_documented_example() {
        // The current documentation masks the key as "Gu5t9xGARNpq86cd98joQYCN3*******" and signs
        // with that literal string.
        let signed = sign(&doc_input("Gu5t9xGARNpq86cd98joQYCN3*******")).expect("signs");
        assert_eq!(
            signed.canonical_request,
            "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\n\
             content-type;host\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        assert_eq!(
            signed.string_to_sign,
            "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n\
             5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );
        assert_eq!(signed.signature, "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c");
        assert_eq!(
            signed.authorization,
            "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******/2019-02-25/cvm/tc3_request, \
             SignedHeaders=content-type;host, Signature=2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"
        );
    }

    #[test]
    fn signs_the_older_documented_example() {
        // Earlier editions of the same page used the key "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE".
        let signed = sign(&doc_input("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE")).expect("signs");
        assert_eq!(signed.signature, "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168");
    }

    #[test]
    fn classifies_error_codes() {
        assert!(is_retryable_code("InternalError"));
        assert!(is_retryable_code("InternalError.Timeout"));
        assert!(is_retryable_code("RequestLimitExceeded"));
        assert!(is_retryable_code("LimitExceeded.PhoneNumberThirtySecondLimit"));
        assert!(is_retryable_code("LimitExceeded.DeliveryFrequencyLimit"));
        for limit in ["PhoneNumberOneHourLimit", "PhoneNumberDailyLimit", "AppDailyLimit", "DailyLimit"] {
            assert!(!is_retryable_code(&format!("LimitExceeded.{limit}")), "{limit} does not pass by retrying");
        }
        assert!(!is_retryable_code("AuthFailure.SignatureExpire"), "a clock that is off stays off");
        assert!(!is_retryable_code("FailedOperation.TemplateIncorrectOrUnapproved"));
        assert!(!is_retryable_code("InternalErrorish"));
        assert!(!is_retryable_code("AuthFailure.SignatureFailure"));
        assert!(!is_retryable_code("InvalidParameterValue.IncorrectPhoneNumber"));
        assert!(!is_retryable_code("FailedOperation.InsufficientBalanceInSmsPackage"));
    }

    #[test]
    fn interprets_answers() {
        let ok = r#"{"Response":{"SendStatusSet":[{"SerialNo":"5000:1","PhoneNumber":"+8613800138000","Fee":1,
            "SessionContext":"sms_1","Code":"Ok","Message":"send success","IsoCode":"CN"}],"RequestId":"r1"}}"#;
        assert_eq!(interpret(ok), Ok(()));
        let auth = r#"{"Response":{"Error":{"Code":"AuthFailure.SecretIdNotFound","Message":"no"},"RequestId":"r2"}}"#;
        assert!(matches!(interpret(auth), Err(SendError::Permanent(m)) if m.contains("SecretIdNotFound")));
        let busy = r#"{"Response":{"Error":{"Code":"RequestLimitExceeded","Message":"slow down"},"RequestId":"r3"}}"#;
        assert!(matches!(interpret(busy), Err(SendError::Retryable(_))));
        let bad_number = r#"{"Response":{"SendStatusSet":[{"Code":"InvalidParameterValue.IncorrectPhoneNumber",
            "Message":"bad number"}],"RequestId":"r4"}}"#;
        assert!(matches!(interpret(bad_number), Err(SendError::Permanent(_))));
        let limited = r#"{"Response":{"SendStatusSet":[{"Code":"LimitExceeded.PhoneNumberOneHourLimit",
            "Message":"limit"}],"RequestId":"r5"}}"#;
        assert!(matches!(interpret(limited), Err(SendError::Permanent(_))), "an hour's limit is not outlasted");
        let briefly = r#"{"Response":{"SendStatusSet":[{"Code":"LimitExceeded.PhoneNumberThirtySecondLimit",
            "Message":"limit"}],"RequestId":"r6"}}"#;
        assert!(matches!(interpret(briefly), Err(SendError::Retryable(_))));
        assert!(matches!(interpret("<html>"), Err(SendError::Retryable(_))));
    }
}
