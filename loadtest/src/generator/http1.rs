//! A lean HTTP/1.1 client connection: writes a prebuilt request and reads the response to its
//! end with `httparse`, reusing one buffer, without allocating, spawning or passing messages.
//!
//! Why not hyper's `client::conn::http1`: its dispatcher hands each request and response
//! through channels between the sender and the connection (a oneshot per request, a body
//! channel per response, wake-ups in between); measured on one core against nginx it tops out
//! near 0.9× `wrk -t1 -c64`, and the generator must not be slower than wrk. HTTP/2 still goes
//! through hyper (`client::conn::http2`).
//!
//! What a load generator needs of RFC 9112 is here: responses framed by `Content-Length`,
//! chunked transfer coding (trailers skipped) or the end of the connection; no body for `HEAD`,
//! 1xx, 204 and 304; interim 1xx responses skipped; `Connection: close` and HTTP/1.0
//! keep-alive rules. Requests are never pipelined.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _, ReadBuf};

use super::exchange::{io_failure, Exchange, Failure};
use super::target::Stream;
use crate::report::ErrorClass;

/// Initial read buffer; response heads may grow it up to [`MAX_HEAD_BYTES`].
const BUFFER_BYTES: usize = 16 * 1024;
/// A response head larger than this is refused (as hyper's default does).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Headers parsed per response head.
const MAX_HEADERS: usize = 100;

/// One keep-alive HTTP/1.1 connection and its read buffer.
pub(super) struct Http1Connection {
    stream: Stream,
    buffer: Vec<u8>,
    /// Unread bytes are `buffer[start..end]`.
    start: usize,
    end: usize,
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the server closes the connection.
    UntilClose,
}

/// What the generator needs from a response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    status: u16,
    /// Bytes of the head, blank line included.
    length: usize,
    framing: Framing,
    /// The connection may carry another request afterwards.
    keep_alive: bool,
}

impl Http1Connection {
    /// Wraps a freshly opened stream.
    pub(super) fn new(stream: Stream) -> Self {
        Http1Connection {
            stream,
            buffer: vec![0; BUFFER_BYTES],
            start: 0,
            end: 0,
        }
    }

    /// Whether an idle keep-alive connection can carry the next request: `false` once the
    /// server closed it (or sent something nobody asked for). Costs no system call when
    /// nothing arrived since the last response: tokio knows the socket is not readable.
    pub(super) fn is_open(&mut self) -> bool {
        if self.start < self.end {
            return false;
        }
        let mut probe = [0u8; 1];
        let mut probe = ReadBuf::new(&mut probe);
        let mut cx = Context::from_waker(Waker::noop());
        matches!(
            Pin::new(&mut self.stream).poll_read(&mut cx, &mut probe),
            Poll::Pending
        )
    }

    /// Sends `request` (a whole serialized request) and reads the response to its end.
    /// `head_request`: the request was `HEAD`, so the response has no body whatever it says.
    pub(super) async fn exchange(&mut self, request: &[u8], head_request: bool) -> Exchange {
        if let Err(error) = self.send(request).await {
            return Exchange::Failed(io_failure(&error, "sending the request"));
        }
        match self.read_response(head_request).await {
            Ok((status, bytes, reusable)) => Exchange::Response {
                status,
                bytes,
                reusable,
            },
            Err(failure) => Exchange::Failed(failure),
        }
    }

    async fn send(&mut self, request: &[u8]) -> io::Result<()> {
        self.stream.write_all(request).await?;
        // A no-op for plain TCP; pushes TLS records out.
        self.stream.flush().await
    }

    /// Status, body bytes, and whether the connection may be reused.
    async fn read_response(&mut self, head_request: bool) -> Result<(u16, u64, bool), Failure> {
        loop {
            let head = self.read_head(head_request).await?;
            self.start += head.length;
            if head.status == 101 {
                return Err(Failure::new(
                    ErrorClass::Other,
                    "the server switched protocols (101) though no upgrade was asked".to_string(),
                ));
            }
            if head.status < 200 {
                // An interim response (100 Continue, 103 Early Hints): the real one follows.
                continue;
            }
            let bytes = match head.framing {
                Framing::Empty => 0,
                Framing::Length(length) => self.skip_body(length).await?,
                Framing::Chunked => self.skip_chunked_body().await?,
                Framing::UntilClose => self.skip_until_close().await?,
            };
            // Bytes after the response were never asked for: the connection is out of step.
            let reusable =
                head.keep_alive && head.framing != Framing::UntilClose && self.start == self.end;
            return Ok((head.status, bytes, reusable));
        }
    }

    async fn read_head(&mut self, head_request: bool) -> Result<Head, Failure> {
        loop {
            if self.start < self.end {
                if let Some(head) = parse_head(&self.buffer[self.start..self.end], head_request)? {
                    return Ok(head);
                }
            }
            let received_any = self.start < self.end;
            if self.fill().await? == 0 {
                let message = if received_any {
                    "the connection closed in the middle of the response head"
                } else {
                    "the connection closed before a response arrived"
                };
                return Err(Failure::new(ErrorClass::Reset, message.to_string()));
            }
        }
    }

