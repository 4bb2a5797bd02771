//! Redirect and fixed-response actions through the real binary (spec §1.5).

mod common;

use common::*;

fn config() -> String {
    format!(
        r##"{ADMIN}listeners:
  - name: web
    address: 127.0.0.1:0
    rules:
      - priority: 10
        conditions:
          - path_pattern: ["/old/*"]
        action:
          redirect:
            path: "/new/#{{path}}"
            status_code: HTTP_301
      - priority: 20
        conditions:
          - path_pattern: ["/secure/*"]
        action:
          redirect:
            protocol: HTTPS
            port: "443"
            status_code: HTTP_302
      - priority: 30
        conditions:
          - path_pattern: ["/elsewhere"]
        action:
          redirect:
            host: "www.#{{host}}"
            query: "from=#{{path}}&#{{query}}"
            status_code: HTTP_302
      - priority: 40
        conditions:
          - path_pattern: ["/teapot"]
        action:
          fixed_response:
            status_code: 418
            content_type: application/json
            message_body: '{{"short":"stout"}}'
      - priority: 50
        conditions:
          - path_pattern: ["/empty"]
        action:
          fixed_response:
            status_code: 204
    default_action:
      fixed_response:
        status_code: 503
        content_type: text/html
        message_body: "<h1>maintenance</h1>"
"##
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_build_exact_locations() {
    let gate = Scalegate::start(&config());
    let address = gate.listener_address("web");
    let port = address.port();
    let base = format!("http://{address}");
    let http = client();

    let redirect = |path: &str, host: &str| {
        let request = http.get(format!("{base}{path}")).header("host", host);
        async move {
            let response = request.send().await.expect("redirect answered");
            let location = response.headers()["location"].to_str().unwrap().to_string();
            (response.status().as_u16(), location)
        }
    };

    // `/old/*` → `/new/#{path}`: protocol, host (lower-cased), port and query are kept.
    assert_eq!(
        redirect("/old/a/b?x=1&y=2", "Shop.Example.com").await,
        (
            301,
            format!("http://shop.example.com:{port}/new/old/a/b?x=1&y=2")
        )
    );
    // No query: no `?`.
    assert_eq!(
        redirect("/old/z", "example.com").await,
        (301, format!("http://example.com:{port}/new/old/z"))
    );
    // HTTP → HTTPS on 443: the canonical form has no port.
    assert_eq!(
        redirect("/secure/login?next=/home", "example.com").await,
        (
            302,
            "https://example.com/secure/login?next=/home".to_string()
        )
    );
    // Host and query built from placeholders.
    assert_eq!(
        redirect("/elsewhere?a=b", "example.com").await,
        (
            302,
            format!("http://www.example.com:{port}/elsewhere?from=elsewhere&a=b")
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_responses_have_status_type_and_body() {
    let gate = Scalegate::start(&config());
    let base = gate.url("web");
    let http = client();

    let response = http.get(format!("{base}/teapot")).send().await.unwrap();
    assert_eq!(response.status(), 418);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.text().await.unwrap(), r#"{"short":"stout"}"#);

    let response = http.get(format!("{base}/empty")).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(response.text().await.unwrap(), "");

    // The default action is a fixed response too.
    let response = http
        .post(format!("{base}/anything"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["content-type"], "text/html");
    assert_eq!(response.text().await.unwrap(), "<h1>maintenance</h1>");
}

#[test]
fn redirect_with_curl_shows_location() {
    require_tool("curl");
    let gate = Scalegate::start(&config());
    let address = gate.listener_address("web");
    let output = std::process::Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "--noproxy",
            "*",
            "-w",
            "%{http_code} %{redirect_url}",
        ])
        .args(["-H", "Host: example.com"])
        .arg(format!("http://{address}/old/page?q=1"))
        .output()
        .expect("curl runs");
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        text,
        format!("301 http://example.com:{}/new/old/page?q=1", address.port())
    );
}
