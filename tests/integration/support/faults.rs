//! A fault-injecting HTTP/1.1 proxy to put between apimount and the emulator.
//!
//! The proxy is a hyper server. Every accepted connection carries exactly one
//! request (keep-alive is off, so each response says `Connection: close` and
//! the SDK never reuses a connection). The proxy reads the request whole
//! (head and body), then, drawing from a seeded RNG, either
//! - answers it itself with a fault, **without forwarding it**: 429
//!   `TooManyRequestsException`, 500, 502, 503, a 409 "concurrent
//!   modification" `ConflictException` (API Gateway requests only), or a reset
//!   connection (SO_LINGER 0, no answer);
//! - or forwards it, after a delay for some of them.
//!
//! Faults always happen before the emulator sees the request: unlike AWS,
//! moto would execute a retried CreateResource or AddPermission twice, so a
//! fault after forwarding would test moto, not apimount.
//!
//! Forwarding opens a new connection to the emulator (a hyper client
//! connection), sends the request with `Connection: close`, reads the whole
//! response and relays it to the client.
//!
//! The proxy also keeps a call log: the arrival time and AWS operation
//! (`apigateway:GetResources`, `lambda:AddPermission`…) of every request it
//! forwards ([`FaultProxy::calls`]). With `fault_rate` and `delay_rate` at 0
//! it is a pure recorder; the benchmark (`examples/bench.rs`) counts calls
//! with it.
//!
//! The proxy runs on its own tokio runtime (in background threads), so a test
//! may block its own thread on `Command::output()` while the proxy serves.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Notify;

/// A fault the proxy injects instead of forwarding a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// 429 with `x-amzn-ErrorType: TooManyRequestsException`.
    Throttled,
    /// 500 with a JSON body.
    InternalError,
    /// 409 `ConflictException` "concurrent modification" (API Gateway only).
    ConcurrentModification,
    /// 502 with a JSON body.
    BadGateway,
    /// 503 with a JSON body.
    Unavailable,
    /// The connection is reset (RST) without an answer.
    Reset,
}

impl Fault {
    pub const ALL: [Fault; 6] = [
        Fault::Throttled,
        Fault::InternalError,
        Fault::ConcurrentModification,
        Fault::BadGateway,
        Fault::Unavailable,
        Fault::Reset,
    ];

    fn index(self) -> usize {
        Fault::ALL
            .iter()
            .position(|f| *f == self)
            .expect("every fault is in ALL")
    }

    pub fn name(self) -> &'static str {
        match self {
            Fault::Throttled => "429-throttled",
            Fault::InternalError => "500-internal",
            Fault::ConcurrentModification => "409-concurrent-modification",
            Fault::BadGateway => "502-bad-gateway",
            Fault::Unavailable => "503-unavailable",
            Fault::Reset => "connection-reset",
        }
    }
}

/// How often the proxy misbehaves.
#[derive(Debug, Clone)]
pub struct FaultConfig {
    /// Share of requests answered with a fault instead of being forwarded.
    /// Which requests are faulted is drawn from a shuffled bag of
    /// [`BAG_SIZE`] decisions holding exactly `round(BAG_SIZE × rate)`
    /// faults: random in order, but exact over every [`BAG_SIZE`]
    /// consecutive requests, so a test can rely on the share.
    pub fault_rate: f64,
    /// Share of the remaining requests forwarded only after a delay.
    pub delay_rate: f64,
    /// Delay range, in milliseconds (inclusive).
    pub delay_ms: (u64, u64),
    /// RNG seed; printed by the test so a failing mix can be looked at again.
    pub seed: u64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            fault_rate: 0.3,
            delay_rate: 0.2,
            delay_ms: (50, 300),
            seed: 1,
        }
    }
}

#[derive(Default)]
struct Counters {
    connections: AtomicUsize,
    requests: AtomicUsize,
    apigateway: AtomicUsize,
    lambda: AtomicUsize,
    other_service: AtomicUsize,
    forwarded: AtomicUsize,
    delayed: AtomicUsize,
    faults: [AtomicUsize; 6],
    apigateway_faults: AtomicUsize,
    lambda_faults: AtomicUsize,
    /// Connections closed before a whole request arrived (idle pool
    /// connections, or a client giving up).
    incomplete: AtomicUsize,
    /// Chunked request bodies seen (the SDK is expected to send Content-Length).
    chunked_requests: AtomicUsize,
    /// Forwarded requests whose response could not be read from the emulator.
    upstream_errors: AtomicUsize,
}

