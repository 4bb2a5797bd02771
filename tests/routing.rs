//! Listener rules through the real binary: every condition type, priorities, the default
//! action, weighted forward and AWSALBTG group stickiness (spec §1.3–1.5, §2.4).

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;

fn fixed(body: &str) -> String {
    format!(
        "fixed_response:\n            status_code: 200\n            content_type: text/plain\n            message_body: \"{body}\""
    )
}

/// One listener whose rules each answer with a fixed body naming the rule, and a default
/// action forwarding to a backend.
fn conditions_config(default: &Backend) -> String {
    let rule = |priority: u32, condition: &str, body: &str| {
        format!(
            "      - priority: {priority}\n        conditions:\n{condition}        action:\n          {}\n",
            fixed(body)
        )
    };
    let mut rules = String::new();
    // Priorities are deliberately listed out of order: 200 before 100.
    rules += &rule(200, "          - path_pattern: [\"/prio\"]\n", "prio-200");
    rules += &rule(100, "          - path_pattern: [\"/prio\"]\n", "prio-100");
    rules += &rule(10, "          - host_header: [\"*.example.com\"]\n", "host");
    rules += &rule(
        20,
        "          - path_pattern: [\"/img/*\", \"/fil?s/x\"]\n",
        "path",
    );
    rules += &rule(
        30,
        "          - http_header:\n              name: X-Env\n              values: [\"can?ry\", \"beta*\"]\n",
        "header",
    );
    rules += &rule(
        40,
        "          - http_request_method: [\"PATCH\"]\n",
        "method",
    );
    rules += &rule(
        50,
        "          - query_string:\n              - key: version\n                value: \"v2*\"\n",
        "query",
    );
    rules += &rule(
        60,
        "          - query_string:\n              - value: keyless\n",
        "query-keyless",
    );
    rules += &rule(
        70,
        "          - path_pattern: [\"/src\"]\n          - source_ip: [\"10.0.0.0/8\"]\n",
        "src-10",
    );
    rules += &rule(
        80,
        "          - path_pattern: [\"/src\"]\n          - source_ip: [\"127.0.0.1/32\"]\n",
        "src-127",
    );
    format!(
        "{ADMIN}listeners:\n  - name: web\n    address: 127.0.0.1:0\n    rules:\n{rules}    default_action:\n      forward:\n        target_group: default\ntarget_groups:\n  - name: default\n    targets: [\"{}\"]\n",
        default.target()
    )
}

