//! `authd client`: relying parties and backends, with the server up or down.

use std::process::ExitCode;

use clap::Subcommand;

use super::{admin_cmd::send, user::finish};
use crate::{
    admin_socket::{AdminReply, AdminRequest},
    config::Config,
    service::{NewClient, ServiceClientInfo},
};

#[derive(Subcommand)]
pub enum ClientCmd {
    /// Add a client: authd client add Photos --redirect-uri https://photos.example/callback
    Add {
        /// A name for the client, shown to users and in lists
        name: String,
        /// Where authorization responses may go (repeat for several); compared exactly
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// A public client (a browser or native app): no secret, PKCE required
        #[arg(long)]
        public: bool,
        /// Where RP-initiated logout may return to (repeat for several)
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// Receives back-channel logout tokens
        #[arg(long)]
        backchannel_logout_uri: Option<String>,
        /// Users are not asked to consent
        #[arg(long)]
        trusted: bool,
        /// Authorization requests must be pushed first (PAR)
        #[arg(long)]
        require_par: bool,
        /// client_secret_basic (default), client_secret_post or none
        #[arg(long)]
        token_endpoint_auth_method: Option<String>,
        /// The scopes it may ask for (repeat); all when left out
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// RS256 (default), ES256 or EdDSA
        #[arg(long)]
        id_token_alg: Option<String>,
        /// Roles of its own client_credentials tokens (repeat); default user
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Print one JSON object (with client_secret, shown once)
        #[arg(long)]
        json: bool,
    },
    /// List clients
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show one client
    Show {
        /// The client, by its client_id
        id: uuid::Uuid,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Remove a client; every token it holds stops working
    Remove {
        /// The client, by its client_id
        id: uuid::Uuid,
    },
    /// A new secret, shown once; the old one stops working
    RotateSecret {
        /// The client, by its client_id
        id: uuid::Uuid,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
}

fn print_client(c: &ServiceClientInfo) {
    println!("client_id:    {}", c.client_id);
    println!("name:         {}", c.name);
    if let Some(s) = &c.client_secret {
        println!("client_secret (shown once): {s}");
    }
    println!("auth method:  {}", c.token_endpoint_auth_method);
    for u in &c.redirect_uris {
        println!("redirect_uri: {u}");
    }
    for u in &c.post_logout_redirect_uris {
        println!("post_logout_redirect_uri: {u}");
    }
    if let Some(u) = &c.backchannel_logout_uri {
        println!("backchannel_logout_uri: {u}");
    }
    println!("scopes:       {}", c.scopes.join(" "));
    println!("roles:        {}", c.roles.join(","));
    println!("trusted: {}  require_par: {}", c.trusted, c.require_par);
}

pub async fn run(cfg: &Config, cmd: ClientCmd) -> anyhow::Result<ExitCode> {
    let (req, json) = match cmd {
        ClientCmd::Add {
            name,
            redirect_uris,
            public,
            post_logout_redirect_uris,
            backchannel_logout_uri,
            trusted,
            require_par,
            token_endpoint_auth_method,
            scopes,
            id_token_alg,
            roles,
            json,
        } => {
            if public && token_endpoint_auth_method.as_deref().is_some_and(|m| m != "none") {
                anyhow::bail!("--public means --token-endpoint-auth-method none");
            }
            let client = NewClient {
                name,
                roles,
                redirect_uris,
                post_logout_redirect_uris,
                backchannel_logout_uri,
                scopes,
                trusted,
                require_par,
                token_endpoint_auth_method: if public { Some("none".into()) } else { token_endpoint_auth_method },
                id_token_signed_response_alg: id_token_alg,
            };
            (AdminRequest::ClientAdd { client }, json)
        }
        ClientCmd::List { json } => (AdminRequest::ClientList, json),
        ClientCmd::Show { id, json } => (AdminRequest::ClientShow { id }, json),
        ClientCmd::Remove { id } => (AdminRequest::ClientRemove { id }, false),
        ClientCmd::RotateSecret { id, json } => (AdminRequest::ClientRotateSecret { id }, json),
    };
    let reply = send(cfg, req).await?;
    finish(reply, |r| match r {
        AdminReply::Client(c) if json => super::json::print(&c, false),
        AdminReply::Client(c) => print_client(&c),
        AdminReply::Clients(list) if json => super::json::print(&list, false),
        AdminReply::Clients(list) => {
            println!("{:<36}  {:<24}  {:<20}  REDIRECT URIS", "CLIENT ID", "NAME", "AUTH METHOD");
            for c in list {
                println!(
                    "{:<36}  {:<24}  {:<20}  {}",
                    c.client_id,
                    c.name,
                    c.token_endpoint_auth_method,
                    c.redirect_uris.join(" ")
                );
            }
        }
        AdminReply::Done => println!("removed"),
        _ => {}
    })
}
