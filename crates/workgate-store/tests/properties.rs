//! Property tests of the domain's rules, run through the domain's own use cases (`Services`) over
//! the real SQLite store, a fresh database file per case; what each case checks is read back from
//! that database:
//!
//! - department moves never make a cycle, whatever is moved where;
//! - importing the same file a second time changes nothing (no member, department, audit entry
//!   or SMS), for files in which each row names a different member;
//! - the login step machine never leaves the code step, and never issues a session, for a login
//!   whose current code was not given;
//! - the limits of a login, counted together (`hit_limits`, one statement for their first
//!   counters), answer and leave the same counters as each counter hit on its own (`hit_limit`).

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestRunner;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use workgate_domain::Services;
use workgate_domain::audit::Caller;
use workgate_domain::clock::{ManualClock, Timestamp};
use workgate_domain::directory::{DepartmentPatch, MAX_DEPARTMENT_DEPTH, NewDepartmentInput, NewMemberInput};
use workgate_domain::enterprises::{CreateEnterprise, CreatedEnterprise};
use workgate_domain::error::Error;
use workgate_domain::ids::{DepartmentId, EnterpriseId, LoginId};
use workgate_domain::import::{ImportReport, RowStatus, parse_csv};
use workgate_domain::keys::ServerKeys;
use workgate_domain::limits::Limit;
use workgate_domain::login::{ClientInfo, CodeInput, EnterpriseChoice, LoginStep, Next, StartLoginInput};
use workgate_domain::model::{Actor, Department, Member};
use workgate_domain::outbox::SmsPurpose;
use workgate_domain::phone::{PhoneNumber, Region};
use workgate_domain::policy::Policy;
use workgate_domain::settings::LoginSettings;
use workgate_domain::store::Store;

/// Cases per property; `PROPTEST_CASES` overrides it (e.g. 2000 for a longer search).
const CASES: u32 = 128;

