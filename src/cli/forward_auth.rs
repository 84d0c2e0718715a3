//! `authd forward-auth test`: which rule decides a request, and why.

use std::{net::IpAddr, process::ExitCode};

use clap::Subcommand;

use super::{admin_cmd::send, user::finish};
use crate::{
    admin_socket::{AdminReply, AdminRequest},
    config::Config,
};

#[derive(Subcommand)]
pub enum ForwardAuthCmd {
    /// Which [[forward_auth.rules]] rule decides a request, and why
    Test {
        /// The application's URL, e.g. https://app.example.com/admin/
        url: String,
        /// Signed in as this user (id, email, phone or username); without it, not signed in
        #[arg(long)]
        user: Option<String>,
        /// The request's HTTP method, upper case
        #[arg(long, default_value = "GET")]
        method: String,
        /// The session was signed in with two factors
        #[arg(long)]
        mfa: bool,
        /// The client's address, for rules with networks
        #[arg(long)]
        from: Option<IpAddr>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cfg: &Config, cmd: ForwardAuthCmd) -> anyhow::Result<ExitCode> {
    let ForwardAuthCmd::Test { url, user, method, mfa, from, json } = cmd;
    let reply = send(cfg, AdminRequest::ForwardAuthTest { url, method, user, mfa, from }).await?;
    finish(reply, |r| {
        if let AdminReply::ForwardAuth(e) = r {
            if json {
                super::json::print(&e, true);
                return;
            }
            match (e.rule, &e.rule_text) {
                (Some(i), Some(text)) => println!("rule:     forward_auth.rules[{i}]: {text}"),
                _ => println!("rule:     none"),
            }
            println!("decision: {}", e.decision);
            println!("why:      {}", e.why);
        }
    })
}