/// A snapshot of the proxy's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultStats {
    pub connections: usize,
    /// Whole requests read.
    pub requests: usize,
    pub apigateway: usize,
    pub lambda: usize,
    pub other_service: usize,
    /// Requests sent on to the emulator (delayed ones included).
    pub forwarded: usize,
    pub delayed: usize,
    /// Faults injected, by kind.
    pub faults: BTreeMap<Fault, usize>,
    pub apigateway_faults: usize,
    pub lambda_faults: usize,
    pub incomplete: usize,
    pub chunked_requests: usize,
    pub upstream_errors: usize,
}

impl FaultStats {
    /// Requests answered with a fault.
    pub fn faulted(&self) -> usize {
        self.faults.values().sum()
    }

    /// Faulted share of the whole requests read.
    pub fn fault_share(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.faulted() as f64 / self.requests as f64
        }
    }

    /// The counts accumulated since `earlier`.
    pub fn since(&self, earlier: &FaultStats) -> FaultStats {
        FaultStats {
            connections: self.connections - earlier.connections,
            requests: self.requests - earlier.requests,
            apigateway: self.apigateway - earlier.apigateway,
            lambda: self.lambda - earlier.lambda,
            other_service: self.other_service - earlier.other_service,
            forwarded: self.forwarded - earlier.forwarded,
            delayed: self.delayed - earlier.delayed,
            faults: self
                .faults
                .iter()
                .map(|(k, v)| (*k, v - earlier.faults.get(k).copied().unwrap_or(0)))
                .collect(),
            apigateway_faults: self.apigateway_faults - earlier.apigateway_faults,
            lambda_faults: self.lambda_faults - earlier.lambda_faults,
            incomplete: self.incomplete - earlier.incomplete,
            chunked_requests: self.chunked_requests - earlier.chunked_requests,
            upstream_errors: self.upstream_errors - earlier.upstream_errors,
        }
    }
}

impl fmt::Display for FaultStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests ({} apigateway, {} lambda, {} other), {} faulted ({:.1}%: {} apigateway, {} lambda), {} forwarded ({} delayed)",
            self.requests,
            self.apigateway,
            self.lambda,
            self.other_service,
            self.faulted(),
            100.0 * self.fault_share(),
            self.apigateway_faults,
            self.lambda_faults,
            self.forwarded,
            self.delayed,
        )?;
        let kinds: Vec<String> = self
            .faults
            .iter()
            .map(|(k, v)| format!("{}={v}", k.name()))
            .collect();
        write!(
            f,
            "; faults: {}; {} connections, {} closed before a whole request, {} chunked, {} upstream errors",
            kinds.join(" "),
            self.connections,
            self.incomplete,
            self.chunked_requests,
            self.upstream_errors
        )
    }
}

/// Requests per bag of fault decisions.
pub const BAG_SIZE: usize = 20;

struct Draws {
    rng: StdRng,
    /// Fault decisions left in the current bag.
    bag: Vec<bool>,
}

struct Shared {
    upstream: SocketAddr,
    /// Fault rate in parts per million, adjustable while running.
    fault_ppm: u32,
    delay_ppm: u32,
    delay_ms: (u64, u64),
    draws: Mutex<Draws>,
    counters: Counters,
    /// `(arrival, operation)` of every forwarded request.
    calls: Mutex<Vec<(Instant, String)>>,
}

/// The running proxy; stops on drop.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

