//! The registry's authoritative DNS server: hickory-server's UDP and TCP loops around the
//! pure answer function in `answer.rs`.
//!
//! hickory-server brings the transport (framing, TCP idle timeouts, graceful shutdown); the
//! handler here decides the answer, makes it fit UDP (see [`answer::fit_within`]) and counts it.
//! Note: hickory-server logs every request at `info` (target `hickory_server::server`); the
//! binary's default log filter should lower it to `warn`, or each query costs a log line.

use std::future::Future;
use std::iter;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Header, HeaderCounts, LowerQuery, Metadata, Query, ResponseCode};
use hickory_proto::serialize::binary::BinEncoder;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponseBuilder, Queries};
use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};

use super::answer::{self, Response};
use super::store::EmbeddedRegistry;
use crate::DiscoveryError;

/// How long a TCP connection may stay idle between queries before the server closes it.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Responses queued per TCP connection (hickory's per-connection send buffer).
const TCP_RESPONSE_BUFFER: usize = 32;
/// Attempts at finding a port free for both UDP and TCP when the configured port is 0.
const BIND_ATTEMPTS: usize = 8;

/// A running DNS server for an [`EmbeddedRegistry`]. Dropping it stops the server too;
/// [`DnsServer::shutdown`] stops it and waits for its tasks.
pub struct DnsServer {
    server: Server<DnsHandler>,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl DnsServer {
    /// The address served (UDP and TCP share the port): with port 0 configured, the port the
    /// system picked, for logs and `GET /api/registry`.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting queries and waits for the server's tasks to end.
    pub async fn shutdown(mut self) {
        if let Err(error) = self.server.shutdown_gracefully().await {
            tracing::debug!(%error, "registry DNS server stopped with an error");
        }
    }
}

/// Serves `registry` authoritatively over UDP and TCP on `address` (the same port for both).
///
/// With port 0, UDP binds first and TCP takes the same port, retrying with a new port a few
/// times if that one is taken for TCP. Fails with an error naming the address when it cannot
/// bind.
pub async fn serve_dns(
    registry: Arc<EmbeddedRegistry>,
    address: SocketAddr,
) -> Result<DnsServer, DiscoveryError> {
    let (udp, tcp) = bind_pair(address).await?;
    let local_addr = udp.local_addr().map_err(|error| DiscoveryError::Serve {
        address,
        reason: error.to_string(),
    })?;
    let handler = DnsHandler {
        registry,
        server_ip: Some(local_addr.ip()),
    };
    let mut server = Server::new(handler);
    server.register_socket(udp);
    server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
    tracing::info!(address = %local_addr, "registry DNS server listening (UDP and TCP)");
    Ok(DnsServer { server, local_addr })
}

/// Binds UDP and TCP on one port.
async fn bind_pair(address: SocketAddr) -> Result<(UdpSocket, TcpListener), DiscoveryError> {
    let failed = |error: std::io::Error, what: &str| DiscoveryError::Serve {
        address,
        reason: format!("{what}: {error}"),
    };
    let attempts = if address.port() == 0 {
        BIND_ATTEMPTS
    } else {
        1
    };
    let mut last_error = None;
    for _ in 0..attempts {
        let udp = UdpSocket::bind(address)
            .await
            .map_err(|error| failed(error, "UDP"))?;
        let port = udp
            .local_addr()
            .map_err(|error| failed(error, "UDP"))?
            .port();
        match TcpListener::bind(SocketAddr::new(address.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse && attempts > 1 => {
                last_error = Some(error);
            }
            Err(error) => return Err(failed(error, "TCP")),
        }
    }
    let error = last_error.unwrap_or_else(|| std::io::Error::other("no attempt made"));
    Err(failed(
        error,
        &format!("TCP (no port free for both UDP and TCP after {attempts} attempts)"),
    ))
}

/// hickory's request handler: answers from the registry.
struct DnsHandler {
    registry: Arc<EmbeddedRegistry>,
    server_ip: Option<IpAddr>,
}

/// The size of `response` to `queries` as hickory will encode it.
fn encoded_len(queries: &Queries, response: &Response) -> usize {
    let message = MessageResponseBuilder::new(queries, response.edns.as_ref()).build(
        response.metadata,
        response.answers.iter(),
        response.authorities.iter(),
        iter::empty(),
        response.additionals.iter(),
    );
    let mut buffer = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut buffer);
    match message.destructive_emit(&mut encoder) {
        Ok(_) => buffer.len(),
        Err(_) => usize::MAX,
    }
}

/// The metric label of a response code, in the spelling `dig` prints.
fn rcode_label(code: ResponseCode) -> &'static str {
    match code {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::BADVERS => "BADVERS",
        _ => "OTHER",
    }
}

