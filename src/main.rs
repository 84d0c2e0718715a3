fn main() -> std::process::ExitCode {
    // Every file authd creates itself is for its owner only.
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    authd::cli::main()
}
