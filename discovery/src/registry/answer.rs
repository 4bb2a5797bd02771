//! DNS answers as a pure function of the registry's state and one query.
//!
//! Kept apart from the sockets so that every rule (authority, multivalue, SRV with additional
//! records, NXDOMAIN vs NODATA, the SOA, truncation) is tested without a network.
//!
//! Names under a namespace `ns`:
//!
//! | name                 | records                                                       |
//! |----------------------|---------------------------------------------------------------|
//! | `ns`                 | SOA, NS `ns.<ns>.`                                            |
//! | `ns.<ns>`            | A/AAAA of the server's address (unless a service is so named) |
//! | `svc.ns`             | A/AAAA (multivalue, up to 8) and SRV (as Cloud Map publishes) |
//! | `_tcp.svc.ns`        | nothing (exists because of the SRV name under it)             |
//! | `_svc._tcp.svc.ns`   | SRV, with the targets' A/AAAA in the additional section       |
//! | `id.svc.ns`          | A/AAAA of that instance, also during its deregistration grace |

use std::net::IpAddr;
use std::time::Instant;

use hickory_proto::op::{Edns, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, NS, SOA, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::multivalue_answer;
use super::store::{Entry, Namespace, Service, State};
use super::ServiceInstance;

/// The largest UDP payload we accept from a client's EDNS advertisement, and the one we
/// advertise: hickory's UDP receive buffer is 4096 bytes.
pub(crate) const UDP_PAYLOAD_CAP: u16 = 4096;
/// A UDP response's limit without EDNS (RFC 1035 §4.2.1).
pub(crate) const UDP_PLAIN_LIMIT: u16 = 512;
/// SOA timers: only secondaries use them, and there are none; conventional values.
const SOA_REFRESH: i32 = 3600;
const SOA_RETRY: i32 = 600;
const SOA_EXPIRE: i32 = 86400;

/// What one query's answer depends on besides the state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AnswerContext {
    /// Where the multivalue window starts (advanced per query by the registry).
    pub(crate) rotation: usize,
    /// Decides which deregistered instances are still in their grace period.
    pub(crate) now: Instant,
    /// The DNS server's own address, published as `ns.<namespace>` when it is specific.
    pub(crate) server_ip: Option<IpAddr>,
}

/// A response before encoding: header, sections and the OPT record.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub(crate) metadata: Metadata,
    pub(crate) answers: Vec<Record>,
    pub(crate) authorities: Vec<Record>,
    pub(crate) additionals: Vec<Record>,
    pub(crate) edns: Option<Edns>,
}

