//! glibc's allocator, tuned for a long-running server. Each thread that allocates while others
//! do gets an arena of its own, up to eight per core, and glibc raises its trim threshold after
//! large frees; after a burst, both keep memory the server no longer uses (README, Memory).
//! glibc reads its tunables only from the environment at start, so `authd serve` executes
//! itself again, once, with them set. An operator's own `GLIBC_TUNABLES`, even empty, wins.

/// Two arenas; thresholds that stay where they are instead of rising after large frees; and
/// per-thread caches for small blocks only, as each thread's cache of blocks up to 1 KiB keeps
/// them, scattered over the heap, after a burst.
const TUNABLES: &str = "glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=131072:glibc.malloc.mmap_threshold=131072:glibc.malloc.tcache_max=256";

const VAR: &str = "GLIBC_TUNABLES";

/// Replaces this process with itself under [`TUNABLES`], unless they, or the operator's, are
/// already set. Returns only when it does not: the server then runs untuned rather than not.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune() {
    use std::os::unix::process::CommandExt;

    if std::env::var_os(VAR).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut again = std::process::Command::new(exe);
    if let Some(name) = args.next() {
        again.arg0(name);
    }
    // `exec` returns only on failure.
    let _failed = again.args(args).env(VAR, TUNABLES).exec();
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune() {}
