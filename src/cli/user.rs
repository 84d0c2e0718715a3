use std::process::ExitCode;

use clap::Subcommand;

use super::admin_cmd::{read_stdin_line, send};
use crate::{
    admin_socket::{AdminReply, AdminRequest, UserView},
    config::Config,
    security::identifiers::LoginKind,
};

#[derive(Subcommand)]
pub enum UserCmd {
    /// Create a user (LOGIN is an email, a +phone number or a username)
    Add {
        /// Email, phone (E.164, e.g. +14155552671) or username of the new user
        login: String,
        /// Also set a phone number
        #[arg(long)]
        phone: Option<String>,
        /// Also set a username
        #[arg(long)]
        username: Option<String>,
        /// Role to grant (repeatable; default: user)
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Read the password from standard input (otherwise the user has none yet)
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users: id, login, roles, status, created
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show one user (by id, email, phone or username)
    Show {
        /// The user: id, email, phone or username
        user: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Replace a user's roles; their current access tokens are refused until refreshed
    SetRole {
        /// The user: id, email, phone or username
        user: String,
        /// The roles the user gets, replacing the current ones (e.g. user moderator)
        #[arg(required = true)]
        roles: Vec<String>,
    },
    /// Set a user's password (read from standard input); all their sessions end
    Passwd {
        /// The user: id, email, phone or username
        user: String,
        /// Read the new password from standard input
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Disable a user: sessions end and tokens are refused
    Disable {
        /// The user: id, email, phone or username
        user: String,
    },
    /// Re-enable a disabled user
    Enable {
        /// The user: id, email, phone or username
        user: String,
    },
    /// Delete a user and their sessions
    Delete {
        /// The user: id, email, phone or username
        user: String,
    },
    /// Unlink an external provider from a user (IDENTITY: the id `user show` prints)
    Unlink {
        /// The user: id, email, phone or username
        user: String,
        /// The linked identity, by the id `authd user show` prints
        identity: uuid::Uuid,
    },
    /// Print a single-use link with which the user enrols a new passkey (the last rung of
    /// recovery; valid for security.recovery_link_ttl). Give it to the user in person: whoever
    /// holds it can take the account.
    RecoveryLink {
        /// The user: id, email, phone or username
        user: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Second factors: `authd user mfa reset USER` removes a user's TOTP and recovery codes
    Mfa {
        #[command(subcommand)]
        cmd: MfaCmd,
    },
}

#[derive(Subcommand)]
pub enum MfaCmd {
    /// Remove the user's TOTP and recovery codes (they sign in with the password alone)
    Reset {
        /// The user: id, email, phone or username
        user: String,
    },
}

pub async fn run(cfg: &Config, cmd: UserCmd) -> anyhow::Result<ExitCode> {
    let mut json = false;
    let req = match cmd {
        UserCmd::Add { login, phone, username, roles, password_stdin } => {
            let password = if password_stdin { Some(read_stdin_line()?) } else { None };
            let (mut email, mut phone_main, mut user_main) = (None, None, None);
            match LoginKind::of(&login) {
                LoginKind::Email => email = Some(login),
                LoginKind::Phone => phone_main = Some(login),
                LoginKind::Username => user_main = Some(login),
            }
            AdminRequest::UserAdd {
                email,
                phone: phone_main.or(phone),
                username: user_main.or(username),
                roles,
                password,
            }
        }
        UserCmd::List { json: j } => {
            json = j;
            AdminRequest::UserList
        }
        UserCmd::Show { user, json: j } => {
            json = j;
            AdminRequest::UserShow { who: user }
        }
        UserCmd::SetRole { user, roles } => AdminRequest::UserSetRoles { who: user, roles },
        UserCmd::Passwd { user, .. } => AdminRequest::UserPasswd { who: user, password: read_stdin_line()? },
        UserCmd::Disable { user } => AdminRequest::UserDisable { who: user },
        UserCmd::Enable { user } => AdminRequest::UserEnable { who: user },
        UserCmd::Delete { user } => AdminRequest::UserDelete { who: user },
        UserCmd::Mfa { cmd: MfaCmd::Reset { user } } => AdminRequest::UserMfaReset { who: user },
        UserCmd::Unlink { user, identity } => AdminRequest::UserUnlink { who: user, identity },
        UserCmd::RecoveryLink { user, json: j } => {
            json = j;
            AdminRequest::UserRecoveryLink { who: user }
        }
    };
    let verb = match &req {
        AdminRequest::UserAdd { .. } => Some("created"),
        AdminRequest::UserSetRoles { .. } => Some("roles set"),
        AdminRequest::UserPasswd { .. } => Some("password set"),
        AdminRequest::UserDisable { .. } => Some("disabled"),
        AdminRequest::UserEnable { .. } => Some("enabled"),
        AdminRequest::UserDelete { .. } => Some("deleted"),
        AdminRequest::UserMfaReset { .. } => Some("second factors reset"),
        AdminRequest::UserUnlink { .. } => Some("provider unlinked"),
        _ => None,
    };
    let reply = send(cfg, req).await?;
    finish(reply, |r| match r {
        AdminReply::Users(users) if json => super::json::print(&users, true),
        AdminReply::Users(users) => print_users(&users),
        AdminReply::User(u) if json => super::json::print(&u, true),
        AdminReply::Link { user, link, expires_in } if json => {
            let v = serde_json::json!({"user_id": user.id, "link": link, "expires_in": expires_in});
            super::json::print(&v, true);
        }
        AdminReply::Link { user, link, expires_in } => {
            println!("recovery link for {} ({}), single use, valid {} s:", login_of(&user), user.id, expires_in);
            println!("{link}");
        }
        AdminReply::User(u) => match verb {
            Some(v) => println!("{v}: {} ({})", login_of(&u), u.id),
            None => print_user(&u),
        },
        _ => {}
    })
}

/// Prints a successful reply, or the error on stderr with exit code 1.
pub fn finish(reply: AdminReply, print: impl FnOnce(AdminReply)) -> anyhow::Result<ExitCode> {
    match reply {
        AdminReply::Error { code, message } => {
            eprintln!("error: {message} ({code})");
            Ok(ExitCode::FAILURE)
        }
        ok => {
            print(ok);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn login_of(u: &UserView) -> &str {
    u.email.as_deref().or(u.username.as_deref()).or(u.phone.as_deref()).unwrap_or("-")
}

fn print_users(users: &[UserView]) {
    println!("{:<36}  {:<32}  {:<20}  {:<8}  CREATED", "ID", "LOGIN", "ROLES", "STATUS");
    for u in users {
        println!("{:<36}  {:<32}  {:<20}  {:<8}  {}", u.id, login_of(u), u.roles.join(","), u.status, u.created_at);
    }
}

fn print_user(u: &UserView) {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    println!("id:        {}", u.id);
    println!("email:     {}", opt(&u.email));
    println!("phone:     {}", opt(&u.phone));
    println!("username:  {}", opt(&u.username));
    println!("roles:     {}", u.roles.join(", "));
    println!("status:    {}", u.status);
    println!("password:  {}", if u.has_password { "set" } else { "not set" });
    println!("mfa:       {}", if u.mfa_enabled { "totp" } else { "none" });
    for i in &u.identities {
        println!("identity:  {i}");
    }
    println!("created:   {}", u.created_at);
}
