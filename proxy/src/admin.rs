//! TEMPORARY stub; replaced by the helper-metrics branch.
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use http::{Response, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::body::ProxyBody;
use crate::metrics::Metrics;

pub struct AdminState {
    pub metrics: Arc<Metrics>,
}

pub async fn serve_admin(
    listener: tokio::net::TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = Arc::new(state);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                        let state = state.clone();
                        async move {
                            let response = match request.uri().path() {
                                "/metrics" => Response::new(ProxyBody::full(state.metrics.encode_text())),
                                "/healthz" => Response::new(ProxyBody::full("ok\n")),
                                _ => {
                                    let mut r = Response::new(ProxyBody::full("not found\n"));
                                    *r.status_mut() = StatusCode::NOT_FOUND;
                                    r
                                }
                            };
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}
