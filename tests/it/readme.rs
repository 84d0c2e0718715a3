//! The README is part of the contract: its quick start and administration commands, taken from
//! the README itself, run as written against a fresh server and every one succeeds.

use std::{os::unix::fs::PermissionsExt as _, path::Path, process::Stdio};

use tokio::process::Command;

use crate::support::{binary, free_port, private_dir};

/// The ```sh blocks under a README heading, up to the next heading.
fn blocks_under(readme: &str, heading: &str) -> Vec<String> {
    let mut lines = readme.lines().skip_while(|l| *l != heading).skip(1);
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in lines.by_ref() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(b), "```") => {
                blocks.push(b.join("\n"));
                current = None;
            }
            (Some(b), l) => b.push(l),
            (None, l) if l.starts_with('#') => break,
            (None, _) => {}
        }
    }
    blocks
}

/// `authd` on PATH, and `cargo run --release --` standing for it (the build is the test's own).
fn install_binaries(dir: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(binary::path(), bin.join("authd")).unwrap();
    let cargo = bin.join("cargo");
    std::fs::write(
        &cargo,
        "#!/bin/sh\n[ \"$1 $2 $3\" = 'run --release --' ] || { echo \"not a README command: cargo $*\" >&2; exit 2; }\nshift 3\nexec authd \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
}

/// The README's text with its port swapped for a free one, so the test never meets another
/// server on 8080; nothing else changes.
fn script(block: &str, port: u16) -> String {
    block.replace("localhost:8080", &format!("localhost:{port}"))
}

fn shell(dir: &Path, path: &str, port: u16, script: &str) -> Command {
    let mut c = Command::new("bash");
    c.args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env("AUTHD_SERVER__BIND", format!("127.0.0.1:{port}"))
        .env_remove("AUTHD_CONFIG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

async fn run_block(dir: &Path, path: &str, port: u16, block: &str) -> String {
    let out = shell(dir, path, port, &script(block, port)).output().await.expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "README block failed:\n{block}\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    stdout
}

#[tokio::test]
async fn the_readme_quick_start_and_administration_work_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let run = blocks_under(&readme, "## Run it");
    let use_it = blocks_under(&readme, "## Use it");
    let admin = blocks_under(&readme, "## Administration");
    assert_eq!((run.len(), use_it.len(), admin.len()), (1, 1, 1), "the README's sections moved");
    assert!(run[0].contains("serve"), "{}", run[0]);

    let dir = private_dir();
    let path = install_binaries(dir.path());
    let port = free_port();
    // The shell may hand its process over to authd or not: the launcher stops the whole group.
    let server = binary::Server::spawn(&mut shell(dir.path(), &path, port, &script(&run[0], port))).await;

    // Each block stands on its own: the administration one first, on the fresh server.
    let out = run_block(dir.path(), &path, port, &admin[0]).await;
    assert!(out.contains("admin@example.com"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("roles:") && l.contains("support")), "carol got the new role: {out}");
    assert!(out.contains("key.rotated"), "the audit log shows the rotation: {out}");

    let me = run_block(dir.path(), &path, port, &use_it[0]).await;
    // The answers follow one another: register's user, then /v1/me's.
    let answers: Vec<serde_json::Value> =
        serde_json::Deserializer::from_str(&me).into_iter().collect::<Result<_, _>>().unwrap_or_default();
    assert_eq!(answers.len(), 2, "{me}");
    let me = &answers[1];
    assert_eq!(me["email"], "alice@example.com", "{me}");

    server.stop().await;
}