/// Sends a request and names what answered: a rule's fixed body, or `backend:<id>`.
async fn who(request: reqwest::RequestBuilder) -> String {
    let response = request.send().await.expect("request completes");
    assert_eq!(response.status(), 200, "{response:?}");
    let backend = response
        .headers()
        .get("x-backend")
        .map(|v| v.to_str().unwrap().to_string());
    let body = response.text().await.expect("body");
    match backend {
        Some(id) => format!("backend:{id}"),
        None => body,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_condition_type_priority_and_default() {
    let default = Backend::start("default");
    let gate = Scalegate::start(&conditions_config(&default));
    let base = gate.url("web");
    let http = client();
    let get = |path: &str| http.get(format!("{base}{path}"));

    // Default action.
    assert_eq!(who(get("/")).await, "backend:default");

    // host_header: wildcard, case-insensitive; `*.example.com` does not match example.com.
    assert_eq!(
        who(get("/").header("host", "api.example.com")).await,
        "host"
    );
    assert_eq!(
        who(get("/").header("host", "API.Example.COM")).await,
        "host"
    );
    assert_eq!(
        who(get("/").header("host", "a.b.example.com")).await,
        "host"
    );
    assert_eq!(
        who(get("/").header("host", "example.com")).await,
        "backend:default"
    );
    assert_eq!(
        who(get("/").header("host", "api.example.org")).await,
        "backend:default"
    );

    // path_pattern: wildcards, case-sensitive, the query is not part of the path.
    assert_eq!(who(get("/img/cat.png")).await, "path");
    assert_eq!(who(get("/img/")).await, "path");
    assert_eq!(who(get("/files/x")).await, "path");
    assert_eq!(who(get("/IMG/cat.png")).await, "backend:default");
    assert_eq!(who(get("/images/cat.png")).await, "backend:default");
    assert_eq!(who(get("/other?p=/img/x")).await, "backend:default");

    // http_header: name and values case-insensitive, `?` and `*` wildcards.
    assert_eq!(who(get("/h").header("X-Env", "canary")).await, "header");
    assert_eq!(who(get("/h").header("x-env", "CANARY")).await, "header");
    assert_eq!(who(get("/h").header("X-Env", "beta-7")).await, "header");
    assert_eq!(
        who(get("/h").header("X-Env", "canaary")).await,
        "backend:default"
    );
    assert_eq!(
        who(get("/h").header("X-Env", "prod")).await,
        "backend:default"
    );

    // http_request_method: exact and case-sensitive.
    assert_eq!(who(http.patch(format!("{base}/m"))).await, "method");
    let lower = reqwest::Method::from_bytes(b"patch").unwrap();
    assert_eq!(
        who(http.request(lower, format!("{base}/m"))).await,
        "backend:default"
    );
    assert_eq!(who(http.put(format!("{base}/m"))).await, "backend:default");

    // query_string: key and value case-insensitive with wildcards; a key-less pair matches
    // any key.
    assert_eq!(who(get("/q?version=v2beta")).await, "query");
    assert_eq!(who(get("/q?a=1&VERSION=V2")).await, "query");
    assert_eq!(who(get("/q?version=v1")).await, "backend:default");
    assert_eq!(who(get("/q?anything=keyless")).await, "query-keyless");
    assert_eq!(who(get("/q?x=1&other=KEYLESS")).await, "query-keyless");
    assert_eq!(who(get("/q?keyless=1")).await, "backend:default");

    // source_ip: the TCP peer is 127.0.0.1, so the /8 rule (higher priority) is skipped.
    assert_eq!(who(get("/src")).await, "src-127");
    // X-Forwarded-For never counts as the source.
    assert_eq!(
        who(get("/src").header("X-Forwarded-For", "10.1.2.3")).await,
        "src-127"
    );

    // Priority: 100 wins over 200 although it is listed later.
    assert_eq!(who(get("/prio")).await, "prio-100");
}

fn weighted_config(a: &Backend, b: &Backend, stickiness: bool) -> String {
    let sticky = if stickiness {
        "\n        stickiness:\n          enabled: true\n          duration_seconds: 60"
    } else {
        ""
    };
    format!(
        "{ADMIN}listeners:\n  - name: web\n    address: 127.0.0.1:0\n    default_action:\n      forward:\n        target_groups:\n          - name: one\n            weight: 1\n          - name: three\n            weight: 3{sticky}\ntarget_groups:\n  - name: one\n    targets: [\"{}\"]\n  - name: three\n    targets: [\"{}\"]\n",
        a.target(),
        b.target()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_forward_follows_weights() {
    let one = Backend::start("one");
    let three = Backend::start("three");
    let gate = Scalegate::start(&weighted_config(&one, &three, false));
    let url = gate.url("web");
    let http = client();
    const TOTAL: usize = 2000;
    const TASKS: usize = 8;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let http = http.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut counts: HashMap<String, usize> = HashMap::new();
            for _ in 0..TOTAL / TASKS {
                if Instant::now() > deadline {
                    break;
                }
                let response = http.get(&url).send().await.expect("request completes");
                assert_eq!(response.status(), 200);
                let id = response.headers()["x-backend"]
                    .to_str()
                    .unwrap()
                    .to_string();
                *counts.entry(id).or_default() += 1;
            }
            counts
        }));
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for task in tasks {
        for (id, n) in task.await.unwrap() {
            *counts.entry(id).or_default() += n;
        }
    }
    let total: usize = counts.values().sum();
    assert_eq!(total, TOTAL, "all requests done before the deadline");
    let share = counts.get("three").copied().unwrap_or(0) as f64 / total as f64;
    assert!(
        (share - 0.75).abs() <= 0.05,
        "weight 3 of 4 got {:.1}% ({counts:?})",
        share * 100.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_stickiness_sets_awsalbtg_and_sticks() {
    let one = Backend::start("one");
    let three = Backend::start("three");
    let gate = Scalegate::start(&weighted_config(&one, &three, true));
    let url = gate.url("web");
    let http = client();

    let first = http.get(&url).send().await.expect("first request");
    assert_eq!(first.status(), 200);
    let chosen = first.headers()["x-backend"].to_str().unwrap().to_string();
    let cookies: Vec<String> = first
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let group_cookie = cookies
        .iter()
        .find(|c| c.starts_with("AWSALBTG="))
        .unwrap_or_else(|| panic!("no AWSALBTG cookie in {cookies:?}"));
    assert!(group_cookie.contains("Expires="), "{group_cookie}");
    let cors = cookies
        .iter()
        .find(|c| c.starts_with("AWSALBTGCORS="))
        .unwrap_or_else(|| panic!("no AWSALBTGCORS cookie in {cookies:?}"));
    assert!(
        cors.contains("SameSite=None") && cors.contains("Secure"),
        "{cors}"
    );
    let pair = group_cookie.split(';').next().unwrap().to_string();

    // With the cookie every request goes to the same group, though weights are 1:3.
    for _ in 0..40 {
        let response = http
            .get(&url)
            .header("cookie", &pair)
            .send()
            .await
            .expect("sticky request");
        assert_eq!(response.headers()["x-backend"], chosen.as_str());
        assert!(
            response
                .headers()
                .get_all("set-cookie")
                .iter()
                .any(|c| c.to_str().unwrap().starts_with("AWSALBTG=")),
            "the cookie is re-issued on every response"
        );
    }

    // Without the cookie both groups get traffic again.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        let response = http.get(&url).send().await.expect("request");
        seen.insert(
            response.headers()["x-backend"]
                .to_str()
                .unwrap()
                .to_string(),
        );
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.len(), 2, "without a cookie both groups are chosen");

    // A forged cookie is ignored (a new group is chosen and a new cookie issued).
    let response = http
        .get(&url)
        .header("cookie", "AWSALBTG=garbage")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert!(response
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("AWSALBTG=")));
}
