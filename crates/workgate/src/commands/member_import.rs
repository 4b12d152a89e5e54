//! `workgate member import FILE --enterprise ID`: the same import as `POST /members/import`,
//! run against the database directly, with a progress bar.

use crate::cli::MemberImportArgs;
use crate::commands::enterprise::describe;
use crate::server::open_services_keyed;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Arc;
use workgate_domain::audit::Caller;
use workgate_domain::clock::SystemClock;
use workgate_domain::ids::EnterpriseId;
use workgate_domain::import::{RowStatus, parse_csv, parse_json};

pub async fn run(
    database: &str,
    key_file: &std::path::Path,
    durability: workgate_store::Durability,
    args: MemberImportArgs,
) -> anyhow::Result<bool> {
    let enterprise_id = EnterpriseId::parse(&args.enterprise)
        .ok_or_else(|| anyhow::anyhow!("'{}' is not an enterprise id", args.enterprise))?;
    let data = std::fs::read(&args.file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.file.display()))?;
    let is_json = args.file.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let mut records =
        if is_json { parse_json(&data) } else { parse_csv(&data) }.map_err(|e| anyhow::anyhow!("{}", describe(&e)))?;
    if args.no_invite {
        records.iter_mut().for_each(|r| r.invite = r.invite.or(Some(false)));
    }
    let services = open_services_keyed(database, key_file, durability, Arc::new(SystemClock)).await?;
    let caller = Caller::operator(enterprise_id);
    services.enterprise(&caller).await.map_err(|_| anyhow::anyhow!("there is no enterprise {}", args.enterprise))?;

    let bar = ProgressBar::new(records.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} rows ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if args.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let progress_bar = bar.clone();
    let report = services
        .import_members(&caller, records, &move |done, _| progress_bar.set_position(done as u64))
        .await
        .map_err(|e| anyhow::anyhow!("{}", describe(&e)))?;
    bar.finish_and_clear();

    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} created, {} updated, {} unchanged, {} failed ({} rows in {:.1?})",
            report.created,
            report.updated,
            report.unchanged,
            report.failed,
            report.rows.len(),
            bar.elapsed()
        );
        for row in report.rows.iter().filter(|r| r.status == RowStatus::Failed).take(50) {
            if let Some(e) = &row.error {
                let fields =
                    e.errors.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; ");
                println!(
                    "  row {}: {} — {}{}",
                    row.row,
                    e.code,
                    e.detail,
                    if fields.is_empty() { String::new() } else { format!(" ({fields})") }
                );
            }
        }
        if report.failed > 50 {
            println!("  … and {} more failed rows (use --json for all)", report.failed - 50);
        }
    }
    Ok(report.failed == 0)
}