/// Runs `test` on `CASES` values of `strategy`, failing with the smallest failing value found.
fn check<S: Strategy>(strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(CASES);
    let mut runner = TestRunner::new(ProptestConfig { cases, ..ProptestConfig::default() });
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

/// How often something happened across all the cases: a property that never met what it is
/// about proves nothing, so each test also checks that its cases got there.
#[derive(Default)]
struct Seen(std::cell::RefCell<HashMap<&'static str, usize>>);

impl Seen {
    fn note(&self, what: &'static str) {
        *self.0.borrow_mut().entry(what).or_default() += 1;
    }

    fn assert_met(&self, all: &[&'static str]) {
        let seen = self.0.borrow();
        for what in all {
            assert!(seen.get(what).copied().unwrap_or(0) > 0, "no case met '{what}': {seen:?}");
        }
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// One case's world: the domain over a SQLite database of its own, and a second connection to the
/// same file to read back what the domain wrote.
struct World {
    store: Arc<dyn Store>,
    db: sqlx::SqlitePool,
    clock: Arc<ManualClock>,
    services: Services,
    _dir: tempfile::TempDir,
}

async fn world(settings: LoginSettings) -> World {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("workgate.db").display());
    let store = workgate_store::open(&url).await.expect("the SQLite store opens");
    let db = sqlx::SqlitePool::connect(&url).await.expect("a reading connection");
    let clock = Arc::new(ManualClock::default());
    let services = Services::with_settings(store.clone(), clock.clone(), settings, ServerKeys::ephemeral())
        .await
        .expect("services over the SQLite store");
    World { store, db, clock, services, _dir: dir }
}

impl World {
    async fn count(&self, table: &str) -> usize {
        let n: i64 =
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&self.db).await.expect("a count");
        usize::try_from(n).expect("a count")
    }

    async fn departments(&self, enterprise: &EnterpriseId) -> Vec<Department> {
        departments(self.store.list_departments(enterprise).await.expect("the departments"))
    }

    async fn members(&self, enterprise: &EnterpriseId) -> Vec<Member> {
        let (_, mut members) = self.store.load_directory(enterprise).await.expect("the directory");
        members.sort_by(|a, b| a.id.cmp(&b.id));
        members
    }

    /// The newest SMS in the outbox (its position in the order of writing), to read only later ones.
    async fn newest_sms(&self) -> i64 {
        sqlx::query_scalar("SELECT COALESCE(MAX(rowid), 0) FROM sms_outbox").fetch_one(&self.db).await.expect("rowid")
    }

    fn clock_now(&self) -> Timestamp {
        use workgate_domain::clock::Clock;
        self.clock.now()
    }
}

async fn enterprise(w: &World, name: &str, owner_phone: &str) -> CreatedEnterprise {
    let input = CreateEnterprise {
        name: name.into(),
        owner_name: "Owner".into(),
        owner_phone: owner_phone.into(),
        region: "CN".into(),
    };
    w.services.create_enterprise(input, Actor::Cli).await.expect("an enterprise")
}

fn cn() -> Region {
    Region::parse("CN").unwrap()
}

// ---------------------------------------------------------------------------------------------
// Department moves never make a cycle.

#[derive(Debug, Clone)]
enum TreeOp {
    /// A department under the `parent`-th one (in creation order).
    Create { parent: Index, name: usize },
    /// A department under the newest one: chains grow towards the depth limit.
    CreateUnderNewest { name: usize },
    /// `levels` departments, each under the one before, starting under the `parent`-th one.
    Chain { parent: Index, levels: usize },
    /// Moves the `department`-th one under the `parent`-th one (itself, its descendants and the
    /// root included).
    Move { department: Index, parent: Index },
    /// Moves the `department`-th one under one of its own descendants (or itself).
    MoveUnderOwnDescendant { department: Index, descendant: Index },
}

fn tree_op() -> impl Strategy<Value = TreeOp> {
    prop_oneof![
        3 => (any::<Index>(), 0..4usize).prop_map(|(parent, name)| TreeOp::Create { parent, name }),
        2 => (0..4usize).prop_map(|name| TreeOp::CreateUnderNewest { name }),
        1 => (any::<Index>(), 1..=MAX_DEPARTMENT_DEPTH).prop_map(|(parent, levels)| TreeOp::Chain { parent, levels }),
        4 => (any::<Index>(), any::<Index>()).prop_map(|(department, parent)| TreeOp::Move { department, parent }),
        2 => (any::<Index>(), any::<Index>())
            .prop_map(|(department, descendant)| TreeOp::MoveUnderOwnDescendant { department, descendant }),
    ]
}

/// The departments in creation order (ids are UUIDv7, so they sort by creation).
fn departments(mut all: Vec<Department>) -> Vec<Department> {
    all.sort_by(|a, b| a.id.cmp(&b.id));
    all
}

/// `id` and the ancestors above it, walking parent links as the stored tree has them; `None` if
/// the walk meets a department twice (a cycle) or a parent that does not exist.
fn ancestry(by_id: &HashMap<&DepartmentId, &Department>, id: &DepartmentId) -> Option<Vec<DepartmentId>> {
    let mut chain = vec![];
    let mut cursor = Some(id);
    while let Some(current) = cursor {
        if chain.contains(current) {
            return None;
        }
        chain.push(current.clone());
        cursor = by_id.get(current)?.parent_id.as_ref();
    }
    Some(chain)
}

fn by_id(all: &[Department]) -> HashMap<&DepartmentId, &Department> {
    all.iter().map(|d| (&d.id, d)).collect()
}

fn assert_a_tree(all: &[Department]) -> Result<(), TestCaseError> {
    let roots: Vec<&Department> = all.iter().filter(|d| d.parent_id.is_none()).collect();
    prop_assert_eq!(roots.len(), 1, "one root: {:?}", all);
    let by_id = by_id(all);
    for d in all {
        let chain = ancestry(&by_id, &d.id);
        prop_assert!(chain.is_some(), "a cycle or a dangling parent through {}: {:?}", d.id, all);
        let chain = chain.unwrap();
        prop_assert_eq!(chain.last(), Some(&roots[0].id), "{} does not reach the root", d.id);
        prop_assert!(chain.len() <= MAX_DEPARTMENT_DEPTH, "{} is {} levels deep", d.id, chain.len());
    }
    Ok(())
}

#[test]
fn department_moves_never_make_a_cycle() {
    let seen = Seen::default();
    check(prop::collection::vec(tree_op(), 1..40), |ops| {
        block_on(async {
            let w = world(LoginSettings::default()).await;
            let created = enterprise(&w, "Tree Co", "13800138000").await;
            let caller = Caller::operator(created.enterprise.id.clone());
            let names = ["Sales", "East", "R&D", "Ops"];
            for op in ops {
                let before = w.departments(&caller.enterprise_id).await;
                let newest = before.last().unwrap().id.clone();
                let pick = |i: &Index| before[i.index(before.len())].id.clone();
                let (result, under_itself) = match &op {
                    TreeOp::Create { parent, name } => {
                        let input = NewDepartmentInput {
                            name: names[*name].into(),
                            parent_id: Some(pick(parent).to_string()),
                            order: None,
                        };
                        (w.services.create_department(&caller, input).await.map(|_| ()), false)
                    }
                    TreeOp::CreateUnderNewest { name } => {
                        let input = NewDepartmentInput {
                            name: names[*name].into(),
                            parent_id: Some(newest.to_string()),
                            order: None,
                        };
                        (w.services.create_department(&caller, input).await.map(|_| ()), false)
                    }
                    TreeOp::Chain { parent, levels } => {
                        let mut under = pick(parent);
                        let mut result = Ok(());
                        for level in 0..*levels {
                            let input = NewDepartmentInput {
                                name: format!("Level {level}"),
                                parent_id: Some(under.to_string()),
                                order: None,
                            };
                            match w.services.create_department(&caller, input).await {
                                Ok(d) => under = d.id,
                                Err(e) => {
                                    result = Err(e);
                                    break;
                                }
                            }
                        }
                        (result, false)
                    }
                    TreeOp::Move { department, parent } => {
                        let (d, p) = (pick(department), pick(parent));
                        let under_itself = ancestry(&by_id(&before), &p).unwrap().contains(&d);
                        let patch = DepartmentPatch { parent_id: Some(p.to_string()), ..Default::default() };
                        (w.services.update_department(&caller, d.as_str(), patch).await.map(|_| ()), under_itself)
                    }
                    TreeOp::MoveUnderOwnDescendant { department, descendant } => {
                        let d = pick(department);
                        let tree = by_id(&before);
                        let below: Vec<DepartmentId> = before
                            .iter()
                            .filter(|x| ancestry(&tree, &x.id).unwrap().contains(&d))
                            .map(|x| x.id.clone())
                            .collect();
                        let p = below[descendant.index(below.len())].clone();
                        let patch = DepartmentPatch { parent_id: Some(p.to_string()), ..Default::default() };
                        (w.services.update_department(&caller, d.as_str(), patch).await.map(|_| ()), true)
                    }
                };
                let after = w.departments(&caller.enterprise_id).await;
                assert_a_tree(&after)?;
                if under_itself {
                    prop_assert!(
                        matches!(result, Err(Error::Validation(_))),
                        "moving a department under itself or its own sub-department was not refused: {:?}",
                        op
                    );
                }
                match &result {
                    Err(_) if matches!(op, TreeOp::Chain { .. }) => {}
                    Err(_) => prop_assert_eq!(&after, &before, "a refused {:?} changed the tree", op),
                    Ok(()) if matches!(op, TreeOp::Move { .. }) && after != before => seen.note("a subtree moved"),
                    Ok(()) => {}
                }
                if under_itself {
                    seen.note("a move under itself refused");
                }
                if let Err(Error::Validation(e)) = &result
                    && e.iter().any(|e| e.message.contains("levels"))
                {
                    seen.note("the depth limit refused a change");
                }
            }
            Ok(())
        })
    });
    seen.assert_met(&["a subtree moved", "a move under itself refused", "the depth limit refused a change"]);
}

// ---------------------------------------------------------------------------------------------
// Importing the same file twice: the second time changes nothing.

/// Mobile numbers of CN, and how a person might type each.
const NUMBERS: [&str; 8] = [
    "13800138001",
    "13800138002",
    "13900139003",
    "13700137004",
    "15000150005",
    "18600186006",
    "13800138007",
    "13600136008",
];

#[derive(Debug, Clone)]
struct Row {
    userid: Option<&'static str>,
    name: &'static str,
    phone: String,
    email: &'static str,
    title: &'static str,
    departments: &'static str,
}

fn typed_number() -> impl Strategy<Value = String> {
    (0..NUMBERS.len(), 0..6usize).prop_map(|(i, form)| {
        let n = NUMBERS[i];
        match form {
            0 => n.to_string(),
            1 => format!("+86{n}"),
            2 => format!("+86 {} {} {}", &n[..3], &n[3..7], &n[7..]),
            3 => format!("{}-{}-{}", &n[..3], &n[3..7], &n[7..]),
            4 => format!("0086 {n}"),
            // Not a mobile number: the row fails.
            _ => "010 6552 9988".to_string(),
        }
    })
}

fn row() -> impl Strategy<Value = Row> {
    let userids =
        prop::sample::select(vec![None, Some("alice"), Some("Bob"), Some("bob"), Some("carol"), Some("dave")]);
    let names = prop::sample::select(vec!["Alice", "Bob Li", " Carol ", "Dave", "Erin", ""]);
    let emails = prop::sample::select(vec!["", "a@example.com", "B@Example.com", "not-an-email"]);
    let titles = prop::sample::select(vec!["", "Engineer", "Sales lead"]);
    let departments = prop::sample::select(vec![
        "",
        "Sales",
        "Sales/East",
        " Sales / East ",
        "R&D;Sales",
        "Ops/",
        "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o",
    ]);
    (userids, names, typed_number(), emails, titles, departments).prop_map(
        |(userid, name, phone, email, title, departments)| Row { userid, name, phone, email, title, departments },
    )
}

fn csv_of(rows: &[Row]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(vec![]);
    w.write_record(["userid", "name", "phone", "email", "title", "departments"]).unwrap();
    for r in rows {
        w.write_record([r.userid.unwrap_or(""), r.name, &r.phone, r.email, r.title, r.departments]).unwrap();
    }
    w.into_inner().unwrap()
}

/// Keeps the rows of `rows` that name a different member each, given the directory `members`:
/// distinct userids (ignoring case) and numbers, no row without a userid naming by number a
/// member that another row names by userid, and no row claiming the number of a member that
/// another row names. (Without that, a file can, say, move a member to a new number in one row
/// and add the old number as a new member in another: the second import then changes things, as
/// the file asks.)
fn rows_naming_one_member_each(rows: Vec<Row>, members: &[Member]) -> Vec<Row> {
    let e164 = |r: &Row| PhoneNumber::parse(&r.phone, cn()).ok();
    let mut userids = HashSet::new();
    let mut numbers = HashSet::new();
    let distinct: Vec<Row> = rows
        .into_iter()
        .filter(|r| r.userid.is_none_or(|u| userids.insert(u.to_ascii_lowercase())))
        .filter(|r| e164(r).is_none_or(|p| numbers.insert(p)))
        .collect();
    let named: HashSet<String> = distinct.iter().filter_map(|r| r.userid.map(str::to_ascii_lowercase)).collect();
    let holder = |r: &Row| e164(r).and_then(|p| members.iter().find(|m| m.phone == p).map(|m| m.userid.key()));
    distinct
        .into_iter()
        .filter(|r| match (r.userid, holder(r)) {
            (_, None) => true,
            (None, Some(holder)) => !named.contains(&holder),
            (Some(u), Some(holder)) => holder == u.to_ascii_lowercase() || !named.contains(&holder),
        })
        .collect()
}

/// What an import can change, as stored.
async fn directory(w: &World, enterprise: &EnterpriseId) -> (Vec<Department>, Vec<Member>, usize, usize, usize) {
    (
        w.departments(enterprise).await,
        w.members(enterprise).await,
        w.count("audit_log").await,
        w.count("sms_outbox").await,
        w.count("invitations").await,
    )
}

async fn import(w: &World, caller: &Caller, file: &[u8]) -> ImportReport {
    let records = parse_csv(file).expect("a well-formed CSV file");
    w.services.import_members(caller, records, &|_, _| {}).await.expect("an import")
}

#[test]
fn an_import_applied_twice_changes_nothing_the_second_time() {
    let seen = Seen::default();
    let files = (
        prop::collection::vec(row(), 0..6),
        prop::collection::vec(row(), 1..10),
        prop::collection::vec(any::<Index>(), 0..3),
    );
    check(files, |(earlier, mut rows, repeated)| {
        // Some rows as the earlier file had them.
        if !earlier.is_empty() {
            rows.extend(repeated.iter().map(|i| earlier[i.index(earlier.len())].clone()));
        }
        block_on(async {
            let w = world(LoginSettings::default()).await;
            let created = enterprise(&w, "Import Co", "13800138000").await;
            let caller = Caller::operator(created.enterprise.id.clone());
            // A directory that already has members (from another file).
            import(&w, &caller, &csv_of(&earlier)).await;
            let ent = &caller.enterprise_id;
            let rows = rows_naming_one_member_each(rows, &w.members(ent).await);
            let file = csv_of(&rows);

            let before = directory(&w, ent).await;
            let first = import(&w, &caller, &file).await;
            let after_first = directory(&w, ent).await;
            let second = import(&w, &caller, &file).await;
            let after_second = directory(&w, ent).await;

            let file = String::from_utf8_lossy(&file).into_owned();
            prop_assert_eq!((second.created, second.updated), (0, 0), "second import of\n{}\n{:?}", file, second);
            for (a, b) in first.rows.iter().zip(&second.rows) {
                let expected = if a.status == RowStatus::Failed { RowStatus::Failed } else { RowStatus::Unchanged };
                prop_assert_eq!(b.status, expected, "row {} of\n{}\nfirst {:?}\nsecond {:?}", a.row, file, a, b);
                prop_assert_eq!(&a.member_id, &b.member_id);
            }
            prop_assert!(after_second == after_first, "the second import of\n{}\nchanged the directory", file);
            for (what, n) in [
                ("a row created a member", first.created),
                ("a row updated a member", first.updated),
                ("a row failed", first.failed),
                ("a row was unchanged the first time", first.unchanged),
            ] {
                if n > 0 {
                    seen.note(what);
                }
            }
            if after_first.0.len() > before.0.len() {
                seen.note("an import created departments");
            }
            Ok(())
        })
    });
    seen.assert_met(&[
        "a row created a member",
        "a row updated a member",
        "a row failed",
        "a row was unchanged the first time",
        "an import created departments",
    ]);
}

// ---------------------------------------------------------------------------------------------
// The login step machine never reaches `done` without the code.

#[derive(Debug, Clone)]
enum LoginOp {
    /// `login/start` with the `who`-th number of [`PEOPLE`].
    Start {
        who: usize,
    },
    /// The login's current code, as the SMS brought it.
    RightCode {
        login: Index,
    },
    /// Any other answer: digits, the code of another login, or not a code at all.
    Guess {
        login: Index,
        guess: String,
    },
    OtherLoginsCode {
        login: Index,
        other: Index,
    },
    Resend {
        login: Index,
    },
    Choose {
        login: Index,
        enterprise: usize,
    },
    /// An admin approves the device the login waits with.
    Approve {
        login: Index,
    },
    Continue {
        login: Index,
    },
    Wait {
        secs: u64,
    },
}

/// A member of the first enterprise; a member of both; a disabled member; no member.
const PEOPLE: [&str; 4] = ["13800138001", "13900139002", "13700137003", "13600136004"];

fn login_op() -> impl Strategy<Value = LoginOp> {
    prop_oneof![
        3 => (0..PEOPLE.len()).prop_map(|who| LoginOp::Start { who }),
        3 => any::<Index>().prop_map(|login| LoginOp::RightCode { login }),
        3 => (any::<Index>(), prop_oneof!["[0-9]{6}", "[0-9]{4,8}", " ?[0-9]{6} ?", ".{0,8}"])
            .prop_map(|(login, guess)| LoginOp::Guess { login, guess }),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(login, other)| LoginOp::OtherLoginsCode { login, other }),
        1 => any::<Index>().prop_map(|login| LoginOp::Resend { login }),
        2 => (any::<Index>(), 0..3usize).prop_map(|(login, enterprise)| LoginOp::Choose { login, enterprise }),
        1 => any::<Index>().prop_map(|login| LoginOp::Approve { login }),
        1 => any::<Index>().prop_map(|login| LoginOp::Continue { login }),
        1 => (0..400u64).prop_map(|secs| LoginOp::Wait { secs }),
    ]
}

/// A login as the client (and the test) knows it.
struct Login {
    login_id: String,
    reference: LoginId,
    phone: PhoneNumber,
    /// The newest code sent for it, read from the SMS; `None` when none was sent.
    code: Option<String>,
    /// Whether its current code was given and accepted.
    verified: bool,
    sessions: usize,
}

/// The code of the newest login SMS to `phone` written after the SMS `seen` (see `newest_sms`).
async fn new_code(w: &World, seen: i64, phone: &PhoneNumber) -> Option<String> {
    let (id, body): (String, String) = sqlx::query_as(
        "SELECT id, body FROM sms_outbox WHERE rowid > $1 AND purpose = $2 AND phone = $3 ORDER BY rowid DESC LIMIT 1",
    )
    .bind(seen)
    .bind(SmsPurpose::LoginCode.as_str())
    .bind(phone.as_str())
    .fetch_optional(&w.db)
    .await
    .expect("the outbox")?;
    let stored = w.services.keys().open_sms(&id, &body).expect("an SMS we sealed");
    let message = workgate_domain::sms::SmsMessage::from_stored(&stored);
    message.content.and_then(|content| content.param("code"))
}

async fn challenge(w: &World, login: &Login) -> workgate_domain::login::LoginChallenge {
    w.store.get_login(&login.reference).await.expect("the login").expect("a stored login")
}

async fn step_of(w: &World, login: &Login) -> LoginStep {
    challenge(w, login).await.step
}

#[test]
fn a_login_never_gets_past_the_code_without_it() {
    let seen = Seen::default();
    let cases = (any::<bool>(), any::<bool>(), prop::collection::vec(login_op(), 1..30));
    check(cases, |(hide_membership, device_approval, ops)| {
        block_on(async {
            let settings = LoginSettings { hide_membership, ..LoginSettings::default() };
            let w = world(settings).await;
            let first = enterprise(&w, "First Co", "13800138000").await;
            let second = enterprise(&w, "Second Co", "13800138009").await;
            for (created, people) in [(&first, &PEOPLE[..3]), (&second, &PEOPLE[1..2])] {
                let caller = Caller::operator(created.enterprise.id.clone());
                for phone in people {
                    let input =
                        NewMemberInput { name: "Member".into(), phone: phone.to_string(), ..Default::default() };
                    w.services.add_member(&caller, input).await.expect("a member");
                }
            }
            let caller = Caller::operator(first.enterprise.id.clone());
            let members = w.members(&caller.enterprise_id).await;
            let disabled = members.iter().find(|m| m.phone.as_str() == "+8613700137003").unwrap().id.clone();
            w.services
                .change_member_status(&caller, disabled.as_str(), workgate_domain::directory::StatusChange::Disable)
                .await
                .expect("disabled");
            if device_approval {
                let policy = Policy { require_device_approval: true, ..Policy::default() };
                w.services.put_policy(&caller, policy, None).await.expect("a policy");
            }
            let enterprises = [first.enterprise.id.to_string(), second.enterprise.id.to_string(), "ent_nope".into()];

            let mut logins: Vec<Login> = vec![];
            let mut issued = 0;
            for op in ops {
                let sent = w.newest_sms().await;
                let pick = |i: &Index, n: usize| (n > 0).then(|| i.index(n));
                // What the call answered, and for which login; whether it gave the right code.
                let (which, answer, right): (Option<usize>, Option<Result<Next, Error>>, bool) = match &op {
                    LoginOp::Start { who } => {
                        let input = StartLoginInput {
                            phone: PEOPLE[*who].into(),
                            device_id: None,
                            invitation: None,
                            device_name: None,
                            region: None,
                        };
                        if let Ok(started) = w.services.start_login(input, ClientInfo::default()).await {
                            let phone = PhoneNumber::parse(PEOPLE[*who], cn()).unwrap();
                            let reference = workgate_domain::login::login_reference(&started.login_id).unwrap();
                            let code = new_code(&w, sent, &phone).await;
                            logins.push(Login {
                                login_id: started.login_id,
                                reference,
                                phone,
                                code,
                                verified: false,
                                sessions: 0,
                            });
                        }
                        (None, None, false)
                    }
                    LoginOp::RightCode { login }
                    | LoginOp::Guess { login, .. }
                    | LoginOp::OtherLoginsCode { login, .. } => {
                        let Some(i) = pick(login, logins.len()) else { continue };
                        let code = match &op {
                            LoginOp::RightCode { .. } => logins[i].code.clone().unwrap_or_else(|| "000000".into()),
                            LoginOp::Guess { guess, .. } => guess.clone(),
                            LoginOp::OtherLoginsCode { other, .. } => {
                                logins[other.index(logins.len())].code.clone().unwrap_or_default()
                            }
                            _ => unreachable!(),
                        };
                        let right = logins[i].code.as_deref() == Some(code.trim());
                        let answer = w
                            .services
                            .submit_code(&logins[i].login_id, CodeInput { code }, ClientInfo::default())
                            .await;
                        (Some(i), Some(answer), right)
                    }
                    LoginOp::Resend { login } => {
                        let Some(i) = pick(login, logins.len()) else { continue };
                        if w.services.resend_code(&logins[i].login_id, ClientInfo::default()).await.is_ok() {
                            let code = new_code(&w, sent, &logins[i].phone).await;
                            logins[i].code = code;
                        }
                        (None, None, false)
                    }
                    LoginOp::Choose { login, enterprise } => {
                        let Some(i) = pick(login, logins.len()) else { continue };
                        let choice = EnterpriseChoice { enterprise_id: enterprises[*enterprise].clone() };
                        let answer =
                            w.services.choose_enterprise(&logins[i].login_id, choice, ClientInfo::default()).await;
                        (Some(i), Some(answer), false)
                    }
                    LoginOp::Approve { login } => {
                        let Some(i) = pick(login, logins.len()) else { continue };
                        let challenge = challenge(&w, &logins[i]).await;
                        if let (Some(e), Some(m), Some(d)) =
                            (&challenge.enterprise_id, &challenge.member_id, &challenge.device_id)
                        {
                            let audit = Caller::operator(e.clone()).entry(
                                w.clock_now(),
                                "device.approve",
                                None,
                                serde_json::json!({}),
                            );
                            w.store.approve_device(e, m, d, &audit).await.expect("approval");
                        }
                        (None, None, false)
                    }
                    LoginOp::Continue { login } => {
                        let Some(i) = pick(login, logins.len()) else { continue };
                        let answer = w.services.continue_login(&logins[i].login_id, ClientInfo::default()).await;
                        (Some(i), Some(answer), false)
                    }
                    LoginOp::Wait { secs } => {
                        w.clock.advance(Duration::from_secs(*secs));
                        (None, None, false)
                    }
                };
                if let (Some(i), Some(answer)) = (which, &answer) {
                    if right && answer.is_ok() {
                        logins[i].verified = true;
                    }
                    if let Ok(Next::Done(_)) = answer {
                        logins[i].sessions += 1;
                        issued += 1;
                    }
                }

                for login in &logins {
                    let step = step_of(&w, login).await;
                    let past_the_code = !matches!(step, LoginStep::Code | LoginStep::Locked);
                    prop_assert!(
                        login.verified || !past_the_code,
                        "a login reached {:?} without its code ({:?}; hidden {}, approval {})",
                        step,
                        op,
                        hide_membership,
                        device_approval
                    );
                    prop_assert!(login.sessions <= 1, "a login issued {} sessions", login.sessions);
                    prop_assert!(login.sessions == 0 || step == LoginStep::Done);
                }
                prop_assert_eq!(w.count("sessions").await, issued, "sessions written without a Done answer");
                for login in &logins {
                    seen.note(match step_of(&w, login).await {
                        LoginStep::Code => "code",
                        LoginStep::Enterprise => "enterprise",
                        LoginStep::PendingApproval => "pending_approval",
                        LoginStep::Done => "done",
                        LoginStep::Locked => "locked",
                        _ => "another step",
                    });
                }
                if right && matches!(answer, Some(Err(Error::CodeExpired))) {
                    seen.note("the right code, too late");
                }
            }
            Ok(())
        })
    });
    seen.assert_met(&["enterprise", "pending_approval", "done", "locked", "the right code, too late"]);
}

// ---------------------------------------------------------------------------------------------
// A login's limits counted together answer and count as they do counted one counter at a time.

/// One limit of a case: its counter's name (from a few, so that limits share counters), its
/// maximum, its window and how many slices it is kept in.
fn limit() -> impl Strategy<Value = Limit> {
    (0..3usize, 0..5i64, 1..4i64, 1..4u32).prop_map(|(bucket, max, window_secs, slices)| {
        Limit::new("test", ["a", "b", "c"][bucket].to_string(), max, window_secs).sliced(slices)
    })
}

/// The reference: each limit in order, each of its counters in order until one has room, each hit
/// on its own (`hit_limit`); the index of the first full limit and the soonest its counters have room.
async fn hit_one_by_one(store: &dyn Store, limits: &[Limit], now_ms: i64) -> Option<(usize, i64)> {
    for (i, limit) in limits.iter().enumerate() {
        let window_ms = limit.window_secs * 1000;
        let mut soonest: Option<i64> = None;
        let mut counted = false;
        for (bucket, max) in limit.parts() {
            match store.hit_limit(&bucket, now_ms, window_ms, max).await.expect("a hit") {
                None => {
                    counted = true;
                    break;
                }
                Some(wait_ms) => soonest = Some(soonest.map_or(wait_ms, |s| s.min(wait_ms))),
            }
        }
        if !counted {
            return Some((i, soonest.unwrap_or(window_ms)));
        }
    }
    None
}

async fn counters(w: &World) -> Vec<(String, i64, i64)> {
    sqlx::query_as("SELECT bucket, window_start, count FROM rate_counters ORDER BY bucket, window_start")
        .fetch_all(&w.db)
        .await
        .expect("the counters")
}

#[test]
fn limits_counted_together_count_as_one_by_one() {
    let seen = Seen::default();
    let steps = prop::collection::vec((0..1500i64, prop::collection::vec(0..4usize, 1..5)), 1..40);
    check((prop::collection::vec(limit(), 4), steps), |(limits, steps)| {
        block_on(async {
            let together = world(LoginSettings::default()).await;
            let one_by_one = world(LoginSettings::default()).await;
            let mut now_ms = 1_000_000;
            for (advance_ms, picked) in steps {
                now_ms += advance_ms;
                let login: Vec<Limit> = picked.iter().map(|&i| limits[i].clone()).collect();
                let answer = together.store.hit_limits(&login, now_ms).await.expect("the hits");
                let expected = hit_one_by_one(one_by_one.store.as_ref(), &login, now_ms).await;
                prop_assert_eq!(answer, expected, "at {} ms, limits {:?}", now_ms, login);
                seen.note(if answer.is_some() { "a full limit" } else { "room in every limit" });
                if answer.is_some_and(|(i, _)| i > 0) {
                    seen.note("hits counted before a full limit");
                }
                if login.iter().any(|l| l.is_sliced()) {
                    seen.note("a sliced limit");
                }
            }
            prop_assert_eq!(counters(&together).await, counters(&one_by_one).await);
            Ok(())
        })
    });
    seen.assert_met(&["a full limit", "room in every limit", "hits counted before a full limit", "a sliced limit"]);
}
