//! `authd backup --to FILE` and `authd restore --from FILE`: the embedded database with its key.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context as _, bail};
use clap::Args;

use super::admin_cmd::read_stdin_line;
use crate::{
    admin_socket::{AdminReply, CallError, call_backup},
    config::{Config, StorageBackend},
    service::backups::{self, Manifest},
    store::{Store, data_dir},
};

const PG_HINT: &str = "with PostgreSQL, back up with pg_dump and keep security.data_key beside it \
                       (docs/operations.md, \"Backups\")";

#[derive(Args)]
pub struct BackupArgs {
    /// Where to write the backup: a new file (mode 0600); an existing one is never overwritten
    #[arg(long, value_name = "FILE")]
    to: PathBuf,
    /// Seal the backup with a passphrase, read from the first line of standard input
    #[arg(long)]
    passphrase_stdin: bool,
}

#[derive(Args)]
pub struct RestoreArgs {
    /// The backup to restore (a sealed one asks for its passphrase on standard input)
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// Replace the database at storage.path; the old one is kept beside it as
    /// `<name>.before-restore-<time>`
    #[arg(long)]
    force: bool,
}

fn summary(m: &Manifest) -> String {
    let count = |t: &str| m.database.tables.iter().find(|(n, _)| n == t).map_or(0, |(_, n)| *n);
    format!(
        "{} users, {} sessions, {} audit events; schema {}, taken {} by authd {}",
        count("users"),
        count("sessions"),
        count("audit"),
        m.database.schema_version,
        m.created_at,
        m.authd_version
    )
}

pub async fn backup(cfg: &Config, args: BackupArgs) -> anyhow::Result<ExitCode> {
    if cfg.storage.backend != StorageBackend::Redb {
        bail!("`authd backup` copies the embedded database; {PG_HINT}");
    }
    if args.to.exists() {
        bail!("{} already exists; a backup never overwrites a file", args.to.display());
    }
    let passphrase = match args.passphrase_stdin {
        true => Some(read_stdin_line().context("the passphrase")?),
        false => None,
    };
    let out = args.to.clone();
    let manifest = match call_backup(&cfg.admin_socket_path()).await {
        Ok((AdminReply::Backup { manifest, key, bytes }, reader)) => {
            let m = manifest.clone();
            tokio::task::spawn_blocking(move || {
                let mut from = tokio_util::io::SyncIoBridge::new(reader);
                backups::write_archive(&out, &m, &mut from, bytes, &key, passphrase.as_deref())
            })
            .await?
            .with_context(|| format!("cannot write {}", args.to.display()))?;
            manifest
        }
        Ok((AdminReply::Error { message, .. }, _)) => bail!("{message}"),
        Ok(_) => bail!("the server gave an unexpected answer"),
        Err(CallError::NotRunning) => {
            // No server: copy the file read-only (an older file stays as it is).
            let db = cfg.storage.path.clone();
            let key = cfg.data_key();
            let dir = parent(&args.to).to_path_buf();
            tokio::task::spawn_blocking(move || -> anyhow::Result<Manifest> {
                let taken = backups::take_offline(&db, key, &dir)
                    .map_err(|e| anyhow::anyhow!("cannot copy {}: {e}", db.display()))?;
                let written = (|| {
                    let mut file = std::fs::File::open(&taken.file)?;
                    let len = file.metadata()?.len();
                    backups::write_archive(&out, &taken.manifest, &mut file, len, &taken.key, passphrase.as_deref())
                })();
                let _ = std::fs::remove_file(&taken.file);
                written.with_context(|| format!("cannot write {}", out.display()))?;
                Ok(taken.manifest)
            })
            .await??
        }
        Err(e) => return Err(e.into()),
    };
    let sealed = if args.passphrase_stdin { ", sealed with the passphrase" } else { "" };
    println!("backup written to {}{sealed}: {}", args.to.display(), summary(&manifest));
    Ok(ExitCode::SUCCESS)
}

fn parent(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

pub async fn restore(cfg: &Config, args: RestoreArgs) -> anyhow::Result<ExitCode> {
    if cfg.storage.backend != StorageBackend::Redb {
        bail!("`authd restore` restores the embedded database; {PG_HINT}");
    }
    let target = cfg.storage.path.clone();
    if tokio::net::UnixStream::connect(cfg.admin_socket_path()).await.is_ok() {
        bail!("a server answers on {}: stop it before restoring over its database", cfg.admin_socket_path().display());
    }
    if target.exists() {
        if Store::redb_in_use(&target) {
            bail!("the database {} is in use by another process; stop it first", target.display());
        }
        if !args.force {
            bail!(
                "a database exists at {}; pass --force to replace it (the old one is kept beside it)",
                target.display()
            );
        }
    }
    if !args.from.is_file() {
        bail!("no backup at {}", args.from.display());
    }
    let configured = cfg.data_key();
    let from = args.from.clone();
    let manifest = tokio::task::spawn_blocking(move || -> anyhow::Result<Manifest> {
        let dir = parent(&target).to_path_buf();
        // The directory is made private, as the server itself would.
        data_dir::prepare_dir(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
        let work = dir.join(format!(".restore-{}", uuid::Uuid::now_v7()));
        data_dir::prepare_dir(&work).map_err(|e| anyhow::anyhow!("{e}"))?;
        let done = place(&from, &work, &target, configured);
        let _ = std::fs::remove_dir_all(&work);
        done
    })
    .await??;
    println!("restored {} from {}: {}", cfg.storage.path.display(), args.from.display(), summary(&manifest));
    Ok(ExitCode::SUCCESS)
}

/// Unpacks and checks the backup in `work`, then moves it into place; nothing is replaced
/// before every check passed.
fn place(from: &Path, work: &Path, target: &Path, configured: Option<[u8; 32]>) -> anyhow::Result<Manifest> {
    let unpacked = backups::unpack(
        from,
        || read_stdin_line().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e:#}"))),
        work,
    )
    .with_context(|| format!("{} cannot be restored", from.display()))?;
    let key_file = target.with_extension("key");
    if let Some(k) = configured {
        use base64::Engine as _;
        if base64::engine::general_purpose::STANDARD.encode(k) != unpacked.key {
            bail!(
                "security.data_key is set and is not the key of this backup: what the backup holds sealed \
                 (TOTP secrets, queued messages) would not open. Unset it to use the backup's key (written to {}), \
                 or set it to that key",
                key_file.display()
            );
        }
    }
    let stamp = crate::model::now();
    if target.exists() {
        let kept = PathBuf::from(format!("{}.before-restore-{stamp}", target.display()));
        std::fs::rename(target, &kept).with_context(|| format!("cannot move {} aside", target.display()))?;
        println!("the database that was there is kept as {}", kept.display());
    }
    if key_file.exists() {
        let kept = PathBuf::from(format!("{}.before-restore-{stamp}", key_file.display()));
        std::fs::rename(&key_file, &kept).with_context(|| format!("cannot move {} aside", key_file.display()))?;
    }
    std::fs::rename(&unpacked.database, target).with_context(|| format!("cannot move into {}", target.display()))?;
    if configured.is_none() {
        data_dir::write_private(&key_file, format!("{}\n", unpacked.key).as_bytes())
            .with_context(|| format!("cannot write {}", key_file.display()))?;
    }
    Ok(unpacked.manifest)
}
