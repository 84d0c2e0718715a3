//! `authd migrate --from ./data/authd.redb --to postgres://…`: moving over to a shared database.

use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use crate::{
    config::{Config, Secret, StorageBackend},
    store::{Store, copy_all},
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
    check.validate()?;
    let described = check.storage_description();
    let from = args.from;
    let tallies = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let source = Store::open_redb(&from)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e} (stop the server that uses it first)", from.display()))?;
        let target = Store::open(&target).map_err(|e| anyhow::anyhow!("cannot open {described}: {e}"))?;
        Ok(copy_all(&source, &target)?)
    })
    .await??;
    println!("{:<16} {:>10} {:>10}", "TABLE", "SOURCE", "TARGET");
    for t in &tallies {
        println!("{:<16} {:>10} {:>10}", t.table, t.source, t.target);
    }
    println!("copied: every record is in the target");
    Ok(ExitCode::SUCCESS)
}
