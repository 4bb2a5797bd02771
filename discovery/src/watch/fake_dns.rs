//! A small authoritative DNS server for tests, on 127.0.0.1 over UDP and TCP (same port),
//! programmable per name: records with TTLs (and additional records), NXDOMAIN, SERVFAIL,
//! REFUSED, or no answer at all. It counts the queries it receives, by name, type and
//! transport, so tests can see that every refresh reaches the server and that a truncated UDP
//! answer was retried over TCP.
//!
//! Built on hickory-server's `Server` with our own `RequestHandler`, so it exercises the same
//! server machinery (and UDP truncation) as the embedded registry.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Header, HeaderCounts, Metadata, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SOA, SRV};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};

/// What the server does for one name.
#[derive(Debug, Clone)]
pub(crate) enum Behaviour {
    /// Answer with the records of the queried type (NODATA, with an SOA, when there are none),
    /// plus `additionals` in the additional section of every answer that has records.
    Records {
        records: Vec<Record>,
        additionals: Vec<Record>,
    },
    /// Like `Records` without additionals, but SERVFAIL for queries of type `failing`: one
    /// address family broken while the other answers.
    FailType {
        records: Vec<Record>,
        failing: RecordType,
    },
    /// NXDOMAIN, with an SOA whose TTL and minimum are the server's negative TTL.
    NxDomain,
    /// SERVFAIL.
    ServFail,
    /// REFUSED.
    Refused,
    /// Say nothing: the client times out.
    NoAnswer,
}

/// Programmed answers and received queries, shared with the handler.
#[derive(Debug, Default)]
struct Zone {
    names: HashMap<LowerName, Behaviour>,
    negative_ttl: u32,
    queries: Vec<(LowerName, RecordType, Protocol)>,
}

/// A running fake server; dropping it (or [`FakeDns::stop`]) stops it.
pub(crate) struct FakeDns {
    /// Where it listens, UDP and TCP.
    pub(crate) addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    server: Option<Server<Handler>>,
}

impl FakeDns {
    /// Starts a server on a free port of 127.0.0.1 (UDP and TCP on the same port). Unknown
    /// names get NXDOMAIN; the negative TTL starts at 1 s.
    pub(crate) async fn start() -> FakeDns {
        let zone = Arc::new(Mutex::new(Zone {
            negative_ttl: 1,
            ..Zone::default()
        }));
        let (udp, tcp) = bind_pair().await;
        let addr = udp.local_addr().expect("bound socket has an address");
        let mut server = Server::new(Handler { zone: zone.clone() });
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 16);
        FakeDns {
            addr,
            zone,
            server: Some(server),
        }
    }

    /// Programs `name`'s behaviour (replacing any previous one).
    pub(crate) fn set(&self, name: &str, behaviour: Behaviour) {
        self.zone
            .lock()
            .unwrap()
            .names
            .insert(lower(name), behaviour);
    }

    /// Answers `name` with these records and nothing additional.
    pub(crate) fn set_records(&self, name: &str, records: Vec<Record>) {
        self.set(
            name,
            Behaviour::Records {
                records,
                additionals: Vec::new(),
            },
        );
    }

    /// Sets the TTL and SOA minimum of negative answers.
    pub(crate) fn set_negative_ttl(&self, seconds: u32) {
        self.zone.lock().unwrap().negative_ttl = seconds;
    }

    /// Queries received for `name` and `record_type`, over any transport.
    pub(crate) fn queries(&self, name: &str, record_type: RecordType) -> usize {
        let name = lower(name);
        self.zone
            .lock()
            .unwrap()
            .queries
            .iter()
            .filter(|(n, t, _)| *n == name && *t == record_type)
            .count()
    }

    /// Queries received over TCP, for any name.
    pub(crate) fn tcp_queries(&self) -> usize {
        self.zone
            .lock()
            .unwrap()
            .queries
            .iter()
            .filter(|(_, _, protocol)| *protocol == Protocol::Tcp)
            .count()
    }

    /// Stops serving; the port then refuses (UDP) or resets (TCP), like a DNS server that died.
    pub(crate) async fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.shutdown_gracefully().await;
        }
    }
}

/// Binds UDP on a free port and TCP on the same port, retrying if another test holds the TCP
/// side of the port the kernel picked.
async fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind UDP");
        let addr = udp.local_addr().expect("bound socket has an address");
        if let Ok(tcp) = TcpListener::bind(addr).await {
            return (udp, tcp);
        }
    }
    panic!("no free port for both UDP and TCP on 127.0.0.1");
}

