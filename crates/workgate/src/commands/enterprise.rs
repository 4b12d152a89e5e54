//! `workgate enterprise create`.

use crate::cli::EnterpriseCreateArgs;
use crate::server::open_services_keyed;
use std::sync::Arc;
use workgate_domain::clock::SystemClock;
use workgate_domain::enterprises::CreateEnterprise;
use workgate_domain::model::Actor;

pub async fn create(
    database: &str,
    key_file: &std::path::Path,
    durability: workgate_store::Durability,
    args: EnterpriseCreateArgs,
) -> anyhow::Result<()> {
    let services = open_services_keyed(database, key_file, durability, Arc::new(SystemClock)).await?;
    let created = services
        .create_enterprise(
            CreateEnterprise {
                name: args.name,
                owner_name: args.owner_name,
                owner_phone: args.owner_phone,
                region: args.region,
            },
            Actor::Cli,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{}", describe(&e)))?;
    if args.json {
        let out = serde_json::json!({
            "enterprise_id": created.enterprise.id,
            "name": created.enterprise.name.as_str(),
            "region": created.enterprise.region.as_str(),
            "root_department_id": created.root.id,
            "owner_id": created.owner.id,
            "owner_phone": created.owner.phone.as_str(),
            "api_key_id": created.api_key.id,
            "api_key": created.api_key_secret.expose(),
        });
        println!("{out}");
    } else {
        println!("Created enterprise {} ({})", created.enterprise.name, created.enterprise.id);
        println!("  owner:   {} {} ({})", created.owner.name, created.owner.phone, created.owner.id);
        println!("  API key: {}", created.api_key_secret.expose());
        println!("Keep the API key now: it is stored only as a hash and cannot be shown again.");
    }
    Ok(())
}

/// A domain error as a sentence for the terminal.
pub fn describe(e: &workgate_domain::Error) -> String {
    match e {
        workgate_domain::Error::Validation(errors) => {
            errors.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; ")
        }
        workgate_domain::Error::InvalidPhone { detail } => detail.clone(),
        other => other.to_string(),
    }
}