    /// Skips `length` body bytes.
    async fn skip_body(&mut self, length: u64) -> Result<u64, Failure> {
        let mut remaining = length;
        loop {
            remaining -= self.consume(remaining);
            if remaining == 0 {
                return Ok(length);
            }
            if self.fill().await? == 0 {
                return Err(closed_mid_body());
            }
        }
    }

    /// Skips a chunked body and its trailers; returns the data bytes.
    async fn skip_chunked_body(&mut self) -> Result<u64, Failure> {
        let mut total = 0;
        loop {
            let size = loop {
                match httparse::parse_chunk_size(&self.buffer[self.start..self.end]) {
                    Ok(httparse::Status::Complete((line, size))) => {
                        self.start += line;
                        break size;
                    }
                    Ok(httparse::Status::Partial) => {
                        if self.fill().await? == 0 {
                            return Err(closed_mid_body());
                        }
                    }
                    Err(_) => {
                        return Err(Failure::new(
                            ErrorClass::Other,
                            "invalid chunk size in a chunked response".to_string(),
                        ))
                    }
                }
            };
            if size == 0 {
                self.skip_trailers().await?;
                return Ok(total);
            }
            total += self.skip_body(size).await?;
            while self.end - self.start < 2 {
                if self.fill().await? == 0 {
                    return Err(closed_mid_body());
                }
            }
            if &self.buffer[self.start..self.start + 2] != b"\r\n" {
                return Err(Failure::new(
                    ErrorClass::Other,
                    "a chunk of a chunked response does not end in CRLF".to_string(),
                ));
            }
            self.start += 2;
        }
    }

    /// Skips trailer lines up to and including the blank line that ends a chunked body.
    async fn skip_trailers(&mut self) -> Result<(), Failure> {
        loop {
            let unread = &self.buffer[self.start..self.end];
            match unread.windows(2).position(|pair| pair == b"\r\n") {
                Some(line) => {
                    self.start += line + 2;
                    if line == 0 {
                        return Ok(());
                    }
                }
                None => {
                    if self.fill().await? == 0 {
                        return Err(closed_mid_body());
                    }
                }
            }
        }
    }

    /// Skips everything until the server closes the connection.
    async fn skip_until_close(&mut self) -> Result<u64, Failure> {
        let mut total = 0;
        loop {
            total += self.consume(u64::MAX);
            if self.fill().await? == 0 {
                return Ok(total);
            }
        }
    }

    /// Drops up to `limit` unread bytes; returns how many.
    fn consume(&mut self, limit: u64) -> u64 {
        let available = (self.end - self.start) as u64;
        let taken = available.min(limit);
        self.start += taken as usize;
        taken
    }

    /// Reads more bytes after the unread ones (compacting or growing the buffer for a long
    /// head); returns how many, 0 at the end of the stream.
    async fn fill(&mut self) -> Result<usize, Failure> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buffer.len() {
            if self.start > 0 {
                self.buffer.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.buffer.len() < MAX_HEAD_BYTES {
                let grown = (self.buffer.len() * 2).min(MAX_HEAD_BYTES);
                self.buffer.resize(grown, 0);
            } else {
                return Err(Failure::new(
                    ErrorClass::Other,
                    format!("a response head or chunk line is longer than {MAX_HEAD_BYTES} bytes"),
                ));
            }
        }
        match self.stream.read(&mut self.buffer[self.end..]).await {
            Ok(read) => {
                self.end += read;
                Ok(read)
            }
            Err(error) => Err(io_failure(&error, "reading the response")),
        }
    }
}

fn closed_mid_body() -> Failure {
    Failure::new(
        ErrorClass::Reset,
        "the connection closed in the middle of the response body".to_string(),
    )
}

