/// jemalloc gives freed memory back to the OS on its own: a background thread purges free
/// pages after a few idle seconds, and blocks of 8 MiB or more (argon2's) at once. glibc keeps
/// what it freed in its arenas, so RSS stayed at its peak after a burst (README, Memory).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    // Every file authd creates itself is for its owner only.
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    authd::cli::main()
}
