use std::process::ExitCode;

use clap::Subcommand;

use super::{admin_cmd::send, user::finish};
use crate::{
    admin_socket::{AdminReply, AdminRequest},
    config::Config,
};

#[derive(Subcommand)]
pub enum WebhooksCmd {
    /// Counts of pending, delivered and failed deliveries, and the latest troubled ones
    Status {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// List endpoints (config file and added ones)
    List,
    /// Add an endpoint: authd webhooks add https://hooks.example.com/x --event user.logged_out
    Add {
        /// Where deliveries are POSTed (https, or http on loopback)
        url: String,
        /// An event to deliver (repeat for more): a name like user.logged_out or a family like user
        #[arg(long = "event", required = true)]
        events: Vec<String>,
        /// `whsec_<base64>`; generated (and printed once) when left out
        #[arg(long)]
        secret: Option<String>,
    },
    /// Remove an endpoint added with `add`
    Delete {
        /// The endpoint, by the id `authd webhooks list` prints
        id: uuid::Uuid,
    },
}

pub async fn run(cfg: &Config, cmd: WebhooksCmd) -> anyhow::Result<ExitCode> {
    let (req, json) = match cmd {
        WebhooksCmd::Status { json } => (AdminRequest::WebhookStatus, json),
        WebhooksCmd::List => (AdminRequest::WebhookList, false),
        WebhooksCmd::Add { url, events, secret } => (AdminRequest::WebhookAdd { url, events, secret }, false),
        WebhooksCmd::Delete { id } => (AdminRequest::WebhookDelete { id }, false),
    };
    let reply = send(cfg, req).await?;
    finish(reply, |r| match r {
        AdminReply::Webhooks(c) if json => super::json::print(&c, true),
        AdminReply::Webhooks(c) => {
            println!("pending: {}  delivered: {}  failed: {}", c.pending, c.delivered, c.failed);
            for (id, url, event, attempts, state, error) in c.troubled {
                println!("{id}  {state:<8} {event:<28} attempts={attempts} {url} {}", error.unwrap_or_default());
            }
        }
        AdminReply::Endpoints(list) => {
            for w in list {
                let id = w.id.map(|i| i.to_string()).unwrap_or_else(|| "(config file)".into());
                println!("{id:<36}  {}  {}", w.url, w.events.join(","));
            }
        }
        AdminReply::Endpoint(w) => {
            println!("added: {} {}", w.id.map(|i| i.to_string()).unwrap_or_default(), w.url);
            if let Some(s) = w.secret {
                println!("secret (shown once): {s}");
            }
        }
        AdminReply::Done => println!("deleted"),
        _ => {}
    })
}
