//! Registering an enterprise (SPEC section 2, step 1) and its API keys.

use crate::Services;
use crate::audit::{Caller, Rights};
use crate::error::{Error, Result, Validator};
use crate::ids::{ApiKeyId, DepartmentId, EnterpriseId, MemberId};
use crate::model::{Actor, ApiKey, Department, Enterprise, Member};
use crate::phone::{PhoneNumber, Region};
use crate::secret::{Secret, display_prefix};
use crate::store::NewEnterprise;
use crate::values::{DepartmentName, EnterpriseName, MemberStatus, PersonName, Role, UserId};
use serde::Deserialize;
use serde_json::json;

/// API keys start with this, so a leaked one is recognisable.
pub const API_KEY_PREFIX: &str = "wgk_";

pub struct CreateEnterprise {
    pub name: String,
    pub owner_name: String,
    pub owner_phone: String,
    pub region: String,
}

pub struct CreatedEnterprise {
    pub enterprise: Enterprise,
    pub root: Department,
    pub owner: Member,
    pub api_key: ApiKey,
    /// Shown once; only its hash is stored.
    pub api_key_secret: Secret,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub name: String,
}

pub struct CreatedApiKey {
    pub key: ApiKey,
    pub secret: Secret,
}

impl Services {
    /// Creates the enterprise, its root department (named after it), the owner and a first API
    /// key, in one transaction.
    pub async fn create_enterprise(&self, input: CreateEnterprise, actor: Actor) -> Result<CreatedEnterprise> {
        let mut v = Validator::default();
        let name = v.check("name", EnterpriseName::parse(&input.name));
        let region = v.check("region", Region::parse(&input.region));
        let owner_name = v.check("owner_name", PersonName::parse(&input.owner_name));
        let root_name = v.check("name", DepartmentName::parse(&input.name.replace('/', "-")));
        v.finish()?;
        let (Some(name), Some(region), Some(owner_name), Some(root_name)) = (name, region, owner_name, root_name)
        else {
            return Err(Error::Internal("validator passed with a missing field".into()));
        };
        let owner_phone = PhoneNumber::parse(&input.owner_phone, region)?;

        let now = self.clock.now();
        let enterprise = Enterprise { id: EnterpriseId::generate(), name, region, created_at: now };
        let root = Department {
            id: DepartmentId::generate(),
            enterprise_id: enterprise.id.clone(),
            name: root_name,
            parent_id: None,
            order: 0,
        };
        let owner = Member {
            id: MemberId::generate(),
            enterprise_id: enterprise.id.clone(),
            userid: UserId::generate(),
            name: owner_name,
            phone: owner_phone,
            email: None,
            title: None,
            departments: vec![root.id.clone()],
            role: Role::Owner,
            admin_departments: vec![],
            status: MemberStatus::Invited,
            created_at: now,
            activated_at: None,
            updated_at: now,
        };
        let secret = Secret::generate(API_KEY_PREFIX);
        let api_key = ApiKey {
            id: ApiKeyId::generate(),
            enterprise_id: enterprise.id.clone(),
            name: "initial".into(),
            prefix: display_prefix(&secret),
            created_at: now,
        };
        let caller =
            Caller { enterprise_id: enterprise.id.clone(), actor, ip: None, rights: crate::audit::Rights::Operator };
        let audit = [
            caller.entry(
                now,
                "enterprise.create",
                Some(enterprise.id.as_str()),
                json!({"name": enterprise.name.as_str(), "region": enterprise.region.as_str()}),
            ),
            caller.entry(now, "member.create", Some(owner.id.as_str()), json!({"role": "owner"})),
            caller.entry(now, "api_key.create", Some(api_key.id.as_str()), json!({"name": api_key.name})),
        ];
        let hash = secret.hash();
        self.store
            .create_enterprise(NewEnterprise {
                enterprise: &enterprise,
                root: &root,
                owner: &owner,
                api_key: &api_key,
                api_key_hash: &hash,
                audit: &audit,
            })
            .await?;
        Ok(CreatedEnterprise { enterprise, root, owner, api_key, api_key_secret: secret })
    }

    pub async fn enterprise(&self, caller: &Caller) -> Result<Enterprise> {
        self.store.get_enterprise(&caller.enterprise_id).await?.ok_or(Error::Unauthorized)
    }

