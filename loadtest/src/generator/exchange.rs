//! How a request ended, and sorting failures into the report's error classes; for HTTP/2, one
//! request over hyper: waiting for the head, reading the body frame by frame without collecting
//! it.

use std::error::Error as StdError;
use std::future::Future;
use std::io;

use http::{Request, Response};
use http_body_util::BodyExt as _;
use hyper::body::{Body as _, Incoming};
use hyper::client::conn::TrySendError;

use super::target::RequestBody;
use crate::report::ErrorClass;

/// A request that failed without a usable response, with the reason for the report's samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Failure {
    /// The report's class.
    pub class: ErrorClass,
    /// What went wrong, for a person.
    pub message: String,
}

impl Failure {
    /// A failure of `class` explained by `message`.
    pub(super) fn new(class: ErrorClass, message: String) -> Self {
        Failure { class, message }
    }

    /// No complete response within the request timeout.
    pub(super) fn timeout() -> Self {
        Failure::new(
            ErrorClass::Timeout,
            "no complete response within the request timeout".to_string(),
        )
    }

    /// A hyper error, classified by what caused it.
    fn from_hyper(error: &hyper::Error) -> Self {
        Failure::new(classify(error), describe(error))
    }
}

/// How a request ended.
#[derive(Debug)]
pub(super) enum Exchange {
    /// A complete response.
    Response {
        /// Its status code.
        status: u16,
        /// Body bytes received.
        bytes: u64,
        /// Whether the connection may carry another request (no `Connection: close`).
        reusable: bool,
    },
    /// No complete response.
    Failed(Failure),
    /// The connection closed before the request was written, so it was never sent (hyper
    /// hands it back); the caller may send it on a fresh connection.
    NotSent,
}

/// A failed read or write on a connection, `while` doing something ("reading the response").
pub(super) fn io_failure(error: &io::Error, while_doing: &str) -> Failure {
    let class = io_class(error).unwrap_or(ErrorClass::Other);
    Failure::new(class, format!("{while_doing}: {error}"))
}

/// The class of an I/O error, when it says: resets and early ends are `Reset`, TLS alerts and
/// certificate problems `Tls`.
fn io_class(error: &io::Error) -> Option<ErrorClass> {
    if error
        .get_ref()
        .is_some_and(|inner| inner.is::<rustls::Error>())
    {
        return Some(ErrorClass::Tls);
    }
    match error.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => Some(ErrorClass::Reset),
        io::ErrorKind::TimedOut => Some(ErrorClass::Timeout),
        _ => None,
    }
}

/// Waits for the response to a request just handed to hyper's HTTP/2 connection
/// (`try_send_request`) and reads its body to the end, counting bytes. The caller bounds it
/// with the request timeout.
pub(super) async fn exchange_http2(
    response: impl Future<Output = Result<Response<Incoming>, TrySendError<Request<RequestBody>>>>,
) -> Exchange {
    let response = match response.await {
        Ok(response) => response,
        Err(mut error) => {
            if error.take_message().is_some() {
                return Exchange::NotSent;
            }
            return Exchange::Failed(Failure::from_hyper(error.error()));
        }
    };
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut bytes = 0u64;
    while !body.is_end_stream() {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    bytes += data.len() as u64;
                }
            }
            Some(Err(error)) => return Exchange::Failed(Failure::from_hyper(&error)),
            None => break,
        }
    }
    // An HTTP/2 response never retires its connection; GOAWAY closes it and is seen there.
    Exchange::Response {
        status,
        bytes,
        reusable: true,
    }
}

/// The report's class for a hyper error: resets and early closes (TCP reset, EOF mid-response,
/// HTTP/2 RST_STREAM and GOAWAY) are `Reset`, malformed responses `Other`.
fn classify(error: &hyper::Error) -> ErrorClass {
    if error.is_timeout() {
        return ErrorClass::Timeout;
    }
    if error.is_parse() || error.is_user() {
        return ErrorClass::Other;
    }
    if let Some(class) = class_of_cause(error) {
        return class;
    }
    if error.is_incomplete_message()
        || error.is_canceled()
        || error.is_closed()
        || error.is_body_write_aborted()
    {
        return ErrorClass::Reset;
    }
    ErrorClass::Other
}

fn class_of_cause(error: &hyper::Error) -> Option<ErrorClass> {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(h2_error) = cause.downcast_ref::<h2::Error>() {
            if h2_error.is_reset() || h2_error.is_go_away() || h2_error.is_io() {
                return Some(ErrorClass::Reset);
            }
        }
        if let Some(class) = cause.downcast_ref::<io::Error>().and_then(io_class) {
            return Some(class);
        }
        source = cause.source();
    }
    None
}

/// The error and its causes on one line ("connection error: Connection reset by peer").
fn describe(error: &hyper::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
