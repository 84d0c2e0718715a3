use std::{process::ExitCode, time::Duration};

use clap::{Args, Subcommand};

use super::{admin_cmd::send, user::finish};
use crate::{
    admin_socket::{AdminReply, AdminRequest},
    config::Config,
    model::AuditEvent,
};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    cmd: Option<AuditCmd>,
    /// Only events about this user (id, email, phone or username)
    #[arg(long)]
    user: Option<String>,
    /// Only this event, or events starting with it (e.g. `user`)
    #[arg(long)]
    event: Option<String>,
    /// `success` or `failure`
    #[arg(long)]
    outcome: Option<String>,
    /// RFC 3339 time or an age such as 24h
    #[arg(long)]
    since: Option<String>,
    /// At most this many events
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Print JSON lines
    #[arg(long)]
    json: bool,
    /// Keep printing new events as they happen
    #[arg(long)]
    follow: bool,
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Write events as JSON lines, oldest first: authd audit export --since 30d > events.jsonl
    Export {
        /// Only events from then on: a duration back (30d, 12h) or an RFC 3339 time
        #[arg(long)]
        since: Option<String>,
    },
}

fn since_ms(s: Option<&str>) -> anyhow::Result<Option<u64>> {
    s.map(|s| crate::service::audit::parse_instant("since", s).map_err(|e| anyhow::anyhow!("{e}"))).transpose()
}

fn print(e: &AuditEvent, json: bool) {
    if json {
        super::json::print(e, false);
        return;
    }
    let t = std::time::UNIX_EPOCH + Duration::from_millis(e.time_ms);
    let subject = e.subject.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
    println!(
        "{}  {:<28} {:<8} actor={} subject={} ip={}",
        humantime::format_rfc3339_seconds(t),
        e.event,
        e.outcome,
        e.actor,
        subject,
        e.ip.as_deref().unwrap_or("-")
    );
}

pub async fn run(cfg: &Config, args: AuditArgs) -> anyhow::Result<ExitCode> {
    if let Some(AuditCmd::Export { since }) = args.cmd {
        // Page backwards, then print oldest first.
        let since_ms = since_ms(since.as_deref())?;
        let mut all = Vec::new();
        let mut before = None;
        loop {
            let req = AdminRequest::Audit { user: None, event: None, outcome: None, since_ms, before, limit: 1000 };
            match send(cfg, req).await? {
                AdminReply::Events(page) => {
                    let done = page.len() < 1000;
                    before = page.last().map(|e| e.id);
                    all.extend(page);
                    if done {
                        break;
                    }
                }
                other => return finish(other, |_| {}),
            }
        }
        for e in all.iter().rev() {
            print(e, true);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let query = |since_ms, limit| AdminRequest::Audit {
        user: args.user.clone(),
        event: args.event.clone(),
        outcome: args.outcome.clone(),
        since_ms,
        before: None,
        limit,
    };
    let since = since_ms(args.since.as_deref())?;
    let reply = send(cfg, query(since, args.limit)).await?;
    let AdminReply::Events(events) = reply else { return finish(reply, |_| {}) };
    for e in events.iter().rev() {
        print(e, args.json);
    }
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    // Start after the newest event that exists now, printed or not.
    let mut last = match send(cfg, query(since, 1)).await? {
        AdminReply::Events(newest) => newest.first().map(|e| e.id),
        other => return finish(other, |_| {}),
    };
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let reply = send(cfg, query(since, 1000)).await?;
        let AdminReply::Events(events) = reply else { return finish(reply, |_| {}) };
        for e in events.iter().rev().filter(|e| last.is_none_or(|l| e.id > l)) {
            print(e, args.json);
        }
        if let Some(newest) = events.first() {
            last = Some(last.map_or(newest.id, |l| l.max(newest.id)));
        }
    }
}
