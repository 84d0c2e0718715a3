//! Backups of the embedded database: a consistent copy taken while the server runs, packed with
//! the data key that opens what the database holds sealed (a backup without it could not bring
//! back TOTP secrets or queued messages), optionally sealed with a passphrase; and the checks a
//! backup passes before a restore replaces anything.
//!
//! A backup is a tar archive of `manifest.json`, `authd.redb`, `authd.key` and `SHA256SUMS`,
//! readable with standard tools when not sealed.

use std::{
    fs,
    io::{self, Read, Write},
    path::{Path, PathBuf},
    sync::Arc,
};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::{authority::Principal, core::Core};
use crate::{
    error::{Error, Result},
    model::{now, rfc3339},
    security::passphrase,
    store::{REDB_SCHEMA_VERSION, Snapshot, Store},
};

pub const FORMAT: u32 = 1;
const MANIFEST: &str = "manifest.json";
const DATABASE: &str = "authd.redb";
const KEY: &str = "authd.key";
/// Last in the archive, as `sha256sum` writes it: `sha256sum -c SHA256SUMS` checks an unpacked one.
const SUMS: &str = "SHA256SUMS";

/// Reads through, hashing what passes.
struct Hashing<R> {
    inner: R,
    digest: ring::digest::Context,
    count: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digest.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

fn hex(d: ring::digest::Digest) -> String {
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn sums(db: &str, key: &str) -> String {
    format!("{db}  {DATABASE}\n{key}  {KEY}\n")
}

/// What a backup holds, written first in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// RFC 3339.
    pub created_at: String,
    pub authd_version: String,
    pub database: Snapshot,
}

impl Manifest {
    fn new(database: Snapshot) -> Self {
        Self { format: FORMAT, created_at: rfc3339(now()), authd_version: env!("CARGO_PKG_VERSION").into(), database }
    }
}

/// A backup the server took: the copy (a private file the caller removes) and what goes with it.
pub struct Taken {
    pub manifest: Manifest,
    pub file: PathBuf,
    /// The data key, base64.
    pub key: String,
    /// SHA-256 of the copy, hex.
    pub sha256: String,
}

/// SHA-256 of a file, hex.
fn file_sha256(path: &Path) -> io::Result<String> {
    let mut h =
        Hashing { inner: fs::File::open(path)?, digest: ring::digest::Context::new(&ring::digest::SHA256), count: 0 };
    io::copy(&mut h, &mut io::sink())?;
    Ok(hex(h.digest.finish()))
}

/// The backups area.
pub struct Backups {
    core: Arc<Core>,
}

impl Backups {
    pub(super) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// Copies the live database into a new private file beside it, once the audit events queued
    /// so far are written. Only the operator on the host may: a backup holds every secret.
    pub async fn take(&self, by: &Principal) -> Result<Taken> {
        if !matches!(by, Principal::Operator) {
            return Err(Error::Forbidden("the operator on the host".into()));
        }
        let cfg = &self.core.cfg;
        let key = data_key(&cfg.storage.path, cfg.data_key())?;
        self.core
            .db(|s| {
                s.write(|tx| tx.audit("database.backed_up", None, None, serde_json::Value::Null).map_err(Error::from))
            })
            .await?;
        self.core.audit_sink.flush().await;
        let file =
            crate::store::data_dir::parent(&cfg.storage.path).join(format!(".backup-{}.redb", uuid::Uuid::now_v7()));
        let to = file.clone();
        let taken = self
            .core
            .db(move |s| {
                private_file(&to).map_err(|e| Error::Internal(format!("backup file {}: {e}", to.display())))?;
                let snapshot = s.snapshot(&to).map_err(Error::from)?;
                let sum =
                    file_sha256(&to).map_err(|e| Error::Internal(format!("backup file {}: {e}", to.display())))?;
                Ok((snapshot, sum))
            })
            .await;
        match taken {
            Ok((snapshot, sha256)) => Ok(Taken { manifest: Manifest::new(snapshot), file, key, sha256 }),
            Err(e) => {
                let _ = fs::remove_file(&file);
                Err(e)
            }
        }
    }
}

/// The data key as a key file holds it: the configured one, else the file beside the database.
pub fn data_key(db: &Path, configured: Option<[u8; 32]>) -> Result<String> {
    match configured {
        Some(k) => Ok(base64::engine::general_purpose::STANDARD.encode(k)),
        None => {
            let path = db.with_extension("key");
            let text = fs::read_to_string(&path)
                .map_err(|e| Error::Internal(format!("cannot read the data key {}: {e}", path.display())))?;
            Ok(text.trim().to_owned())
        }
    }
}

/// A copy of a database file no server holds, taken read-only, into a new private file beside
/// it (the data directory is private; a sealed backup leaves no plain copy elsewhere).
pub fn take_offline(db: &Path, configured_key: Option<[u8; 32]>) -> Result<Taken> {
    let key = data_key(db, configured_key)?;
    let file = crate::store::data_dir::parent(db).join(format!(".backup-{}.redb", uuid::Uuid::now_v7()));
    private_file(&file).map_err(|e| Error::Internal(format!("backup file {}: {e}", file.display())))?;
    match Store::snapshot_redb(db, &file).map_err(Error::from).and_then(|s| {
        let sum = file_sha256(&file).map_err(|e| Error::Internal(format!("backup file {}: {e}", file.display())))?;
        Ok((s, sum))
    }) {
        Ok((snapshot, sha256)) => Ok(Taken { manifest: Manifest::new(snapshot), file, key, sha256 }),
        Err(e) => {
            let _ = fs::remove_file(&file);
            Err(e)
        }
    }
}

use crate::store::data_dir::create_private as private_file;

fn entry(name: &str, len: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(len);
    h.set_mode(0o600);
    h.set_mtime(now());
    h.set_entry_type(tar::EntryType::Regular);
    let _ = h.set_path(name);
    h.set_cksum();
    h
}

/// Writes the archive to the new file `out` (0600), sealed when a passphrase is given. `db` is
/// the copy, `len` bytes long with SHA-256 `sha256`; a copy that arrives short or changed is
/// an error, and no file is left.
pub fn write_archive(
    out: &Path,
    manifest: &Manifest,
    db: &mut dyn Read,
    (len, sha256): (u64, &str),
    key: &str,
    seal_with: Option<&str>,
) -> io::Result<()> {
    let file = private_file(out)?;
    let mut pack = |w: &mut dyn Write| -> io::Result<()> {
        let mut tar = tar::Builder::new(w);
        let m = serde_json::to_vec_pretty(manifest).map_err(io::Error::other)?;
        tar.append(&entry(MANIFEST, m.len() as u64), m.as_slice())?;
        let mut hashing =
            Hashing { inner: db.take(len), digest: ring::digest::Context::new(&ring::digest::SHA256), count: 0 };
        tar.append(&entry(DATABASE, len), &mut hashing)?;
        let arrived = hex(hashing.digest.finish());
        if hashing.count != len || arrived != sha256 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the copy arrived incomplete or changed ({} of {len} bytes)", hashing.count),
            ));
        }
        let k = format!("{key}\n");
        tar.append(&entry(KEY, k.len() as u64), k.as_bytes())?;
        let s = sums(&arrived, &hex(ring::digest::digest(&ring::digest::SHA256, k.as_bytes())));
        tar.append(&entry(SUMS, s.len() as u64), s.as_bytes())?;
        tar.finish()
    };
    let written = (|| {
        let mut w = io::BufWriter::new(&file);
        match seal_with {
            Some(p) => {
                let mut sealed = passphrase::SealWriter::new(w, p)?;
                pack(&mut sealed)?;
                sealed.finish()?.flush()?;
            }
            None => {
                pack(&mut w)?;
                w.flush()?;
            }
        }
        file.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(out);
    }
    written
}