fn ppm(rate: f64) -> u32 {
    assert!((0.0..=1.0).contains(&rate), "rate {rate} is not in 0..=1");
    (rate * 1_000_000.0).round() as u32
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port in front of `upstream`
    /// (`http://127.0.0.1:PORT`, the emulator's endpoint).
    pub fn start(upstream: &str, config: FaultConfig) -> FaultProxy {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap_or_else(|e| panic!("upstream {upstream} is not http://IP:PORT: {e}"));
        assert!(config.delay_ms.0 <= config.delay_ms.1, "delay range");
        let shared = Arc::new(Shared {
            upstream,
            fault_ppm: ppm(config.fault_rate),
            delay_ppm: ppm(config.delay_rate),
            delay_ms: config.delay_ms,
            draws: Mutex::new(Draws {
                rng: StdRng::seed_from_u64(config.seed),
                bag: Vec::new(),
            }),
            counters: Counters::default(),
            calls: Mutex::new(Vec::new()),
        });
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind proxy port");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("proxy address");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fault-proxy")
            .enable_all()
            .build()
            .expect("proxy runtime");
        let accept_shared = shared.clone();
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("tokio listener");
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    // Out of file descriptors or similar: back off briefly.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let shared = accept_shared.clone();
                shared.counters.connections.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    // A connection never lives longer than apimount's own
                    // per-attempt timeout would allow.
                    let _ =
                        tokio::time::timeout(Duration::from_secs(30), serve(client, shared)).await;
                });
            }
        });
        FaultProxy {
            addr,
            shared,
            runtime: Some(runtime),
        }
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stats(&self) -> FaultStats {
        let c = &self.shared.counters;
        let n = |a: &AtomicUsize| a.load(Ordering::Relaxed);
        FaultStats {
            connections: n(&c.connections),
            requests: n(&c.requests),
            apigateway: n(&c.apigateway),
            lambda: n(&c.lambda),
            other_service: n(&c.other_service),
            forwarded: n(&c.forwarded),
            delayed: n(&c.delayed),
            faults: Fault::ALL
                .iter()
                .map(|f| (*f, n(&c.faults[f.index()])))
                .collect(),
            apigateway_faults: n(&c.apigateway_faults),
            lambda_faults: n(&c.lambda_faults),
            incomplete: n(&c.incomplete),
            chunked_requests: n(&c.chunked_requests),
            upstream_errors: n(&c.upstream_errors),
        }
    }

    /// The call log: `(arrival time, operation)` of every request forwarded
    /// so far, in arrival order. Operations are named by [`operation_of`].
    /// Faulted requests are not in it (the emulator never saw them).
    pub fn calls(&self) -> Vec<(Instant, String)> {
        let mut calls = self.shared.calls.lock().expect("call log lock").clone();
        // Entries are appended when forwarded, which concurrent requests
        // may do slightly out of arrival order.
        calls.sort_by_key(|(at, _)| *at);
        calls
    }

    /// Like [`FaultProxy::calls`], and empties the log.
    pub fn take_calls(&self) -> Vec<(Instant, String)> {
        let mut calls = std::mem::take(&mut *self.shared.calls.lock().expect("call log lock"));
        calls.sort_by_key(|(at, _)| *at);
        calls
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Safe to call from within another runtime, unlike dropping it.
            rt.shutdown_background();
        }
    }
}

// ----- deciding ------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    ApiGateway,
    Lambda,
    Other,
}

impl Service {
    /// The AWS service from the SigV4 credential scope
    /// (`Credential=KEY/DATE/REGION/SERVICE/aws4_request`).
    fn of(headers: &HeaderMap) -> Service {
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if auth.contains("/apigateway/") {
            Service::ApiGateway
        } else if auth.contains("/lambda/") {
            Service::Lambda
        } else {
            Service::Other
        }
    }
}

enum Decision {
    Fault(Fault),
    Forward(Option<Duration>),
}

impl Shared {
    fn decide(&self, service: Service) -> Decision {
        let mut draws = self.draws.lock().expect("draws lock");
        let Draws { rng, bag } = &mut *draws;
        if bag.is_empty() {
            let rate = f64::from(self.fault_ppm) / 1_000_000.0;
            let faults = (rate * BAG_SIZE as f64).round() as usize;
            bag.extend((0..BAG_SIZE).map(|i| i < faults));
            bag.shuffle(rng);
        }
        if bag.pop().expect("bag refilled") {
            let kinds: Vec<Fault> = Fault::ALL
                .iter()
                .copied()
                .filter(|f| *f != Fault::ConcurrentModification || service == Service::ApiGateway)
                .collect();
            return Decision::Fault(kinds[rng.random_range(0..kinds.len())]);
        }
        if rng.random_range(0..1_000_000u32) < self.delay_ppm {
            let ms = rng.random_range(self.delay_ms.0..=self.delay_ms.1);
            return Decision::Forward(Some(Duration::from_millis(ms)));
        }
        Decision::Forward(None)
    }
}

// ----- one connection ------------------------------------------------------------

type Answer = Response<Full<Bytes>>;

