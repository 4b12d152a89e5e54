//! The command line (SPEC section 8). Every flag also has a `WORKGATE_*` environment variable and
//! a key in the TOML file given by `--config`; a flag beats the environment, which beats the file.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "workgate", version, about = "Self-hosted enterprise directory and login server")]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "WORKGATE_CONFIG")]
    pub config: Option<PathBuf>,

    /// Database URL: sqlite://PATH (the embedded default) or postgres://…
    #[arg(long, global = true, env = "WORKGATE_DATABASE")]
    pub database: Option<String>,

    /// The key file: the master key of the secrets the database keeps encrypted, created on first
    /// start [default: beside a SQLite database, e.g. workgate.db → workgate.key; workgate.key in
    /// the working directory for PostgreSQL].
    #[arg(long, global = true, env = "WORKGATE_KEY_FILE")]
    pub key_file: Option<PathBuf>,

    /// Start even when the database's settings could lose acknowledged writes in a crash (SQLite
    /// not in WAL or synchronous below FULL; PostgreSQL with fsync, synchronous_commit or
    /// full_page_writes off): a loud warning instead of the refusal to start.
    #[arg(long, global = true, env = "WORKGATE_ACCEPT_UNSAFE_DURABILITY")]
    pub accept_unsafe_durability: bool,

    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at start: the size of the largest variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Manage enterprises (tenants).
    #[command(subcommand)]
    Enterprise(EnterpriseCommand),
    /// Manage members.
    #[command(subcommand)]
    Member(MemberCommand),
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "WORKGATE_LISTEN")]
    pub listen: Option<String>,

    /// The address people reach this server at, used in links [default: http://<listen>].
    #[arg(long, env = "WORKGATE_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Proxies whose X-Forwarded-For is believed (comma-separated addresses).
    #[arg(long, env = "WORKGATE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<String>>,

    /// Seed an example enterprise when the database is empty, and print how to use it.
    #[arg(long, env = "WORKGATE_DEMO")]
    pub demo: bool,

    /// Where the `file` SMS provider writes [default: workgate-sms.jsonl beside the database].
    #[arg(long, env = "WORKGATE_SMS_OUTBOX_FILE")]
    pub sms_outbox_file: Option<PathBuf>,

    /// SMS provider: file, log, webhook, tencent or twilio (its settings go in [sms.<name>]).
    #[arg(long, env = "WORKGATE_SMS_PROVIDER")]
    pub sms_provider: Option<String>,

    /// Answer unknown numbers at login exactly as known ones (no SMS is sent to them).
    #[arg(long, env = "WORKGATE_HIDE_MEMBERSHIP")]
    pub hide_membership: bool,

    /// Invitations one enterprise may send per hour (added, imported and re-sent) [default: 10000].
    #[arg(long, env = "WORKGATE_INVITATION_BUDGET_ENTERPRISE_HOUR")]
    pub invitation_budget_enterprise_hour: Option<i64>,

    /// Log format: `text` or `json`.
    #[arg(long, env = "WORKGATE_LOG_FORMAT")]
    pub log_format: Option<String>,

    /// Seconds that requests in flight may take to finish after SIGTERM or Ctrl-C [default: 30].
    #[arg(long, env = "WORKGATE_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,

    #[command(flatten)]
    pub retention: RetentionArgs,
}

/// How long rows are kept once they are no longer of use (`[retention]` in the TOML file).
#[derive(Debug, Args, Default)]
pub struct RetentionArgs {
    /// Days login challenges are kept after they expire [default: 1].
    #[arg(long, env = "WORKGATE_RETENTION_LOGIN_CHALLENGES_DAYS")]
    pub retention_login_challenges_days: Option<i64>,
    /// Days login events are kept [default: 90].
    #[arg(long, env = "WORKGATE_RETENTION_LOGIN_EVENTS_DAYS")]
    pub retention_login_events_days: Option<i64>,
    /// Days sent and failed SMS are kept [default: 30].
    #[arg(long, env = "WORKGATE_RETENTION_SMS_DAYS")]
    pub retention_sms_days: Option<i64>,
    /// Days invitations are kept after they expire [default: 30].
    #[arg(long, env = "WORKGATE_RETENTION_INVITATIONS_DAYS")]
    pub retention_invitations_days: Option<i64>,
    /// Days ended sessions and app tokens are kept [default: 30].
    #[arg(long, env = "WORKGATE_RETENTION_SESSIONS_DAYS")]
    pub retention_sessions_days: Option<i64>,
    /// Days OpenID Connect authorization codes are kept after they expire [default: 1].
    #[arg(long, env = "WORKGATE_RETENTION_OIDC_CODES_DAYS")]
    pub retention_oidc_codes_days: Option<i64>,
    /// Days the audit log is kept [default: forever].
    #[arg(long, env = "WORKGATE_RETENTION_AUDIT_DAYS")]
    pub retention_audit_days: Option<i64>,
    /// Seconds between two pruning passes [default: 300].
    #[arg(long, env = "WORKGATE_RETENTION_INTERVAL_SECS")]
    pub retention_interval_secs: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum EnterpriseCommand {
    /// Create an enterprise with its owner and a first API key.
    Create(EnterpriseCreateArgs),
}

#[derive(Debug, Args)]
pub struct EnterpriseCreateArgs {
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub owner_name: String,
    /// The owner's mobile number; a local number is read in --region.
    #[arg(long)]
    pub owner_phone: String,
    /// Default region for local numbers (ISO 3166 code).
    #[arg(long, default_value = "CN")]
    pub region: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Import members from a CSV or JSON file (idempotent).
    Import(MemberImportArgs),
}

#[derive(Debug, Args)]
pub struct MemberImportArgs {
    /// The file: .csv with a header row, or .json with {"members": [...]}.
    pub file: PathBuf,
    #[arg(long)]
    pub enterprise: String,
    /// Print the report as JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// Send no invitation to the members the file creates (a row's own `invite` still counts).
    #[arg(long)]
    pub no_invite: bool,
}
