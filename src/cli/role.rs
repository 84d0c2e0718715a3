use std::process::ExitCode;

use clap::Subcommand;

use super::{admin_cmd::send, user::finish};
use crate::{
    admin_socket::{AdminReply, AdminRequest},
    config::Config,
};

#[derive(Subcommand)]
pub enum RoleCmd {
    /// List roles and their permissions
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Create a role: authd role add support --perm tickets:read --perm tickets:write
    Add {
        /// The role's name
        name: String,
        /// Permissions, e.g. users:read audit:* (`*` is every permission)
        #[arg(long = "perm")]
        perms: Vec<String>,
    },
    /// Add permissions to a role
    Grant {
        /// The role's name
        name: String,
        /// Permissions, e.g. users:read audit:* (`*` is every permission)
        #[arg(long = "perm", required = true)]
        perms: Vec<String>,
    },
    /// Remove permissions from a role
    Revoke {
        /// The role's name
        name: String,
        /// Permissions, e.g. users:read audit:* (`*` is every permission)
        #[arg(long = "perm", required = true)]
        perms: Vec<String>,
    },
    /// Require a second factor of the role's members (`on`), or stop requiring it (`off`)
    RequireMfa {
        /// The role's name
        name: String,
        /// `on` or `off`
        #[arg(value_parser = ["on", "off"])]
        setting: String,
    },
    /// Delete a custom role (refused while users hold it, unless --force)
    Delete {
        /// The role's name
        name: String,
        /// Take the role from the users who hold it
        #[arg(long)]
        force: bool,
    },
}

pub async fn run(cfg: &Config, cmd: RoleCmd) -> anyhow::Result<ExitCode> {
    let mut json = false;
    let (req, verb) = match cmd {
        RoleCmd::List { json: j } => {
            json = j;
            (AdminRequest::RoleList, "")
        }
        RoleCmd::Add { name, perms } => (AdminRequest::RoleAdd { name, permissions: perms }, "created"),
        RoleCmd::Grant { name, perms } => {
            (AdminRequest::RoleChange { name, grant: perms, revoke: Vec::new() }, "changed")
        }
        RoleCmd::Revoke { name, perms } => {
            (AdminRequest::RoleChange { name, grant: Vec::new(), revoke: perms }, "changed")
        }
        RoleCmd::RequireMfa { name, setting } => {
            (AdminRequest::RoleRequireMfa { name, required: setting == "on" }, "changed")
        }
        RoleCmd::Delete { name, force } => (AdminRequest::RoleDelete { name, force }, "deleted"),
    };
    let reply = send(cfg, req).await?;
    finish(reply, |r| match r {
        AdminReply::Roles(roles) if json => super::json::print(&roles, true),
        AdminReply::Roles(roles) => {
            println!("{:<20} {:<8} PERMISSIONS", "ROLE", "BUILTIN");
            for r in roles {
                println!("{:<20} {:<8} {}", r.name, if r.builtin { "yes" } else { "no" }, r.permissions.join(" "));
            }
        }
        AdminReply::Role(r) => {
            let mfa = if r.require_mfa { " (second factor required)" } else { "" };
            println!("{verb}: {} [{}]{mfa}", r.name, r.permissions.join(" "))
        }
        _ => {}
    })
}
