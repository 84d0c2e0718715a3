use std::process::ExitCode;

use crate::{
    config::Config,
    server::{Application, shutdown_signal},
};

pub async fn run(cfg: Config) -> anyhow::Result<ExitCode> {
    // SIGHUP ends a process by default: taken before anything else, so that a reload sent
    // while the server starts (a long schema upgrade) does not kill it. Held to the end.
    let _hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let app = Application::build(cfg).await?;
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
