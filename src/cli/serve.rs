use std::process::ExitCode;

use crate::{
    config::Config,
    server::{Application, shutdown_signal},
};

pub async fn run(cfg: Config) -> anyhow::Result<ExitCode> {
    let app = Application::build(cfg).await?;
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
