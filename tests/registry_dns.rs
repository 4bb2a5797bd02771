//! The embedded registry's DNS server as a stock client sees it (issue 4, "Tests"): `dig`
//! (Debian `dnsutils`) against the real binary. A and SRV answers with the `aa` flag and the
//! configured TTL, the SRV targets' A records in the additional section, NXDOMAIN and NODATA
//! with the SOA in the authority section, TCP, truncation of a large UDP answer and dig's retry
//! over TCP, REFUSED outside the namespaces, at most 8 records per answer, the fail-open answer
//! when no instance is healthy, and the deregistration grace of `docs/discovery.md`.
//!
//! Each test starts its own `scalegate run` with only a registry (no listener), on
//! `127.0.0.1:0`, and reads the DNS port from `GET /api/registry`.

mod common;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::*;

/// The namespace every test serves.
const NAMESPACE: &str = "scalegate.local";

/// A registry-only config: `scalegate.local` with TTL 7 and negative TTL 3; service `app`
/// with two instances from the config, `empty` with none, `fast` with its own 1 s TTL.
fn registry_config() -> String {
    format!(
        "{ADMIN}registry:
  address: 127.0.0.1:0
  namespaces:
    - name: {NAMESPACE}
      ttl_seconds: 7
      negative_ttl_seconds: 3
      services:
        - name: app
          instances:
            - {{id: app-1, address: 127.0.0.1, port: 8081}}
            - {{id: app-2, address: 127.0.0.2, port: 8082}}
        - name: empty
        - name: fast
          ttl_seconds: 1
          instances:
            - {{id: fast-1, address: 127.0.0.3, port: 8083}}
"
    )
}

/// Starts a registry-only scalegate; returns it and its DNS address.
async fn start_registry() -> (Scalegate, SocketAddr) {
    let gate = Scalegate::start(&registry_config());
    let dns = registry_dns_address(&gate).await;
    (gate, dns)
}

/// `127.0.0.<last>:<port>`.
fn loopback(last: u8, port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(127, 0, 0, last), port))
}

