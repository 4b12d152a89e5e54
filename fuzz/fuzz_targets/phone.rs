//! `PhoneNumber::parse(input, region)` in every region libphonenumber knows: the first two bytes
//! pick the region (each byte a letter, counted from `A` modulo 26, so `CN…` is China and every
//! ISO 3166 code is reachable), the rest is the number as typed.
//!
//! Asserts, for every number accepted: it is E.164 (`+` and at most 15 digits, the first not 0);
//! its E.164 form parses back to the same number in the same region and in any other region (the
//! country code is in it); it knows its region; and its masked form keeps the country code and
//! last four digits.

#![no_main]

use libfuzzer_sys::fuzz_target;
use workgate_domain::phone::{PhoneNumber, Region};

fuzz_target!(|data: &[u8]| {
    let [a, b, rest @ ..] = data else { return };
    let code: String = [a, b].iter().map(|c| char::from(b'A' + c.wrapping_sub(b'A') % 26)).collect();
    let Ok(region) = Region::parse(&code) else { return };
    assert_eq!(region.as_str(), code, "a region prints as the code it was parsed from");
    let input = String::from_utf8_lossy(rest);
    let Ok(number) = PhoneNumber::parse(&input, region) else { return };

    let e164 = number.as_str();
    let digits = e164.strip_prefix('+').unwrap_or_else(|| panic!("{e164:?} (from {input:?}) lacks the +"));
    assert!(
        (1..=15).contains(&digits.len()) && !digits.starts_with('0') && digits.bytes().all(|b| b.is_ascii_digit()),
        "{e164:?} (from {input:?} in {code}) is not E.164"
    );
    let again = PhoneNumber::parse(e164, region);
    assert_eq!(
        again.as_ref().ok(),
        Some(&number),
        "{e164:?} (from {input:?} in {code}) does not parse back: {again:?}"
    );
    let elsewhere = Region::parse(if code == "US" { "CN" } else { "US" }).unwrap();
    let abroad = PhoneNumber::parse(e164, elsewhere);
    assert_eq!(abroad.as_ref().ok(), Some(&number), "{e164:?} reads differently from {elsewhere}: {abroad:?}");
    assert!(number.region().is_some(), "{e164:?} (from {input:?} in {code}) belongs to no region");

    let masked = number.masked();
    assert_eq!(masked.len(), e164.len());
    assert_eq!(&masked[masked.len() - 4..], &e164[e164.len() - 4..]);
    assert_eq!(&masked[..3], &e164[..3]);
});
