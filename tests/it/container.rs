//! The container image: contrib/container/Containerfile built with buildah from a root
//! filesystem made by contrib/container/rootfs.sh, then its root filesystem run as the image
//! says (user 10001, the volume, the environment). Podman cannot start containers on these
//! machines (cgroups), so the test runs the image's files with chroot, as root.

use std::{path::Path, process::Stdio};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::binary::{self, Server};

fn run(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn buildah(args: &[&str]) -> String {
    run(std::process::Command::new("buildah").args(["--storage-driver", "vfs"]).args(args))
}

#[tokio::test]
async fn the_image_builds_runs_as_its_user_and_serves() {
    if std::process::Command::new("buildah").arg("--version").output().is_err() || !rustix::process::geteuid().is_root()
    {
        crate::support::unavailable::<()>("buildah, as root", "apt-get install buildah; run as root (.ci/run does)");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/container");
    std::fs::copy(contrib.join("Containerfile"), w.join("Containerfile")).unwrap();
    run(std::process::Command::new(contrib.join("rootfs.sh")).arg(crate::support::binary::path()).arg(w));
    let tag = format!("localhost/authd-test:{}", uuid::Uuid::new_v4().simple());
    buildah(&[
        "bud",
        "--format",
        "docker",
        "--isolation",
        "chroot",
        "--quiet",
        "-f",
        w.join("Containerfile").to_str().unwrap(),
        "-t",
        &tag,
        w.to_str().unwrap(),
    ]);
    let config: Value = serde_json::from_str(&buildah(&["inspect", "--type", "image", &tag])).unwrap();
    let oci = &config["OCIv1"]["config"];
    assert_eq!(oci["User"], "10001:10001", "{oci}");
    assert!(oci["Volumes"].get("/var/lib/authd").is_some(), "{oci}");
    assert_eq!(oci["Entrypoint"], json!(["/usr/local/bin/authd"]));
    assert_eq!(
        config["Docker"]["config"]["Healthcheck"]["Test"],
        json!(["CMD", "/usr/local/bin/authd", "healthcheck"])
    );
    let env: Vec<String> = serde_json::from_value(oci["Env"].clone()).unwrap();

    // Whatever happens below, the image and its container go.
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::process::Command::new("buildah")
                .args(["--storage-driver", "vfs", "rmi", "--force", &self.0])
                .output();
        }
    }
    let _cleanup = Cleanup(tag.clone());
    let container = buildah(&["from", "--quiet", &tag]);
    let root = buildah(&["mount", &container]);
    let port = crate::support::free_port();
    let chrooted = |args: &[&str]| {
        let mut c = tokio::process::Command::new("chroot");
        c.args(["--userspec=10001:10001", &root, "/usr/local/bin/authd"]).args(args).env_clear();
        for kv in &env {
            let (k, v) = kv.split_once('=').unwrap();
            c.env(k, v);
        }
        c.env("AUTHD_SERVER__BIND", format!("127.0.0.1:{port}")).env("AUTHD_RATE_LIMIT__ENABLED", "false");
        c
    };
    let server = Server::spawn(chrooted(&["serve", "--log-format", "json"]).stdin(Stdio::null())).await;
    let http = reqwest::Client::new();
    assert_eq!(http.get(server.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);
    binary::register(&server.base, "box@example.com").await;
    let t = binary::login(&server.base, "box@example.com").await;
    let me = http.get(server.url("/v1/me")).bearer_auth(t["access_token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    // The image's health check, as the engine runs it.
    let health = chrooted(&["healthcheck"]).output().await.unwrap();
    assert!(health.status.success(), "{}", String::from_utf8_lossy(&health.stderr));
    // Outbound TLS has its CA certificates.
    assert!(Path::new(&root).join("etc/ssl/certs/ca-certificates.crt").is_file());
    assert!(env.iter().any(|e| e == "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"), "{env:?}");
    // The state is the unprivileged user's, private, in the volume.
    {
        use std::os::unix::fs::MetadataExt as _;
        let db = std::fs::metadata(Path::new(&root).join("var/lib/authd/authd.redb")).unwrap();
        assert_eq!((db.uid(), db.mode() & 0o777), (10001, 0o600));
    }
    let (status, _) = server.stop().await;
    assert!(status.success());
    let unhealthy = chrooted(&["healthcheck"]).output().await.unwrap();
    assert!(!unhealthy.status.success(), "the health check fails with the server down");
    buildah(&["umount", &container]);
    buildah(&["rm", &container]);
    buildah(&["rmi", "--force", &tag]);
}