/// What the request handler tells the connection it runs on.
#[derive(Default)]
struct Connection {
    /// Set once a whole request (head and body) has been read.
    whole_request: AtomicBool,
    /// Notified when the decision is [`Fault::Reset`].
    reset: Notify,
}

/// Serves the one request of a client connection.
async fn serve(client: TcpStream, shared: Arc<Shared>) {
    let _ = client.set_nodelay(true);
    // hyper owns the stream from here on; a second descriptor of the same
    // socket is kept to reset it (SO_LINGER 0 makes the last close send RST
    // instead of FIN).
    let Ok(second_fd) = client.as_fd().try_clone_to_owned() else {
        return;
    };
    let conn = Arc::new(Connection::default());
    let service = {
        let (shared, conn) = (shared.clone(), conn.clone());
        service_fn(move |request| handle(request, shared.clone(), conn.clone()))
    };
    let http = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .serve_connection(TokioIo::new(client), service);
    tokio::select! {
        _ = http => {}
        () = conn.reset.notified() => {
            // The handler waits forever, so nothing has been written. Both
            // descriptors close at the end of this block (hyper's with the
            // connection, dropped by select!); the last close sends the RST.
            let socket = TcpSocket::from_std_stream(std::net::TcpStream::from(second_fd));
            let _ = socket.set_zero_linger();
            return;
        }
    }
    if !conn.whole_request.load(Ordering::Relaxed) {
        // Closed before a whole request arrived (an idle pool connection, or
        // a client giving up).
        shared.counters.incomplete.fetch_add(1, Ordering::Relaxed);
    }
}

async fn handle(
    request: Request<Incoming>,
    shared: Arc<Shared>,
    conn: Arc<Connection>,
) -> Result<Answer, Infallible> {
    let received = Instant::now();
    let c = &shared.counters;
    let (head, body) = request.into_parts();
    // hyper answers `Expect: 100-continue` when the body is first polled.
    let body = match body.collect().await {
        Ok(body) => body.to_bytes(),
        // The client went away inside the body; the answer will not arrive.
        Err(e) => return Ok(json(StatusCode::BAD_REQUEST, None, &e.to_string())),
    };
    conn.whole_request.store(true, Ordering::Relaxed);
    c.requests.fetch_add(1, Ordering::Relaxed);
    let chunked = head
        .headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .any(|v| {
            v.to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains("chunked"))
        });
    if chunked {
        c.chunked_requests.fetch_add(1, Ordering::Relaxed);
    }
    let service = Service::of(&head.headers);
    match service {
        Service::ApiGateway => c.apigateway.fetch_add(1, Ordering::Relaxed),
        Service::Lambda => c.lambda.fetch_add(1, Ordering::Relaxed),
        Service::Other => c.other_service.fetch_add(1, Ordering::Relaxed),
    };

    match shared.decide(service) {
        Decision::Fault(fault) => {
            c.faults[fault.index()].fetch_add(1, Ordering::Relaxed);
            match service {
                Service::ApiGateway => c.apigateway_faults.fetch_add(1, Ordering::Relaxed),
                Service::Lambda => c.lambda_faults.fetch_add(1, Ordering::Relaxed),
                Service::Other => 0,
            };
            match injected(fault) {
                Some(answer) => Ok(answer),
                None => {
                    // Reset: the connection task aborts the connection.
                    conn.reset.notify_one();
                    std::future::pending().await
                }
            }
        }
        Decision::Forward(delay) => {
            if let Some(d) = delay {
                c.delayed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(d).await;
            }
            c.forwarded.fetch_add(1, Ordering::Relaxed);
            let operation = operation_of(head.method.as_str(), head.uri.path());
            shared
                .calls
                .lock()
                .expect("call log lock")
                .push((received, operation));
            match forward(head, body, shared.upstream).await {
                Ok(answer) => Ok(answer),
                Err(e) => {
                    c.upstream_errors.fetch_add(1, Ordering::Relaxed);
                    let message = format!("fault proxy: emulator unreachable: {e}");
                    Ok(json(StatusCode::BAD_GATEWAY, None, &message))
                }
            }
        }
    }
}

