//! Worker runtimes, listener sockets, accept loops and client connections.
//!
//! Two layouts, chosen by `load_balancer.runtime.mode` and measured in `docs/benchmarks.md`:
//! `per_core` runs one single-threaded runtime per worker thread, each accepting on its own
//! SO_REUSEPORT socket so a connection lives its whole life on one thread with that thread's
//! upstream pools; `multi_thread` runs one work-stealing runtime over one socket.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use scalegate_config::{RuntimeLayout, RuntimeMode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::handler::{self, ConnectionContext, TlsInfo};
use crate::headers;
use crate::snapshot::ListenerRuntime;

/// Largest request head (request line plus all headers) accepted, ALB's 64 KB; above it the
/// parser answers 431.
pub const MAX_REQUEST_HEAD_BYTES: usize = 64 * 1024;
/// Streams served in parallel on one HTTP/2 client connection, as ALB.
pub const MAX_CONCURRENT_STREAMS: u32 = 128;

/// The threads and runtimes that serve client connections.
pub struct Workers {
    handles: Vec<Handle>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    mode: RuntimeMode,
}

impl Workers {
    /// Starts the worker threads for `layout`; `workers: 0` means one per available core.
    pub fn start(layout: &RuntimeLayout) -> io::Result<Workers> {
        let count = if layout.workers == 0 {
            std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(1)
        } else {
            layout.workers
        };
        let mut workers = Workers {
            handles: Vec::new(),
            stops: Vec::new(),
            threads: Vec::new(),
            mode: layout.mode,
        };
        let runtimes = match layout.mode {
            RuntimeMode::PerCore => count,
            RuntimeMode::MultiThread => 1,
        };
        for index in 0..runtimes {
            let mut builder = match layout.mode {
                RuntimeMode::PerCore => tokio::runtime::Builder::new_current_thread(),
                RuntimeMode::MultiThread => {
                    let mut builder = tokio::runtime::Builder::new_multi_thread();
                    builder.worker_threads(count);
                    builder
                }
            };
            let runtime = builder
                .enable_all()
                .thread_name(format!("scalegate-worker-{index}"))
                .build()?;
            let (handle_sender, handle_receiver) = std::sync::mpsc::channel();
            let (stop_sender, stop_receiver) = tokio::sync::oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("scalegate-worker-{index}"))
                .spawn(move || {
                    let _ = handle_sender.send(runtime.handle().clone());
                    runtime.block_on(async {
                        let _ = stop_receiver.await;
                    });
                    runtime.shutdown_timeout(Duration::from_secs(1));
                })?;
            let handle = handle_receiver
                .recv()
                .map_err(|_| io::Error::other("worker thread died at start"))?;
            workers.handles.push(handle);
            workers.stops.push(stop_sender);
            workers.threads.push(thread);
        }
        Ok(workers)
    }

    /// How many independent upstream pools to keep per target group: one per runtime.
    pub fn pool_count(&self) -> usize {
        self.handles.len()
    }

    /// How many sockets each listener binds: one per runtime (SO_REUSEPORT when several).
    fn sockets_per_listener(&self) -> usize {
        self.handles.len()
    }

    /// Stops every runtime; connections still open are closed.
    pub fn stop(mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }

    /// The layout in force (a change needs a restart).
    pub fn mode(&self) -> RuntimeMode {
        self.mode
    }
}

/// Sockets bound for one listener, ready to be handed to the workers.
pub struct BoundSockets {
    sockets: Vec<std::net::TcpListener>,
    /// The address actually bound (port 0 resolved).
    pub local_address: SocketAddr,
}

/// Binds the listener's address once per worker; all sockets share the port with SO_REUSEPORT
/// so the kernel spreads new connections over the workers.
pub fn bind(address: SocketAddr, workers: &Workers) -> io::Result<BoundSockets> {
    let count = workers.sockets_per_listener();
    let mut sockets = Vec::with_capacity(count);
    let mut local_address = address;
    for _ in 0..count {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(local_address),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        if count > 1 {
            socket.set_reuse_port(true)?;
        }
        if local_address.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.set_tcp_nodelay(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&local_address.into())?;
        socket.listen(1024)?;
        let listener: std::net::TcpListener = socket.into();
        local_address = listener.local_addr()?;
        sockets.push(listener);
    }
    Ok(BoundSockets {
        sockets,
        local_address,
    })
}