/// What a name in a zone is.
enum Node<'a> {
    Apex,
    NameServer,
    Service(&'a Service),
    /// `_tcp.svc.ns`: an empty non-terminal.
    TcpBranch,
    SrvName(&'a Service),
    Instance(&'a Service, &'a Entry),
    Missing,
}

/// The payload limit a UDP response must fit: 512 without EDNS, else the client's
/// advertisement between 512 and [`UDP_PAYLOAD_CAP`].
pub(crate) fn udp_limit(request_edns: Option<&Edns>) -> usize {
    let limit = request_edns.map_or(UDP_PLAIN_LIMIT, |edns| {
        edns.max_payload().clamp(UDP_PLAIN_LIMIT, UDP_PAYLOAD_CAP)
    });
    usize::from(limit)
}

/// Answers one query (the request's header, questions and OPT record) from `state`.
///
/// Authoritative (`aa`) for names in a namespace, REFUSED for others; RA clear; RD and the ID
/// echoed from the request. An OPT record is returned when the request had one.
pub(crate) fn respond(
    state: &State,
    request: &Metadata,
    queries: &[&Query],
    request_edns: Option<&Edns>,
    context: &AnswerContext,
) -> Response {
    let mut response = Response {
        metadata: Metadata::response_from_request(request),
        answers: Vec::new(),
        authorities: Vec::new(),
        additionals: Vec::new(),
        edns: request_edns.map(|_| {
            let mut edns = Edns::new();
            edns.set_max_payload(UDP_PAYLOAD_CAP);
            edns
        }),
    };
    let code = &mut response.metadata.response_code;
    if request_edns.is_some_and(|edns| edns.version() > 0) {
        *code = ResponseCode::BADVERS;
        return response;
    }
    if request.op_code != OpCode::Query {
        *code = ResponseCode::NotImp;
        return response;
    }
    let [query] = queries else {
        *code = ResponseCode::FormErr;
        return response;
    };
    let labels: Vec<String> = query
        .name()
        .iter()
        .map(|label| String::from_utf8_lossy(label).to_ascii_lowercase())
        .collect();
    // Zone transfers are refused: the registry has no secondaries and its zones change by
    // the second; resolvers query names.
    let transfer = matches!(query.query_type(), RecordType::AXFR | RecordType::IXFR);
    let zone = match state.zone_for(&labels) {
        Some(zone) if query.query_class() == DNSClass::IN && !transfer => zone,
        _ => {
            *code = ResponseCode::Refused;
            return response;
        }
    };
    response.metadata.authoritative = true;
    let relative = &labels[..labels.len() - zone.labels.len()];
    let node = locate(zone, relative, context.now);
    if matches!(node, Node::Missing) {
        response.metadata.response_code = ResponseCode::NXDomain;
    } else {
        add_records(zone, &node, query, state.serial, context, &mut response);
    }
    if response.answers.is_empty() {
        // NXDOMAIN or NODATA: the SOA tells resolvers how long to cache the absence.
        response
            .authorities
            .push(soa_record(zone, zone.apex.clone(), state.serial));
    }
    response
}

/// Finds what `relative` (the query's labels above the zone, lowercase) names.
fn locate<'a>(zone: &'a Namespace, relative: &[String], now: Instant) -> Node<'a> {
    let live_service = |name: &str| {
        zone.services
            .get(name)
            .filter(|service| service.is_live(now))
    };
    match relative {
        [] => Node::Apex,
        [service] => match live_service(service) {
            Some(service) => Node::Service(service),
            None if service == "ns" => Node::NameServer,
            None => Node::Missing,
        },
        [first, service] => match live_service(service) {
            Some(_) if first == "_tcp" => Node::TcpBranch,
            Some(found) => found
                .instances
                .get(first)
                .filter(|entry| entry.is_live(now))
                .map_or(Node::Missing, |entry| Node::Instance(found, entry)),
            None => Node::Missing,
        },
        [first, tcp, service] if tcp == "_tcp" && first.strip_prefix('_') == Some(service) => {
            live_service(service).map_or(Node::Missing, Node::SrvName)
        }
        _ => Node::Missing,
    }
}

fn wants(query_type: RecordType, record_type: RecordType) -> bool {
    query_type == record_type || query_type == RecordType::ANY
}

/// Fills the answer (and additional) sections for an existing name; leaves them empty for
/// NODATA.
fn add_records(
    zone: &Namespace,
    node: &Node<'_>,
    query: &Query,
    serial: u32,
    context: &AnswerContext,
    response: &mut Response,
) {
    let owner = query.name().clone();
    let query_type = query.query_type();
    match node {
        Node::Apex => {
            if wants(query_type, RecordType::SOA) {
                response
                    .answers
                    .push(soa_record(zone, owner.clone(), serial));
            }
            if wants(query_type, RecordType::NS) {
                let host = name_server(zone);
                response.answers.push(Record::from_rdata(
                    owner,
                    zone.ttl,
                    RData::NS(NS(host.clone())),
                ));
                if let Some(address) = published_server_ip(context) {
                    response
                        .additionals
                        .push(address_record(host, address, zone.ttl));
                }
            }
        }
        Node::NameServer => {
            if let Some(address) = published_server_ip(context) {
                if wants(query_type, address_type(address)) {
                    response
                        .answers
                        .push(address_record(owner, address, zone.ttl));
                }
            }
        }
        Node::Service(service) => {
            let ttl = zone.service_ttl(service);
            for (family, is_family) in [
                (RecordType::A, IpAddr::is_ipv4 as fn(&IpAddr) -> bool),
                (RecordType::AAAA, IpAddr::is_ipv6),
            ] {
                if wants(query_type, family) {
                    let pool = service.active().filter(|i| is_family(&i.address));
                    for instance in multivalue_answer(pool, context.rotation) {
                        response
                            .answers
                            .push(address_record(owner.clone(), instance.address, ttl));
                    }
                }
            }
            if wants(query_type, RecordType::SRV) {
                add_srv(zone, service, owner, context, response);
            }
        }
        Node::SrvName(service) => {
            if wants(query_type, RecordType::SRV) {
                add_srv(zone, service, owner, context, response);
            }
        }
        Node::Instance(service, entry) => {
            let address = entry.instance.address;
            if wants(query_type, address_type(address)) {
                let ttl = zone.service_ttl(service);
                response.answers.push(address_record(owner, address, ttl));
            }
        }
        Node::TcpBranch | Node::Missing => {}
    }
}

