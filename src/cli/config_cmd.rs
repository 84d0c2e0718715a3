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
            // Rules that can never decide are a mistake the types cannot see.
            let shadowed = crate::service::shadowed_rules(&cfg.forward_auth.rules);
            for (i, by) in &shadowed {
                eprintln!(
                    "error: forward_auth.rules[{i}] can never match: forward_auth.rules[{by}] ({}) comes first and matches all it would",
                    crate::service::describe_rule(&cfg.forward_auth.rules[*by])
                );
            }
            if !shadowed.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
            if let Some(why) = cfg.public_bind_without_url() {
                eprintln!("warning: {why}");
            }
            println!("# effective configuration: valid");
            print!("{}", cfg.to_toml());
            Ok(ExitCode::SUCCESS)
        }
    }
}