/// Parses a response head at the start of `unread`; `None` if it is not complete yet.
fn parse_head(unread: &[u8], head_request: bool) -> Result<Option<Head>, Failure> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let length = match response.parse(unread) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => {
            return Err(Failure::new(
                ErrorClass::Other,
                format!("malformed response head: {error}"),
            ))
        }
    };
    let malformed =
        |what: &str| Failure::new(ErrorClass::Other, format!("malformed response: {what}"));
    let status = response.code.ok_or_else(|| malformed("no status code"))?;
    let http11 = response.version == Some(1);
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding: Option<bool> = None;
    let mut close = false;
    let mut keep_alive = false;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value)
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .ok_or_else(|| malformed("invalid content-length"))?;
            if content_length.is_some_and(|earlier| earlier != value) {
                return Err(malformed("conflicting content-length values"));
            }
            content_length = Some(value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked only when it is the last coding applied.
            let last = header
                .value
                .rsplit(|byte| *byte == b',')
                .next()
                .unwrap_or_default();
            transfer_encoding = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if header.name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|byte| *byte == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    let framing = if head_request || status < 200 || status == 204 || status == 304 {
        Framing::Empty
    } else {
        match (transfer_encoding, content_length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::UntilClose,
            (None, Some(length)) => Framing::Length(length),
            (None, None) => Framing::UntilClose,
        }
    };
    Ok(Some(Head {
        status,
        length,
        framing,
        keep_alive: if http11 { !close } else { keep_alive && !close },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Head {
        parse_head(text.as_bytes(), false).unwrap().unwrap()
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let length = head("HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n");
        assert_eq!(length.framing, Framing::Length(12));
        assert!(length.keep_alive);
        assert_eq!(length.status, 200);
        let chunked = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(chunked.framing, Framing::Chunked);
        let close = head("HTTP/1.1 500 Oops\r\nConnection: close\r\n\r\n");
        assert_eq!(close.framing, Framing::UntilClose);
        assert!(!close.keep_alive);
        assert_eq!(
            head("HTTP/1.1 204 No Content\r\n\r\n").framing,
            Framing::Empty
        );
        assert_eq!(
            head("HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n").framing,
            Framing::Empty
        );
        let head_response = parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", true)
            .unwrap()
            .unwrap();
        assert_eq!(head_response.framing, Framing::Empty);
        assert!(!head("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n").keep_alive);
        assert!(
            head("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\ncontent-length: 1\r\n\r\n")
                .keep_alive
        );
    }

    #[test]
    fn partial_and_malformed_heads() {
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-le", false).unwrap(),
            None
        );
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n", false).is_err());
        assert!(parse_head(
            b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            false
        )
        .is_err());
    }

    /// A connection to a local server that writes `response` (in pieces) after reading the
    /// request, then keeps the connection open (`keep_open`) or closes it. Returns how the
    /// exchange ended and whether the connection is still open afterwards.
    async fn exchange_with(
        response: &'static [&'static [u8]],
        head_request: bool,
        keep_open: bool,
    ) -> (Exchange, bool) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request).await.unwrap();
            for piece in response {
                stream.write_all(piece).await.unwrap();
                stream.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
            keep_open.then_some(stream)
        });
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let mut connection = Http1Connection::new(Stream::Plain(stream));
        let exchange = connection
            .exchange(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", head_request)
            .await;
        let _server_side = server.await.unwrap();
        let open = connection.is_open();
        (exchange, open)
    }

    fn response_of(exchange: Exchange) -> (u16, u64, bool) {
        match exchange {
            Exchange::Response {
                status,
                bytes,
                reusable,
            } => (status, bytes, reusable),
            other => panic!("expected a response, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn responses_are_read_to_their_end() {
        type Case = (&'static [&'static [u8]], bool, (u16, u64, bool));
        let cases: [Case; 5] = [
            // Content-Length, arriving in pieces.
            (
                &[
                    b"HTTP/1.1 200 OK\r\ncontent-",
                    b"length: 11\r\n\r\nhello",
                    b" worl",
                    b"d",
                ],
                false,
                (200, 11, true),
            ),
            // Chunked, with an extension and a trailer.
            (
                &[
                    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel",
                    b"lo\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: 1\r\n",
                    b"\r\n",
                ],
                false,
                (200, 11, true),
            ),
            // An interim response before the real one.
            (
                &[b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"],
                false,
                (404, 0, true),
            ),
            // The answer to HEAD has no body, whatever its Content-Length.
            (
                &[b"HTTP/1.1 200 OK\r\ncontent-length: 99\r\n\r\n"],
                true,
                (200, 0, true),
            ),
            // Bytes after the response: the connection is out of step.
            (
                &[b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n"],
                false,
                (200, 2, false),
            ),
        ];
        for (response, head_request, expected) in cases {
            let (exchange, open) = exchange_with(response, head_request, true).await;
            assert_eq!(response_of(exchange), expected, "{response:?}");
            assert_eq!(open, expected.2, "{response:?}");
        }
    }

    #[tokio::test]
    async fn a_close_mid_body_is_a_reset() {
        let (exchange, open) = exchange_with(
            &[b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc"],
            false,
            false,
        )
        .await;
        match exchange {
            Exchange::Failed(failure) => assert_eq!(failure.class, ErrorClass::Reset),
            other => panic!("expected a reset, got {other:?}"),
        }
        assert!(!open);
    }

    #[tokio::test]
    async fn an_idle_connection_the_server_closed_is_not_open() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let mut connection = Http1Connection::new(Stream::Plain(stream));
        assert!(connection.is_open());
        drop(accepted);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while connection.is_open() {
            assert!(std::time::Instant::now() < deadline, "close not noticed");
            tokio::task::yield_now().await;
        }
    }
}