/// A backup unpacked and checked, ready to go into place.
pub struct Unpacked {
    pub manifest: Manifest,
    pub database: PathBuf,
    /// The data key, base64.
    pub key: String,
}

fn invalid(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// Unpacks the backup `from` into the private directory `into`, asking for the passphrase when
/// it is sealed, and checks it: every part there, the database whole and holding what the
/// manifest says, written by no newer authd, and a data key of 32 bytes.
pub fn unpack(from: &Path, passphrase: impl FnOnce() -> io::Result<String>, into: &Path) -> io::Result<Unpacked> {
    let mut file = fs::File::open(from)?;
    let mut start = [0u8; passphrase::MAGIC.len()];
    let n = file.read(&mut start)?;
    drop(file);
    let file = io::BufReader::new(fs::File::open(from)?);
    let reader: Box<dyn Read> = match passphrase::is_sealed(&start[..n]) {
        true => Box::new(passphrase::OpenReader::new(file, &passphrase()?)?),
        false => Box::new(file),
    };
    let mut archive = tar::Archive::new(reader);
    let (mut manifest, mut database, mut key, mut listed) = (None, None, None, None);
    let (mut db_sum, mut key_sum) = (String::new(), String::new());
    for e in archive.entries().map_err(|e| invalid(format!("not an authd backup: {e}")))? {
        let mut e = e.map_err(|e| invalid(format!("not an authd backup: {e}")))?;
        let name = e.path()?.to_string_lossy().into_owned();
        match name.as_str() {
            MANIFEST => {
                let mut text = String::new();
                e.by_ref().take(1 << 20).read_to_string(&mut text)?;
                let m: Manifest =
                    serde_json::from_str(&text).map_err(|e| invalid(format!("the backup's manifest: {e}")))?;
                if m.format != FORMAT {
                    return Err(invalid(format!("backup format {} is not one this authd reads ({FORMAT})", m.format)));
                }
                manifest = Some(m);
            }
            DATABASE => {
                let path = into.join(DATABASE);
                let mut hashing =
                    Hashing { inner: &mut e, digest: ring::digest::Context::new(&ring::digest::SHA256), count: 0 };
                let mut file = private_file(&path)?;
                io::copy(&mut hashing, &mut file)?;
                file.sync_all()?;
                db_sum = hex(hashing.digest.finish());
                database = Some(path);
            }
            KEY => {
                let mut text = String::new();
                e.by_ref().take(1024).read_to_string(&mut text)?;
                key_sum = hex(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()));
                key = Some(text.trim().to_owned());
            }
            SUMS => {
                let mut text = String::new();
                e.by_ref().take(1024).read_to_string(&mut text)?;
                listed = Some(text);
            }
            other => return Err(invalid(format!("the backup holds an unexpected file {other:?}"))),
        }
    }
    // Read a sealed backup to its end, so that a cut-off or extended one is noticed.
    io::copy(&mut archive.into_inner(), &mut io::sink())?;
    let (Some(manifest), Some(database), Some(key), Some(listed)) = (manifest, database, key, listed) else {
        return Err(invalid("the backup lacks its manifest, database, key or checksums"));
    };
    if listed != sums(&db_sum, &key_sum) {
        return Err(invalid("the backup's database or key does not match its checksums: it was damaged"));
    }
    let raw =
        base64::engine::general_purpose::STANDARD.decode(&key).map_err(|_| invalid("the backup's key is damaged"))?;
    if raw.len() != 32 {
        return Err(invalid("the backup's key is damaged"));
    }
    if manifest.database.schema_version > REDB_SCHEMA_VERSION {
        return Err(invalid(format!(
            "the backup was written by a newer authd ({}, schema {}); this one reads schema {REDB_SCHEMA_VERSION} at most",
            manifest.authd_version, manifest.database.schema_version
        )));
    }
    let found = Store::describe_redb(&database).map_err(|e| invalid(format!("the backup's database: {e}")))?;
    let sorted = |s: &Snapshot| {
        let mut t = s.tables.clone();
        t.sort();
        t
    };
    if found.schema_version != manifest.database.schema_version || sorted(&found) != sorted(&manifest.database) {
        return Err(invalid("the backup's database does not hold what its manifest says"));
    }
    Ok(Unpacked { manifest, database, key })
}
