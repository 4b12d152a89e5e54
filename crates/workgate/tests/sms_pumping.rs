//! SMS pumping: a bot behind a trusted proxy, rotating over 1,000 client addresses, asks for login
//! codes to random mobile numbers of mainland China and to the numbers of real members it knows.
//! The real `workgate serve` process runs on a fresh database (SQLite always, PostgreSQL too when
//! `WORKGATE_TEST_POSTGRES` names a server) with the security numbers set in its TOML file, and
//! the test checks what the server actually queued (the `sms_outbox` table, and the `file`
//! provider's messages) against the bounds those numbers give: no code to a number that is not a
//! member's, at most one code per number per resend cooldown and `codes_per_number_hour` an hour,
//! the server's and the enterprise's SMS budgets. Real members meanwhile sign in all the way
//! (start, the code from the SMS file, the code, `/me`): those the bot does not know while it
//! runs, those it hammered once their number's cooldown is over.
//!
//! Each scenario prints its figures (`cargo test -p workgate --test sms_pumping -- --nocapture`);
//! docs/operators.md "SMS pumping" quotes one run.
//!
//! Two tests are ignored, each naming what it finds: they assert what members should be able to
//! do but cannot today (`-- --ignored` runs them): sign in after a bot spent their number's
//! codes, and sign in with hidden membership after a bot spent the server's budget on numbers of
//! no member.

mod common;

use common::node::{Node, create_enterprise, database, read_sms};
use common::paths;
use common::postgres::PgSchema;
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// Members of the enterprise (besides its owner); the bot knows the first `KNOWN` of them.
const MEMBERS: usize = 50;
const KNOWN: usize = 40;
/// The bot's client addresses, ten in each of 100 /24 networks, as `X-Forwarded-For` names them.
const ADDRESSES: usize = 1_000;
/// The bot's `login/start` requests, one in `MEMBER_SHARE` of them to a known member's number.
const REQUESTS: usize = 3_000;
const MEMBER_SHARE: u64 = 4;
/// Requests the bot has in flight at once.
const CONCURRENCY: usize = 32;
const OWNER_PHONE: &str = "+8613800138000";
/// The admin's client address (its API calls).
const ADMIN: &str = "172.16.0.1";
/// The kinds of `rate_counters` buckets whose window (an hour or a day) spans the whole run, so
/// that every hit they hold counts against their limit. The resend cooldown's minute is checked
/// on the outbox's times instead.
/// (`sms:withheld` is the server budget that numbers of nobody count against with hidden
/// membership, apart from the one members' codes need.)
const COUNTED: [&str; 7] =
    ["start:ip", "start:net", "code:hour", "code:day", "sms:server", "sms:withheld", "sms:enterprise"];

/// The security numbers the server runs with (its `[login]` keys), from which the bounds follow.
#[derive(Clone, Copy)]
struct Numbers {
    hide_membership: bool,
    resend_cooldown_secs: i64,
    codes_per_number_hour: i64,
    codes_per_number_day: i64,
    starts_per_ip_hour: i64,
    starts_per_network_hour: i64,
    sms_budget_server_hour: i64,
    sms_budget_enterprise_hour: i64,
}

impl Numbers {
    /// The product's defaults (docs/reference.md, "Security numbers").
    fn defaults(hide_membership: bool) -> Numbers {
        let d = workgate_domain::settings::LoginSettings::default();
        Numbers {
            hide_membership,
            resend_cooldown_secs: d.resend_cooldown_secs,
            codes_per_number_hour: d.codes_per_number_hour,
            codes_per_number_day: d.codes_per_number_day,
            starts_per_ip_hour: d.starts_per_ip_hour,
            starts_per_network_hour: d.starts_per_network_hour,
            sms_budget_server_hour: d.sms_budget_server_hour,
            sms_budget_enterprise_hour: d.sms_budget_enterprise_hour,
        }
    }

    /// The TOML file: the proxy on loopback is trusted, so `X-Forwarded-For` names the client.
    fn toml(&self) -> String {
        format!(
            "trusted_proxies = [\"127.0.0.1\"]\n\n[login]\nhide_membership = {}\nresend_cooldown_secs = {}\n\
             codes_per_number_hour = {}\ncodes_per_number_day = {}\nstarts_per_ip_hour = {}\n\
             starts_per_network_hour = {}\nsms_budget_server_hour = {}\nsms_budget_enterprise_hour = {}\n",
            self.hide_membership,
            self.resend_cooldown_secs,
            self.codes_per_number_hour,
            self.codes_per_number_day,
            self.starts_per_ip_hour,
            self.starts_per_network_hour,
            self.sms_budget_server_hour,
            self.sms_budget_enterprise_hour,
        )
    }

