use std::process::ExitCode;

use clap::Subcommand;

use super::{admin_cmd::send, user::finish};
use crate::{
    admin_socket::{AdminReply, AdminRequest},
    config::Config,
    model::rfc3339,
    service::KeyInfo,
};

#[derive(Subcommand)]
pub enum KeysCmd {
    /// List signing keys: kid, algorithm, state, created
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Make a new key active; the old one verifies until its tokens expire
    Rotate,
}

pub async fn run(cfg: &Config, cmd: KeysCmd) -> anyhow::Result<ExitCode> {
    let (req, json) = match cmd {
        KeysCmd::List { json } => (AdminRequest::KeysList, json),
        KeysCmd::Rotate => (AdminRequest::KeysRotate, false),
    };
    let reply = send(cfg, req).await?;
    finish(reply, |r| match r {
        AdminReply::Keys(keys) if json => super::json::print(&keys, true),
        AdminReply::Keys(keys) => print_keys(&keys),
        AdminReply::Key(k) => println!("rotated: new active key {} ({})", k.kid, k.alg),
        _ => {}
    })
}

fn print_keys(keys: &[KeyInfo]) {
    println!("{:<45} {:<6} {:<9} CREATED", "KID", "ALG", "STATE");
    for k in keys {
        println!("{:<45} {:<6} {:<9} {}", k.kid, k.alg, k.state, rfc3339(k.created_at));
    }
}
