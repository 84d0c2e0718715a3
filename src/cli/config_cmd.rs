use std::process::ExitCode;

use clap::Subcommand;

use crate::config::Config;

#[derive(Subcommand)]
pub enum ConfigCmd {
    /// Validate the effective configuration and print it (secrets masked)
    Check,
}

pub fn run(cfg: &Config, cmd: ConfigCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCmd::Check => {
            // Loading already validated the keys; the files must be private too.
            let embedded = cfg.storage.backend == crate::config::StorageBackend::Redb;
            if let Some(why) = crate::service::data_dir_problem(&cfg.storage.path)
                && embedded
            {
                eprintln!("error: {why}");
                return Ok(ExitCode::FAILURE);
            }
            println!("# effective configuration: valid");
            print!("{}", cfg.to_toml());
            Ok(ExitCode::SUCCESS)
        }
    }
}
