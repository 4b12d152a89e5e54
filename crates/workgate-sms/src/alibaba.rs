//! The `alibaba` provider: Alibaba Cloud SMS, action `SendSms` of Dysmsapi version 2017-05-25, over
//! `https://dysmsapi.aliyuncs.com`, signed with ACS3-HMAC-SHA256 (Alibaba Cloud's "V3" request
//! signature, the one its current SDKs use).
//!
//! # Templates
//!
//! Like Tencent Cloud, Alibaba Cloud sends only approved templates (`TemplateCode`, `SMS_…`),
//! filled with named parameters (`${code}`): one per kind of message and region class, configured
//! in `[sms.alibaba.templates.mainland]` and `[sms.alibaba.templates.international]` (see
//! [`crate::templates`]). The template's variables carry the names of the message's parameters:
//! a login-code template reads, say, `您的验证码为：${code}，${minutes}分钟内有效。`, and its
//! `params` are `["code", "minutes"]`. They are sent as the JSON object `TemplateParam`.
//!
//! # The request
//!
//! ```text
//! POST /?OutId=sms_…&PhoneNumbers=13800138000&SignName=…&TemplateCode=SMS_…&TemplateParam={"code":"123456"}
//! host: dysmsapi.aliyuncs.com
//! x-acs-action: SendSms
//! x-acs-version: 2017-05-25
//! x-acs-date: 2026-11-27T01:02:03Z
//! x-acs-signature-nonce: <random>
//! x-acs-content-sha256: <hex SHA-256 of the empty body>
//! Authorization: ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=host;x-acs-action;…,Signature=<hex>
//! ```
//!
//! with the query percent-encoded as RFC 3986 says (only `A–Z a–z 0–9 - _ . ~` stay as they are).
//! Mainland numbers are sent as their 11 digits, others as country code and number without `+`.
//! `OutId` is the outbox id, returned in delivery receipts.
//!
//! # Signing (ACS3-HMAC-SHA256)
//!
//! ```text
//! CanonicalRequest = "POST\n" + path + "\n" + CanonicalQuery + "\n"
//!                  + CanonicalHeaders + "\n" + SignedHeaders + "\n" + hex(SHA256(body))
//! CanonicalQuery   = the parameters sorted by name, "name=value" percent-encoded, joined by "&"
//! CanonicalHeaders = each signed header "name:value\n", names lowercase, sorted
//! SignedHeaders    = their names joined by ";" (host, x-acs-*)
//! StringToSign     = "ACS3-HMAC-SHA256\n" + hex(SHA256(CanonicalRequest))
//! Signature        = hex(HMAC-SHA256(AccessKeySecret, StringToSign))
//! ```
//!
//! # Errors
//!
//! Alibaba answers `Code: "OK"` when the message was accepted. Retried are only what a later
//! attempt can get past: the service's own trouble (`isp.SYSTEM_ERROR`, `InternalError`,
//! `ServiceUnavailable`), the API's request rate (`Throttling*`) and the per-number limit of a
//! minute (`isv.BUSINESS_LIMIT_CONTROL` whose message names the minute). Everything else is final,
//! its reason kept where admins see it: the hourly and daily per-number limits, a wrong signature,
//! template or parameter, an unknown key, a clock the signature says is off, an empty balance. A
//! non-2xx status without such a code is mapped like every HTTP provider (408/429/5xx retryable).

use crate::Secret;
use crate::http;
use crate::templates::{TemplateSet, Templates};
use async_trait::async_trait;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::Duration;
use time::macros::format_description;
use workgate_domain::sms::{SendError, SmsMessage, SmsProvider};

pub const DEFAULT_ENDPOINT: &str = "https://dysmsapi.aliyuncs.com";
const ACTION: &str = "SendSms";
const VERSION: &str = "2017-05-25";
const ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// `[sms.alibaba]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlibabaConfig {
    /// The RAM user's `AccessKeyId`…
    pub access_key_id: String,
    /// …and `AccessKeySecret`.
    pub access_key_secret: Secret,
    /// The approved signature (`SignName`), e.g. the enterprise's short name.
    pub sign_name: String,
    /// The approved templates, per region class and kind of message (see [`crate::templates`]).
    pub templates: Templates,
    /// The API's base URL; `https://dysmsapi.aliyuncs.com` when absent (tests point it elsewhere).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Timeout of one request, in milliseconds; 10 000 when absent.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

