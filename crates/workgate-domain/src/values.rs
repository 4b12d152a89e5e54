//! Small value types of the directory. Parse, don't validate: each constructor is the only way in
//! from outside, so a `UserId` or `DepartmentName` in hand is known to be well-formed.

use crate::error::{Error, Result};
use serde::{Serialize, Serializer};
use std::fmt;

macro_rules! string_value {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Wraps a value read back from our own storage.
            pub fn from_trusted(s: String) -> Self {
                Self(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

/// Trims and checks a human-readable label: 1..=max characters, no control characters.
fn label(field: &str, input: &str, max: usize) -> Result<String> {
    let s = input.trim();
    let len = s.chars().count();
    if len == 0 {
        return Err(Error::field(field, "must not be empty"));
    }
    if len > max {
        return Err(Error::field(field, format!("must be at most {max} characters (got {len})")));
    }
    if s.chars().any(char::is_control) {
        return Err(Error::field(field, "must not contain control characters"));
    }
    Ok(s.to_string())
}

/// The enterprise's own account name for a member: 1–64 of `A-Za-z0-9_-@.`, starting with a
/// letter or digit, unique in the enterprise ignoring case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(String);
string_value!(UserId);

impl UserId {
    pub fn parse(input: &str) -> Result<Self> {
        let s = input.trim();
        let ok_len = (1..=64).contains(&s.len());
        let ok_first = s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
        let ok_chars = s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-@.".contains(&b));
        if ok_len && ok_first && ok_chars {
            Ok(UserId(s.to_string()))
        } else {
            Err(Error::field(
                "userid",
                "must be 1–64 characters of letters, digits, _ - @ or ., starting with a letter or digit",
            ))
        }
    }

    /// A fresh userid for a member added without one.
    pub fn generate() -> Self {
        UserId(format!("u{}", crate::secret::random_lower_alnum(11)))
    }

    /// The form that uniqueness is judged on.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

/// A person's display name, 1–64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PersonName(String);
string_value!(PersonName);

impl PersonName {
    pub fn parse(input: &str) -> Result<Self> {
        label("name", input, 64).map(PersonName)
    }
}

/// A department's name, 1–64 characters; unique among its siblings. `/` is refused because
/// import addresses departments by `/`-separated paths.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DepartmentName(String);
string_value!(DepartmentName);

impl DepartmentName {
    pub fn parse(input: &str) -> Result<Self> {
        let s = label("name", input, 64)?;
        if s.contains('/') {
            return Err(Error::field("name", "must not contain '/' (it separates departments in import paths)"));
        }
        Ok(DepartmentName(s))
    }
}

/// An enterprise's name, 1–128 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EnterpriseName(String);
string_value!(EnterpriseName);

impl EnterpriseName {
    pub fn parse(input: &str) -> Result<Self> {
        label("name", input, 128).map(EnterpriseName)
    }
}

/// A job title, up to 128 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Title(String);
string_value!(Title);

impl Title {
    pub fn parse(input: &str) -> Result<Self> {
        label("title", input, 128).map(Title)
    }
}

/// An email address: one `@`, something on each side, no spaces; at most 254 characters.
/// Deliverability is not checked (nothing is sent to it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);
string_value!(Email);

impl Email {
    pub fn parse(input: &str) -> Result<Self> {
        let s = input.trim();
        let valid = s.len() <= 254
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            && s.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
            });
        if valid {
            Ok(Email(s.to_string()))
        } else {
            Err(Error::field("email", "must be an email address like name@example.com"))
        }
    }
}

/// A member's role (SPEC section 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    DepartmentAdmin,
    Member,
}

impl Role {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "department_admin" => Ok(Role::DepartmentAdmin),
            "member" => Ok(Role::Member),
            _ => Err(Error::field("role", "must be one of owner, admin, department_admin, member")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::DepartmentAdmin => "department_admin",
            Role::Member => "member",
        }
    }
}

/// A member's status (SPEC section 1): `invited` → `active`; `disabled` can be enabled again;
/// `departed` is terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    Invited,
    Active,
    Disabled,
    Departed,
}

impl MemberStatus {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "invited" => Ok(MemberStatus::Invited),
            "active" => Ok(MemberStatus::Active),
            "disabled" => Ok(MemberStatus::Disabled),
            "departed" => Ok(MemberStatus::Departed),
            _ => Err(Error::field("status", "must be one of invited, active, disabled, departed")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Invited => "invited",
            MemberStatus::Active => "active",
            MemberStatus::Disabled => "disabled",
            MemberStatus::Departed => "departed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userid_rules() {
        assert!(UserId::parse("zhang.san@corp").is_ok());
        assert!(UserId::parse("9lives").is_ok());
        assert!(UserId::parse("_x").is_err());
        assert!(UserId::parse("a b").is_err());
        assert!(UserId::parse(&"a".repeat(65)).is_err());
        assert_eq!(UserId::parse("ZhangSan").unwrap().key(), "zhangsan");
        assert!(UserId::parse(UserId::generate().as_str()).is_ok());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(PersonName::parse("  张三 ").unwrap().as_str(), "张三");
        assert!(PersonName::parse(&"名".repeat(64)).is_ok());
        assert!(PersonName::parse(&"名".repeat(65)).is_err());
        assert!(DepartmentName::parse("R&D/Backend").is_err());
        assert!(Email::parse("a@b.co").is_ok());
        assert!(Email::parse("a@b").is_err());
    }
}
