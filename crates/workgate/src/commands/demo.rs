//! `serve --demo`: an example enterprise to explore, seeded once into an empty database.

use workgate_domain::Services;
use workgate_domain::audit::Caller;
use workgate_domain::directory::{NewDepartmentInput, NewMemberInput};
use workgate_domain::enterprises::CreateEnterprise;
use workgate_domain::model::Actor;

pub struct Demo {
    pub enterprise_id: String,
    pub api_key: String,
    pub owner_phone: String,
}

/// Seeds "Demo Co" when there is no enterprise yet; returns what was created.
pub async fn seed_if_empty(services: &Services) -> anyhow::Result<Option<Demo>> {
    if services.store.count_enterprises().await? > 0 {
        return Ok(None);
    }
    let created = services
        .create_enterprise(
            CreateEnterprise {
                name: "Demo Co".into(),
                owner_name: "Demo Owner".into(),
                owner_phone: "+86 138 0013 8000".into(),
                region: "CN".into(),
            },
            Actor::Cli,
        )
        .await?;
    let caller = Caller::operator(created.enterprise.id.clone());
    let engineering = services
        .create_department(&caller, NewDepartmentInput { name: "Engineering".into(), parent_id: None, order: None })
        .await?;
    let sales = services
        .create_department(&caller, NewDepartmentInput { name: "Sales".into(), parent_id: None, order: None })
        .await?;
    for (name, phone, userid, department) in [
        ("Zhang Wei", "139 0013 9001", "zhangwei", &engineering),
        ("Li Na", "139 0013 9002", "lina", &engineering),
        ("Wang Fang", "139 0013 9003", "wangfang", &sales),
    ] {
        services
            .add_member(
                &caller,
                NewMemberInput {
                    name: name.into(),
                    phone: phone.into(),
                    userid: Some(userid.into()),
                    departments: Some(vec![department.id.to_string()]),
                    ..Default::default()
                },
            )
            .await?;
    }
    Ok(Some(Demo {
        enterprise_id: created.enterprise.id.to_string(),
        api_key: created.api_key_secret.expose().to_string(),
        owner_phone: created.owner.phone.to_string(),
    }))
}