    /// The limit of each kind of `rate_counters` bucket of [`COUNTED`], by the prefix of its name.
    fn limit_of(&self, kind: &str) -> i64 {
        match kind {
            "start:ip" => self.starts_per_ip_hour,
            "start:net" => self.starts_per_network_hour,
            "code:hour" => self.codes_per_number_hour,
            "code:day" => self.codes_per_number_day,
            "sms:server" | "sms:withheld" => self.sms_budget_server_hour,
            "sms:enterprise" => self.sms_budget_enterprise_hour,
            _ => i64::MAX,
        }
    }
}

/// A small deterministic generator (splitmix64), so every run sends the same requests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn member_phone(i: usize) -> String {
    format!("+86137{i:08}")
}

/// A random mainland mobile number outside the members' 137 and the owner's 138 blocks.
fn random_phone(rng: &mut Rng) -> String {
    const PREFIXES: [&str; 14] =
        ["130", "131", "132", "133", "135", "136", "139", "150", "151", "158", "159", "186", "188", "189"];
    let prefix = PREFIXES[rng.below(PREFIXES.len() as u64) as usize];
    format!("+86{prefix}{:08}", rng.below(100_000_000))
}

fn bot_address(i: usize) -> String {
    format!("10.{}.{}.{}", i / 10 / 250, i / 10 % 250, i % 10 + 1)
}

/// An answer, as the figures count it: `200`, or the status and the problem's `code`.
fn answer_label(status: u16, body: &Value) -> String {
    match body["code"].as_str() {
        Some(code) => format!("{status} {code}"),
        None => status.to_string(),
    }
}

/// The server under attack, its enterprise and the test's client.
struct Target {
    node: Node,
    url: String,
    key: String,
    enterprise_id: String,
    /// The id of each member, by its index.
    member_ids: Vec<String>,
    client: reqwest::Client,
    /// The database (SQLite), key, configuration, log and SMS files; removed after the server stops.
    _files: tempfile::TempDir,
}

impl Target {
    /// Starts the server with `numbers` on `postgres` (a schema's URL), or else on a fresh SQLite
    /// database, creates the enterprise and adds its members (without invitations).
    async fn start(numbers: &Numbers, postgres: Option<&PgSchema>) -> Target {
        let files = tempfile::tempdir().expect("temp dir");
        let dir = files.path();
        let url = postgres.map_or_else(|| format!("sqlite://{}", dir.join("workgate.db").display()), |s| s.url.clone());
        let created = create_enterprise(&url, dir, "Acme", OWNER_PHONE);
        let config = dir.join("workgate.toml");
        std::fs::write(&config, numbers.toml()).expect("config written");
        let node = Node::start("pumping", dir, &url, &dir.join("sms.jsonl"), Some(&config)).await;
        let mut target = Target {
            node,
            url,
            key: created["api_key"].as_str().expect("api key").into(),
            enterprise_id: created["enterprise_id"].as_str().expect("enterprise id").into(),
            member_ids: Vec::new(),
            client: reqwest::Client::new(),
            _files: files,
        };
        for i in 0..MEMBERS {
            let body = json!({"name": format!("Member {i}"), "phone": member_phone(i), "invite": false});
            let (status, member) = target.post(&paths::members(), ADMIN, &body, Some(&target.key)).await;
            assert_eq!(status, 201, "{member}");
            target.member_ids.push(member["id"].as_str().expect("member id").into());
        }
        target
    }

    /// `POST path` with `body` from the client at `client_ip`; the status and the JSON answer.
    async fn post(&self, path: &str, client_ip: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
        let mut request = self.client.post(self.node.url(path)).header("x-forwarded-for", client_ip).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let reply = request.send().await.expect("request sent");
        let status = reply.status().as_u16();
        (status, reply.json().await.unwrap_or(Value::Null))
    }

    fn codes_to(&self, phone: &str) -> Vec<String> {
        read_sms(&[self.node.sms_file.as_path()])
            .into_iter()
            .filter(|m| m.to == phone)
            .filter_map(|m| m.body.split(|c: char| !c.is_ascii_digit()).find(|w| w.len() == 6).map(str::to_string))
            .collect()
    }

