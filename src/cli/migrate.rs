//! `authd migrate --from ./data/authd.redb --to postgres://…`: moving over to a shared database.

use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use crate::{
    config::{Config, Secret, StorageBackend},
    service::copy_database,
};

#[derive(Args)]
pub struct MigrateArgs {
    /// The redb file to copy from (the server using it must be stopped)
    #[arg(long)]
    from: PathBuf,
    /// The PostgreSQL database to copy into: postgres://user:password@host:port/database
    #[arg(long)]
    to: String,
}

pub async fn run(cfg: &Config, args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let mut target = cfg.storage.clone();
    target.backend = StorageBackend::Postgres;
    target.url = Some(Secret(args.to));
    let mut check = cfg.clone();
    check.storage = target.clone();
    // What the redb node sealed (TOTP secrets, queued messages) opens only with its key.
    let key_file = args.from.with_extension("key");
    let key_hint = check.security.data_key.is_none() && key_file.is_file();
    if key_hint {
        check.security.data_key =
            Some(Secret(std::fs::read_to_string(&key_file).unwrap_or_default().trim().to_owned()));
    }
    check.validate()?;
    let described = check.storage_description();
    let from = args.from;
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