    /// Resolves a presented API key to the caller it stands for.
    pub async fn authenticate_api_key(&self, presented: &str, ip: Option<String>) -> Result<Caller> {
        if !presented.starts_with(API_KEY_PREFIX) {
            return Err(Error::Unauthorized);
        }
        let hash = crate::secret::SecretHash::of(presented);
        let key = self.store.find_api_key(&hash).await?.ok_or(Error::Unauthorized)?;
        Ok(Caller {
            enterprise_id: key.enterprise_id,
            actor: Actor::ApiKey(key.id),
            ip,
            rights: crate::audit::Rights::Operator,
        })
    }

    /// Resolves the credential of an admin request: an API key, or the access token of a member
    /// whose role gives admin rights (a plain member is `forbidden`).
    pub async fn authenticate_admin(&self, presented: &str, ip: Option<String>) -> Result<Caller> {
        Ok(self.authenticate_admin_credential(presented, ip).await?.0)
    }

    /// [`Services::authenticate_admin`], also naming the live credential that was presented:
    /// `api_key:<id>` or `session:<id>` (what an `Idempotency-Key` answer is bound to).
    pub async fn authenticate_admin_credential(&self, presented: &str, ip: Option<String>) -> Result<(Caller, String)> {
        if presented.starts_with(API_KEY_PREFIX) {
            let caller = self.authenticate_api_key(presented, ip).await?;
            let credential = caller.actor.label();
            return Ok((caller, credential));
        }
        let session = self.authenticate_access(presented).await?;
        let caller = self.admin_caller(&session, ip).await?;
        Ok((caller, format!("session:{}", session.session_id)))
    }

    /// The admin rights of a signed-in member, by role (a plain member is `forbidden`).
    pub async fn admin_caller(&self, session: &crate::sessions::MemberSession, ip: Option<String>) -> Result<Caller> {
        let member =
            self.store.get_member(&session.enterprise_id, &session.member_id).await?.ok_or(Error::Unauthorized)?;
        let rights = match member.role {
            Role::Owner => Rights::Owner,
            Role::Admin => Rights::Admin,
            Role::DepartmentAdmin => Rights::Departments(member.admin_departments.clone()),
            Role::Member => {
                return Err(Error::Forbidden("this needs an administrator; ask your enterprise's admin".into()));
            }
        };
        Ok(Caller { enterprise_id: member.enterprise_id, actor: Actor::Member(member.id), ip, rights })
    }

    pub async fn list_api_keys(&self, caller: &Caller) -> Result<Vec<ApiKey>> {
        caller.require_settings_rights()?;
        self.store.list_api_keys(&caller.enterprise_id).await
    }

    pub async fn create_api_key(&self, caller: &Caller, input: CreateApiKey) -> Result<CreatedApiKey> {
        caller.require_settings_rights()?;
        // A key acts with an owner's rank over members (crate::rank): an admin making one would
        // climb above their own.
        if !caller.outranks(crate::values::Role::Owner) {
            return Err(Error::Forbidden("only an owner can create API keys: a key acts with an owner's rank".into()));
        }
        let name = input.name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(Error::field("name", "must be 1–64 characters"));
        }
        let now = self.clock.now();
        let secret = Secret::generate(API_KEY_PREFIX);
        let key = ApiKey {
            id: ApiKeyId::generate(),
            enterprise_id: caller.enterprise_id.clone(),
            name: name.to_string(),
            prefix: display_prefix(&secret),
            created_at: now,
        };
        let audit = caller.entry(now, "api_key.create", Some(key.id.as_str()), json!({"name": key.name}));
        self.store.insert_api_key(&key, &secret.hash(), &audit).await?;
        Ok(CreatedApiKey { key, secret })
    }

    pub async fn delete_api_key(&self, caller: &Caller, id: &str) -> Result<()> {
        caller.require_settings_rights()?;
        let id = ApiKeyId::parse(id).ok_or(Error::NotFound("API key"))?;
        let audit = caller.entry(self.clock.now(), "api_key.delete", Some(id.as_str()), json!({}));
        if self.store.delete_api_key(&caller.enterprise_id, &id, &audit).await? {
            Ok(())
        } else {
            Err(Error::NotFound("API key"))
        }
    }
}
