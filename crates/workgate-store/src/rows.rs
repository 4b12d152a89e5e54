//! Decoding rows into domain records, shared by both backends.

use sqlx::{ColumnIndex, Decode, Row, Type};
use workgate_domain::clock::Timestamp;
use workgate_domain::ids::{ApiKeyId, AuditId, DepartmentId, EnterpriseId, MemberId};
use workgate_domain::model::{ApiKey, AuditEntry, Department, Enterprise, Member};
use workgate_domain::phone::{PhoneNumber, Region};
use workgate_domain::values::{DepartmentName, Email, EnterpriseName, MemberStatus, PersonName, Role, Title, UserId};
use workgate_domain::{Error, Result};

pub(crate) const MEMBER_COLUMNS: &str = "id, enterprise_id, userid, name, phone, email, title, department_ids, role, \
     admin_department_ids, status, created_at, activated_at, updated_at";
pub(crate) const DEPARTMENT_COLUMNS: &str = "id, enterprise_id, parent_id, name, sort_order";

/// Reads a column of a type both backends have.
fn get<'r, R, T>(row: &'r R, column: &str) -> Result<T>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(column).map_err(|e| Error::Internal(format!("column {column}: {e}")))
}

pub(crate) fn join_ids(ids: &[DepartmentId]) -> String {
    ids.iter().map(DepartmentId::as_str).collect::<Vec<_>>().join(",")
}

fn split_ids(s: &str) -> Vec<DepartmentId> {
    s.split(',').filter(|s| !s.is_empty()).map(|s| DepartmentId::from_trusted(s.to_string())).collect()
}

pub(crate) trait DomainRow: Row + Sized
where
    for<'r> &'r str: ColumnIndex<Self>,
    for<'r> String: Decode<'r, Self::Database> + Type<Self::Database>,
    for<'r> Option<String>: Decode<'r, Self::Database> + Type<Self::Database>,
    for<'r> i64: Decode<'r, Self::Database> + Type<Self::Database>,
    for<'r> Option<i64>: Decode<'r, Self::Database> + Type<Self::Database>,
{
    fn enterprise(&self) -> Result<Enterprise> {
        let region: String = get(self, "region")?;
        Ok(Enterprise {
            id: EnterpriseId::from_trusted(get(self, "id")?),
            name: EnterpriseName::from_trusted(get(self, "name")?),
            region: Region::parse(&region)?,
            created_at: Timestamp(get(self, "created_at")?),
        })
    }

    fn department(&self) -> Result<Department> {
        Ok(Department {
            id: DepartmentId::from_trusted(get(self, "id")?),
            enterprise_id: EnterpriseId::from_trusted(get(self, "enterprise_id")?),
            name: DepartmentName::from_trusted(get(self, "name")?),
            parent_id: get::<_, Option<String>>(self, "parent_id")?.map(DepartmentId::from_trusted),
            order: get(self, "sort_order")?,
        })
    }

    fn member(&self) -> Result<Member> {
        let role: String = get(self, "role")?;
        let status: String = get(self, "status")?;
        let departments: String = get(self, "department_ids")?;
        let admin_departments: String = get(self, "admin_department_ids")?;
        Ok(Member {
            id: MemberId::from_trusted(get(self, "id")?),
            enterprise_id: EnterpriseId::from_trusted(get(self, "enterprise_id")?),
            userid: UserId::from_trusted(get(self, "userid")?),
            name: PersonName::from_trusted(get(self, "name")?),
            phone: PhoneNumber::from_trusted(get(self, "phone")?),
            email: get::<_, Option<String>>(self, "email")?.map(Email::from_trusted),
            title: get::<_, Option<String>>(self, "title")?.map(Title::from_trusted),
            departments: split_ids(&departments),
            role: Role::parse(&role)?,
            admin_departments: split_ids(&admin_departments),
            status: MemberStatus::parse(&status)?,
            created_at: Timestamp(get(self, "created_at")?),
            activated_at: get::<_, Option<i64>>(self, "activated_at")?.map(Timestamp),
            updated_at: Timestamp(get(self, "updated_at")?),
        })
    }

    fn api_key(&self) -> Result<ApiKey> {
        Ok(ApiKey {
            id: ApiKeyId::from_trusted(get(self, "id")?),
            enterprise_id: EnterpriseId::from_trusted(get(self, "enterprise_id")?),
            name: get(self, "name")?,
            prefix: get(self, "prefix")?,
            created_at: Timestamp(get(self, "created_at")?),
        })
    }

    fn audit_entry(&self) -> Result<AuditEntry> {
        let details: String = get(self, "details")?;
        Ok(AuditEntry {
            id: AuditId::from_trusted(get(self, "id")?),
            enterprise_id: EnterpriseId::from_trusted(get(self, "enterprise_id")?),
            at: Timestamp(get(self, "at")?),
            actor: get(self, "actor")?,
            action: get(self, "action")?,
            target: get(self, "target")?,
            ip: get(self, "ip")?,
            details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
        })
    }
}

