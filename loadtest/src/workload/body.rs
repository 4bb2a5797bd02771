//! Response bodies: a small JSON document, or exactly `bytes` of filler streamed from one static
//! buffer (a 1 GiB body costs no memory).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// The filler every large body is cut from.
static FILLER: [u8; 16 * 1024] = [b'x'; 16 * 1024];

/// A workload server response body whose length is always known up front (`content-length`).
#[derive(Debug)]
pub enum ResponseBody {
    /// One chunk (JSON, Prometheus text), sent once.
    Full(Option<Bytes>),
    /// `remaining` bytes of filler still to send.
    Filler {
        /// Bytes not yet sent.
        remaining: u64,
    },
}

impl ResponseBody {
    /// A body of exactly this content.
    pub fn full(content: impl Into<Bytes>) -> ResponseBody {
        let content = content.into();
        ResponseBody::Full((!content.is_empty()).then_some(content))
    }

    /// An empty body (204, 304, and statuses that must not carry one).
    pub fn empty() -> ResponseBody {
        ResponseBody::Full(None)
    }

    /// `size` bytes of filler.
    pub fn filler(size: u64) -> ResponseBody {
        ResponseBody::Filler { remaining: size }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let chunk = match self.get_mut() {
            ResponseBody::Full(content) => content.take(),
            ResponseBody::Filler { remaining } if *remaining > 0 => {
                let size = (*remaining).min(FILLER.len() as u64);
                *remaining -= size;
                // `size` is at most FILLER.len(), so it fits a usize.
                Some(Bytes::from_static(&FILLER[..size as usize]))
            }
            ResponseBody::Filler { .. } => None,
        };
        Poll::Ready(chunk.map(|chunk| Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Full(content) => content.is_none(),
            ResponseBody::Filler { remaining } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(content) => {
                SizeHint::with_exact(content.as_ref().map_or(0, |c| c.len() as u64))
            }
            ResponseBody::Filler { remaining } => SizeHint::with_exact(*remaining),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    async fn collect(body: ResponseBody) -> Bytes {
        body.collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn filler_is_exactly_the_size_asked_for() {
        for size in [0, 1, 16 * 1024, 16 * 1024 + 1, 100_000] {
            let body = ResponseBody::filler(size);
            assert_eq!(body.size_hint().exact(), Some(size));
            let bytes = collect(body).await;
            assert_eq!(bytes.len() as u64, size);
            assert!(bytes.iter().all(|b| *b == b'x'));
        }
    }

    #[tokio::test]
    async fn full_sends_its_content_once() {
        let body = ResponseBody::full("{\"ok\":true}");
        assert_eq!(body.size_hint().exact(), Some(11));
        assert_eq!(collect(body).await, "{\"ok\":true}");
        assert!(ResponseBody::empty().is_end_stream());
    }
}
