//! Imports larger than one batch (`import::BATCH_ROWS`), where the next batch is planned while
//! the previous one is written: the results must be those of writing batch after batch, also
//! when another import writes the same rows at the same time and a batch is refused.

use std::sync::Arc;
use workgate_domain::Services;
use workgate_domain::audit::{Caller, Rights};
use workgate_domain::clock::SystemClock;
use workgate_domain::enterprises::CreateEnterprise;
use workgate_domain::import::{BATCH_ROWS, DepartmentRefs, ImportRecord};
use workgate_domain::model::Actor;
use workgate_domain::store::MemberFilter;

const ROWS: usize = BATCH_ROWS * 2 + 700;

async fn setup(dir: &tempfile::TempDir) -> (Services, Caller) {
    let url = format!("sqlite://{}", dir.path().join("workgate.db").display());
    let services = workgate::server::open_services(&url, Arc::new(SystemClock)).await.expect("database");
    let created = services
        .create_enterprise(
            CreateEnterprise {
                name: "Acme".into(),
                owner_name: "Owner".into(),
                owner_phone: "+86 137 0000 0001".into(),
                region: "CN".into(),
            },
            Actor::Cli,
        )
        .await
        .expect("enterprise");
    let caller = Caller { enterprise_id: created.enterprise.id, actor: Actor::Cli, ip: None, rights: Rights::Operator };
    (services, caller)
}

fn records() -> Vec<ImportRecord> {
    (0..ROWS)
        .map(|i| ImportRecord {
            userid: Some(format!("u{i:06}")),
            name: Some(format!("Person {i}")),
            phone: Some(format!("+86 139 {:04} {:04}", i / 10_000, i % 10_000)),
            departments: Some(DepartmentRefs::Paths(vec![format!("Division {}/Team {}", i % 7, i % 13)])),
            ..Default::default()
        })
        .collect()
}

async fn member_count(services: &Services, caller: &Caller) -> usize {
    let mut count = 0;
    let mut after = None;
    loop {
        let filter = MemberFilter { after: after.clone(), limit: 500, ..Default::default() };
        let page = services.store.list_members(&caller.enterprise_id, &filter).await.expect("list");
        count += page.len();
        match page.last() {
            Some(m) if page.len() == 500 => after = Some(m.id.clone()),
            _ => return count,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_of_several_batches_creates_every_row_then_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (services, caller) = setup(&dir).await;
    let first = services.import_members(&caller, records(), &|_, _| {}).await.expect("first import");
    assert_eq!((first.created, first.updated, first.unchanged, first.failed), (ROWS, 0, 0, 0));
    assert!(first.rows.iter().enumerate().all(|(i, r)| r.row == i + 1), "rows reported in file order");
    let again = services.import_members(&caller, records(), &|_, _| {}).await.expect("second import");
    assert_eq!((again.created, again.updated, again.unchanged, again.failed), (0, 0, ROWS, 0));
    assert_eq!(member_count(&services, &caller).await, ROWS + 1, "the rows and the owner");
    let departments = services.store.list_departments(&caller.enterprise_id).await.expect("departments");
    assert_eq!(departments.len(), 1 + 7 + 7 * 13, "root, divisions, teams: once each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_imports_of_several_batches_racing_create_each_row_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (services, caller) = setup(&dir).await;
    let (a, b) = tokio::join!(
        services.import_members(&caller, records(), &|_, _| {}),
        services.import_members(&caller, records(), &|_, _| {}),
    );
    let (a, b) = (a.expect("import a"), b.expect("import b"));
    for r in [&a, &b] {
        assert_eq!(r.failed, 0, "{:?}", r.rows.iter().find(|r| r.error.is_some()));
        assert_eq!(r.updated, 0);
        assert_eq!(r.created + r.unchanged, ROWS);
    }
    assert_eq!(a.created + b.created, ROWS, "each row created by exactly one of the imports");
    assert_eq!(member_count(&services, &caller).await, ROWS + 1);
    let departments = services.store.list_departments(&caller.enterprise_id).await.expect("departments");
    assert_eq!(departments.len(), 1 + 7 + 7 * 13);
}
