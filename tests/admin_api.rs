//! The target-group admin API's answers to bad input, and the admin bearer token: required
//! on every path but `/healthz`, required by `check` off loopback, and a missing token
//! variable stops `run` (issue 3).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::Method;

use common::*;

fn config(admin: &str, backend: &Backend) -> String {
    format!(
        "{admin}listeners:\n  - name: web\n    address: 127.0.0.1:0\n    default_action:\n      forward:\n        target_group: app\ntarget_groups:\n  - name: app\n    targets: [\"{}\"]\n    health_check:\n      path: /health\n      interval_seconds: 5\n      timeout_seconds: 2\n",
        backend.target()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_registrations_are_refused_and_change_nothing() {
    let a = Backend::start("a");
    let gate = Scalegate::start(&config(ADMIN, &a));
    assert!(
        wait_for_target_state(
            &gate,
            "app",
            &a.target(),
            "healthy",
            Duration::from_secs(10)
        )
        .await
    );
    let unknown = refused_port().to_string();

    let (status, body) = admin_json(
        &gate,
        Method::POST,
        "/api/target-groups/app/deregister",
        Some(&format!(
            "{{\"targets\": [\"{}\", \"{unknown}\"]}}",
            a.target()
        )),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&unknown) && error.contains("not registered"),
        "{body}"
    );

    for path in [
        "/api/target-groups/nope/register",
        "/api/target-groups/nope/deregister",
    ] {
        let (status, body) = admin_json(
            &gate,
            Method::POST,
            path,
            Some(&format!("{{\"targets\": [\"{}\"]}}", a.target())),
        )
        .await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body["error"].as_str().is_some(), "{path}: {body}");
    }
    let (status, body) =
        admin_json(&gate, Method::GET, "/api/target-groups/nope/health", None).await;
    assert_eq!(status, 404, "{body}");

    for bad in [
        "{not json",
        "{\"targets\": []}",
        "{\"targets\": [\"127.0.0.1:0\"]}",
        "{\"targets\": [\"not an address\"]}",
        "{\"targets\": [\"127.0.0.1:8080\"], \"extra\": 1}",
    ] {
        let (status, body) = admin_json(
            &gate,
            Method::POST,
            "/api/target-groups/app/register",
            Some(bad),
        )
        .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].as_str().is_some(), "{bad}: {body}");
    }
    let (status, body) = admin_json(
        &gate,
        Method::GET,
        "/api/target-groups/app/health?targets=nonsense",
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");

    // Nothing changed: the one target is still there, healthy, and serving.
    let states = target_states(&gate, "app").await;
    assert_eq!(states, vec![(a.target(), "healthy".to_string(), None)]);
    let echo = echo(client().get(gate.url("web"))).await;
    assert_eq!((echo.status, echo.backend()), (200, "a"));
}

/// `curl`'s status code for `url`, with extra arguments.
async fn curl_status(url: &str, extra: &[&str]) -> String {
    let output = tokio::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--noproxy",
            "*",
        ])
        .args(extra)
        .arg(url)
        .output()
        .await
        .expect("curl runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_every_admin_path_but_healthz_needs_it() {
    require_tool("curl");
    let a = Backend::start("a");
    let admin = "admin:\n  address: 127.0.0.1:0\n  auth_token: s3cret\n";
    let gate = Scalegate::start(&config(admin, &a));
    let base = format!("http://{}", gate.admin_address());
    let bearer = "Authorization: Bearer s3cret";

    for path in [
        "/metrics",
        "/api/target-groups",
        "/api/target-groups/app/health",
    ] {
        let url = format!("{base}{path}");
        assert_eq!(
            curl_status(&url, &[]).await,
            "401",
            "{path} without a token"
        );
        assert_eq!(
            curl_status(&url, &["-H", "Authorization: Bearer wrong"]).await,
            "401",
            "{path} with a wrong token"
        );
        assert_eq!(
            curl_status(&url, &["-H", "Authorization: s3cret"]).await,
            "401",
            "{path} without the Bearer scheme"
        );
        assert_eq!(
            curl_status(&url, &["-H", bearer]).await,
            "200",
            "{path} with the token"
        );
    }
    assert_eq!(curl_status(&format!("{base}/healthz"), &[]).await, "200");

    let http = client();
    let refused = http
        .get(format!("{base}/api/target-groups"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    let listed: serde_json::Value = http
        .get(format!("{base}/api/target-groups"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["target_groups"][0]["name"], "app", "{listed}");

    // A registration without the token does not happen.
    let other = Backend::start("other");
    let body = format!("{{\"targets\": [\"{}\"]}}", other.target());
    let refused = http
        .post(format!("{base}/api/target-groups/app/register"))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let health: serde_json::Value = http
        .get(format!("{base}/api/target-groups/app/health"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = health["target_health_descriptions"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(listed, 1, "{health}");
    let accepted = http
        .post(format!("{base}/api/target-groups/app/register"))
        .bearer_auth("s3cret")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_refuses_an_open_admin_api_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("open.yaml");
    std::fs::write(&path, "admin:\n  address: 0.0.0.0:0\n").unwrap();
    let output = Command::new(binary())
        .args(["check", "-c", path.to_str().unwrap()])
        .output()
        .expect("scalegate runs");
    assert!(
        !output.status.success(),
        "an open admin API on 0.0.0.0 passed"
    );
    let errors = text(&output.stderr);
    assert!(
        errors.contains(&format!("{}:2:", path.display()))
            && errors.contains("admin.address")
            && errors.contains("auth_token"),
        "{errors}"
    );

    std::fs::write(
        &path,
        "admin:\n  address: 0.0.0.0:0\n  auth_token_env: SCALEGATE_ADMIN_TOKEN\n",
    )
    .unwrap();
    let output = Command::new(binary())
        .args(["check", "-c", path.to_str().unwrap()])
        .output()
        .expect("scalegate runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
}

#[test]
fn run_stops_when_the_token_variable_is_unset() {
    const VARIABLE: &str = "SCALEGATE_TEST_UNSET_ADMIN_TOKEN";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scalegate.yaml");
    std::fs::write(
        &path,
        format!("admin:\n  address: 127.0.0.1:0\n  auth_token_env: {VARIABLE}\n"),
    )
    .unwrap();
    let mut child = Command::new(binary())
        .args(["run", "-c", path.to_str().unwrap()])
        .env_remove(VARIABLE)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("scalegate starts");
    let exited = poll_until(Duration::from_secs(20), || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !exited {
        let _ = child.kill();
    }
    let output = child.wait_with_output().expect("scalegate exits");
    assert!(exited, "scalegate ran without its admin token");
    assert!(!output.status.success());
    let errors = text(&output.stderr);
    assert!(
        errors.contains(VARIABLE) && errors.contains("not set"),
        "{errors}"
    );
}
