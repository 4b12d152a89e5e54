//! The enterprise policy as stored.

use crate::SqlStore;
use crate::cache::read_through;
use crate::directory::insert_audit;
use crate::rows::DomainRow;
use crate::sql::sql;
use async_trait::async_trait;
use workgate_domain::clock::Timestamp;
use workgate_domain::ids::EnterpriseId;
use workgate_domain::model::AuditEntry;
use workgate_domain::policy::StoredPolicy;
use workgate_domain::store::PolicyStore;
use workgate_domain::{Error, Result};

#[async_trait]
impl PolicyStore for SqlStore {
    async fn server_secret(&self, name: &str, candidate: &str, now: Timestamp) -> Result<String> {
        let (candidate, name) = (candidate.to_owned(), name.to_owned());
        self.write(async move |c| {
            let (candidate, name) = (candidate.as_str(), name.as_str());
            c.execute(
                sql("INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO NOTHING")
                .bind(name)
                .bind(candidate)
                .bind(now.millis()),
            )
            .await?;
            c.value(sql("SELECT value FROM server_secrets WHERE name = $1").bind(name)).await
        })
        .await
    }

    async fn get_policy(&self, enterprise: &EnterpriseId) -> Result<Option<StoredPolicy>> {
        // Read at every login step: served from the node's cache, which a policy's write
        // invalidates before it is acknowledged (and other nodes on hearing of it).
        let load = async { self.policy_for_change(enterprise).await.map(Some) };
        let cached = read_through(&self.cache, &self.cache.policies, enterprise.as_str().to_owned(), load).await?;
        Ok(cached.flatten())
    }

    async fn policy_for_change(&self, enterprise: &EnterpriseId) -> Result<Option<StoredPolicy>> {
        let row = self
            .reader()
            .fetch_optional(
                sql("SELECT settings, tightened_at, updated_at FROM policies WHERE enterprise_id = $1")
                    .bind(enterprise.as_str()),
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let settings: String = row.get("settings")?;
        let policy = serde_json::from_str(&settings).map_err(|e| Error::Internal(format!("stored policy: {e}")))?;
        Ok(Some(StoredPolicy {
            policy,
            tightened_at: Timestamp(row.get("tightened_at")?),
            updated_at: Timestamp(row.get("updated_at")?),
        }))
    }

    async fn put_policy(
        &self,
        enterprise: &EnterpriseId,
        policy: &StoredPolicy,
        replaces: Timestamp,
        audit: &AuditEntry,
    ) -> Result<bool> {
        let settings = serde_json::to_string(&policy.policy).map_err(|e| Error::Internal(e.to_string()))?;
        let (audit, enterprise, policy) = (audit.clone(), enterprise.clone(), policy.clone());
        self.write(async move |c| {
            let (audit, enterprise, policy) = (&audit, &enterprise, &policy);
            // Conditional in the database, so that it holds across nodes and whatever a node has
            // cached: the update happens only over the version the change was made on.
            let written = c
                .execute(
                    sql(
                        "INSERT INTO policies (enterprise_id, settings, tightened_at, updated_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (enterprise_id) DO UPDATE SET settings = excluded.settings, \
                         tightened_at = excluded.tightened_at, updated_at = excluded.updated_at \
                         WHERE policies.updated_at = $5",
                    )
                    .bind(enterprise.as_str())
                    .bind(&settings)
                    .bind(policy.tightened_at.millis())
                    .bind(policy.updated_at.millis())
                    .bind(replaces.millis()),
                )
                .await?;
            if written == 0 {
                return Ok(false);
            }
            insert_audit(c, std::slice::from_ref(audit)).await?;
            Ok(true)
        })
        .await
    }
}
