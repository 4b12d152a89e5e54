//! The ID-token signing keys: RSA 2048, RS256 (the algorithm every OpenID Connect library must
//! accept), and beside it in each generation a P-256 key, ES256, for the apps that register for it
//! (made when a generation is made, or the first time an ES256 app needs one of an older
//! generation); kept in the store so every node signs with the same keys and publishes the same
//! JWKS.
//!
//! Rotation, by generation number: key `g + 1` is made when key `g` has signed for
//! `rotation − prepublish`, and starts to sign `prepublish` later, so relying parties that cache
//! the JWKS see it before any token carries it. Key `g` stays published for one more rotation
//! period after it stops signing, longer than any token it signed lives. Two nodes making the
//! next key at once write one: the generation is the primary key, and the loser reads the
//! winner's.

use super::apps::IdTokenAlg;
use crate::Services;
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct SigningKey {
    /// 1, 2, 3, … in the order keys were made.
    pub generation: i64,
    pub kid: String,
    pub alg: String,
    /// PKCS#1 PEM of the private key, encrypted under the key file's signing-key key
    /// (`keys::ServerKeys::seal_signing_key`) once made.
    pub private_pem: String,
    /// The public key as a JWK (RFC 7517), as published.
    pub public_jwk: Value,
    pub created_at: Timestamp,
    /// From when it signs (until the next generation's `signs_from`).
    pub signs_from: Timestamp,
    /// The generation's P-256 key (ES256), once made.
    pub ec: Option<EcKey>,
}

/// A generation's P-256 key. Its kid is the generation's with `-es` after it.
#[derive(Debug, Clone)]
pub struct EcKey {
    /// The PKCS#8 document in base64, encrypted under the key file's signing-key key once made.
    pub private: String,
    /// The public key as a JWK, as published.
    pub public_jwk: Value,
}

/// The kid of the P-256 key of the generation whose (RSA) kid is `kid`.
fn ec_kid(kid: &str) -> String {
    format!("{kid}-es")
}

/// Parsed private keys, by kid (parsing a key and checking it costs more than signing with it).
/// AWS-LC signs (`aws-lc-rs`): an RS256 signature costs about a quarter of what the pure-Rust `rsa`
/// crate takes, half of ring's (`workgate-bench sign`).
#[derive(Default, Clone)]
pub(crate) struct KeyCache {
    rsa: Arc<Mutex<HashMap<String, Arc<RsaKeyPair>>>>,
    ec: Arc<Mutex<HashMap<String, Arc<EcdsaKeyPair>>>>,
}

/// The entry of `kid` in `cache`, or what `parse` makes of it (kept).
fn cached<K>(cache: &Mutex<HashMap<String, Arc<K>>>, kid: &str, parse: impl FnOnce() -> Result<K>) -> Result<Arc<K>> {
    let mut cache = cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(found) = cache.get(kid) {
        return Ok(found.clone());
    }
    let parsed = Arc::new(parse()?);
    cache.insert(kid.to_owned(), parsed.clone());
    Ok(parsed)
}

impl KeyCache {
    fn key_pair(&self, key: &SigningKey, keys: &crate::keys::ServerKeys) -> Result<Arc<RsaKeyPair>> {
        cached(&self.rsa, &key.kid, || {
            let unusable = |e: String| Error::Internal(format!("signing key {}: {e}", key.kid));
            let pem = keys.open_signing_key(&key.kid, &key.private_pem)?;
            let der = rsa::RsaPrivateKey::from_pkcs1_pem(&pem)
                .and_then(|private| private.to_pkcs1_der())
                .map_err(|e| unusable(e.to_string()))?;
            RsaKeyPair::from_der(der.as_bytes()).map_err(|e| unusable(e.to_string()))
        })
    }

    fn ec_pair(&self, kid: &str, ec: &EcKey, keys: &crate::keys::ServerKeys) -> Result<Arc<EcdsaKeyPair>> {
        cached(&self.ec, kid, || {
            let unusable = |e: &str| Error::Internal(format!("signing key {kid}: {e}"));
            let pkcs8 = keys.open_signing_key(kid, &ec.private)?;
            let der = STANDARD.decode(pkcs8.trim()).map_err(|_| unusable("not base64"))?;
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).map_err(|e| unusable(&e.to_string()))
        })
    }
}

