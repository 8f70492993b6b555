//! The admin HTTP endpoint: `/healthz` (the loop is alive), `/readyz` (the
//! first full pass has finished) and `/metrics` (Prometheus text format),
//! served with hyper. It serves operators and probes on a private port, not
//! the public: GET only, one request per connection, the request head read
//! within 5 s and the whole exchange done within 5 s, the head held to
//! hyper's smallest read buffer (8 KiB).
//!
//! Also the client side of `apimount healthcheck`, for container
//! HEALTHCHECKs, which have no shell or curl in a distroless image.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{Empty, Full};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use super::metrics::Metrics;

/// How long one connection may take, head and answer included.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);
/// hyper's smallest read buffer; a probe's request is a few hundred bytes.
const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// Liveness and readiness, shared between the loop and the endpoint.
pub struct Health {
    /// Milliseconds from `epoch` to the loop's last heartbeat (a monotonic
    /// clock: a step of the wall clock neither kills nor revives the loop).
    heartbeat: AtomicU64,
    epoch: Instant,
    pub ready: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            heartbeat: AtomicU64::new(0),
            epoch: Instant::now(),
            ready: AtomicBool::new(false),
        }
    }
}

impl Health {
    pub fn beat(&self) {
        self.heartbeat.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Alive when the loop has beaten within `max_silence`.
    pub fn alive(&self, max_silence: Duration) -> bool {
        self.silence() <= max_silence
    }

    /// Time since the last heartbeat.
    fn silence(&self) -> Duration {
        let last = self.heartbeat.load(Ordering::Relaxed);
        Duration::from_millis(self.now_ms().saturating_sub(last))
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Every finished AWS call is progress: a long pass that is advancing (a
/// first pass paced under the account's quotas can take many minutes) stays
/// healthy, and one that is stuck does not. The calls are also counted.
pub struct Progress {
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
}

impl crate::aws::CallSink for Progress {
    fn record(&self, service: &str, operation: &str, outcome: &str) {
        self.health.beat();
        self.metrics.record(service, operation, outcome);
    }
}

/// Serves until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    max_silence: Duration,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let health = health.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let response = respond(
                    req.method(),
                    req.uri().path(),
                    &health,
                    &metrics,
                    max_silence,
                );
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(EXCHANGE_TIMEOUT)
                .max_buf_size(MAX_REQUEST_HEAD)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(EXCHANGE_TIMEOUT, connection).await;
        });
    }
}

fn respond(
    method: &Method,
    path: &str,
    health: &Health,
    metrics: &Metrics,
    max_silence: Duration,
) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain";
    let (status, content_type, body) = match (method, path) {
        (&Method::GET, "/healthz") if health.alive(max_silence) => {
            (StatusCode::OK, TEXT, "ok\n".into())
        }
        (&Method::GET, "/healthz") => (
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            "the reconcile loop is stuck\n".into(),
        ),
        (&Method::GET, "/readyz") if health.ready.load(Ordering::Relaxed) => {
            (StatusCode::OK, TEXT, "ready\n".into())
        }
        (&Method::GET, "/readyz") => (
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            "the first pass has not finished\n".into(),
        ),
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        (&Method::GET, _) => (StatusCode::NOT_FOUND, TEXT, "not found\n".into()),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "only GET\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        content_type.parse().expect("a valid header value"),
    );
    response
}

/// Why `apimount healthcheck` failed.
#[derive(Debug, thiserror::Error)]
pub enum HealthcheckError {
    #[error("connecting to {addr} timed out")]
    ConnectTimeout { addr: String },
    #[error("cannot connect to {addr}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no answer within 3 s")]
    AnswerTimeout,
    #[error("the request to {addr} failed")]
    Http {
        addr: String,
        #[source]
        source: hyper::Error,
    },
    #[error("HTTP/1.1 {0}")]
    Unhealthy(StatusCode),
}

/// `apimount healthcheck`: asks a running daemon's `/healthz`.
pub async fn check(addr: &str) -> Result<(), HealthcheckError> {
    const WAIT: Duration = Duration::from_secs(3);
    let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .map_err(|_| HealthcheckError::ConnectTimeout {
            addr: addr.to_string(),
        })?
        .map_err(|source| HealthcheckError::Connect {
            addr: addr.to_string(),
            source,
        })?;
    let http = |source| HealthcheckError::Http {
        addr: addr.to_string(),
        source,
    };
    let exchange = async {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http)?;
        tokio::spawn(connection);
        let request = Request::get("/healthz")
            .header(HOST, addr)
            .body(Empty::<Bytes>::new())
            .expect("a valid request");
        sender.send_request(request).await.map_err(http)
    };
    let response = tokio::time::timeout(WAIT, exchange)
        .await
        .map_err(|_| HealthcheckError::AnswerTimeout)??;
    match response.status() {
        StatusCode::OK => Ok(()),
        status => Err(HealthcheckError::Unhealthy(status)),
    }
}