/// The answer of an injected fault; `None` for [`Fault::Reset`], which has none.
fn injected(fault: Fault) -> Option<Answer> {
    let (status, error_type, message) = match fault {
        Fault::Throttled => (
            StatusCode::TOO_MANY_REQUESTS,
            Some("TooManyRequestsException"),
            "Too Many Requests",
        ),
        Fault::InternalError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "Internal server error (injected by the fault proxy)",
        ),
        Fault::ConcurrentModification => (
            StatusCode::CONFLICT,
            Some("ConflictException"),
            "Unable to complete operation due to concurrent modification. Please try again later.",
        ),
        Fault::BadGateway => (
            StatusCode::BAD_GATEWAY,
            None,
            "Bad gateway (injected by the fault proxy)",
        ),
        Fault::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "Service unavailable (injected by the fault proxy)",
        ),
        Fault::Reset => return None,
    };
    Some(json(status, error_type, message))
}

/// A JSON error answer `{"message": …}` (hyper adds `Content-Length`, and
/// `Connection: close` since keep-alive is off).
fn json(status: StatusCode, error_type: Option<&'static str>, message: &str) -> Answer {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut answer = Response::new(Full::new(Bytes::from(body)));
    *answer.status_mut() = status;
    let headers = answer.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("x-amzn-requestid", HeaderValue::from_static("fault-proxy"));
    if let Some(t) = error_type {
        headers.insert("x-amzn-errortype", HeaderValue::from_static(t));
    }
    answer
}

/// Headers that describe one hop, not the message.
const HOP_BY_HOP: [&str; 3] = ["connection", "keep-alive", "proxy-connection"];

/// Removes the hop-by-hop headers and `more` from `headers`.
fn strip(headers: &mut HeaderMap, more: &[HeaderName]) {
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    for name in more {
        headers.remove(name);
    }
}