pub struct AlibabaProvider {
    config: AlibabaConfig,
    templates: TemplateSet,
    url: reqwest::Url,
    /// `host[:port]` of the endpoint, lowercase: the signed `host` header and the one sent.
    host: String,
    timeout: Duration,
    client: reqwest::Client,
}

impl AlibabaProvider {
    pub fn new(config: AlibabaConfig) -> Result<Self, String> {
        http::required("sms.alibaba.access_key_id", &config.access_key_id)?;
        http::required("sms.alibaba.access_key_secret", config.access_key_secret.expose())?;
        http::required("sms.alibaba.sign_name", &config.sign_name)?;
        let templates = TemplateSet::new("alibaba", config.templates.clone())?;
        let endpoint = config.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT);
        let url = http::parse_url("sms.alibaba.endpoint", endpoint)?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("sms.alibaba.endpoint '{endpoint}' must not have a query or a fragment"));
        }
        let host = http::host_header("sms.alibaba.endpoint", endpoint, &url)?;
        let timeout = http::timeout("alibaba", config.timeout_ms)?;
        Ok(AlibabaProvider { templates, url, host, timeout, client: http::client(timeout)?, config })
    }
}

/// The number as Alibaba takes it: 11 digits for mainland China, else country code and number.
fn phone_numbers(to: &str) -> &str {
    let digits = to.strip_prefix('+').unwrap_or(to);
    digits.strip_prefix("86").filter(|national| national.len() == 11).unwrap_or(digits)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    request_id: Option<String>,
}

#[async_trait]
impl SmsProvider for AlibabaProvider {
    fn name(&self) -> &'static str {
        "alibaba"
    }

    async fn send(&self, message_id: &str, to: &str, message: &SmsMessage) -> Result<(), SendError> {
        let filled = self.templates.fill(to, message)?;
        let template_param = serde_json::to_string(&filled.params.iter().cloned().collect::<BTreeMap<_, _>>())
            .map_err(|e| SendError::Permanent(format!("alibaba: cannot encode the parameters: {e}")))?;
        let query = [
            ("OutId", message_id),
            ("PhoneNumbers", phone_numbers(to)),
            ("SignName", self.config.sign_name.as_str()),
            ("TemplateCode", filled.template_id),
            ("TemplateParam", template_param.as_str()),
        ];
        let (now, _) = http::now();
        let date = now
            .format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z"))
            .map_err(|e| SendError::Permanent(format!("alibaba: cannot format the date: {e}")))?;
        let nonce = nonce();
        let signed = sign(&Acs3Input {
            access_key_id: &self.config.access_key_id,
            access_key_secret: self.config.access_key_secret.expose(),
            method: "POST",
            path: self.url.path(),
            query: &query,
            host: &self.host,
            action: ACTION,
            version: VERSION,
            date: &date,
            nonce: &nonce,
            body: b"",
        });
        let mut url = self.url.clone();
        url.set_query(Some(&signed.canonical_query));
        let response = self
            .client
            .post(url)
            .header(reqwest::header::HOST, &self.host)
            .header(reqwest::header::AUTHORIZATION, signed.authorization)
            .header("x-acs-action", ACTION)
            .header("x-acs-version", VERSION)
            .header("x-acs-date", date)
            .header("x-acs-signature-nonce", nonce)
            .header("x-acs-content-sha256", signed.hashed_payload)
            .send()
            .await
            .map_err(|e| http::transport_error("alibaba", e, self.timeout))?;
        let status = response.status();
        let text =
            response.text().await.map_err(|e| http::transport_error("alibaba", e.without_url(), self.timeout))?;
        interpret(status, &text)
    }
}

/// Sixteen random bytes, hex: a nonce is never used twice within Alibaba's 15-minute window.
fn nonce() -> String {
    hex::encode(workgate_domain::secret::random_bytes::<16>())
}

