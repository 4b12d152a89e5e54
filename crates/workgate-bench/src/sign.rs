//! `sign`: what one ID-token signature costs with the library Workgate signs with (AWS-LC, through
//! `aws-lc-rs`), beside ring and the pure-Rust `rsa` crate, on this machine's CPU. RS256 is the
//! default algorithm of every app; ES256 is for the apps that register for it.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// Signatures per library (the slow pure-Rust one makes a tenth of them).
    #[arg(long, default_value_t = 2000)]
    signatures: u32,
}

/// A message the size of a typical ID token's signing input.
const SIGNING_INPUT: [u8; 600] = [b'e'; 600];

pub fn run(args: SignArgs) -> anyhow::Result<()> {
    let n = args.signatures.max(10);
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let rsa = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(|e| anyhow::anyhow!("RSA key: {e}"))?;
    let pkcs8 = AsDer::<Pkcs8V1Der>::as_der(&rsa).map_err(|e| anyhow::anyhow!("RSA key as PKCS#8: {e}"))?;
    let mut signature = vec![0; rsa.public_modulus_len()];
    let mut rows = Vec::new();

    let per_signature = time(n, || {
        rsa.sign(&RSA_PKCS1_SHA256, &rng, &SIGNING_INPUT, &mut signature)
            .map_err(|_| anyhow::anyhow!("aws-lc-rs RS256"))
    })?;
    rows.push(("RS256 (RSA 2048)", "aws-lc-rs (Workgate)", per_signature));

    let ring_key = ring::signature::RsaKeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| anyhow::anyhow!("ring: {e}"))?;
    let ring_rng = ring::rand::SystemRandom::new();
    let per_signature = time(n, || {
        ring_key
            .sign(&ring::signature::RSA_PKCS1_SHA256, &ring_rng, &SIGNING_INPUT, &mut signature)
            .map_err(|_| anyhow::anyhow!("ring RS256"))
    })?;
    rows.push(("RS256 (RSA 2048)", "ring", per_signature));

    let pure = {
        use rsa::pkcs8::DecodePrivateKey;
        rsa::RsaPrivateKey::from_pkcs8_der(pkcs8.as_ref())?
    };
    let digest = {
        use sha2::Digest;
        sha2::Sha256::digest(SIGNING_INPUT)
    };
    let per_signature = time((n / 10).max(10), || {
        pure.sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest).map(drop).map_err(anyhow::Error::from)
    })?;
    rows.push(("RS256 (RSA 2048)", "rsa (pure Rust)", per_signature));

    let ec_pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|e| anyhow::anyhow!("P-256 key: {e}"))?;
    let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, ec_pkcs8.as_ref())
        .map_err(|e| anyhow::anyhow!("P-256 key: {e}"))?;
    let per_signature =
        time(n, || ec.sign(&rng, &SIGNING_INPUT).map(drop).map_err(|_| anyhow::anyhow!("aws-lc-rs ES256")))?;
    rows.push(("ES256 (P-256)", "aws-lc-rs (Workgate)", per_signature));

    println!("one signature of a {}-byte input, one thread, {n} signatures each", SIGNING_INPUT.len());
    println!("| algorithm | library | ms per signature | signatures/s |");
    println!("| --- | --- | ---: | ---: |");
    for (alg, library, ms) in rows {
        println!("| {alg} | {library} | {ms:.3} | {:.0} |", 1000.0 / ms);
    }
    Ok(())
}

/// Milliseconds per call of `sign`, over `n` calls after a few to warm up.
fn time(n: u32, mut sign: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    for _ in 0..3 {
        sign()?;
    }
    let started = Instant::now();
    for _ in 0..n {
        sign()?;
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0 / f64::from(n))
}