/// SRV records for up to eight instances (Cloud Map's priority 1, weight 1, target
/// `id.svc.ns.`) and the targets' addresses in the additional section, so clients need no
/// second query.
fn add_srv(
    zone: &Namespace,
    service: &Service,
    owner: Name,
    context: &AnswerContext,
    response: &mut Response,
) {
    let ttl = zone.service_ttl(service);
    let chosen: Vec<&ServiceInstance> = multivalue_answer(service.active(), context.rotation);
    for instance in chosen {
        let Some(entry) = service
            .instances
            .get(&instance.instance_id.to_ascii_lowercase())
        else {
            continue;
        };
        response.answers.push(Record::from_rdata(
            owner.clone(),
            ttl,
            RData::SRV(SRV::new(1, 1, instance.port, entry.dns_name.clone())),
        ));
        response.additionals.push(address_record(
            entry.dns_name.clone(),
            instance.address,
            ttl,
        ));
    }
}

fn address_type(address: IpAddr) -> RecordType {
    match address {
        IpAddr::V4(_) => RecordType::A,
        IpAddr::V6(_) => RecordType::AAAA,
    }
}

fn address_record(name: Name, address: IpAddr, ttl: u32) -> Record {
    let data = match address {
        IpAddr::V4(address) => RData::A(A(address)),
        IpAddr::V6(address) => RData::AAAA(AAAA(address)),
    };
    Record::from_rdata(name, ttl, data)
}

/// The server's address when it is a specific one (not `0.0.0.0`/`::`).
fn published_server_ip(context: &AnswerContext) -> Option<IpAddr> {
    context.server_ip.filter(|ip| !ip.is_unspecified())
}

/// `ns.<namespace>.`, the zone's (only) name server.
fn name_server(zone: &Namespace) -> Name {
    zone.apex
        .prepend_label("ns")
        .unwrap_or_else(|_| zone.apex.clone())
}

/// The zone's SOA at `owner`: serial = the registry's change counter, minimum and own TTL =
/// the negative TTL (RFC 2308: resolvers cache an absence for the smaller of the two).
fn soa_record(zone: &Namespace, owner: Name, serial: u32) -> Record {
    let hostmaster = zone
        .apex
        .prepend_label("hostmaster")
        .unwrap_or_else(|_| zone.apex.clone());
    Record::from_rdata(
        owner,
        zone.negative_ttl,
        RData::SOA(SOA::new(
            name_server(zone),
            hostmaster,
            serial,
            SOA_REFRESH,
            SOA_RETRY,
            SOA_EXPIRE,
            zone.negative_ttl,
        )),
    )
}

/// Makes `response` fit in `limit` bytes (as measured by `encoded_len`): first without its
/// additional section (resolvers can ask for those addresses), then, when the answer still does
/// not fit, as an empty answer with TC set so that the client retries over TCP. Returns whether
/// TC was set.
///
/// Why not hickory's own truncation: it cuts the answer section mid-way (a partial RRset with
/// TC) and sets TC when only additional records are dropped, which sends clients to TCP for
/// nothing.
pub(crate) fn fit_within(
    response: &mut Response,
    limit: usize,
    question_bytes: usize,
    encoded_len: impl Fn(&Response) -> usize,
) -> bool {
    // Encoding only to measure cost as much as answering (bench/dns.sh); most answers are
    // far below the limit even uncompressed, which a sum of sizes shows without encoding.
    if size_upper_bound(response, question_bytes) <= limit || encoded_len(response) <= limit {
        return false;
    }
    response.additionals.clear();
    if encoded_len(response) <= limit {
        return false;
    }
    response.answers.clear();
    response.authorities.clear();
    response.metadata.truncation = true;
    true
}

/// The wire length of `name` without compression.
pub(crate) fn name_wire_len(name: &Name) -> usize {
    name.iter().map(|label| label.len() + 1).sum::<usize>() + 1
}