/// A new P-256 key named `kid`, its private half not yet encrypted.
fn generate_ec(kid: &str) -> Result<EcKey> {
    let failed = |what: &str| Error::Internal(format!("P-256 key generation: {what}"));
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(|_| failed("generate"))?;
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).map_err(|_| failed("read back"))?;
    // An uncompressed point: 0x04, then x and y, 32 bytes each.
    let point = pair.public_key().as_ref();
    let (Some(x), Some(y)) = (point.get(1..33), point.get(33..65)) else { return Err(failed("public key")) };
    Ok(EcKey {
        private: STANDARD.encode(pkcs8.as_ref()),
        public_jwk: json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                           "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)}),
    })
}

/// A compact JWS (RFC 7515) of `claims` with the header `alg` and `kid`, signed by `sign`.
fn jws(alg: &str, kid: &str, claims: &Value, sign: impl FnOnce(&[u8]) -> Result<Vec<u8>>) -> Result<String> {
    let header = json!({"typ": "JWT", "alg": alg, "kid": kid});
    let encode = |value: &Value| {
        serde_json::to_vec(value)
            .map(|bytes| URL_SAFE_NO_PAD.encode(bytes))
            .map_err(|e| Error::Internal(format!("encoding a JWT: {e}")))
    };
    let signing_input = format!("{}.{}", encode(&header)?, encode(claims)?);
    let signature = sign(signing_input.as_bytes())?;
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

fn sign_es256(pair: &EcdsaKeyPair, kid: &str, claims: &Value) -> Result<String> {
    jws("ES256", kid, claims, |input| {
        pair.sign(&SystemRandom::new(), input)
            .map(|signature| signature.as_ref().to_vec())
            .map_err(|_| Error::Internal("signing a JWT failed".into()))
    })
}

/// A compact JWS of `claims`, signed RS256 by `pair` and naming `kid`.
fn sign_rs256(pair: &RsaKeyPair, kid: &str, claims: &Value) -> Result<String> {
    jws("RS256", kid, claims, |input| {
        let mut signature = vec![0; pair.public_modulus_len()];
        pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input, &mut signature)
            .map_err(|_| Error::Internal("signing a JWT failed".into()))?;
        Ok(signature)
    })
}

/// Makes the new keys of `generation` (RSA and P-256), signing from `signs_from`.
fn generate_key(generation: i64, now: Timestamp, signs_from: Timestamp) -> Result<SigningKey> {
    let mut rng = rsa::rand_core::OsRng;
    let private =
        rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|e| Error::Internal(format!("RSA key generation: {e}")))?;
    let pem = private
        .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
        .map_err(|e| Error::Internal(format!("RSA key encoding: {e}")))?;
    let public = private.to_public_key();
    let n = URL_SAFE_NO_PAD.encode(public.n().to_bytes_be());
    let e = URL_SAFE_NO_PAD.encode(public.e().to_bytes_be());
    // The kid names the key without revealing anything: its generation and a random tag.
    let kid = format!("wg{generation}-{}", crate::secret::random_lower_alnum(10));
    Ok(SigningKey {
        generation,
        kid: kid.clone(),
        alg: "RS256".into(),
        private_pem: pem.to_string(),
        public_jwk: json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e}),
        created_at: now,
        signs_from,
        ec: Some(generate_ec(&ec_kid(&kid))?),
    })
}

impl Services {
    fn rotation_ms(&self) -> i64 {
        self.settings.oidc_key_rotation_secs * 1000
    }

    /// The keys now in use, newest first: the next key when it is already published, the key
    /// that signs, and the one before it. Makes the next key (or the first) when it is due.
    async fn current_keys(&self) -> Result<Vec<SigningKey>> {
        self.keys_at(self.clock.now()).await
    }

