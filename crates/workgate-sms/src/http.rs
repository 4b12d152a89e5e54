//! What the HTTP providers share: the client, time stamps, HMAC, and the mapping of transport
//! failures and status codes to [`SendError`].

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use sha2::Sha256;
use std::error::Error as _;
use std::time::Duration;
use time::OffsetDateTime;
use workgate_domain::sms::SendError;

/// The timeout of a whole HTTP exchange (connect, send, response) unless configured.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// `timeout_ms` from a configuration: absent means [`DEFAULT_TIMEOUT`], zero is refused.
pub(crate) fn timeout(provider: &str, timeout_ms: Option<u64>) -> Result<Duration, String> {
    match timeout_ms {
        None => Ok(DEFAULT_TIMEOUT),
        Some(0) => Err(format!("sms.{provider}.timeout_ms must be greater than zero")),
        Some(ms) => Ok(Duration::from_millis(ms)),
    }
}

/// A client with a timeout on the whole exchange, no redirects (a redirected POST would lose its
/// body or its signature; a gateway that redirects is misconfigured) and our user agent.
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("workgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Parses a configured URL; only `http` and `https` are accepted.
pub(crate) fn parse_url(key: &str, value: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(value.trim()).map_err(|e| format!("{key} '{value}' is not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{key} '{value}' must be an http:// or https:// URL"));
    }
    Ok(url)
}

/// The `host[:port]` of an endpoint, lowercase: the value of the `host` header that is signed and sent.
pub(crate) fn host_header(key: &str, endpoint: &str, url: &reqwest::Url) -> Result<String, String> {
    let host = match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => return Err(format!("{key} '{endpoint}' has no host")),
    };
    Ok(host.to_ascii_lowercase())
}

/// RFC 3986 percent-encoding of everything but the unreserved characters (`A–Z a–z 0–9 - _ . ~`),
/// as UTF-8 with uppercase hex; a space becomes `+` when `space_as_plus` (form bodies, as Python's
/// `urlencode` writes them) and `%20` otherwise (signed query strings).
pub(crate) fn percent_encode(text: &str, space_as_plus: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(char::from(byte)),
            b' ' if space_as_plus => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// An `application/x-www-form-urlencoded` body of `pairs`, in order, encoded byte for byte as the
/// gateways' Python SDKs encode theirs (`*` and `'` escaped too, space as `+`).
pub(crate) fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("{}={}", percent_encode(name, true), percent_encode(value, true)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Fails when a required setting is empty.
pub(crate) fn required(key: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() { Err(format!("{key} must not be empty")) } else { Ok(()) }
}

/// Now, to the millisecond (the precision Workgate stores), and as RFC 3339 text.
pub(crate) fn now() -> (OffsetDateTime, String) {
    let now = OffsetDateTime::now_utc();
    let now = now.replace_millisecond(now.millisecond()).unwrap_or(now);
    (now, rfc3339_millis(now))
}

/// RFC 3339 in UTC with exactly three digits of fraction (`2026-11-26T08:05:09.120Z`): one width
/// for every time, so that readers of the file and the webhook can parse it with one pattern.
/// (`time`'s own RFC 3339 drops trailing zeros of the fraction, and the fraction when it is 0.)
pub(crate) fn rfc3339_millis(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// A failure before any HTTP status arrived. Timeouts and connection failures are retryable;
/// a request that could not even be built is not. The URL is left out of the message: a webhook
/// URL may carry a token.
pub(crate) fn transport_error(provider: &str, error: reqwest::Error, timeout: Duration) -> SendError {
    if error.is_builder() {
        return SendError::Permanent(format!("{provider}: cannot build the request: {}", chain(&error)));
    }
    if error.is_timeout() {
        return SendError::Retryable(format!("{provider}: no answer within {} ms", timeout.as_millis()));
    }
    let what = if error.is_connect() { "cannot connect" } else { "the request failed" };
    SendError::Retryable(format!("{provider}: {what}: {}", chain(&error)))
}

/// Whether an HTTP error status is worth retrying: 408, 429 and every 5xx.
pub(crate) fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// The error for a non-2xx status, with `detail` (usually from the body).
pub(crate) fn status_error(provider: &str, status: StatusCode, detail: &str) -> SendError {
    let message = if detail.is_empty() {
        format!("{provider}: HTTP {status}")
    } else {
        format!("{provider}: HTTP {status}: {detail}")
    };
    if is_retryable_status(status) { SendError::Retryable(message) } else { SendError::Permanent(message) }
}

/// At most `max` characters of a response body, for error messages.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The error and its sources, without the URL.
fn chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_are_encoded_as_pythons_urlencode_encodes_them() {
        // urllib.parse.urlencode([("To", "+86 138*"), ("Body", "a'b~c/d 验")])
        assert_eq!(
            form_body(&[("To", "+86 138*"), ("Body", "a'b~c/d 验")]),
            "To=%2B86+138%2A&Body=a%27b~c%2Fd+%E9%AA%8C"
        );
        assert_eq!(percent_encode("a b*c+d/e", false), "a%20b%2Ac%2Bd%2Fe");
        assert_eq!(percent_encode("阿里", false), "%E9%98%BF%E9%87%8C");
    }

    #[test]
    fn excerpt_cuts_on_characters() {
        assert_eq!(excerpt("  短信服务  ", 2), "短信…");
        assert_eq!(excerpt("abc", 3), "abc");
    }

    #[test]
    fn statuses() {
        assert!(is_retryable_status(StatusCode::TOO_MANY_REQUESTS));
        assert!(is_retryable_status(StatusCode::BAD_GATEWAY));
        assert!(is_retryable_status(StatusCode::REQUEST_TIMEOUT));
        assert!(!is_retryable_status(StatusCode::BAD_REQUEST));
        assert!(!is_retryable_status(StatusCode::UNAUTHORIZED));
    }

    #[test]
    fn times_are_written_with_three_digits_of_fraction_always() {
        use time::macros::datetime;
        assert_eq!(rfc3339_millis(datetime!(2026-11-26 08:05:09 UTC)), "2026-11-26T08:05:09.000Z");
        assert_eq!(rfc3339_millis(datetime!(2026-11-26 08:05:09.12 UTC)), "2026-11-26T08:05:09.120Z");
        assert_eq!(rfc3339_millis(datetime!(2026-01-02 23:59:59.999 +08:00)), "2026-01-02T15:59:59.999Z");
        let (now, text) = now();
        assert_eq!(text, rfc3339_millis(now));
        assert_eq!(text.len(), "2026-11-26T08:05:09.120Z".len());
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
