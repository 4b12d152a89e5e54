use clap::Parser;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;
use workgate::cli::{Cli, Command, EnterpriseCommand, MemberCommand};
use workgate::commands::{self, database_url, durability, key_file};
use workgate::config::FileConfig;

fn init_logging(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json { builder.json().init() } else { builder.init() }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    let file = FileConfig::load(cli.config.as_deref())?;
    match &cli.command {
        Command::Serve(args) => {
            let format = args.log_format.clone().or_else(|| file.log_format.clone()).unwrap_or_else(|| "text".into());
            init_logging(format == "json");
            let config = commands::serve::resolve(&cli, args, &file)?;
            commands::serve::run(config).await?;
            Ok(true)
        }
        Command::Enterprise(EnterpriseCommand::Create(_)) | Command::Member(MemberCommand::Import(_)) => {
            init_logging(false);
            let database = database_url(&cli, &file);
            let key_file = key_file(&cli, &file, &database);
            let durability = durability(&cli, &file);
            match cli.command {
                Command::Enterprise(EnterpriseCommand::Create(args)) => {
                    commands::enterprise::create(&database, &key_file, durability, args).await?;
                    Ok(true)
                }
                Command::Member(MemberCommand::Import(args)) => {
                    commands::member_import::run(&database, &key_file, durability, args).await
                }
                Command::Serve(_) => Ok(true),
            }
        }
    }
}