fn protocol_label(protocol: Protocol) -> &'static str {
    if protocol == Protocol::Udp {
        "udp"
    } else if protocol == Protocol::Tcp {
        "tcp"
    } else {
        "other"
    }
}

impl DnsHandler {
    async fn answer<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let queries: Vec<&Query> = request
            .queries
            .queries()
            .iter()
            .map(LowerQuery::original)
            .collect();
        let mut response = self.registry.respond(
            &request.metadata,
            &queries,
            request.edns.as_ref(),
            self.server_ip,
        );
        let protocol = request.protocol();
        let metrics = self.registry.metrics();
        if protocol == Protocol::Udp {
            let limit = answer::udp_limit(request.edns.as_ref());
            let question_bytes = queries
                .iter()
                .map(|query| answer::name_wire_len(query.name()) + 4)
                .sum();
            if answer::fit_within(&mut response, limit, question_bytes, |response| {
                encoded_len(&request.queries, response)
            }) {
                metrics
                    .registry_truncated
                    .with_label_values::<&str>(&[])
                    .inc();
            }
        }
        metrics
            .registry_queries
            .with_label_values(&[
                protocol_label(protocol),
                rcode_label(response.metadata.response_code),
            ])
            .inc();
        let message = MessageResponseBuilder::new(&request.queries, response.edns.as_ref()).build(
            response.metadata,
            response.answers.iter(),
            response.authorities.iter(),
            iter::empty(),
            response.additionals.iter(),
        );
        match response_handle.send_response(message).await {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, src = %request.src(), "registry DNS response not sent");
                let mut metadata = Metadata::response_from_request(&request.metadata);
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

// The trait is declared with `#[async_trait]`; this is its expansion, written out so that the
// crate needs no `async-trait` dependency of its own.
impl RequestHandler for DnsHandler {
    fn handle_request<'life0, 'life1, 'async_trait, R, T>(
        &'life0 self,
        request: &'life1 Request,
        response_handle: R,
    ) -> Pin<Box<dyn Future<Output = ResponseInfo> + Send + 'async_trait>>
    where
        R: ResponseHandler + 'async_trait,
        T: Time + 'async_trait,
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(self.answer(request, response_handle))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use hickory_proto::op::{Edns, Message, MessageType, OpCode};
    use hickory_proto::rr::{Name, RData, RecordType};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;
    use crate::registry::store::tests::{config, instance};
    use crate::DiscoveryMetrics;

    const DEADLINE: Duration = Duration::from_secs(5);

    async fn started() -> (Arc<EmbeddedRegistry>, DnsServer, DiscoveryMetrics) {
        let metrics = DiscoveryMetrics::unregistered();
        let registry = EmbeddedRegistry::new(metrics.clone());
        registry.configure(&config(Vec::new()));
        let server = serve_dns(Arc::clone(&registry), "127.0.0.1:0".parse().unwrap())
            .await
            .expect("serves on a free port");
        (registry, server, metrics)
    }