impl<R> DomainRow for R
where
    R: Row,
    for<'r> &'r str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
{
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
     enterprise_id, invitation_id, device_id, device_name, ip, created_at, member_id";
pub(crate) const DEVICE_COLUMNS: &str =
    "id, enterprise_id, member_id, name, platform, app_version, ip, state, first_seen_at, last_seen_at, verified_at";
pub(crate) const OUTBOX_COLUMNS: &str = "id, enterprise_id, phone, body, purpose, created_at, attempts";
pub(crate) const EVENT_COLUMNS: &str = "id, phone, enterprise_id, member_id, kind, ip, at, details";

/// Decoders of the login tables, shared by both backends.
pub(crate) trait LoginRow: DomainRow
where
    for<'r> &'r str: ColumnIndex<Self>,
    for<'r> String: Decode<'r, Self::Database> + Type<Self::Database>,
    for<'r> Option<String>: Decode<'r, Self::Database> + Type<Self::Database>,
    for<'r> i64: Decode<'r, Self::Database> + Type<Self::Database>,
    for<'r> Option<i64>: Decode<'r, Self::Database> + Type<Self::Database>,
{
    fn challenge(&self) -> Result<workgate_domain::login::LoginChallenge> {
        use workgate_domain::ids::{DeviceId, InvitationId, LoginId};
        let step: String = get(self, "step")?;
        Ok(workgate_domain::login::LoginChallenge {
            id: LoginId::from_trusted(get(self, "id")?),
            phone: PhoneNumber::from_trusted(get(self, "phone")?),
            code_hash: workgate_domain::secret::SecretHash::from_trusted(get(self, "code_hash")?),
            code_sent_at: Timestamp(get(self, "code_sent_at")?),
            expires_at: Timestamp(get(self, "expires_at")?),
            failed_attempts: get(self, "failed_attempts")?,
            step: workgate_domain::login::LoginStep::parse(&step)?,
            enterprise_id: get::<_, Option<String>>(self, "enterprise_id")?.map(EnterpriseId::from_trusted),
            member_id: get::<_, Option<String>>(self, "member_id")?.map(MemberId::from_trusted),
            invitation_id: get::<_, Option<String>>(self, "invitation_id")?.map(InvitationId::from_trusted),
            device_id: get::<_, Option<String>>(self, "device_id")?.map(DeviceId::from_trusted),
            device_name: get(self, "device_name")?,
            ip: get(self, "ip")?,
            created_at: Timestamp(get(self, "created_at")?),
        })
    }

    fn device(&self) -> Result<workgate_domain::sessions::Device> {
        Ok(workgate_domain::sessions::Device {
            id: workgate_domain::ids::DeviceId::from_trusted(get(self, "id")?),
            enterprise_id: EnterpriseId::from_trusted(get(self, "enterprise_id")?),
            member_id: MemberId::from_trusted(get(self, "member_id")?),
            name: get(self, "name")?,
            platform: get(self, "platform")?,
            app_version: get(self, "app_version")?,
            ip: get(self, "ip")?,
            state: get(self, "state")?,
            first_seen_at: Timestamp(get(self, "first_seen_at")?),
            last_seen_at: Timestamp(get(self, "last_seen_at")?),
            verified_at: Timestamp(get(self, "verified_at")?),
        })
    }

    /// An outbox message and its attempt count.
    fn outbox_message(&self) -> Result<(workgate_domain::outbox::OutboxMessage, i64)> {
        use workgate_domain::outbox::SmsPurpose;
        let purpose: String = get(self, "purpose")?;
        Ok((
            workgate_domain::outbox::OutboxMessage {
                id: workgate_domain::ids::SmsId::from_trusted(get(self, "id")?),
                enterprise_id: get::<_, Option<String>>(self, "enterprise_id")?.map(EnterpriseId::from_trusted),
                phone: PhoneNumber::from_trusted(get(self, "phone")?),
                body: get(self, "body")?,
                purpose: if purpose == "invitation" { SmsPurpose::Invitation } else { SmsPurpose::LoginCode },
                created_at: Timestamp(get(self, "created_at")?),
            },
            get(self, "attempts")?,
        ))
    }

    fn login_event(&self) -> Result<workgate_domain::login::LoginEvent> {
        let details: String = get(self, "details")?;
        Ok(workgate_domain::login::LoginEvent {
            id: workgate_domain::ids::EventId::from_trusted(get(self, "id")?),
            phone: PhoneNumber::from_trusted(get(self, "phone")?),
            enterprise_id: get::<_, Option<String>>(self, "enterprise_id")?.map(EnterpriseId::from_trusted),
            member_id: get::<_, Option<String>>(self, "member_id")?.map(MemberId::from_trusted),
            kind: get(self, "kind")?,
            ip: get(self, "ip")?,
            at: Timestamp(get(self, "at")?),
            details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
        })
    }

    fn invitation(&self) -> Result<workgate_domain::invitations::Invitation> {
        use workgate_domain::invitations::{Invitation, InvitationState};
        let state: String = get(self, "state")?;
        let delivery = match get::<_, Option<String>>(self, "sms_state")? {
            Some(state) => Some(workgate_domain::outbox::Delivery {
                state,
                attempts: get::<_, Option<i64>>(self, "sms_attempts")?.unwrap_or(0),
                last_error: get(self, "sms_last_error")?,
                sent_at: get::<_, Option<i64>>(self, "sms_sent_at")?.map(Timestamp),
            }),
            None => None,
        };
        Ok(Invitation {
            id: workgate_domain::ids::InvitationId::from_trusted(get(self, "id")?),
            enterprise_id: EnterpriseId::from_trusted(get(self, "enterprise_id")?),
            member_id: MemberId::from_trusted(get(self, "member_id")?),
            state: InvitationState::parse(&state)?,
            created_at: Timestamp(get(self, "created_at")?),
            expires_at: Timestamp(get(self, "expires_at")?),
            delivery,
        })
    }

    fn session_record(&self) -> Result<workgate_domain::sessions::SessionRecord> {
        let status: String = get(self, "member_status")?;
        Ok(workgate_domain::sessions::SessionRecord {
            id: workgate_domain::ids::SessionId::from_trusted(get(self, "id")?),
            enterprise_id: EnterpriseId::from_trusted(get(self, "enterprise_id")?),
            member_id: MemberId::from_trusted(get(self, "member_id")?),
            device_id: workgate_domain::ids::DeviceId::from_trusted(get(self, "device_id")?),
            access_expires_at: Timestamp(get(self, "access_expires_at")?),
            revoked: get::<_, Option<i64>>(self, "revoked_at")?.is_some(),
            member_status: MemberStatus::parse(&status)?,
        })
    }
}

impl<R> LoginRow for R
where
    R: Row,
    for<'r> &'r str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
{
}