    /// One member's whole login from `client_ip`: start, the new code from the SMS file, the
    /// code, then `/me` with the access token. `Err` says where it stopped.
    async fn sign_in(&self, phone: &str, client_ip: &str) -> Result<(), String> {
        let before = self.codes_to(phone).len();
        let (status, started) = self.post(&paths::login_start(), client_ip, &json!({"phone": phone}), None).await;
        if status != 200 {
            return Err(format!("start: {} (retry_after {})", answer_label(status, &started), started["retry_after"]));
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let code = loop {
            if let Some(code) = self.codes_to(phone).get(before) {
                break code.clone();
            }
            if Instant::now() > deadline {
                return Err("start: 200, but no code arrived within 20 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let login = started["login_id"].as_str().ok_or("start: no login_id")?;
        let (status, step) = self.post(&paths::login_code(login), client_ip, &json!({"code": code}), None).await;
        let token = step["session"]["access_token"].as_str();
        let Some(token) = token.filter(|_| status == 200 && step["next"] == "done") else {
            return Err(format!("code: {} {step}", answer_label(status, &step)));
        };
        let me = self.client.get(self.node.url(&paths::me())).bearer_auth(token).send().await.expect("/me sent");
        match me.status().as_u16() {
            200 => Ok(()),
            other => Err(format!("/me: {other}")),
        }
    }

    /// Signs each of `members` in, from an address of `network` of their own; the failures.
    async fn sign_in_all(&self, members: impl Iterator<Item = usize>, network: &str) -> Vec<(String, String)> {
        let logins = members.map(|i| async move {
            let phone = member_phone(i);
            self.sign_in(&phone, &format!("{network}.{}", i + 1)).await.err().map(|e| (phone, e))
        });
        futures::stream::iter(logins).buffer_unordered(8).filter_map(|e| async { e }).collect().await
    }

    /// Waits until the sender has handed every queued message to the provider.
    async fn drained(&self, db: &sqlx::AnyPool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM sms_outbox WHERE state IN ('pending', 'sending')",
            )
            .fetch_one(db)
            .await
            .expect("outbox read");
            if waiting == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "{waiting} messages still queued after 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// What the bot sent and was answered.
#[derive(Default)]
struct BotFigures {
    to_members: usize,
    to_unknown: usize,
    answers_members: BTreeMap<String, usize>,
    answers_unknown: BTreeMap<String, usize>,
    duration: Duration,
}

/// The bot: `REQUESTS` starts over `ADDRESSES` client addresses, `CONCURRENCY` at a time.
async fn run_bot(target: &Target) -> BotFigures {
    let mut rng = Rng(0x5eed);
    let plan: Vec<(bool, String, String)> = (0..REQUESTS)
        .map(|_| {
            let address = bot_address(rng.below(ADDRESSES as u64) as usize);
            if rng.below(MEMBER_SHARE) == 0 {
                (true, member_phone(rng.below(KNOWN as u64) as usize), address)
            } else {
                (false, random_phone(&mut rng), address)
            }
        })
        .collect();
    let started = Instant::now();
    let answers: Vec<(bool, String)> = futures::stream::iter(plan)
        .map(|(member, phone, address)| async move {
            let (status, body) = target.post(&paths::login_start(), &address, &json!({"phone": phone}), None).await;
            (member, answer_label(status, &body))
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut figures = BotFigures { duration: started.elapsed(), ..BotFigures::default() };
    for (member, label) in answers {
        let (count, answers) = if member {
            (&mut figures.to_members, &mut figures.answers_members)
        } else {
            (&mut figures.to_unknown, &mut figures.answers_unknown)
        };
        *count += 1;
        *answers.entry(label).or_default() += 1;
    }
    figures
}

/// What the server queued and counted, read from its database after the sender drained.
struct Queued {
    /// `(purpose, phone, created_at)` of every outbox row.
    messages: Vec<(String, String, i64)>,
    /// The hits counted in the window per bucket.
    counters: HashMap<String, i64>,
    /// The limit each `rate_limited` refusal named, and how often.
    refusals: BTreeMap<String, usize>,
}

impl Queued {
    async fn read(db: &sqlx::AnyPool) -> Queued {
        let messages = sqlx::query_as("SELECT purpose, phone, created_at FROM sms_outbox ORDER BY created_at")
            .fetch_all(db)
            .await
            .expect("outbox read");
        let counters: Vec<(String, i64)> =
            sqlx::query_as("SELECT bucket, CAST(SUM(count) AS BIGINT) FROM rate_counters GROUP BY bucket")
                .fetch_all(db)
                .await
                .expect("counters read");
        let details: Vec<(String,)> = sqlx::query_as("SELECT details FROM login_events WHERE kind = 'rate_limited'")
            .fetch_all(db)
            .await
            .expect("events read");
        let mut refusals = BTreeMap::new();
        for (text,) in details {
            let details: Value = serde_json::from_str(&text).expect("JSON details");
            *refusals.entry(details["limit"].as_str().unwrap_or("?").to_string()).or_default() += 1;
        }
        // A sliced limit (the SMS budgets) keeps its count in several counters, `<bucket>#<n>`.
        let mut summed = HashMap::new();
        for (bucket, n) in counters {
            let limit = bucket.split_once('#').map_or(bucket.as_str(), |(limit, _)| limit).to_string();
            *summed.entry(limit).or_default() += n;
        }
        Queued { messages, counters: summed, refusals }
    }

    /// The largest count among the buckets of one kind (`start:ip`, `code:hour`, …), and how many
    /// of them reached the limit.
    fn peak(&self, kind: &str, limit: i64) -> (i64, usize) {
        let counts = self.counters.iter().filter(|(b, _)| b.starts_with(&format!("{kind}:")) || *b == kind);
        counts.fold((0, 0), |(peak, full), (_, &n)| (peak.max(n), full + usize::from(n >= limit)))
    }
}

/// One scenario against a server just started with `numbers`; panics on a broken bound.
async fn pumping(label: &str, target: Target, numbers: Numbers) {
    let db = database(&target.url).await;
    let bystanders = KNOWN..MEMBERS;

    // The bot, and meanwhile the members it does not know signing in from their own network.
    let (bot, bystander_failures) = tokio::join!(run_bot(&target), target.sign_in_all(bystanders.clone(), "192.168.7"));

    // The members the bot hammered: their number waits out its cooldown, then they sign in.
    let mut waits = Vec::new();
    for i in 0..KNOWN {
        let address = format!("192.168.8.{}", i + 1);
        let (status, body) =
            target.post(&paths::login_start(), &address, &json!({"phone": member_phone(i)}), None).await;
        waits.push((answer_label(status, &body), body["retry_after"].as_i64().unwrap_or(0)));
    }
    // A start that found the cooldown over (a slow bot) sent a code and began a new cooldown.
    let probes_sent = waits.iter().filter(|(l, _)| l == "200").count();
    let longest_wait =
        waits.iter().map(|(l, w)| if l == "200" { numbers.resend_cooldown_secs } else { *w }).max().unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(longest_wait.unsigned_abs() + 1)).await;
    let hammered_failures = target.sign_in_all(0..KNOWN, "192.168.9").await;

    target.drained(&db).await;
    let queued = Queued::read(&db).await;
    db.close().await;
    let delivered = read_sms(&[target.node.sms_file.as_path()]);

    // The figures.
    let mut by_purpose: BTreeMap<&str, usize> = BTreeMap::new();
    let mut codes_per_phone: HashMap<&str, Vec<i64>> = HashMap::new();
    for (purpose, phone, at) in &queued.messages {
        *by_purpose.entry(purpose.as_str()).or_default() += 1;
        if purpose == "login_code" {
            codes_per_phone.entry(phone.as_str()).or_default().push(*at);
        }
    }
    let login_codes = codes_per_phone.values().map(Vec::len).sum::<usize>();
    let rate = REQUESTS as f64 / bot.duration.as_secs_f64();
    println!("== SMS pumping, {label} (hide_membership = {}) ==", numbers.hide_membership);
    println!(
        "bot: {REQUESTS} login/start from {ADDRESSES} addresses in {:.1} s ({rate:.0}/s): {} to random numbers, \
         {} to {KNOWN} known members' numbers",
        bot.duration.as_secs_f64(),
        bot.to_unknown,
        bot.to_members
    );
    println!("  answers for random numbers: {:?}", bot.answers_unknown);
    println!("  answers for members' numbers: {:?}", bot.answers_members);
    println!("  refusals by limit (login events): {:?}", queued.refusals);
    println!(
        "SMS queued: {by_purpose:?} ({login_codes} login codes to {} numbers, {} delivered by the file provider)",
        codes_per_phone.len(),
        delivered.len()
    );
    for kind in COUNTED {
        let limit = numbers.limit_of(kind);
        let (peak, full) = queued.peak(kind, limit);
        println!("  {kind:<15} busiest bucket {peak:>5} of {limit:>5}, {full} buckets full");
    }
    let cooled = queued.counters.keys().filter(|b| b.starts_with("code:cooldown:")).count();
    println!("  code:cooldown   {cooled} numbers counted");
    let server_budget_used = queued.counters.get("sms:server").copied().unwrap_or(0);
    println!("  server budget spent by starts that sent no SMS: {}", server_budget_used - login_codes as i64);
    println!(
        "members: {}/{} unknown to the bot signed in while it ran; the {KNOWN} it hammered waited at most {longest_wait} s \
         ({:?}), then {}/{KNOWN} signed in",
        bystanders.len() - bystander_failures.len(),
        bystanders.len(),
        waits.iter().fold(BTreeMap::<&str, usize>::new(), |mut m, (l, _)| {
            *m.entry(l.as_str()).or_default() += 1;
            m
        }),
        KNOWN - hammered_failures.len()
    );

    // No code to a number that is not a member's: none was queued, none delivered.
    let members: HashSet<String> = (0..MEMBERS).map(member_phone).collect();
    let strangers: Vec<&str> = codes_per_phone.keys().copied().filter(|p| !members.contains(*p)).collect();
    assert!(strangers.is_empty(), "codes queued to numbers of no member: {strangers:?}");
    assert!(delivered.iter().all(|m| members.contains(&m.to)), "a code delivered to a number of no member");
    assert_eq!(delivered.len(), queued.messages.len(), "every queued message delivered once");
    // Per number: one code per cooldown (the window slides in twelfths), and the hour's limit.
    let cooldown_ms = numbers.resend_cooldown_secs * 1000 * 11 / 12;
    for (phone, times) in &codes_per_phone {
        assert!(times.len() as i64 <= numbers.codes_per_number_hour.min(numbers.codes_per_number_day), "{phone}");
        assert!(times.windows(2).all(|w| w[1] - w[0] >= cooldown_ms), "{phone}: codes closer than the cooldown");
    }
    // The server's and the enterprise's budgets, as queued and as counted.
    assert!(login_codes as i64 <= numbers.sms_budget_server_hour.min(numbers.sms_budget_enterprise_hour));
    for kind in COUNTED {
        let limit = numbers.limit_of(kind);
        assert!(queued.peak(kind, limit).0 <= limit, "{kind} counted past its limit {limit}");
    }
    if !numbers.hide_membership {
        assert_eq!(server_budget_used, login_codes as i64, "the server's budget counts exactly the login codes");
    }
    assert_eq!(
        queued.counters.get(&format!("sms:enterprise:{}", target.enterprise_id)).copied().unwrap_or(0),
        login_codes as i64,
        "the enterprise's budget counts exactly its login codes"
    );
    // What each number was answered.
    let unknown_answer = if numbers.hide_membership { "200" } else { "404 not_a_member" };
    assert_eq!(bot.answers_unknown.get(unknown_answer), Some(&bot.to_unknown), "{:?}", bot.answers_unknown);
    // A known number got its code once, then the cooldown held the bot off.
    // A known number got a code, then one per cooldown at most while the bot ran.
    let bot_codes = bot.answers_members.get("200").copied().unwrap_or(0);
    let cooldowns = bot.duration.as_millis() as usize / cooldown_ms as usize;
    assert!((KNOWN..=KNOWN * (1 + cooldowns)).contains(&bot_codes), "{:?}", bot.answers_members);
    let refused = bot.answers_members.get("429 rate_limited").copied().unwrap_or(0);
    assert_eq!(bot_codes + refused, bot.to_members, "{:?}", bot.answers_members);
    let waited = |(l, w): &(String, i64)| l == "200" || (l == "429 rate_limited" && *w <= numbers.resend_cooldown_secs);
    assert!(waits.iter().all(waited), "{waits:?}");
    // Real members sign in: during the attack, and the hammered ones once their cooldown is over.
    assert!(bystander_failures.is_empty(), "members unknown to the bot could not sign in: {bystander_failures:?}");
    assert!(hammered_failures.is_empty(), "hammered members could not sign in: {hammered_failures:?}");
    assert_eq!(login_codes, bot_codes + probes_sent + MEMBERS, "the bot's codes, and one per member's login");
}

async fn pumping_on_sqlite(numbers: Numbers) {
    pumping("SQLite", Target::start(&numbers, None).await, numbers).await;
}

async fn pumping_on_postgres(numbers: Numbers) {
    let Some(schema) = PgSchema::create("PostgreSQL").await else { return };
    pumping("PostgreSQL", Target::start(&numbers, Some(&schema)).await, numbers).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_a_pumping_bot_queues_codes_only_within_the_budgets_and_members_still_sign_in() {
    pumping_on_sqlite(Numbers::defaults(false)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_with_hidden_membership_too() {
    pumping_on_sqlite(Numbers::defaults(true)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_a_pumping_bot_queues_codes_only_within_the_budgets_and_members_still_sign_in() {
    pumping_on_postgres(Numbers::defaults(false)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_with_hidden_membership_too() {
    pumping_on_postgres(Numbers::defaults(true)).await;
}

/// With hidden membership, a start for a number of no member counts against a server budget of
/// its own (the same limits, so the answers look alike), never the one members' codes need: a bot
/// that makes twice the budget's starts to random numbers, without one SMS, keeps no member out.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_with_hidden_membership_starts_to_unknown_numbers_do_not_spend_the_server_budget() {
    const BUDGET: i64 = 200;
    let numbers = Numbers { sms_budget_server_hour: BUDGET, ..Numbers::defaults(true) };
    let target = Target::start(&numbers, None).await;
    let mut rng = Rng(0xbad);
    let phones: Vec<String> = (0..2 * BUDGET).map(|_| random_phone(&mut rng)).collect();
    let answers: Vec<String> = futures::stream::iter(phones.iter().enumerate())
        .map(|(n, phone)| {
            let target = &target;
            async move {
                let (status, body) =
                    target.post(&paths::login_start(), &bot_address(n), &json!({"phone": phone}), None).await;
                answer_label(status, &body)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let refused = answers.iter().filter(|a| *a == "429 rate_limited").count();
    let sent = read_sms(&[target.node.sms_file.as_path()]).len();
    println!("{} starts to random numbers with hidden membership: {refused} refused, {sent} SMS sent", answers.len());
    let signed_in = target.sign_in(&member_phone(0), "192.168.7.1").await;
    assert_eq!(signed_in, Ok(()), "a member the bot never named, after {} starts to unknown numbers", answers.len());
}

/// A bot that knows a member's number spends that number's codes (one per cooldown, at most
/// `codes_per_number_hour`), and the member gets none until the window has room again, or until an
/// admin unlocks the member: the unlock empties the number's sending counters with its failure
/// locks. (The cooldown is shortened to a second so that the bot is done in seconds; with the
/// default minute it takes five.)
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_a_bot_that_spends_a_members_codes_does_not_keep_the_member_out() {
    let numbers = Numbers { resend_cooldown_secs: 1, ..Numbers::defaults(false) };
    let target = Target::start(&numbers, None).await;
    let phone = member_phone(0);
    let mut answers = Vec::new();
    for n in 0..=numbers.codes_per_number_hour {
        let (status, body) =
            target.post(&paths::login_start(), &bot_address(n as usize), &json!({"phone": phone}), None).await;
        answers.push(answer_label(status, &body));
        tokio::time::sleep(Duration::from_millis(1_100)).await;
    }
    let first = target.sign_in(&phone, "192.168.7.1").await;
    assert!(first.is_err(), "the bot spent the number's codes for the hour: {first:?}");
    let unlock = paths::member_unlock(&target.member_ids[0]);
    let (unlocked, _) = target.post(&unlock, ADMIN, &json!({}), Some(&target.key)).await;
    assert_eq!(unlocked, 204);
    let second = target.sign_in(&phone, "192.168.7.1").await;
    println!(
        "the bot's starts for one member's number: {answers:?}; the member: {first:?}; \
              after an admin's unlock ({unlocked}): {second:?}"
    );
    assert_eq!(second, Ok(()), "the member, after the bot spent the number's codes and an admin unlocked it");
}
