//! Opaque identifiers. Each is a prefix and a UUIDv7, so ids sort by creation time (keyset
//! pagination orders by id) and a stray id of one kind is never mistaken for another.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($name:ident, $prefix:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A fresh id, later than every id generated before it in this process.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, uuid::Uuid::now_v7().simple()))
            }

            /// Accepts an id from outside (a URL, a body) if it has this kind's shape; anything
            /// else cannot name a row of this kind and is answered as not found by the caller.
            pub fn parse(s: &str) -> Option<Self> {
                let rest = s.strip_prefix($prefix)?;
                (rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
                    .then(|| Self(s.to_string()))
            }

            /// Wraps an id read back from our own storage.
            pub fn from_trusted(s: String) -> Self {
                Self(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(EnterpriseId, "ent_");
id_type!(DepartmentId, "dep_");
id_type!(MemberId, "mem_");
id_type!(ApiKeyId, "key_");
id_type!(AuditId, "aud_");
id_type!(SmsId, "sms_");
id_type!(InvitationId, "inv_");
// The stored, non-secret reference of a login: derived from the `login_id` capability the
// client holds (see `login::login_reference`), never the capability itself.
id_type!(LoginId, "lgr_");
id_type!(DeviceId, "dev_");
id_type!(SessionId, "ses_");
id_type!(EventId, "evt_");
id_type!(AppId, "app_");
id_type!(GrantId, "grt_");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_sort_by_creation() {
        let a = MemberId::generate();
        let b = MemberId::generate();
        assert!(a < b);
        assert_eq!(MemberId::parse(a.as_str()), Some(a.clone()));
        assert_eq!(DepartmentId::parse(a.as_str()), None);
        assert_eq!(MemberId::parse("mem_x"), None);
    }
}
