//! Connections: the accept loop with its connection limit, the header-read and idle timeouts, and graceful shutdown.
//!
//! Every connection holds a permit of the connection limit. Beyond it, a few more are accepted on which only the
//! health check is answered (everything else 503 `busy`, keep-alive off), so that a monitor still sees a live server;
//! beyond those, a connection is closed as soon as it is accepted. A failed accept (out of file descriptors) waits a
//! moment before the next one instead of spinning. A connection without a request in progress for the idle timeout
//! is shut down gracefully; HTTP/1.1 headers must arrive within the header-read timeout (hyper's own timer).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use crate::routes;
use crate::server::State;

/// How long the accept loop waits after a failed accept (typically: no file descriptor left).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long graceful shutdown waits for open connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Header-read timeout on connections beyond the limit (or the configured one, if shorter).
const OVERFLOW_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// Accepts connections until `signal` turns true, then lets open ones finish (up to [`SHUTDOWN_GRACE`]).
pub(crate) async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    mut signal: watch::Receiver<bool>,
) {
    let limits = &state.limits;
    let max = limits.max_connections.max(1);
    let overflow_max = (max / 16).max(8);
    let connections = Arc::new(Semaphore::new(max));
    let overflow = Arc::new(Semaphore::new(overflow_max));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut overflow_builder = Builder::new(TokioExecutor::new());
    overflow_builder
        .http1()
        .keep_alive(false)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout.min(OVERFLOW_HEADER_TIMEOUT));
    let mut last_warning: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = signal.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                if last_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(%error, "cannot accept a connection; retrying (file-descriptor limit?)");
                    last_warning = Some(Instant::now());
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (permit, overloaded) = match Arc::clone(&connections).try_acquire_owned() {
            Ok(permit) => (permit, false),
            Err(_) => match Arc::clone(&overflow).try_acquire_owned() {
                Ok(permit) => (permit, true),
                Err(_) => {
                    tracing::debug!(%peer, "connection refused: over the connection limit");
                    continue;
                }
            },
        };
        let builder = if overloaded {
            &overflow_builder
        } else {
            &builder
        };
        spawn_connection(builder, stream, peer, &state, overloaded, permit, &signal);
    }
    drop(listener);
    let all = |semaphore: Arc<Semaphore>, count: usize| async move {
        semaphore
            .acquire_many_owned(u32::try_from(count).unwrap_or(u32::MAX))
            .await
    };
    let drained = async {
        let _ = all(connections, max).await;
        let _ = all(overflow, overflow_max).await;
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
        tracing::warn!("connections still open after 10 s of graceful shutdown");
    }
}

/// Serves one connection on its own task, holding `permit` until it closes.
fn spawn_connection(
    builder: &Builder<TokioExecutor>,
    stream: TcpStream,
    peer: SocketAddr,
    state: &Arc<State>,
    overloaded: bool,
    permit: OwnedSemaphorePermit,
    signal: &watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let service = {
        let (state, activity) = (Arc::clone(state), Arc::clone(&activity));
        service_fn(move |request| {
            let guard = Activity::begin(&activity);
            let state = Arc::clone(&state);
            async move {
                let answer = routes::handle(state, request, overloaded).await;
                drop(guard);
                answer
            }
        })
    };
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .into_owned();
    // Clamped so that deadlines computed from it cannot overflow.
    let idle = state
        .limits
        .idle_timeout
        .min(Duration::from_secs(365 * 24 * 3600));
    let signal = signal.clone();
    tokio::spawn(async move {
        drive(connection, &activity, idle, signal, peer).await;
        drop(permit);
    });
}

/// Runs `connection` to its end, shutting it down gracefully (requests in progress finish) when the server shuts
/// down or when no request has been in progress for `idle`.
async fn drive<C>(
    connection: C,
    activity: &Activity,
    idle: Duration,
    mut signal: watch::Receiver<bool>,
    peer: SocketAddr,
) where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    let mut connection = std::pin::pin!(connection);
    let mut closing = *signal.borrow();
    if closing {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        let deadline = activity
            .idle_since()
            .map_or_else(|| Instant::now() + idle, |since| since + idle);
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(error) = ended {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                return;
            }
            _ = signal.changed(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(deadline), if !closing => {
                if activity.idle_since().is_some_and(|since| since.elapsed() >= idle) {
                    tracing::debug!(%peer, "idle connection closed");
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Requests in progress on one connection, and when the last one ended (or the connection opened).
#[derive(Debug)]
struct Activity(Mutex<(usize, Instant)>);

/// One request in progress ([`Activity::begin`]); ends it when dropped.
struct InProgress(Arc<Activity>);

impl Drop for InProgress {
    fn drop(&mut self) {
        let mut state = self.0.0.lock().unwrap_or_else(PoisonError::into_inner);
        state.0 = state.0.saturating_sub(1);
        state.1 = Instant::now();
    }
}

impl Activity {
    fn new() -> Self {
        Self(Mutex::new((0, Instant::now())))
    }

    /// Marks a request in progress until the returned guard is dropped.
    fn begin(activity: &Arc<Self>) -> InProgress {
        let mut state = activity.0.lock().unwrap_or_else(PoisonError::into_inner);
        state.0 = state.0.saturating_add(1);
        InProgress(Arc::clone(activity))
    }

    /// Since when no request has been in progress; `None` while one is.
    fn idle_since(&self) -> Option<Instant> {
        let state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        (state.0 == 0).then_some(state.1)
    }
}
