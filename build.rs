//! Link options for a smaller resident footprint of `authd`, both for a native glibc build:
//! - packed relative relocations (DT_RELR) where the C library can load them (glibc 2.36 and
//!   later). A position-independent binary otherwise carries about a megabyte of relocation
//!   records that the loader pages in at every start;
//! - in a release build linked by LLD (Rust's default linker here since 1.90), the functions a
//!   start and a mixed load run are laid out together, from `link/hot-functions.txt`. The kernel
//!   maps code in 64 KiB runs around each page touched, so scattered hot functions had made
//!   nearly all of the code resident. `bench/hot_functions.py` regenerates the list; a stale
//!   list costs only memory.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link/hot-functions.txt");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    // Only for a native build: the C library found here is the one the binary will load.
    if var("TARGET") != var("HOST") || !var("TARGET").ends_with("-linux-gnu") {
        return;
    }
    if glibc_version().is_some_and(|v| v >= (2, 36)) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    let lld = var("TARGET").starts_with("x86_64-") && links_with_default_lld(&var("CARGO_ENCODED_RUSTFLAGS"));
    if var("PROFILE") == "release" && lld {
        let list = format!("{}/link/hot-functions.txt", var("CARGO_MANIFEST_DIR"));
        println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={list}");
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// Rust links x86_64 Linux binaries with its own LLD (and only those) unless told otherwise.
fn links_with_default_lld(rustflags: &str) -> bool {
    let custom = rustflags.split('\x1f').any(|f| f.contains("linker") || f.contains("link-self-contained"));
    // Cargo names a configured linker to build scripts in RUSTC_LINKER.
    let linker_env = std::env::var_os("RUSTC_LINKER").is_some();
    !custom && !linker_env && rustc_minor().is_some_and(|m| m >= 90)
}

/// `rustc --version` prints `rustc 1.95.0 (…)`.
fn rustc_minor() -> Option<u32> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc).arg("--version").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let version = text.split_whitespace().nth(1)?;
    let mut parts = version.split('.');
    (parts.next()? == "1").then_some(())?;
    parts.next()?.parse().ok()
}

/// `getconf GNU_LIBC_VERSION` prints `glibc 2.36`.
fn glibc_version() -> Option<(u32, u32)> {
    let out = Command::new("getconf").arg("GNU_LIBC_VERSION").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let (major, minor) = text.trim().strip_prefix("glibc ")?.split_once('.')?;
    let minor = minor.split(|c: char| !c.is_ascii_digit()).next()?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}
