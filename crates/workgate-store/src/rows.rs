//! Decoding rows into domain records, shared by both backends.

use sqlx::{Decode, Postgres, Type};
use workgate_domain::Result;
use workgate_domain::clock::Timestamp;
use workgate_domain::ids::{ApiKeyId, AuditId, DepartmentId, EnterpriseId, MemberId};
use workgate_domain::model::{ApiKey, AuditEntry, Department, Enterprise, Member};
use workgate_domain::phone::{PhoneNumber, Region};
use workgate_domain::values::{DepartmentName, Email, EnterpriseName, MemberStatus, PersonName, Role, Title, UserId};

pub(crate) const MEMBER_COLUMNS: &str = "id, enterprise_id, userid, name, phone, email, title, department_ids, role, \
     admin_department_ids, status, created_at, activated_at, updated_at";
/// The columns of a member (`m`, as `m_…`) and of its enterprise (`e`, as `e_…`) in a query that
/// joins the two; decoded by `Prefixed(row, "m_").member()` and `Prefixed(row, "e_").enterprise()`.
pub(crate) static MEMBER_AND_ENTERPRISE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let member: Vec<String> = MEMBER_COLUMNS.split(',').map(str::trim).map(|c| format!("m.{c} AS m_{c}")).collect();
    format!("{}, e.id AS e_id, e.name AS e_name, e.region AS e_region, e.created_at AS e_created_at", member.join(", "))
});
pub(crate) const DEPARTMENT_COLUMNS: &str = "id, enterprise_id, parent_id, name, sort_order";

/// A column type both backends decode (text, integers, bytes, and their `Option`s).
pub(crate) trait ColumnValue: rusqlite::types::FromSql + for<'r> Decode<'r, Postgres> + Type<Postgres> {}

impl<T> ColumnValue for T where T: rusqlite::types::FromSql + for<'r> Decode<'r, Postgres> + Type<Postgres> {}

pub(crate) fn join_ids(ids: &[DepartmentId]) -> String {
    ids.iter().map(DepartmentId::as_str).collect::<Vec<_>>().join(",")
}

fn split_ids(s: &str) -> Vec<DepartmentId> {
    s.split(',').filter(|s| !s.is_empty()).map(|s| DepartmentId::from_trusted(s.to_string())).collect()
}

/// Decoders of the directory tables over a row of either backend (`sql::Row`).
pub(crate) trait DomainRow {
    /// Reads one column; an error names the column.
    fn get<T: ColumnValue>(&self, column: &str) -> Result<T>;

    fn enterprise(&self) -> Result<Enterprise> {
        let region: String = self.get("region")?;
        Ok(Enterprise {
            id: EnterpriseId::from_trusted(self.get("id")?),
            name: EnterpriseName::from_trusted(self.get("name")?),
            region: Region::parse(&region)?,
            created_at: Timestamp(self.get("created_at")?),
        })
    }

    fn department(&self) -> Result<Department> {
        Ok(Department {
            id: DepartmentId::from_trusted(self.get("id")?),
            enterprise_id: EnterpriseId::from_trusted(self.get("enterprise_id")?),
            name: DepartmentName::from_trusted(self.get("name")?),
            parent_id: self.get::<Option<String>>("parent_id")?.map(DepartmentId::from_trusted),
            order: self.get("sort_order")?,
        })
    }

    fn member(&self) -> Result<Member> {
        let role: String = self.get("role")?;
        let status: String = self.get("status")?;
        let departments: String = self.get("department_ids")?;
        let admin_departments: String = self.get("admin_department_ids")?;
        Ok(Member {
            id: MemberId::from_trusted(self.get("id")?),
            enterprise_id: EnterpriseId::from_trusted(self.get("enterprise_id")?),
            userid: UserId::from_trusted(self.get("userid")?),
            name: PersonName::from_trusted(self.get("name")?),
            phone: PhoneNumber::from_trusted(self.get("phone")?),
            email: self.get::<Option<String>>("email")?.map(Email::from_trusted),
            title: self.get::<Option<String>>("title")?.map(Title::from_trusted),
            departments: split_ids(&departments),
            role: Role::parse(&role)?,
            admin_departments: split_ids(&admin_departments),
            status: MemberStatus::parse(&status)?,
            created_at: Timestamp(self.get("created_at")?),
            activated_at: self.get::<Option<i64>>("activated_at")?.map(Timestamp),
            updated_at: Timestamp(self.get("updated_at")?),
        })
    }