    /// [`Self::current_keys`] as of `now`: a caller that signs decides by the same instant that
    /// made a missing key, so the first key always signs for the request that made it.
    async fn keys_at(&self, now: Timestamp) -> Result<Vec<SigningKey>> {
        let rotation = self.rotation_ms();
        let prepublish = self.settings.oidc_key_prepublish_secs * 1000;
        for _ in 0..3 {
            let keys = self.store.signing_keys(4).await?;
            let due = match keys.first() {
                None => Some((1, now)),
                Some(newest)
                    if newest.signs_from <= now
                        && now.millis() >= newest.signs_from.millis() + rotation - prepublish =>
                {
                    // Never sooner than `prepublish` from now: caches must see it first.
                    let from = (newest.signs_from.millis() + rotation).max(now.millis() + prepublish);
                    Some((newest.generation + 1, Timestamp(from)))
                }
                Some(_) => None,
            };
            let Some((generation, signs_from)) = due else {
                let signing = keys.iter().position(|k| k.signs_from <= now).unwrap_or(keys.len());
                return Ok(keys.into_iter().take(signing + 2).collect());
            };
            let mut key = tokio::task::spawn_blocking(move || generate_key(generation, now, signs_from))
                .await
                .map_err(|e| Error::Internal(format!("key generation task: {e}")))??;
            // The private keys are kept encrypted: a copy of the database cannot sign ID tokens.
            key.private_pem = self.keys().seal_signing_key(&key.kid, &key.private_pem);
            if let Some(ec) = &mut key.ec {
                ec.private = self.keys().seal_signing_key(&ec_kid(&key.kid), &ec.private);
            }
            if self.store.insert_signing_key(&key).await? {
                tracing::info!(kid = %key.kid, signs_from = %key.signs_from.to_rfc3339(), "made a new ID-token signing key");
            }
        }
        Err(Error::Internal("the signing keys keep changing under us".into()))
    }

    /// `GET /oidc/jwks`: the public keys relying parties verify ID tokens with.
    pub async fn jwks(&self) -> Result<Value> {
        let keys = self.current_keys().await?;
        let published =
            keys.iter().flat_map(|k| std::iter::once(&k.public_jwk).chain(k.ec.as_ref().map(|ec| &ec.public_jwk)));
        Ok(json!({"keys": published.cloned().collect::<Vec<_>>()}))
    }

    /// Signs `claims` as a JWT with `alg`, with the generation that signs now.
    pub(crate) async fn sign_jwt(&self, claims: &Value, alg: IdTokenAlg) -> Result<String> {
        let now = self.clock.now();
        let keys = self.keys_at(now).await?;
        // The first key has no predecessor: when another request made it a moment after this one
        // began, it signs for this one too.
        let key = keys
            .iter()
            .find(|k| k.signs_from <= now)
            .or_else(|| keys.iter().find(|k| k.generation == 1))
            .ok_or_else(|| Error::Internal("no signing key".into()))?;
        match alg {
            IdTokenAlg::Rs256 => {
                let pair = self.oidc_keys.key_pair(key, self.keys())?;
                sign_rs256(&pair, &key.kid, claims)
            }
            IdTokenAlg::Es256 => {
                let kid = ec_kid(&key.kid);
                let ec = match &key.ec {
                    Some(ec) => ec.clone(),
                    None => self.give_ec_key(key).await?,
                };
                let pair = self.oidc_keys.ec_pair(&kid, &ec, self.keys())?;
                sign_es256(&pair, &kid, claims)
            }
        }
    }

    /// Gives a generation made before P-256 keys existed its P-256 key; when another request (or
    /// node) gave it one first, that one.
    async fn give_ec_key(&self, key: &SigningKey) -> Result<EcKey> {
        let kid = ec_kid(&key.kid);
        let mut ec = generate_ec(&kid)?;
        ec.private = self.keys().seal_signing_key(&kid, &ec.private);
        if self.store.add_ec_key(key.generation, &ec).await? {
            tracing::info!(kid = %kid, "made the P-256 signing key of an older generation");
            return Ok(ec);
        }
        let stored = self.store.signing_keys(4).await?;
        stored
            .into_iter()
            .find(|k| k.generation == key.generation)
            .and_then(|k| k.ec)
            .ok_or_else(|| Error::Internal(format!("signing key {kid} is neither made nor found")))
    }

