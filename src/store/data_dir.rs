//! The data directory and database file hold the signing keys: they are created private from
//! their first byte, and refused when anyone but their owner could read or change them.

use std::{fs, io, path::Path};

use super::StoreError;

/// Creates the directory (0700) and an empty database file (0600) when missing, then checks both.
pub fn prepare(db: &Path) -> Result<(), StoreError> {
    let io = |source| StoreError::Io { path: db.display().to_string(), source };
    // Nothing is created before the checks pass.
    check(db).map_err(StoreError::Insecure)?;
    let dir = parent(db);
    if !dir.exists() {
        create_private_dir(dir).map_err(io)?;
    }
    match create_private_file(db) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    check(db).map_err(StoreError::Insecure)
}

/// Refuses a data directory or database file that group or others may read or write.
/// Missing ones pass: they will be created private.
pub fn check(db: &Path) -> Result<(), String> {
    if db.is_dir() {
        return Err(format!(
            "storage.path {} is a directory: it names the database file, e.g. {}",
            db.display(),
            db.join("authd.redb").display()
        ));
    }
    for (what, path) in [("data directory", parent(db)), ("database file", db)] {
        if let Some(mode) = loose_mode(path) {
            return Err(format!(
                "the {what} {} has mode {mode:04o}: group and others must have no access to it \
                 (it holds the signing keys); run `chmod {} {}`",
                path.display(),
                if what == "database file" { "600" } else { "700" },
                path.display()
            ));
        }
    }
    Ok(())
}

/// Creates `dir` private (0700) when missing, and refuses one that others may reach.
pub fn prepare_dir(dir: &Path) -> Result<(), StoreError> {
    if !dir.exists() {
        create_private_dir(dir).map_err(|source| StoreError::Io { path: dir.display().to_string(), source })?;
    }
    match loose_mode(dir) {
        Some(mode) => Err(StoreError::Insecure(format!(
            "the directory {} has mode {mode:04o}: group and others must have no access to it; run `chmod 700 {}`",
            dir.display(),
            dir.display()
        ))),
        None => Ok(()),
    }
}

/// Writes a new file only its owner may read, and syncs it.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    let mut f = create_private(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Creates a new, empty file only its owner may read or write.
pub fn create_private(path: &Path) -> io::Result<fs::File> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)
}

/// The directory holding `db` (`.` for a bare file name).
pub fn parent(db: &Path) -> &Path {
    match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

#[cfg(unix)]
fn loose_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    (mode & 0o077 != 0).then_some(mode)
}

#[cfg(not(unix))]
fn loose_mode(_path: &Path) -> Option<u32> {
    None
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

fn create_private_file(path: &Path) -> io::Result<()> {
    create_private(path).map(drop)
}
