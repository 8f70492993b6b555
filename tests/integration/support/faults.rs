//! A fault-injecting HTTP/1.1 proxy to put between apimount and the emulator.
//!
//! Every accepted connection carries exactly one request: the proxy reads it
//! whole (headers, then a `Content-Length` or chunked body), then, drawing from
//! a seeded RNG, either
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
//! Forwarding opens a new connection to the emulator, sends the request with
//! `Connection: close`, reads the whole response and relays it to the client,
//! also with `Connection: close`, so the SDK never reuses a connection.
//!
//! The proxy runs on its own tokio runtime (in background threads), so a test
//! may block its own thread on `Command::output()` while the proxy serves.
//! Use from a test file with `#[path = "support/faults.rs"] mod faults;`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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
                    let _ = tokio::time::timeout(
                        Duration::from_secs(30),
                        handle(client, shared.clone()),
                    )
                    .await;
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
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Safe to call from within another runtime, unlike dropping it.
            rt.shutdown_background();
        }
    }
}

// ----- one connection ----------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    ApiGateway,
    Lambda,
    Other,
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

async fn handle(mut client: TcpStream, shared: Arc<Shared>) {
    let _ = client.set_nodelay(true);
    let c = &shared.counters;
    let request = match read_request(&mut client).await {
        Ok(Some(r)) => r,
        Ok(None) | Err(_) => {
            c.incomplete.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    c.requests.fetch_add(1, Ordering::Relaxed);
    if request.head.is_chunked() {
        c.chunked_requests.fetch_add(1, Ordering::Relaxed);
    }
    let service = request.head.service();
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
            inject(client, fault).await;
        }
        Decision::Forward(delay) => {
            if let Some(d) = delay {
                c.delayed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(d).await;
            }
            c.forwarded.fetch_add(1, Ordering::Relaxed);
            match forward(&request, shared.upstream).await {
                Ok(response) => {
                    let _ = client.write_all(&response).await;
                    let _ = client.shutdown().await;
                }
                Err(e) => {
                    c.upstream_errors.fetch_add(1, Ordering::Relaxed);
                    let body =
                        format!("{{\"message\":\"fault proxy: emulator unreachable: {e}\"}}");
                    let _ = client
                        .write_all(&canned(502, "Bad Gateway", None, &body))
                        .await;
                    let _ = client.shutdown().await;
                }
            }
        }
    }
}

async fn inject(mut client: TcpStream, fault: Fault) {
    let response = match fault {
        Fault::Throttled => canned(
            429,
            "Too Many Requests",
            Some("TooManyRequestsException"),
            r#"{"message":"Too Many Requests"}"#,
        ),
        Fault::InternalError => canned(
            500,
            "Internal Server Error",
            None,
            r#"{"message":"Internal server error (injected by the fault proxy)"}"#,
        ),
        Fault::ConcurrentModification => canned(
            409,
            "Conflict",
            Some("ConflictException"),
            r#"{"message":"Unable to complete operation due to concurrent modification. Please try again later."}"#,
        ),
        Fault::BadGateway => canned(
            502,
            "Bad Gateway",
            None,
            r#"{"message":"Bad gateway (injected by the fault proxy)"}"#,
        ),
        Fault::Unavailable => canned(
            503,
            "Service Unavailable",
            None,
            r#"{"message":"Service unavailable (injected by the fault proxy)"}"#,
        ),
        Fault::Reset => {
            // RST instead of FIN: the client sees "connection reset by peer".
            let _ = client.set_zero_linger();
            drop(client);
            return;
        }
    };
    let _ = client.write_all(&response).await;
    let _ = client.shutdown().await;
}