/// An instance ID of exactly 60 characters, `i01-xxxx…`, so that few SRV records fill a
/// 512-byte UDP answer.
fn long_id(index: usize) -> String {
    let id = format!("i{index:02}-{}", "x".repeat(56));
    assert_eq!(id.len(), 60);
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_answers_are_authoritative_with_the_configured_ttl() {
    let (_gate, dns) = start_registry().await;

    let answer = dig(dns, &["app.scalegate.local", "A"]);
    assert_eq!(answer.status, "NOERROR", "{}", answer.text);
    assert!(answer.has_flag("aa"), "no aa flag: {}", answer.text);
    assert_eq!(answer.transport, "UDP");
    assert_eq!(answer.answer_data("A"), ["127.0.0.1", "127.0.0.2"]);
    for record in &answer.answer {
        assert_eq!(record.name, "app.scalegate.local.");
        assert_eq!(
            record.ttl, 7,
            "the namespace's ttl_seconds: {}",
            answer.text
        );
    }

    // A service's own TTL wins over the namespace's.
    let fast = dig(dns, &["fast.scalegate.local", "A"]);
    assert_eq!(fast.answer_data("A"), ["127.0.0.3"]);
    assert_eq!(fast.answer[0].ttl, 1, "{}", fast.text);

    // Each instance has its own name, the target of its SRV record.
    let instance = dig(dns, &["app-2.app.scalegate.local", "A"]);
    assert!(instance.has_flag("aa"));
    assert_eq!(instance.answer_data("A"), ["127.0.0.2"]);

    // Names are case-insensitive.
    let upper = dig(dns, &["APP.ScaleGate.Local", "A"]);
    assert_eq!(upper.answer_data("A"), ["127.0.0.1", "127.0.0.2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_answers_carry_the_instances_a_records_in_the_additional_section() {
    let (_gate, dns) = start_registry().await;

    for name in ["_app._tcp.app.scalegate.local", "app.scalegate.local"] {
        let answer = dig(dns, &[name, "SRV"]);
        assert_eq!(answer.status, "NOERROR", "{}", answer.text);
        assert!(answer.has_flag("aa"), "{}", answer.text);
        assert_eq!(
            answer.answer_data("SRV"),
            [
                "1 1 8081 app-1.app.scalegate.local.",
                "1 1 8082 app-2.app.scalegate.local."
            ],
            "{name}: {}",
            answer.text
        );
        assert!(answer.answer.iter().all(|record| record.ttl == 7));
        let mut additional: Vec<(String, String)> = answer
            .additional
            .iter()
            .filter(|record| record.record_type == "A")
            .map(|record| (record.name.clone(), record.data.clone()))
            .collect();
        additional.sort();
        assert_eq!(
            additional,
            [
                (
                    "app-1.app.scalegate.local.".to_string(),
                    "127.0.0.1".to_string()
                ),
                (
                    "app-2.app.scalegate.local.".to_string(),
                    "127.0.0.2".to_string()
                ),
            ],
            "{name}: {}",
            answer.text
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_names_are_nxdomain_and_missing_types_nodata_with_the_soa() {
    let (_gate, dns) = start_registry().await;

    // A name that does not exist, and a declared service without instances.
    for name in ["nope.scalegate.local", "empty.scalegate.local"] {
        let answer = dig(dns, &[name, "A"]);
        assert_eq!(answer.status, "NXDOMAIN", "{name}: {}", answer.text);
        assert!(answer.has_flag("aa"), "{}", answer.text);
        assert!(answer.answer.is_empty(), "{}", answer.text);
        assert_soa(&answer, name);
    }

    // The name exists, but not with this type: NOERROR, no answer, SOA (NODATA).
    let answer = dig(dns, &["app.scalegate.local", "AAAA"]);
    assert_eq!(answer.status, "NOERROR", "{}", answer.text);
    assert!(answer.has_flag("aa"));
    assert!(answer.answer.is_empty(), "{}", answer.text);
    assert_soa(&answer, "app.scalegate.local AAAA");
}

/// The authority section holds the namespace's SOA, whose TTL and minimum are the namespace's
/// `negative_ttl_seconds` (3): how long a resolver may cache the negative answer.
fn assert_soa(answer: &DigAnswer, what: &str) {
    assert_eq!(answer.authority.len(), 1, "{what}: {}", answer.text);
    let soa = &answer.authority[0];
    assert_eq!(soa.record_type, "SOA", "{what}: {}", answer.text);
    assert_eq!(soa.name, "scalegate.local.");
    assert_eq!(soa.ttl, 3, "{what}: {}", answer.text);
    let minimum = soa.data.split_whitespace().last().unwrap_or("");
    assert_eq!(minimum, "3", "SOA minimum of {what}: {}", answer.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_queries_get_the_same_authoritative_answers() {
    let (gate, dns) = start_registry().await;

    let answer = dig(dns, &["+tcp", "app.scalegate.local", "A"]);
    assert_eq!(answer.transport, "TCP", "{}", answer.text);
    assert!(answer.has_flag("aa"));
    assert_eq!(answer.answer_data("A"), ["127.0.0.1", "127.0.0.2"]);

    let srv = dig(dns, &["+tcp", "_app._tcp.app.scalegate.local", "SRV"]);
    assert_eq!(srv.transport, "TCP");
    assert_eq!(srv.answer_data("SRV").len(), 2);
    assert_eq!(
        srv.additional
            .iter()
            .filter(|r| r.record_type == "A")
            .count(),
        2
    );

    let missing = dig(dns, &["+tcp", "nope.scalegate.local", "A"]);
    assert_eq!(missing.status, "NXDOMAIN");
    assert_eq!(missing.authority[0].record_type, "SOA");

    let text = metrics_text(&gate).await;
    let tcp = metric_sum(
        &text,
        "scalegate_registry_queries_total",
        &[("protocol", "tcp")],
    );
    assert!(tcp >= 3.0, "TCP queries not counted:\n{text}");
    let nxdomain = metric_sum(
        &text,
        "scalegate_registry_queries_total",
        &[("protocol", "tcp"), ("rcode", "NXDOMAIN")],
    );
    assert!(nxdomain >= 1.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_udp_answer_loses_its_additionals_then_is_truncated_and_dig_retries_over_tcp() {
    let (gate, dns) = start_registry().await;
    for index in 1..=8 {
        register_instance(
            &gate,
            NAMESPACE,
            "big",
            &long_id(index),
            loopback(10 + index as u8, 9000 + index as u16),
        )
        .await;
    }
    // 4 such instances fit 512 bytes only without their additional A records.
    for index in 1..=4 {
        register_instance(
            &gate,
            NAMESPACE,
            "mid",
            &long_id(index),
            loopback(30 + index as u8, 9100 + index as u16),
        )
        .await;
    }

    // Without EDNS a UDP answer has 512 bytes: the additional section goes first.
    let mid = dig(
        dns,
        &["+noedns", "+ignore", "_mid._tcp.mid.scalegate.local", "SRV"],
    );
    assert_eq!(mid.transport, "UDP");
    assert!(
        !mid.has_flag("tc"),
        "fits without additionals: {}",
        mid.text
    );
    assert_eq!(mid.answer_data("SRV").len(), 4, "{}", mid.text);
    assert!(mid.additional.is_empty(), "{}", mid.text);

    // Eight do not fit at all: TC, and dig told to ignore it shows the truncated answer.
    let truncated = dig(
        dns,
        &["+noedns", "+ignore", "_big._tcp.big.scalegate.local", "SRV"],
    );
    assert_eq!(truncated.transport, "UDP");
    assert!(truncated.has_flag("tc"), "no tc flag: {}", truncated.text);
    assert!(truncated.has_flag("aa"), "{}", truncated.text);

    // Without +ignore, dig retries over TCP and gets all eight with their A records.
    let full = dig(dns, &["+noedns", "_big._tcp.big.scalegate.local", "SRV"]);
    assert!(
        full.text.contains("Truncated, retrying in TCP mode"),
        "{}",
        full.text
    );
    assert_eq!(full.transport, "TCP", "{}", full.text);
    assert!(!full.has_flag("tc"));
    let ports: BTreeSet<String> = full
        .answer_data("SRV")
        .iter()
        .map(|data| data.split_whitespace().nth(2).unwrap_or("").to_string())
        .collect();
    assert_eq!(
        ports,
        (9001..=9008).map(|port| port.to_string()).collect(),
        "{}",
        full.text
    );
    assert_eq!(
        full.additional
            .iter()
            .filter(|record| record.record_type == "A")
            .count(),
        8,
        "{}",
        full.text
    );
    // With EDNS (dig's default 1232 bytes) the same answer fits UDP whole.
    let edns = dig(dns, &["_big._tcp.big.scalegate.local", "SRV"]);
    assert_eq!(edns.transport, "UDP");
    assert!(!edns.has_flag("tc"), "{}", edns.text);
    assert_eq!(edns.answer_data("SRV").len(), 8);

    let text = metrics_text(&gate).await;
    let truncations = metric_sum(&text, "scalegate_registry_truncated_total", &[]);
    assert!(truncations >= 2.0, "truncations not counted:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_outside_the_namespaces_are_refused() {
    let (gate, dns) = start_registry().await;
    for name in ["example.com", "myscalegate.local", "local"] {
        let answer = dig(dns, &[name, "A"]);
        assert_eq!(answer.status, "REFUSED", "{name}: {}", answer.text);
        assert!(answer.answer.is_empty());
        assert!(!answer.has_flag("aa"), "not authoritative for {name}");
    }
    let text = metrics_text(&gate).await;
    assert!(
        metric_sum(
            &text,
            "scalegate_registry_queries_total",
            &[("rcode", "REFUSED")]
        ) >= 3.0,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_eight_healthy_instances_are_answered_eight_at_a_time_in_rotation() {
    let (gate, dns) = start_registry().await;
    let all: BTreeSet<String> = (1..=10).map(|i| format!("127.0.0.{}", 10 + i)).collect();
    for index in 1..=10u8 {
        register_instance(
            &gate,
            NAMESPACE,
            "many",
            &format!("many-{index}"),
            loopback(10 + index, 7000 + u16::from(index)),
        )
        .await;
    }
    let mut seen = BTreeSet::new();
    for _ in 0..10 {
        let answer = dig(dns, &["many.scalegate.local", "A"]);
        let data = answer.answer_data("A");
        assert_eq!(data.len(), 8, "{}", answer.text);
        let distinct: BTreeSet<String> = data.into_iter().collect();
        assert_eq!(distinct.len(), 8, "duplicates: {}", answer.text);
        seen.extend(distinct);
        if seen == all {
            break;
        }
    }
    assert_eq!(
        seen, all,
        "the window must rotate so every instance is answered"
    );

    let srv = dig(dns, &["_many._tcp.many.scalegate.local", "SRV"]);
    assert_eq!(srv.answer_data("SRV").len(), 8, "{}", srv.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unhealthy_instances_are_answered_only_when_none_is_healthy() {
    let (gate, dns) = start_registry().await;
    for index in 1..=3u8 {
        register_instance(
            &gate,
            NAMESPACE,
            "flaky",
            &format!("flaky-{index}"),
            loopback(40 + index, 8000),
        )
        .await;
    }
    let answer = |dns| dig(dns, &["flaky.scalegate.local", "A"]).answer_data("A");
    assert_eq!(answer(dns), ["127.0.0.41", "127.0.0.42", "127.0.0.43"]);

    set_instance_health(&gate, NAMESPACE, "flaky", "flaky-1", "UNHEALTHY").await;
    assert_eq!(answer(dns), ["127.0.0.42", "127.0.0.43"]);

    // None healthy: Cloud Map's multivalue answer fails open, with the unhealthy ones.
    set_instance_health(&gate, NAMESPACE, "flaky", "flaky-2", "UNHEALTHY").await;
    set_instance_health(&gate, NAMESPACE, "flaky", "flaky-3", "UNHEALTHY").await;
    let fail_open = dig(dns, &["flaky.scalegate.local", "A"]);
    assert_eq!(fail_open.status, "NOERROR");
    assert_eq!(
        fail_open.answer_data("A"),
        ["127.0.0.41", "127.0.0.42", "127.0.0.43"],
        "{}",
        fail_open.text
    );

    // One back: only it.
    set_instance_health(&gate, NAMESPACE, "flaky", "flaky-2", "HEALTHY").await;
    assert_eq!(answer(dns), ["127.0.0.42"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deregistered_instance_leaves_the_answers_but_its_own_name_resolves_for_one_ttl() {
    let (gate, dns) = start_registry().await;

    // TTL 7: the instance must stay reachable by its own name that long (containers-roadmap#343).
    let answer = deregister_instance(&gate, NAMESPACE, "app", "app-2").await;
    assert_eq!(
        answer["keep_reachable_for_seconds"], 7,
        "the namespace's TTL"
    );
    assert_eq!(
        dig(dns, &["app.scalegate.local", "A"]).answer_data("A"),
        ["127.0.0.1"],
        "gone from the service's answers at once"
    );
    let srv = dig(dns, &["_app._tcp.app.scalegate.local", "SRV"]);
    assert_eq!(
        srv.answer_data("SRV"),
        ["1 1 8081 app-1.app.scalegate.local."]
    );
    let own = dig(dns, &["app-2.app.scalegate.local", "A"]);
    assert_eq!(own.answer_data("A"), ["127.0.0.2"], "{}", own.text);
    let (status, listed) = admin_json(&gate, reqwest::Method::GET, "/api/registry", None).await;
    assert_eq!(status, 200);
    let app_2 = &listed["namespaces"][0]["services"][0]["instances"]
        .as_array()
        .and_then(|instances| {
            instances
                .iter()
                .find(|instance| instance["instance_id"] == "app-2")
                .cloned()
        })
        .unwrap_or_default();
    assert_eq!(app_2["deregistering"], true, "{listed}");

    // TTL 1: after it, the name is gone too.
    register_instance(&gate, NAMESPACE, "fast", "fast-2", loopback(4, 8084)).await;
    assert_eq!(
        dig(dns, &["fast.scalegate.local", "A"]).answer_data("A"),
        ["127.0.0.3", "127.0.0.4"]
    );
    let answer = deregister_instance(&gate, NAMESPACE, "fast", "fast-2").await;
    assert_eq!(answer["keep_reachable_for_seconds"], 1, "the service's TTL");
    let gone = poll_until(Duration::from_secs(10), || {
        dig(dns, &["fast-2.fast.scalegate.local", "A"]).status == "NXDOMAIN"
    });
    assert!(gone, "fast-2's own name still resolves long after one TTL");
}
