//! The OpenID Connect authorize and token parameters: the query or form decoding of
//! `workgate_http::oidc::unique_params` (each parameter at most once, RFC 6749 section 3.1), then
//! the PKCE and redirect helpers of `workgate_domain::oidc::flow` on what it decoded.
//!
//! Asserts:
//! - accepted: one entry per decoded pair, each with its pair's value; encoding the parameters
//!   again decodes to the same parameters;
//! - refused: the parameter it names is given more than once;
//! - PKCE: the S256 challenge of a well-formed verifier is itself well-formed (43 characters), and
//!   a verifier's challenge differs from the verifier;
//! - `redirect_uri`: when it is a URL, adding the response parameters keeps its own query first
//!   and puts the response parameters last, in order, with their values intact; a registrable
//!   one stays registrable (when short enough).

#![no_main]

use libfuzzer_sys::fuzz_target;
use workgate_domain::oidc::apps::valid_redirect_uri;
use workgate_domain::oidc::flow::{pkce_shaped, redirect_with, s256};
use workgate_http::oidc::unique_params;

fuzz_target!(|data: &[u8]| {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(data).into_owned().collect();
    let params = match unique_params(data) {
        Ok(p) => p,
        Err(name) => {
            assert!(pairs.iter().filter(|(k, _)| *k == name).count() >= 2, "{name:?} was not repeated");
            return;
        }
    };
    assert_eq!(params.len(), pairs.len());
    for (k, v) in &pairs {
        assert_eq!(params.get(k), Some(v));
    }
    let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(&params).finish();
    assert_eq!(unique_params(encoded.as_bytes()).as_ref(), Ok(&params), "{encoded:?}");

    for key in ["code_verifier", "code_challenge"] {
        if let Some(v) = params.get(key).filter(|v| pkce_shaped(v)) {
            let challenge = s256(v);
            assert_eq!(challenge.len(), 43);
            assert!(pkce_shaped(&challenge), "{challenge:?}");
            assert_ne!(&challenge, v);
        }
    }

    let Some(uri) = params.get("redirect_uri") else { return };
    let state = params.get("state").map_or("", String::as_str);
    let response = [("code", "wgc_c0de"), ("state", state), ("iss", "https://wg.example")];
    let answered = redirect_with(uri, &response);
    let Ok(original) = url::Url::parse(uri) else {
        assert_eq!(&answered, uri, "a URI that is not a URL is answered as it is");
        return;
    };
    let url = url::Url::parse(&answered).unwrap_or_else(|e| panic!("{answered:?} from {uri:?}: {e}"));
    let before: Vec<(String, String)> = original.query_pairs().into_owned().collect();
    let after: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert_eq!(after.len(), before.len() + response.len(), "{uri:?} -> {answered:?}");
    assert_eq!(&after[..before.len()], &before[..], "{uri:?} -> {answered:?}");
    for ((k, v), (rk, rv)) in after[before.len()..].iter().zip(response) {
        assert_eq!((k.as_str(), v.as_str()), (rk, rv), "{uri:?} -> {answered:?}");
    }
    assert_eq!((url.scheme(), url.host_str(), url.path()), (original.scheme(), original.host_str(), original.path()));
    if valid_redirect_uri(uri).is_ok() && answered.len() <= 2000 {
        assert_eq!(valid_redirect_uri(&answered), Ok(()), "{uri:?} -> {answered:?}");
    }
});
