//! What ships for installs: the systemd units pass `systemd-analyze verify`, and the single-node
//! unit's settings give a server that starts, with its state private.

use std::os::unix::fs::PermissionsExt as _;

use crate::support::binary::{self, Server};

/// `systemd-analyze verify` on `unit` with the binary path made real; its complaints.
fn verify(unit: &str) -> Option<String> {
    if std::process::Command::new("systemd-analyze").arg("--version").output().is_err() {
        return crate::support::unavailable("systemd-analyze", "apt-get install systemd");
    }
    let text = std::fs::read_to_string(format!("{}/contrib/{unit}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let dir = crate::support::private_dir();
    let copy = dir.path().join("authd.service");
    std::fs::write(&copy, text.replace("/usr/local/bin/authd", binary::path().to_str().unwrap())).unwrap();
    let out = std::process::Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&copy).output().unwrap();
    assert!(out.status.success(), "{unit}: {}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test]
async fn the_systemd_units_verify_and_the_single_node_one_runs_as_written() {
    for unit in ["systemd/authd.service", "cluster/authd.service"] {
        let Some(complaints) = verify(unit) else { return };
        // Unknown settings are only warnings to systemd: none is allowed here.
        assert!(complaints.trim().is_empty(), "{unit}: {complaints}");
    }
    // The unit's environment, in a state directory made as systemd makes it (0700).
    let text =
        std::fs::read_to_string(format!("{}/contrib/systemd/authd.service", env!("CARGO_MANIFEST_DIR"))).unwrap();
    assert!(text.contains("StateDirectoryMode=0700"));
    let state = crate::support::private_dir();
    let lib = state.path().join("authd");
    std::fs::create_dir(&lib).unwrap();
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut cmd = binary::serve(state.path());
    for line in text.lines().filter_map(|l| l.strip_prefix("Environment=")) {
        let (k, v) = line.split_once('=').unwrap();
        let v = v.replace("/var/lib/authd", lib.to_str().unwrap()).replace("127.0.0.1:8080", "127.0.0.1:0");
        cmd.env(k, v);
    }
    let server = Server::spawn(cmd.args(["--log-format", "json"])).await;
    assert!(lib.join("authd.redb").is_file() && lib.join("authd.key").is_file());
    let (status, log) = server.stop().await;
    assert!(status.success(), "SIGTERM, as systemd stops it, exits 0: {status}\n{}", log.join("\n"));
}