fn canned(status: u16, reason: &str, error_type: Option<&str>, body: &str) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nx-amzn-RequestId: fault-proxy\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(t) = error_type {
        head.push_str(&format!("x-amzn-ErrorType: {t}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// Sends the request to the emulator on a fresh connection and returns the
/// whole response, rewritten to `Connection: close`.
async fn forward(request: &Message, upstream: SocketAddr) -> io::Result<Vec<u8>> {
    let mut up = TcpStream::connect(upstream).await?;
    let _ = up.set_nodelay(true);
    let mut bytes = request.head.rewritten(&["expect"]);
    bytes.extend_from_slice(&request.body);
    up.write_all(&bytes).await?;
    let is_head = request.head.start.starts_with("HEAD ");
    let response = read_response(&mut up, is_head).await?;
    let mut out = response.head.rewritten(&[]);
    out.extend_from_slice(&response.body);
    Ok(out)
}

// ----- HTTP/1.1 framing --------------------------------------------------------

const MAX_HEAD: usize = 64 * 1024;

struct Head {
    start: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn is_chunked(&self) -> bool {
        self.get("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    fn content_length(&self) -> io::Result<Option<usize>> {
        match self.get("content-length") {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| bad(format!("bad Content-Length {v:?}"))),
        }
    }

    /// The AWS service from the SigV4 credential scope
    /// (`Credential=KEY/DATE/REGION/SERVICE/aws4_request`).
    fn service(&self) -> Service {
        let auth = self.get("authorization").unwrap_or_default();
        if auth.contains("/apigateway/") {
            Service::ApiGateway
        } else if auth.contains("/lambda/") {
            Service::Lambda
        } else {
            Service::Other
        }
    }

    /// The head as bytes, without hop-by-hop headers (and `drop`), with
    /// `Connection: close`.
    fn rewritten(&self, drop: &[&str]) -> Vec<u8> {
        let mut s = format!("{}\r\n", self.start);
        for (k, v) in &self.headers {
            let lower = k.to_ascii_lowercase();
            if ["connection", "keep-alive", "proxy-connection"].contains(&lower.as_str())
                || drop.contains(&lower.as_str())
            {
                continue;
            }
            s.push_str(&format!("{k}: {v}\r\n"));
        }
        s.push_str("Connection: close\r\n\r\n");
        s.into_bytes()
    }
}

struct Message {
    head: Head,
    /// The body as it was framed on the wire (raw chunks for a chunked body).
    body: Vec<u8>,
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Reads more bytes into `buf`; false at end of stream.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n > 0)
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// Reads a head; `None` when the stream ends before the first byte. The bytes
/// read past the head are left in the returned buffer.
async fn read_head(stream: &mut TcpStream) -> io::Result<Option<(Head, Vec<u8>)>> {
    let mut buf = Vec::new();
    let end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n", 0) {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(bad("head too large".into()));
        }
        if !fill(stream, &mut buf).await? {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err(bad("stream ended inside a head".into()));
        }
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|e| bad(format!("head: {e}")))?;
    let mut lines = text.split("\r\n");
    let start = lines.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("header line {line:?}")))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let rest = buf[end + 4..].to_vec();
    Ok(Some((Head { start, headers }, rest)))
}

/// Reads bytes until `buf` holds at least `len`.
async fn fill_to(stream: &mut TcpStream, buf: &mut Vec<u8>, len: usize) -> io::Result<()> {
    while buf.len() < len {
        if !fill(stream, buf).await? {
            return Err(bad("stream ended inside a body".into()));
        }
    }
    Ok(())
}

/// Reads a chunked body whose first bytes are in `buf`; returns the raw
/// chunked bytes up to and including the final empty line.
async fn read_chunked(stream: &mut TcpStream, mut buf: Vec<u8>) -> io::Result<Vec<u8>> {
    let mut pos = 0;
    loop {
        let line_end = loop {
            if let Some(i) = find(&buf, b"\r\n", pos) {
                break i;
            }
            if !fill(stream, &mut buf).await? {
                return Err(bad("stream ended inside a chunk size".into()));
            }
        };
        let line = std::str::from_utf8(&buf[pos..line_end]).map_err(|e| bad(e.to_string()))?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| bad(format!("chunk size {size_text:?}")))?;
        pos = line_end + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let end = loop {
                    if let Some(i) = find(&buf, b"\r\n", pos) {
                        break i;
                    }
                    if !fill(stream, &mut buf).await? {
                        return Err(bad("stream ended inside trailers".into()));
                    }
                };
                let empty = end == pos;
                pos = end + 2;
                if empty {
                    buf.truncate(pos);
                    return Ok(buf);
                }
            }
        }
        fill_to(stream, &mut buf, pos + size + 2).await?;
        pos += size + 2;
    }
}

/// Reads one whole request; `None` when the client closed without sending one.
async fn read_request(client: &mut TcpStream) -> io::Result<Option<Message>> {
    let Some((head, mut rest)) = read_head(client).await? else {
        return Ok(None);
    };
    if head
        .get("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
    }
    let body = if head.is_chunked() {
        read_chunked(client, rest).await?
    } else {
        let len = head.content_length()?.unwrap_or(0);
        fill_to(client, &mut rest, len).await?;
        rest.truncate(len);
        rest
    };
    Ok(Some(Message { head, body }))
}

/// Reads one whole response (skipping `100 Continue` interim responses).
async fn read_response(up: &mut TcpStream, is_head: bool) -> io::Result<Message> {
    loop {
        let (head, mut rest) = read_head(up)
            .await?
            .ok_or_else(|| bad("the emulator closed without answering".into()))?;
        let status: u16 = head
            .start
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("status line {:?}", head.start)))?;
        if (100..200).contains(&status) {
            if !rest.is_empty() {
                return Err(bad("bytes after an interim response".into()));
            }
            continue;
        }
        let body = if is_head || status == 204 || status == 304 {
            Vec::new()
        } else if head.is_chunked() {
            read_chunked(up, rest).await?
        } else if let Some(len) = head.content_length()? {
            fill_to(up, &mut rest, len).await?;
            rest.truncate(len);
            rest
        } else {
            // Delimited by the end of the connection.
            up.read_to_end(&mut rest).await?;
            let mut head = head;
            head.headers
                .push(("Content-Length".into(), rest.len().to_string()));
            return Ok(Message { head, body: rest });
        };
        return Ok(Message { head, body });
    }
}