/// Connections open across all listeners, so shutdown can wait for them to finish.
#[derive(Default)]
pub struct ConnectionCount(AtomicUsize);

impl ConnectionCount {
    /// Open connections right now.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

struct Counted(Arc<ConnectionCount>);

impl Counted {
    fn new(count: &Arc<ConnectionCount>) -> Self {
        count.0.fetch_add(1, Ordering::Relaxed);
        Counted(Arc::clone(count))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Everything an accept loop needs besides its socket.
#[derive(Clone)]
pub struct AcceptContext {
    /// The listener's current compiled config.
    pub listener: Arc<ArcSwap<ListenerRuntime>>,
    /// Becomes true when this listener is removed.
    pub stop: watch::Receiver<bool>,
    /// Becomes true when the process shuts down: connections finish and close.
    pub shutdown: watch::Receiver<bool>,
    /// Open connections, process-wide.
    pub connections: Arc<ConnectionCount>,
}

/// Starts one accept loop per worker for the bound sockets.
pub fn spawn_accept_loops(
    workers: &Workers,
    sockets: BoundSockets,
    context: AcceptContext,
) -> io::Result<()> {
    for (worker, (socket, handle)) in sockets
        .sockets
        .into_iter()
        .zip(workers.handles.iter())
        .enumerate()
    {
        let context = context.clone();
        let _guard = handle.enter();
        let listener = TcpListener::from_std(socket)?;
        handle.spawn(accept_loop(listener, worker, context));
    }
    Ok(())
}

async fn accept_loop(listener: TcpListener, worker: usize, mut context: AcceptContext) {
    loop {
        tokio::select! {
            biased;
            _ = context.stop.changed() => break,
            _ = context.shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_connection(stream, peer, worker, context.clone()));
                }
                Err(error) => {
                    context.listener.load().metrics.rejected_connection();
                    tracing::warn!(%error, "accept failed");
                    // Out of file descriptors and similar: give the process a moment to
                    // close connections instead of spinning.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    worker: usize,
    context: AcceptContext,
) {
    let _counted = Counted::new(&context.connections);
    let runtime = context.listener.load_full();
    let _open = runtime.metrics.connection_opened();
    let settings = &runtime.shared.load_balancer;
    match &runtime.tls {
        None => {
            let mode = if runtime.http2_prior_knowledge {
                HttpMode::Auto
            } else {
                HttpMode::Http1
            };
            drive(stream, peer, worker, None, mode, &runtime, &context).await;
        }
        Some(acceptor) => {
            match tokio::time::timeout(settings.header_read_timeout, acceptor.accept(stream)).await
            {
                Ok(Ok(tls)) => {
                    let session = tls.get_ref().1;
                    let mode = match session.alpn_protocol() {
                        Some(b"h2") => HttpMode::Http2,
                        _ => HttpMode::Http1,
                    };
                    let info = crate::tls::session_info(session);
                    drive(tls, peer, worker, Some(info), mode, &runtime, &context).await;
                }
                Ok(Err(error)) => {
                    runtime.metrics.client_tls_negotiation_error();
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                }
                Err(_) => {
                    runtime.metrics.client_tls_negotiation_error();
                    tracing::debug!(%peer, "TLS handshake timed out");
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
enum HttpMode {
    Http1,
    Http2,
    Auto,
}

async fn drive<I>(
    io: I,
    peer: SocketAddr,
    worker: usize,
    tls: Option<TlsInfo>,
    mode: HttpMode,
    runtime: &ListenerRuntime,
    context: &AcceptContext,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let settings = &runtime.shared.load_balancer;
    let activity = Arc::new(Activity::new());
    let io = ActivityIo {
        inner: io,
        activity: Arc::clone(&activity),
    };
    let connection_context = Arc::new(ConnectionContext {
        listener: Arc::clone(&context.listener),
        peer,
        worker,
        tls,
        forwarded_for: [
            headers::client_address(peer, false),
            headers::client_address(peer, true),
        ],
        in_flight: AtomicUsize::new(0),
    });
    let service_context = Arc::clone(&connection_context);
    let service = service_fn(move |request| handler::handle(Arc::clone(&service_context), request));

    let mut builder = auto::Builder::new(TokioExecutor::new());
    match mode {
        HttpMode::Http1 => builder = builder.http1_only(),
        HttpMode::Http2 => builder = builder.http2_only(),
        HttpMode::Auto => {}
    }
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(MAX_REQUEST_HEAD_BYTES)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);

    // One watchdog timer per connection covers ALB's idle timeout, the client keep-alive
    // duration and process shutdown. It is polled only after it has fired (the timer wakes
    // the task itself), so the per-request wake-ups of the connection cost nothing extra.
    let idle_timeout = settings.idle_timeout;
    let opened = tokio::time::Instant::now();
    let keep_alive_ends = opened + settings.client_keep_alive;
    let watchdog =
        tokio::time::sleep_until(next_check(opened, opened + idle_timeout, keep_alive_ends));
    tokio::pin!(watchdog);
    let mut watchdog_armed = false;
    let mut closing: Option<tokio::time::Instant> = None;
    let shutdown = context.shutdown.clone();
    let outcome = std::future::poll_fn(|cx| loop {
        if let Poll::Ready(result) = connection.as_mut().poll(cx) {
            return Poll::Ready(Some(result));
        }
        if watchdog_armed && !watchdog.is_elapsed() {
            return Poll::Pending;
        }
        if watchdog.as_mut().poll(cx).is_pending() {
            watchdog_armed = true;
            return Poll::Pending;
        }
        watchdog_armed = false;
        let now = tokio::time::Instant::now();
        let busy = connection_context.in_flight.load(Ordering::Relaxed) > 0;
        let idle_since = now - activity.idle_for();
        let idle_deadline = if busy {
            now + idle_timeout
        } else {
            idle_since + idle_timeout
        };
        let stop_asked = shutdown.has_changed().unwrap_or(true) || now >= keep_alive_ends;
        match closing {
            // Asked to close a full idle period ago and still open: drop it.
            Some(asked) if !busy && now >= asked + idle_timeout && now >= idle_deadline => {
                return Poll::Ready(None);
            }
            Some(_) => {}
            None if stop_asked || (!busy && now >= idle_deadline) => {
                // Finish what is in flight, then close (HTTP/1 `Connection: close`, HTTP/2
                // GOAWAY); an idle HTTP/1 connection closes at once.
                connection.as_mut().graceful_shutdown();
                closing = Some(now);
            }
            None => {}
        }
        let idle_deadline = match closing {
            Some(asked) => idle_deadline.max(asked + idle_timeout),
            None => idle_deadline,
        };
        watchdog
            .as_mut()
            .reset(next_check(now, idle_deadline, keep_alive_ends));
    })
    .await;
    if let Some(Err(error)) = outcome {
        tracing::debug!(%peer, %error, "client connection ended with an error");
    }
}

/// How often an otherwise quiet connection checks for process shutdown.
const SHUTDOWN_CHECK: Duration = Duration::from_secs(1);

/// The watchdog's next deadline: the earliest of the idle deadline, the end of the client
/// keep-alive duration, and the next shutdown check.
fn next_check(
    now: tokio::time::Instant,
    idle_deadline: tokio::time::Instant,
    keep_alive_ends: tokio::time::Instant,
) -> tokio::time::Instant {
    idle_deadline
        .min(keep_alive_ends)
        .min(now + SHUTDOWN_CHECK)
        .max(now)
}

fn process_epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// When a connection last moved a byte, for ALB's idle timeout.
struct Activity(AtomicU64);

impl Activity {
    fn new() -> Self {
        let activity = Activity(AtomicU64::new(0));
        activity.touch();
        activity
    }

    fn touch(&self) {
        self.0.store(
            process_epoch().elapsed().as_millis() as u64,
            Ordering::Relaxed,
        );
    }

    fn idle_for(&self) -> Duration {
        let now = process_epoch().elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.0.load(Ordering::Relaxed)))
    }
}

/// Wraps a client stream to record activity on every read and write.
struct ActivityIo<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for ActivityIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for ActivityIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