    fn api_key(&self) -> Result<ApiKey> {
        Ok(ApiKey {
            id: ApiKeyId::from_trusted(self.get("id")?),
            enterprise_id: EnterpriseId::from_trusted(self.get("enterprise_id")?),
            name: self.get("name")?,
            prefix: self.get("prefix")?,
            created_at: Timestamp(self.get("created_at")?),
        })
    }

    fn audit_entry(&self) -> Result<AuditEntry> {
        let details: String = self.get("details")?;
        Ok(AuditEntry {
            id: AuditId::from_trusted(self.get("id")?),
            enterprise_id: EnterpriseId::from_trusted(self.get("enterprise_id")?),
            at: Timestamp(self.get("at")?),
            actor: self.get("actor")?,
            action: self.get("action")?,
            target: self.get("target")?,
            ip: self.get("ip")?,
            details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
        })
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub(crate) fn like_pattern(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The range of `path` values below a department: `[prefix, prefix + '~')`. Paths hold only
/// lowercase letters, digits, `_` and `/`, all below `~`.
pub(crate) fn subtree_upper_bound(prefix: &str) -> String {
    format!("{prefix}~")
}

pub(crate) const CHALLENGE_COLUMNS: &str = "id, phone, code_hash, code_sent_at, expires_at, failed_attempts, step, \
     enterprise_id, invitation_id, device_id, device_name, ip, created_at, member_id, candidates";
pub(crate) const DEVICE_COLUMNS: &str =
    "id, enterprise_id, member_id, name, platform, app_version, ip, state, first_seen_at, last_seen_at, verified_at";
pub(crate) const OUTBOX_COLUMNS: &str = "id, enterprise_id, phone, body, purpose, created_at, attempts";
pub(crate) const EVENT_COLUMNS: &str = "id, phone, enterprise_id, member_id, kind, ip, at, details, candidates";

/// Enterprise ids as stored in a `candidates` column: separated by commas.
pub(crate) fn join_enterprises(ids: &[EnterpriseId]) -> String {
    ids.iter().map(EnterpriseId::as_str).collect::<Vec<_>>().join(",")
}

fn split_enterprises(stored: &str) -> Vec<EnterpriseId> {
    stored.split(',').filter(|s| !s.is_empty()).map(|id| EnterpriseId::from_trusted(id.to_string())).collect()
}

/// Decoders of the login tables, shared by both backends.
pub(crate) trait LoginRow: DomainRow {
    fn challenge(&self) -> Result<workgate_domain::login::LoginChallenge> {
        use workgate_domain::ids::{DeviceId, InvitationId, LoginId};
        let step: String = self.get("step")?;
        Ok(workgate_domain::login::LoginChallenge {
            id: LoginId::from_trusted(self.get("id")?),
            phone: PhoneNumber::from_trusted(self.get("phone")?),
            code_hash: workgate_domain::secret::SecretHash::from_trusted(self.get("code_hash")?),
            code_sent_at: Timestamp(self.get("code_sent_at")?),
            expires_at: Timestamp(self.get("expires_at")?),
            failed_attempts: self.get("failed_attempts")?,
            step: workgate_domain::login::LoginStep::parse(&step)?,
            enterprise_id: self.get::<Option<String>>("enterprise_id")?.map(EnterpriseId::from_trusted),
            member_id: self.get::<Option<String>>("member_id")?.map(MemberId::from_trusted),
            invitation_id: self.get::<Option<String>>("invitation_id")?.map(InvitationId::from_trusted),
            device_id: self.get::<Option<String>>("device_id")?.map(DeviceId::from_trusted),
            device_name: self.get("device_name")?,
            ip: self.get("ip")?,
            created_at: Timestamp(self.get("created_at")?),
            candidates: split_enterprises(&self.get::<String>("candidates")?),
        })
    }

    fn device(&self) -> Result<workgate_domain::sessions::Device> {
        Ok(workgate_domain::sessions::Device {
            id: workgate_domain::ids::DeviceId::from_trusted(self.get("id")?),
            enterprise_id: EnterpriseId::from_trusted(self.get("enterprise_id")?),
            member_id: MemberId::from_trusted(self.get("member_id")?),
            name: self.get("name")?,
            platform: self.get("platform")?,
            app_version: self.get("app_version")?,
            ip: self.get("ip")?,
            state: workgate_domain::sessions::DeviceState::parse(&self.get::<String>("state")?)?,
            first_seen_at: Timestamp(self.get("first_seen_at")?),
            last_seen_at: Timestamp(self.get("last_seen_at")?),
            verified_at: Timestamp(self.get("verified_at")?),
        })
    }

    /// An outbox message and its attempt count.
    fn outbox_message(&self) -> Result<(workgate_domain::outbox::OutboxMessage, i64)> {
        use workgate_domain::outbox::SmsPurpose;
        let purpose: String = self.get("purpose")?;
        Ok((
            workgate_domain::outbox::OutboxMessage {
                id: workgate_domain::ids::SmsId::from_trusted(self.get("id")?),
                enterprise_id: self.get::<Option<String>>("enterprise_id")?.map(EnterpriseId::from_trusted),
                phone: PhoneNumber::from_trusted(self.get("phone")?),
                body: workgate_domain::outbox::SealedBody::from_stored(self.get("body")?),
                purpose: SmsPurpose::parse(&purpose).unwrap_or(SmsPurpose::LoginCode),
                created_at: Timestamp(self.get("created_at")?),
            },
            self.get("attempts")?,
        ))
    }

    fn login_event(&self) -> Result<workgate_domain::login::LoginEvent> {
        let details: String = self.get("details")?;
        Ok(workgate_domain::login::LoginEvent {
            id: workgate_domain::ids::EventId::from_trusted(self.get("id")?),
            phone: PhoneNumber::from_trusted(self.get("phone")?),
            enterprise_id: self.get::<Option<String>>("enterprise_id")?.map(EnterpriseId::from_trusted),
            member_id: self.get::<Option<String>>("member_id")?.map(MemberId::from_trusted),
            kind: self.get("kind")?,
            ip: self.get("ip")?,
            at: Timestamp(self.get("at")?),
            details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
            candidates: split_enterprises(&self.get::<String>("candidates")?),
        })
    }

    fn invitation(&self) -> Result<workgate_domain::invitations::Invitation> {
        use workgate_domain::invitations::{Invitation, InvitationState};
        let state: String = self.get("state")?;
        let delivery = match self.get::<Option<String>>("sms_state")? {
            Some(state) => Some(workgate_domain::outbox::Delivery {
                state,
                attempts: self.get::<Option<i64>>("sms_attempts")?.unwrap_or(0),
                last_error: self.get("sms_last_error")?,
                sent_at: self.get::<Option<i64>>("sms_sent_at")?.map(Timestamp),
            }),
            None => None,
        };
        Ok(Invitation {
            id: workgate_domain::ids::InvitationId::from_trusted(self.get("id")?),
            enterprise_id: EnterpriseId::from_trusted(self.get("enterprise_id")?),
            member_id: MemberId::from_trusted(self.get("member_id")?),
            state: InvitationState::parse(&state)?,
            created_at: Timestamp(self.get("created_at")?),
            expires_at: Timestamp(self.get("expires_at")?),
            delivery,
        })
    }

    fn session_record(&self) -> Result<workgate_domain::sessions::SessionRecord> {
        let status: String = self.get("member_status")?;
        Ok(workgate_domain::sessions::SessionRecord {
            id: workgate_domain::ids::SessionId::from_trusted(self.get("id")?),
            enterprise_id: EnterpriseId::from_trusted(self.get("enterprise_id")?),
            member_id: MemberId::from_trusted(self.get("member_id")?),
            device_id: workgate_domain::ids::DeviceId::from_trusted(self.get("device_id")?),
            access_expires_at: Timestamp(self.get("access_expires_at")?),
            revoked: self.get::<Option<i64>>("revoked_at")?.is_some(),
            member_status: MemberStatus::parse(&status)?,
            created_at: Timestamp(self.get("created_at")?),
        })
    }
}

impl<R: DomainRow> LoginRow for R {}