/// Maps an answer to the outcome.
fn interpret(status: reqwest::StatusCode, text: &str) -> Result<(), SendError> {
    let Ok(answer) = serde_json::from_str::<Answer>(text) else {
        if !status.is_success() {
            return Err(http::status_error("alibaba", status, &http::excerpt(text, 200)));
        }
        return Err(SendError::Retryable(format!("alibaba: unreadable answer: {}", http::excerpt(text, 200))));
    };
    if status.is_success() && answer.code == "OK" {
        return Ok(());
    }
    if answer.code.is_empty() {
        return Err(http::status_error("alibaba", status, &http::excerpt(text, 200)));
    }
    let request_id = answer.request_id.as_deref().unwrap_or("none");
    let reason = format!("alibaba: {}: {} (RequestId {request_id})", answer.code, answer.message);
    Err(
        if is_retryable(&answer.code, &answer.message) || (http::is_retryable_status(status) && status.as_u16() != 400)
        {
            SendError::Retryable(reason)
        } else {
            SendError::Permanent(reason)
        },
    )
}

/// Whether a later attempt can get past the error `code` (with its `message`).
fn is_retryable(code: &str, message: &str) -> bool {
    match code {
        "isp.SYSTEM_ERROR" | "InternalError" | "ServiceUnavailable" | "isp.GATEWAY_ERROR" => true,
        // Every attempt is signed again with a fresh nonce.
        "SignatureNonceUsed" => true,
        // Per-number flow control: a minute passes, an hour or a day is not worth waiting for.
        "isv.BUSINESS_LIMIT_CONTROL" => message.contains("分钟") || message.to_ascii_lowercase().contains("minute"),
        _ => code.starts_with("Throttling"),
    }
}

/// What ACS3-HMAC-SHA256 signs: a request whose signed headers are `host` and the `x-acs-` ones.
pub struct Acs3Input<'a> {
    pub access_key_id: &'a str,
    pub access_key_secret: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(&'a str, &'a str)],
    pub host: &'a str,
    pub action: &'a str,
    pub version: &'a str,
    pub date: &'a str,
    pub nonce: &'a str,
    pub body: &'a [u8],
}

/// The intermediate strings (for debugging a refused signature) and the result.
#[derive(Debug)]
pub struct Acs3Signature {
    pub canonical_query: String,
    pub hashed_payload: String,
    pub canonical_request: String,
    pub string_to_sign: String,
    pub signature: String,
    pub authorization: String,
}