/// An upper bound on the encoded size of `response` (no compression assumed), or
/// `usize::MAX` when a record type has no cheap bound.
fn size_upper_bound(response: &Response, question_bytes: usize) -> usize {
    const HEADER: usize = 12;
    // Owner name pointer-free, then type, class, TTL and RDLENGTH.
    const RECORD_FIXED: usize = 10;
    // The OPT record: root name, fixed fields, and room for options scalegate never adds.
    const OPT: usize = 11 + 64;
    let record_bound = |record: &Record| -> usize {
        let data = match &record.data {
            RData::A(_) => 4,
            RData::AAAA(_) => 16,
            RData::SRV(srv) => 6 + name_wire_len(&srv.target),
            RData::NS(ns) => name_wire_len(&ns.0),
            RData::SOA(soa) => name_wire_len(&soa.mname) + name_wire_len(&soa.rname) + 20,
            _ => return usize::MAX / 4,
        };
        name_wire_len(&record.name) + RECORD_FIXED + data
    };
    let records: usize = response
        .answers
        .iter()
        .chain(&response.authorities)
        .chain(&response.additionals)
        .map(record_bound)
        .fold(0, usize::saturating_add);
    HEADER
        .saturating_add(question_bytes)
        .saturating_add(records)
        .saturating_add(if response.edns.is_some() { OPT } else { 0 })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use hickory_proto::op::{Message, MessageType};

    use super::*;
    use crate::registry::store::tests::{config, instance};
    use crate::registry::store::InstanceSource;
    use crate::registry::HealthStatus;

    /// The response as a hickory [`Message`] to `query`, to measure and inspect it.
    pub(crate) fn to_message(query: &Query, response: &Response) -> Message {
        let mut message = Message::new(
            response.metadata.id,
            MessageType::Response,
            response.metadata.op_code,
        );
        message.metadata = response.metadata;
        message.add_query(query.clone());
        message.answers = response.answers.clone();
        message.authorities = response.authorities.clone();
        message.additionals = response.additionals.clone();
        message.edns = response.edns.clone();
        message
    }

    fn question_bytes(query: &Query) -> usize {
        name_wire_len(query.name()) + 4
    }

    #[test]
    fn the_size_bound_is_never_below_the_encoded_size() {
        let fixture = Fixture::new();
        for (name, record_type) in [
            ("web.scalegate.local.", RecordType::A),
            ("web.scalegate.local.", RecordType::SRV),
            ("_web._tcp.web.scalegate.local.", RecordType::SRV),
            ("nope.scalegate.local.", RecordType::A),
            ("scalegate.local.", RecordType::SOA),
            ("scalegate.local.", RecordType::NS),
        ] {
            let query = Query::query(Name::from_ascii(name).unwrap(), record_type);
            let response = fixture.ask(name, record_type);
            assert!(
                size_upper_bound(&response, question_bytes(&query))
                    >= encoded_len(&query)(&response),
                "{name} {record_type}"
            );
        }
    }

    fn encoded_len(query: &Query) -> impl Fn(&Response) -> usize + '_ {
        move |response| to_message(query, response).to_vec().expect("encodes").len()
    }

    struct Fixture {
        state: State,
        rotation: usize,
        now: Instant,
    }

    impl Fixture {
        fn new() -> Fixture {
            let mut state = State::default();
            state.configure(
                &config(vec![scalegate_config::RegistryService {
                    name: "empty".to_string(),
                    ttl_seconds: None,
                    instances: Vec::new(),
                }]),
                Instant::now(),
            );
            Fixture {
                state,
                rotation: 0,
                now: Instant::now(),
            }
        }

        fn register(&mut self, service: &str, id: &str, address: &str, port: u16) {
            self.state
                .register(
                    "scalegate.local",
                    service,
                    instance(id, address, port),
                    InstanceSource::Api,
                )
                .unwrap();
        }

        fn ask_with(&self, name: &str, query_type: RecordType, edns: Option<&Edns>) -> Response {
            let query = Query::query(Name::from_ascii(name).unwrap(), query_type);
            let mut request = Metadata::new(4242, MessageType::Query, OpCode::Query);
            request.recursion_desired = true;
            let context = AnswerContext {
                rotation: self.rotation,
                now: self.now,
                server_ip: Some(IpAddr::from([127, 0, 0, 1])),
            };
            respond(&self.state, &request, &[&query], edns, &context)
        }

        fn ask(&self, name: &str, query_type: RecordType) -> Response {
            self.ask_with(name, query_type, None)
        }
    }

    fn addresses(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .filter_map(|record| match &record.data {
                RData::A(a) => Some(a.0.to_string()),
                RData::AAAA(aaaa) => Some(aaaa.0.to_string()),
                _ => None,
            })
            .collect()
    }

    fn assert_soa(response: &Response, serial: u32) {
        let [soa] = response.authorities.as_slice() else {
            panic!("one SOA in authority: {:?}", response.authorities);
        };
        assert_eq!(soa.name.to_ascii(), "scalegate.local.");
        assert_eq!(soa.ttl, 7, "negative TTL");
        let RData::SOA(data) = &soa.data else {
            panic!("not an SOA: {soa:?}");
        };
        assert_eq!(data.mname.to_ascii(), "ns.scalegate.local.");
        assert_eq!(data.rname.to_ascii(), "hostmaster.scalegate.local.");
        assert_eq!(
            (
                data.serial,
                data.refresh,
                data.retry,
                data.expire,
                data.minimum
            ),
            (serial, 3600, 600, 86400, 7)
        );
    }

    #[test]
    fn a_query_is_authoritative_echoes_id_and_rd_and_uses_the_service_ttl() {
        let mut fixture = Fixture::new();
        fixture.register("web", "a", "10.0.0.1", 8080);
        fixture.register("web", "b", "10.0.0.2", 8080);
        let response = fixture.ask("WEB.Scalegate.Local.", RecordType::A);
        let header = response.metadata;
        assert_eq!(header.response_code, ResponseCode::NoError);
        assert!(header.authoritative && header.recursion_desired && !header.recursion_available);
        assert_eq!(
            (header.id, header.message_type),
            (4242, MessageType::Response)
        );
        assert_eq!(addresses(&response.answers), ["10.0.0.1", "10.0.0.2"]);
        assert!(response.answers.iter().all(|r| r.ttl == 5));
        assert_eq!(response.answers[0].name.to_ascii(), "WEB.Scalegate.Local.");
        assert!(response.authorities.is_empty() && response.edns.is_none());
    }

    #[test]
    fn multivalue_prefers_healthy_falls_back_and_rotates() {
        let mut fixture = Fixture::new();
        for n in 1..=10 {
            fixture.register("web", &format!("t{n:02}"), &format!("10.0.0.{n}"), 80);
        }
        let first = addresses(&fixture.ask("web.scalegate.local.", RecordType::A).answers);
        assert_eq!(first.len(), 8);
        fixture.rotation = 1;
        let second = addresses(&fixture.ask("web.scalegate.local.", RecordType::A).answers);
        assert_eq!(second.len(), 8);
        assert_ne!(first, second, "the window rotates");
        for n in 2..=10 {
            fixture
                .state
                .set_health(
                    "scalegate.local",
                    "web",
                    &format!("t{n:02}"),
                    HealthStatus::Unhealthy,
                )
                .unwrap();
        }
        assert_eq!(
            addresses(&fixture.ask("web.scalegate.local.", RecordType::A).answers),
            ["10.0.0.1"]
        );
        fixture
            .state
            .set_health("scalegate.local", "web", "t01", HealthStatus::Unhealthy)
            .unwrap();
        assert_eq!(
            fixture
                .ask("web.scalegate.local.", RecordType::A)
                .answers
                .len(),
            8,
            "fail-open: up to 8 unhealthy ones"
        );
    }

    #[test]
    fn srv_at_both_names_with_targets_in_the_additional_section() {
        let mut fixture = Fixture::new();
        fixture.register("web", "a", "10.0.0.1", 8080);
        fixture.register("web", "b", "fd00::2", 8081);
        for name in ["_web._tcp.web.scalegate.local.", "web.scalegate.local."] {
            let response = fixture.ask(name, RecordType::SRV);
            assert!(response.metadata.authoritative);
            let srv: Vec<(u16, u16, u16, String)> = response
                .answers
                .iter()
                .map(|record| match &record.data {
                    RData::SRV(srv) => (srv.priority, srv.weight, srv.port, srv.target.to_ascii()),
                    other => panic!("not SRV: {other:?}"),
                })
                .collect();
            assert_eq!(
                srv,
                [
                    (1, 1, 8080, "a.web.scalegate.local.".to_string()),
                    (1, 1, 8081, "b.web.scalegate.local.".to_string()),
                ]
            );
            let additional: Vec<(String, String)> = response
                .additionals
                .iter()
                .map(|r| {
                    (
                        r.name.to_ascii(),
                        addresses(std::slice::from_ref(r))[0].clone(),
                    )
                })
                .collect();
            assert_eq!(
                additional,
                [
                    ("a.web.scalegate.local.".to_string(), "10.0.0.1".to_string()),
                    ("b.web.scalegate.local.".to_string(), "fd00::2".to_string()),
                ]
            );
        }
    }

    #[test]
    fn instance_names_answer_their_own_address() {
        let mut fixture = Fixture::new();
        fixture.register("web", "Task-A", "10.0.0.1", 80);
        let response = fixture.ask("task-a.web.scalegate.local.", RecordType::A);
        assert_eq!(addresses(&response.answers), ["10.0.0.1"]);
        let nodata = fixture.ask("task-a.web.scalegate.local.", RecordType::AAAA);
        assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
        assert!(nodata.answers.is_empty());
        assert_soa(&nodata, fixture.state.serial);
    }

    #[test]
    fn nodata_for_names_without_the_asked_type() {
        let mut fixture = Fixture::new();
        fixture.register("web", "a", "10.0.0.1", 80);
        for (name, query_type) in [
            ("web.scalegate.local.", RecordType::AAAA),
            ("web.scalegate.local.", RecordType::TXT),
            ("_web._tcp.web.scalegate.local.", RecordType::A),
            ("_tcp.web.scalegate.local.", RecordType::SRV),
            ("scalegate.local.", RecordType::A),
        ] {
            let response = fixture.ask(name, query_type);
            assert_eq!(
                response.metadata.response_code,
                ResponseCode::NoError,
                "{name} {query_type}"
            );
            assert!(response.metadata.authoritative);
            assert!(response.answers.is_empty(), "{name} {query_type}");
            assert_soa(&response, fixture.state.serial);
        }
    }

    #[test]
    fn nxdomain_with_soa_for_names_that_do_not_exist() {
        let mut fixture = Fixture::new();
        fixture.register("web", "a", "10.0.0.1", 80);
        for name in [
            "nope.scalegate.local.",
            "empty.scalegate.local.",
            "b.web.scalegate.local.",
            "_api._tcp.web.scalegate.local.",
            "_web._udp.web.scalegate.local.",
            "x.a.web.scalegate.local.",
        ] {
            let response = fixture.ask(name, RecordType::A);
            assert_eq!(
                response.metadata.response_code,
                ResponseCode::NXDomain,
                "{name}"
            );
            assert!(response.metadata.authoritative);
            assert_soa(&response, fixture.state.serial);
        }
    }

    #[test]
    fn apex_answers_soa_and_ns() {
        let fixture = Fixture::new();
        let soa = fixture.ask("scalegate.local.", RecordType::SOA);
        assert_eq!(soa.answers.len(), 1);
        assert!(soa.authorities.is_empty());
        let ns = fixture.ask("scalegate.local.", RecordType::NS);
        let RData::NS(host) = &ns.answers[0].data else {
            panic!("not NS: {:?}", ns.answers);
        };
        assert_eq!(host.0.to_ascii(), "ns.scalegate.local.");
        assert_eq!(addresses(&ns.additionals), ["127.0.0.1"]);
        let host = fixture.ask("ns.scalegate.local.", RecordType::A);
        assert_eq!(addresses(&host.answers), ["127.0.0.1"]);
    }

    #[test]
    fn refused_outside_the_namespaces_and_for_zone_transfers() {
        let fixture = Fixture::new();
        let response = fixture.ask("example.com.", RecordType::A);
        assert_eq!(response.metadata.response_code, ResponseCode::Refused);
        assert!(!response.metadata.authoritative);
        assert!(response.authorities.is_empty());
        let response = fixture.ask("local.", RecordType::A);
        assert_eq!(response.metadata.response_code, ResponseCode::Refused);
        let response = fixture.ask("scalegate.local.", RecordType::AXFR);
        assert_eq!(response.metadata.response_code, ResponseCode::Refused);
    }

    #[test]
    fn edns_is_echoed_and_unknown_versions_are_badvers() {
        let mut fixture = Fixture::new();
        fixture.register("web", "a", "10.0.0.1", 80);
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        let response = fixture.ask_with("web.scalegate.local.", RecordType::A, Some(&edns));
        assert_eq!(
            response.edns.as_ref().map(Edns::max_payload),
            Some(UDP_PAYLOAD_CAP)
        );
        assert_eq!(udp_limit(Some(&edns)), 1232);
        assert_eq!(udp_limit(None), 512);
        edns.set_max_payload(65000);
        assert_eq!(udp_limit(Some(&edns)), 4096);
        edns.set_version(1);
        let response = fixture.ask_with("web.scalegate.local.", RecordType::A, Some(&edns));
        assert_eq!(response.metadata.response_code, ResponseCode::BADVERS);
        assert!(response.answers.is_empty());
    }

    #[test]
    fn deregistered_instances_leave_service_answers_but_keep_their_name_for_a_ttl() {
        let mut fixture = Fixture::new();
        fixture.register("web", "a", "10.0.0.1", 80);
        fixture.register("web", "b", "10.0.0.2", 80);
        fixture
            .state
            .deregister("scalegate.local", "web", "a", fixture.now)
            .unwrap();
        assert_eq!(
            addresses(&fixture.ask("web.scalegate.local.", RecordType::A).answers),
            ["10.0.0.2"]
        );
        assert_eq!(
            fixture
                .ask("web.scalegate.local.", RecordType::SRV)
                .answers
                .len(),
            1
        );
        assert_eq!(
            addresses(&fixture.ask("a.web.scalegate.local.", RecordType::A).answers),
            ["10.0.0.1"]
        );
        fixture.now += Duration::from_secs(5);
        let gone = fixture.ask("a.web.scalegate.local.", RecordType::A);
        assert_eq!(gone.metadata.response_code, ResponseCode::NXDomain);
        // The last instance deregistered: the service name is NODATA during grace, then gone.
        fixture
            .state
            .deregister("scalegate.local", "web", "b", fixture.now)
            .unwrap();
        let during = fixture.ask("web.scalegate.local.", RecordType::A);
        assert_eq!(during.metadata.response_code, ResponseCode::NoError);
        assert!(during.answers.is_empty());
        fixture.now += Duration::from_secs(5);
        let after = fixture.ask("web.scalegate.local.", RecordType::A);
        assert_eq!(after.metadata.response_code, ResponseCode::NXDomain);
    }

    #[test]
    fn fitting_drops_additionals_first_then_truncates() {
        let mut fixture = Fixture::new();
        // SRV targets are never compressed (RFC 2782), so the ID length decides the size: eight
        // answers with 12-character IDs fit in 512 bytes only without their additionals, and
        // with 61-character IDs not at all.
        for n in 0..8 {
            fixture.register(
                "web",
                &format!("{}{n}", "m".repeat(11)),
                &format!("10.0.0.{n}"),
                80,
            );
            fixture.register(
                "api",
                &format!("{}{n}", "l".repeat(60)),
                &format!("10.0.1.{n}"),
                80,
            );
        }
        let query = Query::query(
            Name::from_ascii("web.scalegate.local.").unwrap(),
            RecordType::SRV,
        );
        let mut response = fixture.ask("web.scalegate.local.", RecordType::SRV);
        assert!(encoded_len(&query)(&response) > 512);
        assert!(!fit_within(
            &mut response,
            512,
            question_bytes(&query),
            encoded_len(&query)
        ));
        assert_eq!((response.answers.len(), response.additionals.len()), (8, 0));
        assert!(!response.metadata.truncation);

        let query = Query::query(
            Name::from_ascii("api.scalegate.local.").unwrap(),
            RecordType::SRV,
        );
        let mut response = fixture.ask("api.scalegate.local.", RecordType::SRV);
        assert!(fit_within(
            &mut response,
            512,
            question_bytes(&query),
            encoded_len(&query)
        ));
        assert!(response.metadata.truncation && response.answers.is_empty());
        assert!(encoded_len(&query)(&response) <= 512);

        let mut response = fixture.ask("api.scalegate.local.", RecordType::SRV);
        assert!(!fit_within(
            &mut response,
            4096,
            question_bytes(&query),
            encoded_len(&query)
        ));
        assert_eq!(response.additionals.len(), 8);
    }
}
