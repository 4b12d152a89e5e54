//! Mobile numbers, parsed by the `phonenumber` crate (a port of Google's libphonenumber) and kept
//! in E.164. A local number is read in the enterprise's default region.

use crate::error::{Error, Result};
use phonenumber::{Mode, Type, country, metadata::DATABASE};
use serde::{Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// An ISO 3166-1 alpha-2 region that libphonenumber knows, e.g. `CN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Region(country::Id);

impl Region {
    pub fn parse(s: &str) -> Result<Self> {
        let upper = s.trim().to_ascii_uppercase();
        country::Id::from_str(&upper)
            .map(Region)
            .map_err(|_| Error::field("region", format!("'{s}' is not a known ISO 3166 region code such as CN or US")))
    }

    pub fn as_str(&self) -> &str {
        // strum's `AsRefStr` gives the variant name, which is the ISO code.
        self.0.as_ref()
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Region {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A mobile number in E.164 form (`+8613800138000`). The only ways in are [`PhoneNumber::parse`]
/// (input from people) and [`PhoneNumber::from_trusted`] (our own storage).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Reads a number as a person typed it — national (`138 0013 8000`), international
    /// (`+86 138-0013-8000`, `0086…`), with spaces, dashes, dots or brackets — in `region` when it
    /// has no country code. Landlines, premium and garbage are refused with `invalid_phone`, whose
    /// detail says what was understood.
    pub fn parse(input: &str, region: Region) -> Result<Self> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(Error::InvalidPhone { detail: "The phone number is empty.".into() });
        }
        if trimmed.len() > 40 || trimmed.chars().any(|c| c.is_alphabetic()) {
            return Err(Error::InvalidPhone {
                detail: format!("'{}' is not a phone number: use digits, e.g. +86 138 0013 8000.", shorten(trimmed)),
            });
        }
        let unreadable = || Error::InvalidPhone {
            detail: format!("'{}' could not be read as a phone number in region {region}.", shorten(trimmed)),
        };
        let parsed = phonenumber::parse(Some(region.0), trimmed).map_err(|_| unreadable())?;
        let parsed = by_its_own_country(parsed, trimmed, region).ok_or_else(unreadable)?;
        let e164 = parsed.format().mode(Mode::E164).to_string();
        if !parsed.is_valid() {
            return Err(Error::InvalidPhone {
                detail: format!(
                    "'{}' was read as {e164}, which is not a valid number; check the digits and the country code.",
                    shorten(trimmed)
                ),
            });
        }
        if parsed.country().id().is_none() {
            // +881 (satellite), +882/+883 (international networks), …: no country's number, so no
            // region policy could place it, and no SMS gateway of ours sends to it.
            return Err(Error::InvalidPhone {
                detail: format!(
                    "{e164} is an international service number (satellite or a global network), not a \
                     country's mobile number; enter a number that can receive SMS."
                ),
            });
        }
        match parsed.number_type(&DATABASE) {
            Type::Mobile | Type::FixedLineOrMobile => Ok(PhoneNumber(e164)),
            other => Err(Error::InvalidPhone {
                detail: format!(
                    "{e164} is a {} number, not a mobile number; enter a number that can receive SMS.",
                    describe(other)
                ),
            }),
        }
    }

    pub fn from_trusted(e164: String) -> Self {
        PhoneNumber(e164)
    }

    /// The region the number belongs to (`CN`, `US`, …), when libphonenumber knows it.
    pub fn region(&self) -> Option<String> {
        let parsed = phonenumber::parse(None, &self.0).ok()?;
        parsed.country().id().map(|id| id.as_ref().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number with all but the country code and last four digits hidden: `+86*******8000`.
    pub fn masked(&self) -> String {
        let digits = self.0.len();
        self.0.char_indices().map(|(i, c)| if i >= 3 && i + 4 < digits { '*' } else { c }).collect()
    }
}

/// A number typed with its country code (after `+`, or after `region`'s international prefix
/// such as `00` or `011`) read by the rules of its own country. The `phonenumber` crate (0.3.10)
/// reads the digits after a foreign country code by the national rules of the region it is
/// given: in region US, `+86 138 0013 8000` lost its leading `1` as if it were the US national
/// prefix, so no Chinese mobile number could be entered in a US enterprise. Such a number is read
/// again as `+<country code and number>` with no region; `None` when that reading fails.
fn by_its_own_country(
    parsed: phonenumber::PhoneNumber,
    typed: &str,
    region: Region,
) -> Option<phonenumber::PhoneNumber> {
    let own_code = DATABASE.by_id(region.as_str()).map(|m| m.country_code());
    if own_code == Some(parsed.code().value()) {
        return Some(parsed);
    }
    let international = match parsed.code().source() {
        country::Source::Plus => typed.to_string(),
        country::Source::Idd => {
            // The digits after the region's international prefix, as the parser found them.
            let digits: String = typed.chars().filter(char::is_ascii_digit).collect();
            let idd = DATABASE.by_id(region.as_str())?.international_prefix()?;
            let found = idd.find(&digits).filter(|m| m.start() == 0)?;
            format!("+{}", &digits[found.end()..])
        }
        _ => return Some(parsed),
    };
    phonenumber::parse(None, international).ok()
}

fn shorten(s: &str) -> String {
    s.chars().take(40).collect()
}

fn describe(t: Type) -> &'static str {
    match t {
        Type::FixedLine => "landline",
        Type::TollFree => "toll-free",
        Type::PremiumRate => "premium-rate",
        Type::SharedCost => "shared-cost",
        Type::Voip => "VoIP",
        Type::PersonalNumber => "personal",
        Type::Pager => "pager",
        Type::Uan => "company (UAN)",
        Type::Voicemail => "voicemail",
        _ => "non-mobile",
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for PhoneNumber {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cn() -> Region {
        Region::parse("CN").unwrap()
    }

    #[test]
    fn numbers_of_no_country_are_refused() {
        // Found by fuzzing: an Iridium satellite number parsed, but belonged to no region.
        let refused = PhoneNumber::parse("+8816 3-0013-8000", Region::parse("CN").unwrap());
        assert!(
            matches!(&refused, Err(Error::InvalidPhone { detail }) if detail.contains("international service")),
            "{refused:?}"
        );
    }

    #[test]
    fn national_international_spaced_and_dashed_forms_agree() {
        for input in
            ["13800138000", "138 0013 8000", "138-0013-8000", "+86 138 0013 8000", "+8613800138000", "0086 13800138000"]
        {
            assert_eq!(PhoneNumber::parse(input, cn()).unwrap().as_str(), "+8613800138000", "{input}");
        }
    }

    #[test]
    fn landlines_and_garbage_are_refused() {
        for input in ["010 6552 9988", "hello", "", "12", "+86 138"] {
            assert!(matches!(PhoneNumber::parse(input, cn()), Err(Error::InvalidPhone { .. })), "{input}");
        }
    }

    #[test]
    fn numbers_of_other_regions_keep_their_country() {
        let us = PhoneNumber::parse("+1 (201) 555-0123", cn()).unwrap();
        assert_eq!(us.as_str(), "+12015550123");
        assert_eq!(Region::parse("us").unwrap().as_str(), "US");
    }

    #[test]
    fn a_foreign_number_is_read_by_its_own_countrys_rules() {
        // Found by the `phone` fuzz target: read in region US, the leading 1 of a Chinese mobile
        // number was taken for the US national prefix (+863800138000, refused as invalid).
        let us = Region::parse("US").unwrap();
        for input in ["+86 138 0013 8000", "+8613800138000", "011 86 138 0013 8000"] {
            assert_eq!(PhoneNumber::parse(input, us).unwrap().as_str(), "+8613800138000", "{input}");
        }
        let gb = PhoneNumber::parse("+44 7400 123456", us).unwrap();
        assert_eq!(gb.as_str(), "+447400123456");
        assert_eq!(PhoneNumber::parse("(201) 555-0123", us).unwrap().as_str(), "+12015550123");
        assert_eq!(PhoneNumber::parse("+1 201 555 0123", cn()).unwrap().as_str(), "+12015550123");
    }

    #[test]
    fn masking_keeps_country_and_last_four() {
        let n = PhoneNumber::parse("13800138000", cn()).unwrap();
        assert_eq!(n.masked(), "+86*******8000");
    }
}
