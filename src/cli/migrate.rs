//! `authd migrate --from ./data/authd.redb --to postgres://…`: moving over to a shared database;
//! `authd migrate --dry-run`: what this build would change in the configured database.

use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use crate::{
    config::{Config, Secret, StorageBackend},
    service::copy_database,
};

#[derive(Args)]
pub struct MigrateArgs {
    /// The redb file to copy from (the server using it must be stopped)
    #[arg(long, requires = "to", required_unless_present = "dry_run")]
    from: Option<PathBuf>,
    /// The PostgreSQL database to copy into: postgres://user:password@host:port/database
    #[arg(long, requires = "from", required_unless_present = "dry_run")]
    to: Option<String>,
    /// Change nothing: say which schema steps this build would take on the database (the
    /// configured one, or --to), and with --from what would be copied
    #[arg(long)]
    dry_run: bool,
}

/// Prints the schema steps opening `storage` in this build would take.
async fn plan(storage: crate::config::StorageConfig, described: String) -> anyhow::Result<()> {
    let (version, steps) = tokio::task::spawn_blocking(move || crate::store::Store::plan(&storage))
        .await?
        .map_err(|e| anyhow::anyhow!("{e} ({described})"))?;
    println!("{described}: schema {version}");
    if steps.is_empty() {
        println!("nothing to change: this authd uses the schema as it is");
    }
    for (v, what) in steps {
        println!("would apply {v}: {what}");
    }
    Ok(())
}

pub async fn run(cfg: &Config, args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let (Some(from), Some(to)) = (args.from, args.to) else {
        // --dry-run alone: the configured database.
        plan(cfg.storage.clone(), cfg.storage_description()).await?;
        println!("dry run: nothing was changed");
        return Ok(ExitCode::SUCCESS);
    };
    let mut target = cfg.storage.clone();
    target.backend = StorageBackend::Postgres;
    target.url = Some(Secret(to));
    let args_from = from;
    let mut check = cfg.clone();
    check.storage = target.clone();
    // What the redb node sealed (TOTP secrets, queued messages) opens only with its key.
    let key_file = args_from.with_extension("key");
    let key_hint = check.security.data_key.is_none() && key_file.is_file();
    if key_hint {
        check.security.data_key =
            Some(Secret(std::fs::read_to_string(&key_file).unwrap_or_default().trim().to_owned()));
    }
    check.validate()?;
    let described = check.storage_description();
    let from = args_from;
    if args.dry_run {
        let source = from.clone();
        let counted = tokio::task::spawn_blocking(move || crate::store::Store::count_redb(&source))
            .await?
            .map_err(|e| anyhow::anyhow!("{e} ({})", from.display()))?;
        println!("{:<20} {:>10}", "TABLE", "RECORDS");
        for (table, n) in &counted.tables {
            println!("{table:<20} {n:>10}");
        }
        plan(target, described).await?;
        println!("dry run: nothing was copied or changed");
        return Ok(ExitCode::SUCCESS);
    }
    let tallies = tokio::task::spawn_blocking(move || copy_database(&from, &target))
        .await?
        .map_err(|e| anyhow::anyhow!("{e} ({described})"))?;
    println!("{:<16} {:>10} {:>10}", "TABLE", "SOURCE", "TARGET");
    for t in &tallies {
        println!("{:<16} {:>10} {:>10}", t.table, t.source, t.target);
    }
    println!("copied: every record is in the target");
    if key_hint {
        println!(
            "next: give every node security.data_key = the content of {} (TOTP secrets and queued messages need it)",
            key_file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
