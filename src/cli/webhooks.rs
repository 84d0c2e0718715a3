use std::process::ExitCode;

use clap::Subcommand;

use super::{admin_cmd::send, user::finish};
use crate::{
    admin::{AdminReply, AdminRequest},
    config::Config,
};

#[derive(Subcommand)]
pub enum WebhooksCmd {
    /// Counts of pending, delivered and failed deliveries, and the latest troubled ones
    Status {
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cfg: &Config, cmd: WebhooksCmd) -> anyhow::Result<ExitCode> {
    let WebhooksCmd::Status { json } = cmd;
    let reply = send(cfg, AdminRequest::WebhookStatus).await?;
    finish(reply, |r| {
        if let AdminReply::Webhooks(c) = r {
            if json {
                println!("{}", serde_json::to_string_pretty(&c).unwrap_or_default());
                return;
            }
            println!("pending: {}  delivered: {}  failed: {}", c.pending, c.delivered, c.failed);
            for (id, url, event, attempts, state, error) in c.troubled {
                println!("{id}  {state:<8} {event:<28} attempts={attempts} {url} {}", error.unwrap_or_default());
            }
        }
    })
}
