use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum ChallengeCmd {
    /// Solve a proof-of-work challenge from POST /v1/auth/challenge; prints the nonce
    Solve {
        /// The challenge as POST /v1/auth/challenge returned it
        challenge: String,
    },
}

pub fn run(cmd: ChallengeCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ChallengeCmd::Solve { challenge } => match crate::security::pow::solve(&challenge) {
            Some(nonce) => {
                println!("{nonce}");
                Ok(ExitCode::SUCCESS)
            }
            None => anyhow::bail!("not a challenge issued by authd"),
        },
    }
}
