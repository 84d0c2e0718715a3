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
    store::{
        Store,
        data_dir::{self, parent},
    },
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
        Ok((AdminReply::Backup { manifest, key, bytes, sha256 }, reader)) => {
            let m = manifest.clone();
            tokio::task::spawn_blocking(move || {
                let mut from = tokio_util::io::SyncIoBridge::new(reader);
                backups::write_archive(&out, &m, &mut from, (bytes, &sha256), &key, passphrase.as_deref())
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
            if !db.is_file() {
                bail!(
                    "no server answers on {} and there is no database at {} (storage.path)",
                    cfg.admin_socket_path().display(),
                    db.display()
                );
            }
            let key = cfg.data_key();
            tokio::task::spawn_blocking(move || -> anyhow::Result<Manifest> {
                let taken = backups::take_offline(&db, key)
                    .map_err(|e| anyhow::anyhow!("cannot copy {}: {e}", db.display()))?;
                let written = (|| {
                    let mut file = std::fs::File::open(&taken.file)?;
                    let len = file.metadata()?.len();
                    let sum = (len, taken.sha256.as_str());
                    backups::write_archive(&out, &taken.manifest, &mut file, sum, &taken.key, passphrase.as_deref())
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

pub async fn restore(cfg: &Config, args: RestoreArgs) -> anyhow::Result<ExitCode> {
    if cfg.storage.backend != StorageBackend::Redb {
        bail!("`authd restore` restores the embedded database; {PG_HINT}");
    }
    let target = cfg.storage.path.clone();
    let socket = cfg.admin_socket_path();
    free(&socket, &target, args.force)?;
    if !args.from.is_file() {
        bail!("no backup at {}", args.from.display());
    }
    let configured = cfg.data_key();
    let from = args.from.clone();
    let force = args.force;
    let manifest = tokio::task::spawn_blocking(move || -> anyhow::Result<Manifest> {
        let dir = parent(&target).to_path_buf();
        // The directory is made private, as the server itself would.
        data_dir::prepare_dir(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
        let work = dir.join(format!(".restore-{}", uuid::Uuid::now_v7()));
        data_dir::prepare_dir(&work).map_err(|e| anyhow::anyhow!("{e}"))?;
        let done = place(&from, &work, &target, configured, || free(&socket, &target, force));
        let _ = std::fs::remove_dir_all(&work);
        done
    })
    .await??;
    println!("restored {} from {}: {}", cfg.storage.path.display(), args.from.display(), summary(&manifest));
    Ok(ExitCode::SUCCESS)
}

/// Refuses while a server answers on the socket or any process holds the database, and an
/// existing database without `--force`.
fn free(socket: &Path, target: &Path, force: bool) -> anyhow::Result<()> {
    if std::os::unix::net::UnixStream::connect(socket).is_ok() {
        bail!("a server answers on {}: stop it before restoring over its database", socket.display());
    }
    if target.exists() {
        if Store::redb_in_use(target) {
            bail!("the database {} is in use by another process; stop it first", target.display());
        }
        if !force {
            bail!(
                "a database exists at {}; pass --force to replace it (the old one is kept beside it)",
                target.display()
            );
        }
    }
    Ok(())
}

/// The passphrase of a sealed backup, from the first line of standard input (asked for when
/// that is a terminal).
fn passphrase() -> std::io::Result<String> {
    use std::io::IsTerminal as _;
    if std::io::stdin().is_terminal() {
        eprint!("passphrase of the sealed backup: ");
    }
    read_stdin_line().map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the backup is sealed: give its passphrase on standard input",
        )
    })
}

/// Gives `path` to the owner of `dir` when run as root, so that the server's user can open it.
fn own_like(path: &Path, dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    if rustix::process::geteuid().is_root() {
        let m = std::fs::metadata(dir)?;
        rustix::fs::chown(path, Some(rustix::fs::Uid::from_raw(m.uid())), Some(rustix::fs::Gid::from_raw(m.gid())))?;
    }
    Ok(())
}

/// Unpacks and checks the backup in `work`, then moves it into place; nothing is replaced
/// before every check passed, and the old files stay beside the new ones.
fn place(
    from: &Path,
    work: &Path,
    target: &Path,
    configured: Option<[u8; 32]>,
    still_free: impl Fn() -> anyhow::Result<()>,
) -> anyhow::Result<Manifest> {
    let unpacked =
        backups::unpack(from, passphrase, work).with_context(|| format!("{} cannot be restored", from.display()))?;
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
    let dir = parent(target);
    // Both new files are complete in the work directory before anything in place changes.
    let new_key = work.join("authd.key");
    if configured.is_none() {
        data_dir::write_private(&new_key, format!("{}\n", unpacked.key).as_bytes())
            .with_context(|| format!("cannot write {}", new_key.display()))?;
        own_like(&new_key, dir)?;
    }
    own_like(&unpacked.database, dir)?;
    // Checked again and held until the swap is done: a server starting now fails to open the
    // database instead of opening the one about to be replaced.
    still_free()?;
    let _hold = if target.exists() { redb::ReadOnlyDatabase::open(target).ok() } else { None };
    let stamp = crate::model::now();
    // The old files get a second name first, so that each rename below replaces a file and
    // there is never a moment with none.
    for old in [target, key_file.as_path()] {
        if old.exists() {
            let kept = PathBuf::from(format!("{}.before-restore-{stamp}", old.display()));
            std::fs::hard_link(old, &kept)
                .with_context(|| format!("cannot keep {} as {}", old.display(), kept.display()))?;
            println!("kept {} as {}", old.display(), kept.display());
        }
    }
    std::fs::rename(&unpacked.database, target)
        .with_context(|| format!("cannot move the restored database into {}", target.display()))?;
    if configured.is_none() {
        std::fs::rename(&new_key, &key_file).with_context(|| {
            format!(
                "the database at {} is restored, but its key could not be put at {}; the backup's key is in {}",
                target.display(),
                key_file.display(),
                new_key.display()
            )
        })?;
    }
    std::fs::File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("cannot sync {}", dir.display()))?;
    Ok(unpacked.manifest)
}