    fn query(id: u16, name: &str, query_type: RecordType, edns: Option<u16>) -> Message {
        let mut message = Message::new(id, MessageType::Query, OpCode::Query);
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(Name::from_ascii(name).unwrap(), query_type));
        if let Some(payload) = edns {
            let mut opt = Edns::new();
            opt.set_max_payload(payload);
            message.set_edns(opt);
        }
        message
    }

    async fn over_udp(server: SocketAddr, request: &Message) -> Message {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket
            .send_to(&request.to_vec().unwrap(), server)
            .await
            .unwrap();
        let mut buffer = vec![0; 65535];
        let (len, _) = tokio::time::timeout(DEADLINE, socket.recv_from(&mut buffer))
            .await
            .expect("a UDP answer in time")
            .unwrap();
        assert!(len <= 4096);
        Message::from_vec(&buffer[..len]).expect("a DNS message")
    }

    async fn over_tcp(server: SocketAddr, request: &Message) -> Message {
        let mut stream = TcpStream::connect(server).await.unwrap();
        let bytes = request.to_vec().unwrap();
        stream
            .write_all(&u16::try_from(bytes.len()).unwrap().to_be_bytes())
            .await
            .unwrap();
        stream.write_all(&bytes).await.unwrap();
        let mut length = [0; 2];
        tokio::time::timeout(DEADLINE, stream.read_exact(&mut length))
            .await
            .expect("a TCP answer in time")
            .unwrap();
        let mut buffer = vec![0; usize::from(u16::from_be_bytes(length))];
        stream.read_exact(&mut buffer).await.unwrap();
        Message::from_vec(&buffer).expect("a DNS message")
    }

    fn addresses(message: &Message) -> Vec<String> {
        message
            .answers
            .iter()
            .filter_map(|record| match &record.data {
                RData::A(a) => Some(a.0.to_string()),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn answers_a_srv_nxdomain_nodata_and_refused_over_udp_and_tcp() {
        let (registry, server, metrics) = started().await;
        let address = server.local_addr();
        assert_eq!(address.ip(), IpAddr::from([127, 0, 0, 1]));
        assert_ne!(address.port(), 0);
        registry
            .register_instance("scalegate.local", "web", instance("a", "10.0.0.1", 8080))
            .unwrap();

        for tcp in [false, true] {
            let ask = |request: Message| async move {
                if tcp {
                    over_tcp(address, &request).await
                } else {
                    over_udp(address, &request).await
                }
            };
            let a = ask(query(7, "web.scalegate.local.", RecordType::A, None)).await;
            assert_eq!(a.metadata.id, 7);
            assert!(a.metadata.authoritative && a.metadata.recursion_desired);
            assert!(!a.metadata.recursion_available);
            assert_eq!(a.metadata.response_code, ResponseCode::NoError);
            assert_eq!(a.queries[0].name().to_ascii(), "web.scalegate.local.");
            assert_eq!(addresses(&a), ["10.0.0.1"]);

            let srv = ask(query(
                8,
                "_web._tcp.web.scalegate.local.",
                RecordType::SRV,
                None,
            ))
            .await;
            assert_eq!(srv.answers.len(), 1);
            let RData::SRV(record) = &srv.answers[0].data else {
                panic!("SRV expected: {srv:?}");
            };
            assert_eq!(
                (record.port, record.target.to_ascii().as_str()),
                (8080, "a.web.scalegate.local.")
            );
            assert_eq!(srv.additionals.len(), 1);
            assert_eq!(srv.additionals[0].name.to_ascii(), "a.web.scalegate.local.");

            let nx = ask(query(9, "nope.scalegate.local.", RecordType::A, None)).await;
            assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
            assert!(nx.metadata.authoritative);
            assert_eq!(nx.authorities.len(), 1);
            assert_eq!(nx.authorities[0].record_type(), RecordType::SOA);

            let nodata = ask(query(10, "web.scalegate.local.", RecordType::AAAA, None)).await;
            assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
            assert!(nodata.answers.is_empty());
            assert_eq!(nodata.authorities[0].record_type(), RecordType::SOA);

            let refused = ask(query(11, "example.com.", RecordType::A, None)).await;
            assert_eq!(refused.metadata.response_code, ResponseCode::Refused);
            assert!(!refused.metadata.authoritative);
        }
        let count = |protocol: &str, rcode: &str| {
            metrics
                .registry_queries
                .with_label_values(&[protocol, rcode])
                .get()
        };
        assert_eq!(count("udp", "NOERROR"), 3);
        assert_eq!(count("tcp", "NXDOMAIN"), 1);
        assert_eq!(count("udp", "REFUSED"), 1);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn large_answers_are_truncated_over_udp_and_complete_over_tcp() {
        let (registry, server, metrics) = started().await;
        let address = server.local_addr();
        for n in 0..8 {
            let id = format!("{}{n}", "t".repeat(60));
            registry
                .register_instance(
                    "scalegate.local",
                    "big",
                    instance(&id, &format!("10.0.0.{n}"), 80),
                )
                .unwrap();
            let id = format!("{}{n}", "m".repeat(11));
            registry
                .register_instance(
                    "scalegate.local",
                    "mid",
                    instance(&id, &format!("10.0.1.{n}"), 80),
                )
                .unwrap();
        }
        // Too big for 512 bytes even without additionals: TC and no answers over UDP.
        let udp = over_udp(
            address,
            &query(1, "big.scalegate.local.", RecordType::SRV, None),
        )
        .await;
        assert!(udp.metadata.truncation);
        assert!(udp.answers.is_empty() && udp.additionals.is_empty());
        assert_eq!(
            metrics
                .registry_truncated
                .with_label_values::<&str>(&[])
                .get(),
            1
        );
        // The client retries over TCP and gets everything.
        let tcp = over_tcp(
            address,
            &query(1, "big.scalegate.local.", RecordType::SRV, None),
        )
        .await;
        assert!(!tcp.metadata.truncation);
        assert_eq!((tcp.answers.len(), tcp.additionals.len()), (8, 8));
        // Fits once the additional section goes: no TC.
        let mid = over_udp(
            address,
            &query(2, "mid.scalegate.local.", RecordType::SRV, None),
        )
        .await;
        assert!(!mid.metadata.truncation);
        assert_eq!((mid.answers.len(), mid.additionals.len()), (8, 0));
        // A client advertising a large EDNS buffer gets it all over UDP, and an OPT back.
        let edns = over_udp(
            address,
            &query(3, "big.scalegate.local.", RecordType::SRV, Some(4096)),
        )
        .await;
        assert!(!edns.metadata.truncation);
        assert_eq!(edns.answers.len(), 8);
        assert_eq!(edns.additionals.len(), 8);
        assert_eq!(edns.edns.as_ref().map(Edns::max_payload), Some(4096));
        assert_eq!(
            metrics
                .registry_truncated
                .with_label_values::<&str>(&[])
                .get(),
            1
        );
        server.shutdown().await;
    }

    #[tokio::test]
    async fn a_deregistered_instance_keeps_its_name_for_one_ttl() {
        let metrics = DiscoveryMetrics::unregistered();
        let registry = EmbeddedRegistry::new(metrics);
        let mut short = config(vec![scalegate_config::RegistryService {
            name: "web".to_string(),
            ttl_seconds: Some(1),
            instances: Vec::new(),
        }]);
        short.address = "127.0.0.1:0".parse().unwrap();
        registry.configure(&short);
        let server = serve_dns(Arc::clone(&registry), short.address)
            .await
            .unwrap();
        let address = server.local_addr();
        registry
            .register_instance("scalegate.local", "web", instance("a", "10.0.0.1", 80))
            .unwrap();
        registry
            .register_instance("scalegate.local", "web", instance("b", "10.0.0.2", 80))
            .unwrap();
        let gone = registry
            .deregister_instance("scalegate.local", "web", "a")
            .unwrap();
        assert_eq!(gone.keep_reachable_for, Duration::from_secs(1));

        let service = over_udp(
            address,
            &query(1, "web.scalegate.local.", RecordType::A, None),
        )
        .await;
        assert_eq!(addresses(&service), ["10.0.0.2"]);
        let own = over_udp(
            address,
            &query(2, "a.web.scalegate.local.", RecordType::A, None),
        )
        .await;
        assert_eq!(
            addresses(&own),
            ["10.0.0.1"],
            "still reachable by its own name"
        );
        let view = registry.view();
        assert!(view.namespaces[0].services[0].instances[0].deregistering);

        // After one TTL its name is gone too.
        let deadline = Instant::now() + DEADLINE;
        loop {
            let own = over_udp(
                address,
                &query(3, "a.web.scalegate.local.", RecordType::A, None),
            )
            .await;
            if own.metadata.response_code == ResponseCode::NXDomain {
                break;
            }
            assert!(Instant::now() < deadline, "the grace period ends");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(registry.view().namespaces[0].services[0].instances.len(), 1);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn binding_a_taken_port_names_the_address() {
        let (registry, server, _) = started().await;
        let taken = server.local_addr();
        let error = serve_dns(registry, taken).await.unwrap_err();
        let message = error.to_string();
        assert!(message.contains(&taken.to_string()), "{message}");
        server.shutdown().await;
    }
}