/// Sends the request to the emulator on a fresh connection, with
/// `Connection: close`, and returns its whole response. hyper frames both
/// bodies again (they are whole by then), so `Transfer-Encoding` is dropped;
/// `Content-Length` is kept as sent (it is still right, and a HEAD answer's
/// must survive).
async fn forward(
    mut head: request::Parts,
    body: Bytes,
    upstream: SocketAddr,
) -> Result<Answer, String> {
    let stream = TcpStream::connect(upstream)
        .await
        .map_err(|e| format!("connect to {upstream}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    // Drives the connection until the response is read and it closes.
    tokio::spawn(connection);

    strip(
        &mut head.headers,
        &[header::EXPECT, header::TRANSFER_ENCODING],
    );
    head.headers
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    head.extensions.clear();
    let response = sender
        .send_request(Request::from_parts(head, Full::new(body)))
        .await
        .map_err(|e| format!("send the request: {e}"))?;
    let (mut head, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("read the response: {e}"))?
        .to_bytes();
    strip(&mut head.headers, &[header::TRANSFER_ENCODING]);
    head.extensions.clear();
    Ok(Response::from_parts(head, Full::new(body)))
}

// ----- the call log ------------------------------------------------------------------

/// Names a REST call by its method and path shape: `apigateway:GetResources`,
/// `lambda:GetPolicy`…; unknown shapes come out as `METHOD /shape`.
pub fn operation_of(method: &str, path: &str) -> String {
    let path = path.split('?').next().unwrap_or("");
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let shape: Vec<&str> = match segs.first().copied() {
        Some("restapis") => segs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let prev = if i > 0 { segs[i - 1] } else { "" };
                match prev {
                    "restapis" => "{api}",
                    "resources" => "{res}",
                    "methods" => "{verb}",
                    "stages" => "{stage}",
                    "deployments" => "{dep}",
                    _ => s,
                }
            })
            .collect(),
        Some("2015-03-31") => segs
            .iter()
            .enumerate()
            .map(|(i, s)| match i {
                2 => "{fn}",
                4 => "{sid}",
                _ => s,
            })
            .collect(),
        _ => segs.clone(),
    };
    let shape = format!("/{}", shape.join("/"));
    let name = match (method, shape.as_str()) {
        ("GET", "/restapis/{api}/resources") => "apigateway:GetResources",
        ("POST", "/restapis/{api}/resources/{res}") => "apigateway:CreateResource",
        ("DELETE", "/restapis/{api}/resources/{res}") => "apigateway:DeleteResource",
        ("GET", "/restapis/{api}/resources/{res}") => "apigateway:GetResource",
        ("PUT", "/restapis/{api}/resources/{res}/methods/{verb}") => "apigateway:PutMethod",
        ("GET", "/restapis/{api}/resources/{res}/methods/{verb}") => "apigateway:GetMethod",
        ("DELETE", "/restapis/{api}/resources/{res}/methods/{verb}") => "apigateway:DeleteMethod",
        ("PUT", "/restapis/{api}/resources/{res}/methods/{verb}/integration") => {
            "apigateway:PutIntegration"
        }
        ("GET", "/restapis/{api}/resources/{res}/methods/{verb}/integration") => {
            "apigateway:GetIntegration"
        }
        ("POST", "/restapis/{api}/deployments") => "apigateway:CreateDeployment",
        ("GET", "/restapis/{api}/deployments") => "apigateway:GetDeployments",
        ("GET", "/restapis/{api}/deployments/{dep}") => "apigateway:GetDeployment",
        ("POST", "/restapis/{api}/stages") => "apigateway:CreateStage",
        ("GET", "/restapis/{api}/stages/{stage}") => "apigateway:GetStage",
        ("PATCH", "/restapis/{api}/stages/{stage}") => "apigateway:UpdateStage",
        ("GET", "/restapis/{api}") => "apigateway:GetRestApi",
        ("GET", "/2015-03-31/functions/{fn}") => "lambda:GetFunction",
        ("GET", "/2015-03-31/functions/{fn}/policy") => "lambda:GetPolicy",
        ("POST", "/2015-03-31/functions/{fn}/policy") => "lambda:AddPermission",
        ("DELETE", "/2015-03-31/functions/{fn}/policy/{sid}") => "lambda:RemovePermission",
        _ => return format!("{method} {shape}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    //! The proxy on its own, in front of a stub upstream (no emulator).

    use super::*;
    use std::io::{ErrorKind, Read, Write};

    const APIGATEWAY_AUTH: &str = "AWS4-HMAC-SHA256 Credential=test/20250101/eu-west-2/apigateway/aws4_request, SignedHeaders=host, Signature=0";
    const LAMBDA_AUTH: &str = "AWS4-HMAC-SHA256 Credential=test/20250101/eu-west-2/lambda/aws4_request, SignedHeaders=host, Signature=0";

    #[test]
    fn operations_are_named_by_method_and_path_shape() {
        for (method, path, operation) in [
            (
                "GET",
                "/restapis/a1b2/resources?embed=methods&limit=500",
                "apigateway:GetResources",
            ),
            (
                "POST",
                "/restapis/a1b2/resources/r0",
                "apigateway:CreateResource",
            ),
            (
                "PUT",
                "/restapis/a1b2/resources/r1/methods/ANY",
                "apigateway:PutMethod",
            ),
            (
                "PUT",
                "/restapis/a1b2/resources/r1/methods/GET/integration",
                "apigateway:PutIntegration",
            ),
            (
                "POST",
                "/restapis/a1b2/deployments",
                "apigateway:CreateDeployment",
            ),
            (
                "PATCH",
                "/restapis/a1b2/stages/prod",
                "apigateway:UpdateStage",
            ),
            ("GET", "/restapis/a1b2", "apigateway:GetRestApi"),
            (
                "GET",
                "/2015-03-31/functions/bench-fn-0001",
                "lambda:GetFunction",
            ),
            (
                "GET",
                "/2015-03-31/functions/f%3Alive/policy?Qualifier=live",
                "lambda:GetPolicy",
            ),
            (
                "POST",
                "/2015-03-31/functions/f/policy",
                "lambda:AddPermission",
            ),
            (
                "DELETE",
                "/2015-03-31/functions/f/policy/apimount-a1b2-x",
                "lambda:RemovePermission",
            ),
            (
                "GET",
                "/restapis/a1b2/authorizers",
                "GET /restapis/{api}/authorizers",
            ),
            ("POST", "/", "POST /"),
        ] {
            assert_eq!(operation_of(method, path), operation, "{method} {path}");
        }
    }

    /// An HTTP/1.1 server answering every request with `200`, its request
    /// line and its body (requests carry `Content-Length` or no body).
    fn echo_upstream() -> String {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind upstream");
        let addr = listener.local_addr().expect("upstream address");
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut raw = Vec::new();
                let mut byte = [0u8; 1];
                while !raw.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                    raw.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap_or(0));
                let mut body = vec![0u8; length];
                let _ = stream.read_exact(&mut body);
                let line = head.lines().next().unwrap_or_default().to_string();
                let text = format!("{line} {}", String::from_utf8_lossy(&body));
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
            }
        });
        format!("http://{addr}")
    }

    /// One request through the proxy: the raw answer, or the error reading it.
    fn send(
        proxy: &FaultProxy,
        method: &str,
        path: &str,
        auth: &str,
        body: &str,
    ) -> std::io::Result<String> {
        let addr = proxy.url().trim_start_matches("http://").to_string();
        let mut stream = std::net::TcpStream::connect(&addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    }

    #[test]
    fn without_faults_every_request_is_forwarded_and_logged() {
        let proxy = FaultProxy::start(
            &echo_upstream(),
            FaultConfig {
                fault_rate: 0.0,
                delay_rate: 0.0,
                ..FaultConfig::default()
            },
        );
        let before = Instant::now();
        let a = send(
            &proxy,
            "GET",
            "/restapis/a1/resources?limit=500",
            APIGATEWAY_AUTH,
            "",
        )
        .expect("GetResources answer");
        let b = send(
            &proxy,
            "POST",
            "/2015-03-31/functions/f/policy",
            LAMBDA_AUTH,
            r#"{"x":1}"#,
        )
        .expect("AddPermission answer");
        assert!(a.starts_with("HTTP/1.1 200"), "{a}");
        assert!(a.to_ascii_lowercase().contains("connection: close"), "{a}");
        assert!(
            a.ends_with("get /restapis/a1/resources?limit=500 http/1.1 "),
            "{a}"
        );
        assert!(
            b.ends_with(r#"post /2015-03-31/functions/f/policy http/1.1 {"x":1}"#),
            "{b}"
        );

        let calls = proxy.calls();
        let operations: Vec<&str> = calls.iter().map(|(_, op)| op.as_str()).collect();
        assert_eq!(
            operations,
            ["apigateway:GetResources", "lambda:AddPermission"]
        );
        assert!(calls.iter().all(|(at, _)| *at >= before));
        let stats = proxy.stats();
        assert_eq!(
            (
                stats.requests,
                stats.apigateway,
                stats.lambda,
                stats.forwarded,
                stats.faulted()
            ),
            (2, 1, 1, 2, 0),
            "{stats}"
        );
        assert_eq!(proxy.take_calls(), calls);
        assert!(proxy.calls().is_empty());
    }

    #[test]
    fn faults_are_answered_without_forwarding_and_resets_are_rsts() {
        let proxy = FaultProxy::start(
            &echo_upstream(),
            FaultConfig {
                fault_rate: 1.0,
                seed: 7,
                ..FaultConfig::default()
            },
        );
        let mut seen: BTreeMap<Fault, usize> = BTreeMap::new();
        for _ in 0..2 * BAG_SIZE {
            let fault = match send(&proxy, "GET", "/restapis/a1", APIGATEWAY_AUTH, "") {
                Err(e) if e.kind() == ErrorKind::ConnectionReset => Fault::Reset,
                Err(e) => panic!("unexpected error: {e}"),
                Ok(answer) => {
                    let lower = answer.to_ascii_lowercase();
                    let status = answer.split_whitespace().nth(1).unwrap_or_default();
                    match status {
                        "429" if lower.contains("x-amzn-errortype: toomanyrequestsexception") => {
                            Fault::Throttled
                        }
                        "409" if lower.contains("x-amzn-errortype: conflictexception") => {
                            Fault::ConcurrentModification
                        }
                        "500" => Fault::InternalError,
                        "502" => Fault::BadGateway,
                        "503" => Fault::Unavailable,
                        _ => panic!("not an injected fault: {answer}"),
                    }
                }
            };
            *seen.entry(fault).or_default() += 1;
        }
        let stats = proxy.stats();
        assert!(seen.contains_key(&Fault::Reset), "{stats}");
        for kind in Fault::ALL {
            assert_eq!(
                seen.get(&kind).copied().unwrap_or(0),
                stats.faults[&kind],
                "{}: {stats}",
                kind.name()
            );
        }
        assert_eq!(
            (stats.faulted(), stats.forwarded),
            (2 * BAG_SIZE, 0),
            "{stats}"
        );
        assert!(proxy.calls().is_empty());
    }
}