/// ACS3-HMAC-SHA256 (see the module documentation).
pub fn sign(input: &Acs3Input<'_>) -> Acs3Signature {
    let mut query: Vec<(String, String)> = input
        .query
        .iter()
        .map(|(name, value)| (http::percent_encode(name, false), http::percent_encode(value, false)))
        .collect();
    query.sort();
    let canonical_query = query.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("&");
    let hashed_payload = hex::encode(Sha256::digest(input.body));
    // Sorted by name.
    let headers = [
        ("host", input.host),
        ("x-acs-action", input.action),
        ("x-acs-content-sha256", hashed_payload.as_str()),
        ("x-acs-date", input.date),
        ("x-acs-signature-nonce", input.nonce),
        ("x-acs-version", input.version),
    ];
    let canonical_headers: String = headers.iter().map(|(name, value)| format!("{name}:{}\n", value.trim())).collect();
    let signed_headers = headers.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(";");
    let canonical_request = format!(
        "{}\n{}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{hashed_payload}",
        input.method, input.path
    );
    let string_to_sign = format!("{ALGORITHM}\n{}", hex::encode(Sha256::digest(canonical_request.as_bytes())));
    let signature = hex::encode(http::hmac_sha256(input.access_key_secret.as_bytes(), string_to_sign.as_bytes()));
    let authorization =
        format!("{ALGORITHM} Credential={},SignedHeaders={signed_headers},Signature={signature}", input.access_key_id);
    Acs3Signature { canonical_query, hashed_payload, canonical_request, string_to_sign, signature, authorization }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed with the official SDK's own signer (`alibabacloud_openapi_util` `get_authorization`,
    /// as `alibabacloud-tea-openapi` 0.4.6 calls it for Dysmsapi 4.6.0) from the same inputs.
    #[test]
    fn signs_as_the_official_sdk_does() {
        let query = [
            ("PhoneNumbers", "+8613800138000"),
            ("SignName", "阿里云短信测试"),
            ("TemplateCode", "SMS_154950909"),
            ("TemplateParam", r#"{"code":"123456"}"#),
            ("OutId", "sms_01JDQ0Z8B6W7K3M2N4P5Q6R7S8"),
        ];
        let signed = sign(&Acs3Input {
            access_key_id: "LTAI5tTestKeyId0000",
            access_key_secret: "TestSecretKey0123456789abcdef",
            method: "POST",
            path: "/",
            query: &query,
            host: "dysmsapi.aliyuncs.com",
            action: "SendSms",
            version: "2017-05-25",
            date: "2026-11-27T01:02:03Z",
            nonce: "3f1b2c4d5e6f",
            body: b"",
        });
        assert_eq!(
            signed.canonical_query,
            "OutId=sms_01JDQ0Z8B6W7K3M2N4P5Q6R7S8&PhoneNumbers=%2B8613800138000&\
             SignName=%E9%98%BF%E9%87%8C%E4%BA%91%E7%9F%AD%E4%BF%A1%E6%B5%8B%E8%AF%95&TemplateCode=SMS_154950909&\
             TemplateParam=%7B%22code%22%3A%22123456%22%7D"
        );
        assert_eq!(
            signed.string_to_sign,
            "ACS3-HMAC-SHA256\n7aa48d5ac678272d941aa52b2abeadb9017a3797fd616b2f3b392c9d15c8283a"
        );
        assert_eq!(
            signed.authorization,
            "ACS3-HMAC-SHA256 Credential=LTAI5tTestKeyId0000,\
             SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,\
             Signature=f48ea6a34dec3f316afc1dd145115f4498bbc863fca5db78ba2ad1f85d99d554"
        );
    }

    #[test]
    fn numbers_as_alibaba_takes_them() {
        assert_eq!(phone_numbers("+8613800138000"), "13800138000");
        assert_eq!(phone_numbers("+85291234567"), "85291234567");
        assert_eq!(phone_numbers("+14155550100"), "14155550100");
        assert_eq!(phone_numbers("+8612345"), "8612345", "not a mainland mobile number: sent whole");
    }

    #[test]
    fn classifies_answers() {
        use reqwest::StatusCode;
        let ok = r#"{"Code":"OK","Message":"OK","BizId":"9006197469364984400","RequestId":"F655A8D5"}"#;
        assert_eq!(interpret(StatusCode::OK, ok), Ok(()));
        let minute = r#"{"Code":"isv.BUSINESS_LIMIT_CONTROL","Message":"触发分钟级流控Permits:1","RequestId":"r"}"#;
        assert!(matches!(interpret(StatusCode::OK, minute), Err(SendError::Retryable(_))));
        let day = r#"{"Code":"isv.BUSINESS_LIMIT_CONTROL","Message":"触发天级流控Permits:10","RequestId":"r"}"#;
        assert!(matches!(interpret(StatusCode::OK, day), Err(SendError::Permanent(m)) if m.contains("天级")));
        let template = r#"{"Code":"isv.SMS_TEMPLATE_ILLEGAL","Message":"bad template","RequestId":"r"}"#;
        assert!(matches!(interpret(StatusCode::OK, template), Err(SendError::Permanent(_))));
        let signature = r#"{"Code":"SignatureDoesNotMatch","Message":"no","RequestId":"r"}"#;
        assert!(matches!(interpret(StatusCode::BAD_REQUEST, signature), Err(SendError::Permanent(_))));
        let rate =
            r#"{"Code":"Throttling.User","Message":"Request was denied due to user flow control.","RequestId":"r"}"#;
        assert!(matches!(interpret(StatusCode::BAD_REQUEST, rate), Err(SendError::Retryable(_))));
        let system = r#"{"Code":"isp.SYSTEM_ERROR","Message":"system error","RequestId":"r"}"#;
        assert!(matches!(interpret(StatusCode::OK, system), Err(SendError::Retryable(_))));
        assert!(matches!(interpret(StatusCode::BAD_GATEWAY, "<html>"), Err(SendError::Retryable(_))));
        assert!(matches!(interpret(StatusCode::FORBIDDEN, "<html>"), Err(SendError::Permanent(_))));
    }
}