    /// The claims of a JWT that one of our published keys signed, whatever its expiry (for an
    /// `id_token_hint`, which may have expired). `None` when it is not ours or not intact.
    pub(crate) async fn verify_own_jwt(&self, token: &str) -> Result<Option<Value>> {
        let Ok(header) = jsonwebtoken::decode_header(token) else { return Ok(None) };
        let Some(kid) = header.kid.as_deref() else { return Ok(None) };
        let keys = self.current_keys().await?;
        let published =
            keys.iter().flat_map(|k| std::iter::once(&k.public_jwk).chain(k.ec.as_ref().map(|ec| &ec.public_jwk)));
        let Some(jwk) = published.into_iter().find(|jwk| jwk["kid"].as_str() == Some(kid)) else { return Ok(None) };
        let part = |name: &str| jwk[name].as_str().unwrap_or_default();
        let decoding = match (header.alg, jwk["kty"].as_str()) {
            (Algorithm::RS256, Some("RSA")) => DecodingKey::from_rsa_components(part("n"), part("e")),
            (Algorithm::ES256, Some("EC")) => DecodingKey::from_ec_components(part("x"), part("y")),
            _ => return Ok(None),
        }
        .map_err(|e| Error::Internal(format!("published key {kid}: {e}")))?;
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.set_issuer(&[self.issuer()]);
        Ok(jsonwebtoken::decode::<Value>(token, &decoding, &validation).ok().map(|data| data.claims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_signed_with_aws_lc_verifies_with_the_published_key() {
        let now = Timestamp(1_700_000_000_000);
        let key = generate_key(1, now, now).expect("a key");
        let keys = crate::keys::ServerKeys::ephemeral();
        let sealed = SigningKey { private_pem: keys.seal_signing_key(&key.kid, &key.private_pem), ..key.clone() };
        let pair = KeyCache::default().key_pair(&sealed, &keys).expect("the sealed key opens and parses");
        let claims = json!({"iss": "https://id.example.com", "sub": "mem_1", "name": "李雷"});
        let token = sign_rs256(&pair, &key.kid, &claims).expect("signed");
        let header = jsonwebtoken::decode_header(&token).expect("a header");
        assert_eq!((header.alg, header.kid.as_deref()), (Algorithm::RS256, Some(key.kid.as_str())));
        let decoding = DecodingKey::from_rsa_components(
            key.public_jwk["n"].as_str().expect("n"),
            key.public_jwk["e"].as_str().expect("e"),
        )
        .expect("the published key");
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let verified = jsonwebtoken::decode::<Value>(&token, &decoding, &validation).expect("verifies");
        assert_eq!(verified.claims, claims);
        let mut forged = token.clone();
        forged.replace_range(forged.len() - 4.., "AAAA");
        assert!(jsonwebtoken::decode::<Value>(&forged, &decoding, &validation).is_err());
    }

    #[test]
    fn a_token_signed_es256_verifies_with_the_published_p256_key() {
        let keys = crate::keys::ServerKeys::ephemeral();
        let mut ec = generate_ec("wg1-abc-es").expect("a P-256 key");
        assert_eq!(ec.public_jwk["crv"], "P-256");
        ec.private = keys.seal_signing_key("wg1-abc-es", &ec.private);
        let pair = KeyCache::default().ec_pair("wg1-abc-es", &ec, &keys).expect("the sealed key opens and parses");
        let claims = json!({"iss": "https://id.example.com", "sub": "mem_1"});
        let token = sign_es256(&pair, "wg1-abc-es", &claims).expect("signed");
        let decoding = DecodingKey::from_ec_components(
            ec.public_jwk["x"].as_str().expect("x"),
            ec.public_jwk["y"].as_str().expect("y"),
        )
        .expect("the published key");
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let verified = jsonwebtoken::decode::<Value>(&token, &decoding, &validation).expect("verifies");
        assert_eq!(verified.claims, claims);
        assert!(KeyCache::default().ec_pair("wg2-abc-es", &ec, &keys).is_err(), "sealed for its own kid");
    }
}