fn lower(name: &str) -> LowerName {
    let mut name = Name::from_ascii(name).expect("test names are valid");
    name.set_fqdn(true);
    LowerName::from(name)
}

fn name(text: &str) -> Name {
    let mut name = Name::from_ascii(text).expect("test names are valid");
    name.set_fqdn(true);
    name
}

/// `name A/AAAA ip` with `ttl`.
pub(crate) fn address(owner: &str, ip: &str, ttl: u32) -> Record {
    let data = match ip.parse::<IpAddr>().expect("test addresses are valid") {
        IpAddr::V4(ip) => RData::A(A(ip)),
        IpAddr::V6(ip) => RData::AAAA(AAAA(ip)),
    };
    Record::from_rdata(name(owner), ttl, data)
}

/// `name SRV 1 1 port target` with `ttl`.
pub(crate) fn srv(owner: &str, port: u16, target: &str, ttl: u32) -> Record {
    Record::from_rdata(
        name(owner),
        ttl,
        RData::SRV(SRV::new(1, 1, port, name(target))),
    )
}

/// Answers from the shared [`Zone`].
struct Handler {
    zone: Arc<Mutex<Zone>>,
}

impl Handler {
    /// The response for one query: code, answers, additionals, and whether to attach an SOA.
    fn answer(&self, request: &Request) -> Option<(ResponseCode, Vec<Record>, Vec<Record>, u32)> {
        let query = request.queries.queries().first()?.clone();
        let mut zone = self.zone.lock().unwrap();
        zone.queries
            .push((query.name().clone(), query.query_type(), request.protocol()));
        let negative_ttl = zone.negative_ttl;
        let behaviour = zone
            .names
            .get(query.name())
            .cloned()
            .unwrap_or(Behaviour::NxDomain);
        Some(match behaviour {
            Behaviour::Records {
                records,
                additionals,
            } => {
                let answers: Vec<Record> = records
                    .into_iter()
                    .filter(|record| record.record_type() == query.query_type())
                    .collect();
                let additionals = if answers.is_empty() {
                    Vec::new()
                } else {
                    additionals
                };
                (ResponseCode::NoError, answers, additionals, negative_ttl)
            }
            Behaviour::FailType { failing, .. } if failing == query.query_type() => {
                (ResponseCode::ServFail, Vec::new(), Vec::new(), 0)
            }
            Behaviour::FailType { records, .. } => {
                let answers: Vec<Record> = records
                    .into_iter()
                    .filter(|record| record.record_type() == query.query_type())
                    .collect();
                (ResponseCode::NoError, answers, Vec::new(), negative_ttl)
            }
            Behaviour::NxDomain => (ResponseCode::NXDomain, Vec::new(), Vec::new(), negative_ttl),
            Behaviour::ServFail => (ResponseCode::ServFail, Vec::new(), Vec::new(), 0),
            Behaviour::Refused => (ResponseCode::Refused, Vec::new(), Vec::new(), 0),
            Behaviour::NoAnswer => return None,
        })
    }
}

/// The zone apex of negative answers' SOA.
const ZONE: &str = "test.";

impl RequestHandler for Handler {
    // `RequestHandler` is an `async_trait`; this is the signature the macro produces, written
    // out so the crate needs no `async-trait` dependency for a test helper.
    fn handle_request<'life0, 'life1, 'async_trait, R, T>(
        &'life0 self,
        request: &'life1 Request,
        mut response_handle: R,
    ) -> Pin<Box<dyn Future<Output = ResponseInfo> + Send + 'async_trait>>
    where
        R: 'async_trait + ResponseHandler,
        T: 'async_trait + Time,
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let mut metadata = Metadata::response_from_request(&request.metadata);
            let Some((code, answers, additionals, negative_ttl)) = self.answer(request) else {
                // No answer: the client's timeout is the point.
                return ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                });
            };
            metadata.authoritative = true;
            metadata.response_code = code;
            let soa: Vec<Record> = if answers.is_empty() && negative_ttl > 0 {
                vec![Record::from_rdata(
                    name(ZONE),
                    negative_ttl,
                    RData::SOA(SOA::new(
                        name("ns.test."),
                        name("admin.test."),
                        1,
                        60,
                        60,
                        3600,
                        negative_ttl,
                    )),
                )]
            } else {
                Vec::new()
            };
            let response = MessageResponseBuilder::from_message_request(request).build(
                metadata,
                answers.iter(),
                [].iter(),
                soa.iter(),
                additionals.iter(),
            );
            match response_handle.send_response(response).await {
                Ok(info) => info,
                Err(_) => ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                }),
            }
        })
    }
}
