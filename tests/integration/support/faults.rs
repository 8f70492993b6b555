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
//! Two options make it a stricter and nastier bench (both off by default):
//!
//! - **Strictness** ([`FaultConfig::strict`]): before forwarding a write, the
//!   proxy answers as AWS does where moto is lenient ([`Refusal`]): a
//!   CreateResource whose parent already has a child of that name, a PutMethod
//!   over an existing method or with an invalid verb, an AddPermission whose
//!   statement id the policy (of that qualifier) already holds, a
//!   CreateDeployment while a method of the API has no integration, a
//!   DeleteResource or DeleteMethod of something missing. It asks the
//!   emulator about the current state itself: moto does not check SigV4
//!   signatures and picks the service from the credential scope, so the
//!   proxy's own GETs carry the incoming request's `Authorization`,
//!   `X-Amz-Date` and `X-Amz-Security-Token`. These lookups are neither
//!   counted as forwarded nor logged as calls. While strict, writes (anything
//!   but GET and HEAD) are checked and forwarded one at a time, as API
//!   Gateway serialises changes to an API, so a check cannot go stale before
//!   its write lands.
//! - **Faults after forwarding** ([`FaultConfig::after_forward_rate`]): a
//!   share of the forwarded writes is executed by the emulator and then its
//!   answer is lost: the connection is reset, or the proxy answers 500 or 503
//!   instead. The SDK retries such a call as AWS's clients do; with the
//!   strict layer on, the retry of a CreateResource, PutMethod or
//!   AddPermission gets the 409 AWS would give (counted in
//!   [`FaultStats::retry_refusals`]). Without it moto would execute the retry
//!   a second time and the test would test moto, not apimount.
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

use std::collections::{BTreeMap, HashMap, HashSet};
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
use hyper::{Method, Request, Response, StatusCode};
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
    /// 400 `BadRequestException`: AWS refuses the request as invalid (as it
    /// refuses CreateDeployment for a private API without a resource
    /// policy). Only by rule: never drawn at random, since retrying cannot
    /// cure it.
    BadRequest,
    /// 403 `UnrecognizedClientException`: AWS refuses the credentials
    /// themselves. Only by rule.
    CredentialsRejected,
}

impl Fault {
    pub const ALL: [Fault; 8] = [
        Fault::Throttled,
        Fault::InternalError,
        Fault::ConcurrentModification,
        Fault::BadGateway,
        Fault::Unavailable,
        Fault::Reset,
        Fault::BadRequest,
        Fault::CredentialsRejected,
    ];

    /// The faults drawn at random: the transient ones, which a retry cures.
    pub const RANDOM: [Fault; 6] = [
        Fault::Throttled,
        Fault::InternalError,
        Fault::ConcurrentModification,
        Fault::BadGateway,
        Fault::Unavailable,
        Fault::Reset,
    ];

    /// The ways an answer is lost after the emulator executed the request.
    pub const LOST: [Fault; 3] = [Fault::InternalError, Fault::Unavailable, Fault::Reset];

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
            Fault::BadRequest => "400-bad-request",
            Fault::CredentialsRejected => "403-credentials-rejected",
        }
    }
}

/// A request the strict layer answers itself, as AWS would, where moto would
/// execute it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Refusal {
    /// CreateResource when the parent already has a child with that
    /// `pathPart`: 409 `ConflictException`.
    DuplicateSibling,
    /// PutMethod over an existing method: 409 `ConflictException`.
    MethodExists,
    /// PutMethod with a verb API Gateway does not know: 400
    /// `BadRequestException`.
    InvalidVerb,
    /// AddPermission with a statement id the policy (of that qualifier)
    /// already holds: 409 `ResourceConflictException`.
    DuplicateStatement,
    /// CreateDeployment while a method of the API has no integration: 400
    /// `BadRequestException`.
    NoIntegration,
    /// DeleteResource or DeleteMethod of something that does not exist: 404
    /// `NotFoundException` (moto answers 500, or 204 for a method).
    DeleteMissing,
    /// UpdateStage removing a method-settings key that the stage does not
    /// have (`remove /~1a/GET`): AWS answers 400 "no method setting for this
    /// method". (A key the stage has is let through: moto answers 200 and
    /// keeps it, which apimount must see in the answer and not report as
    /// removed.)
    SettingRemoval,
    /// TagResource with a tag key or value holding a character outside the
    /// set API Gateway documents for tags (letters, digits, `+ - = . _ : /`
    /// and `@`; no space): 400 `BadRequestException`. moto takes any.
    TagCharacters,
    /// UpdateMethod replacing `/authorizerId` with an empty string: no AWS
    /// source says it is accepted or clears the id (leaving an authorizer is
    /// the type change alone). 400, so apimount never relies on it.
    EmptyAuthorizerId,
    /// UpdateStage with more patch operations than apimount allows itself
    /// in one call (80, as the established tools split them): 400, so a
    /// pass that would send more fails loudly here.
    TooManyPatches,
    /// STS AssumeRole of a role that does not exist, whose trust policy
    /// does not name the caller's account, or whose external id condition
    /// the request does not meet: 403 `AccessDenied`. moto lets anyone
    /// assume any role, even one that was never created.
    RoleNotAssumable,
    /// CreateAlias or UpdateAlias whose routing weights AWS refuses: more
    /// than one additional version, the primary version or `$LATEST` as
    /// the additional one, a weight not strictly between 0 and 1, weights
    /// on an alias of `$LATEST`, or a version that is not published: 400
    /// `InvalidParameterValueException`. moto stores any.
    AliasRouting,
    /// UpdateAlias with a RevisionId that is not the alias's current one:
    /// 412 `PreconditionFailedException`. moto never changes an alias's
    /// RevisionId and ignores the one sent; the strict layer gives each
    /// alias a revision that changes with every write (and with any change
    /// made behind its back) and refuses a stale one.
    StaleRevision,
}

impl Refusal {
    pub const ALL: [Refusal; 13] = [
        Refusal::DuplicateSibling,
        Refusal::MethodExists,
        Refusal::InvalidVerb,
        Refusal::DuplicateStatement,
        Refusal::NoIntegration,
        Refusal::DeleteMissing,
        Refusal::SettingRemoval,
        Refusal::TagCharacters,
        Refusal::TooManyPatches,
        Refusal::EmptyAuthorizerId,
        Refusal::RoleNotAssumable,
        Refusal::AliasRouting,
        Refusal::StaleRevision,
    ];

    fn index(self) -> usize {
        Refusal::ALL
            .iter()
            .position(|r| *r == self)
            .expect("every refusal is in ALL")
    }

    pub fn name(self) -> &'static str {
        match self {
            Refusal::DuplicateSibling => "409-duplicate-sibling",
            Refusal::MethodExists => "409-method-exists",
            Refusal::InvalidVerb => "400-invalid-verb",
            Refusal::DuplicateStatement => "409-duplicate-statement-id",
            Refusal::NoIntegration => "400-no-integration",
            Refusal::DeleteMissing => "404-delete-missing",
            Refusal::SettingRemoval => "400-method-setting-removal",
            Refusal::TagCharacters => "400-tag-characters",
            Refusal::TooManyPatches => "400-too-many-patch-operations",
            Refusal::EmptyAuthorizerId => "400-empty-authorizer-id",
            Refusal::RoleNotAssumable => "403-assume-role-denied",
            Refusal::AliasRouting => "400-alias-routing",
            Refusal::StaleRevision => "412-stale-revision",
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
    /// Answer as AWS does where moto is lenient ([`Refusal`]), before
    /// forwarding, by asking the emulator about the current state.
    pub strict: bool,
    /// Share of the forwarded writes (requests other than GET and HEAD)
    /// whose answer is lost after the emulator executed them: the connection
    /// is reset, or the proxy answers 500 or 503 instead. Drawn, like the
    /// faults, from a shuffled bag of [`BAG_SIZE`] decisions (a second bag,
    /// over forwarded writes only).
    pub after_forward_rate: f64,
    /// Faults aimed at given requests, applied before the random ones (see
    /// [`Rule`]); they can also be changed while the proxy runs.
    pub rules: Vec<Rule>,
}

/// A fault aimed at the requests of one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The operation as [`operation_of`] names it (`apigateway:PutMethod`),
    /// or the `X-Amz-Target` header of JSON protocols
    /// (`DynamoDB_20120810.PutItem`).
    pub operation: String,
    /// Only requests whose path contains this.
    pub path_contains: Option<String>,
    pub action: RuleAction,
    /// How many requests it applies to; `None`: every one.
    pub times: Option<usize>,
}

/// What a [`Rule`] does to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    /// Answer with this fault, without forwarding.
    Fail(Fault),
    /// Forward after this delay.
    Delay(Duration),
    /// Forward, then lose the answer by this fault (see [`Fault::LOST`]).
    LoseAnswer(Fault),
}

impl Rule {
    /// Fails every request of `operation` with `fault`.
    pub fn fail(operation: &str, fault: Fault) -> Rule {
        Rule {
            operation: operation.to_string(),
            path_contains: None,
            action: RuleAction::Fail(fault),
            times: None,
        }
    }

    /// Fails every request, whatever its operation, with `fault`.
    pub fn every(fault: Fault) -> Rule {
        Rule::fail("*", fault)
    }

    /// Only requests whose path (with its query) contains `part`.
    pub fn on_path(mut self, part: &str) -> Rule {
        self.path_contains = Some(part.to_string());
        self
    }

    /// Loses the answer of every request of `operation` (forwarded, then
    /// reset or answered 500/503 as `fault` says).
    pub fn lose(operation: &str, fault: Fault) -> Rule {
        Rule {
            action: RuleAction::LoseAnswer(fault),
            ..Rule::fail(operation, fault)
        }
    }

    /// Only the next `n` matching requests.
    pub fn times(mut self, n: usize) -> Rule {
        self.times = Some(n);
        self
    }
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            fault_rate: 0.3,
            delay_rate: 0.2,
            delay_ms: (50, 300),
            seed: 1,
            strict: false,
            after_forward_rate: 0.0,
            rules: Vec::new(),
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
    faults: [AtomicUsize; 8],
    apigateway_faults: AtomicUsize,
    lambda_faults: AtomicUsize,
    /// Connections closed before a whole request arrived (idle pool
    /// connections, or a client giving up).
    incomplete: AtomicUsize,
    /// Chunked request bodies seen (the SDK is expected to send Content-Length).
    chunked_requests: AtomicUsize,
    /// Forwarded requests whose response could not be read from the emulator.
    upstream_errors: AtomicUsize,
    /// Requests the strict layer answered itself, by rule.
    refusals: [AtomicUsize; 13],
    /// Of those, the ones repeating a request whose answer the proxy lost.
    retry_refusals: [AtomicUsize; 13],
    /// GETs the strict layer sent to the emulator, and those that failed.
    strict_lookups: AtomicUsize,
    strict_lookup_errors: AtomicUsize,
    /// Answers lost after forwarding, by kind (indexed like `faults`).
    lost: [AtomicUsize; 8],
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
    /// Requests the strict layer answered itself (never forwarded), by rule.
    pub refusals: BTreeMap<Refusal, usize>,
    /// Refusals of a request that repeats one whose answer the proxy lost
    /// after forwarding (the SDK's retry of a call the emulator had
    /// executed), by rule.
    pub retry_refusals: BTreeMap<Refusal, usize>,
    /// GETs the strict layer sent to the emulator to decide.
    pub strict_lookups: usize,
    /// Lookups that failed (the request was then forwarded unchecked).
    pub strict_lookup_errors: usize,
    /// Answers lost after the emulator executed the request, by kind
    /// ([`Fault::LOST`]).
    pub lost: BTreeMap<Fault, usize>,
    /// Answers lost after forwarding, by operation ([`operation_of`]).
    pub lost_operations: BTreeMap<String, usize>,
}

impl FaultStats {
    /// Requests answered with a fault.
    pub fn faulted(&self) -> usize {
        self.faults.values().sum()
    }

    /// Requests the strict layer refused.
    pub fn refused(&self) -> usize {
        self.refusals.values().sum()
    }

    /// That the strict layer judged the run and found nothing AWS would
    /// refuse: it looked (lookups > 0), every look succeeded (a failed one
    /// waves the call through unchecked), and it refused nothing.
    pub fn assert_nothing_refused(&self) {
        assert!(
            self.strict_lookups > 0,
            "the strict layer never looked: {self}"
        );
        assert_eq!(
            self.strict_lookup_errors, 0,
            "calls went through unchecked: {self}"
        );
        assert_eq!(self.refused(), 0, "refused what AWS refuses: {self}");
    }

    /// Answers lost after forwarding.
    pub fn lost_answers(&self) -> usize {
        self.lost.values().sum()
    }

    /// Lost answers of `operation` (`apigateway:CreateResource`…).
    pub fn lost_of(&self, operation: &str) -> usize {
        self.lost_operations.get(operation).copied().unwrap_or(0)
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
            refusals: minus(&self.refusals, &earlier.refusals),
            retry_refusals: minus(&self.retry_refusals, &earlier.retry_refusals),
            strict_lookups: self.strict_lookups - earlier.strict_lookups,
            strict_lookup_errors: self.strict_lookup_errors - earlier.strict_lookup_errors,
            lost: minus(&self.lost, &earlier.lost),
            lost_operations: minus(&self.lost_operations, &earlier.lost_operations),
        }
    }
}

/// `now - earlier`, key by key.
fn minus<K: Ord + Clone>(
    now: &BTreeMap<K, usize>,
    earlier: &BTreeMap<K, usize>,
) -> BTreeMap<K, usize> {
    now.iter()
        .map(|(k, v)| (k.clone(), v - earlier.get(k).copied().unwrap_or(0)))
        .collect()
}

/// `a=1 b=2`
fn listing<K>(map: &BTreeMap<K, usize>, name: impl Fn(&K) -> String) -> String {
    map.iter()
        .map(|(k, v)| format!("{}={v}", name(k)))
        .collect::<Vec<_>>()
        .join(" ")
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
        write!(
            f,
            "; faults: {}; {} connections, {} closed before a whole request, {} chunked, {} upstream errors",
            listing(&self.faults, |k| k.name().to_string()),
            self.connections,
            self.incomplete,
            self.chunked_requests,
            self.upstream_errors
        )?;
        if self.strict_lookups > 0 || self.refused() > 0 {
            write!(
                f,
                "; strict: {} refused ({}), {} of them retries of lost answers ({}), {} lookups ({} failed)",
                self.refused(),
                listing(&self.refusals, |k| k.name().to_string()),
                self.retry_refusals.values().sum::<usize>(),
                listing(&self.retry_refusals, |k| k.name().to_string()),
                self.strict_lookups,
                self.strict_lookup_errors,
            )?;
        }
        if self.lost_answers() > 0 {
            write!(
                f,
                "; lost after forwarding: {} ({}; {})",
                self.lost_answers(),
                listing(&self.lost, |k| k.name().to_string()),
                listing(&self.lost_operations, |k| k
                    .trim_start_matches("apigateway:")
                    .trim_start_matches("lambda:")
                    .to_string()),
            )?;
        }
        Ok(())
    }
}

/// Requests per bag of fault decisions.
pub const BAG_SIZE: usize = 20;

struct Draws {
    rng: StdRng,
    /// Fault decisions left in the current bag.
    bag: Vec<bool>,
    /// After-forward decisions left in the current bag (forwarded writes).
    after_bag: Vec<bool>,
}

/// Pops the next decision of `bag`, refilled with `round(BAG_SIZE × ppm)`
/// `true`s and shuffled when empty.
fn draw(bag: &mut Vec<bool>, ppm: u32, rng: &mut StdRng) -> bool {
    if bag.is_empty() {
        let rate = f64::from(ppm) / 1_000_000.0;
        let yes = (rate * BAG_SIZE as f64).round() as usize;
        bag.extend((0..BAG_SIZE).map(|i| i < yes));
        bag.shuffle(rng);
    }
    bag.pop().expect("bag refilled")
}

struct Shared {
    upstream: SocketAddr,
    /// Fault rate in parts per million, adjustable while running.
    fault_ppm: u32,
    delay_ppm: u32,
    delay_ms: (u64, u64),
    strict: bool,
    after_forward_ppm: u32,
    draws: Mutex<Draws>,
    counters: Counters,
    /// `(arrival, operation)` of every forwarded request.
    calls: Mutex<Vec<(Instant, String)>>,
    /// Every request that arrived, as an IAM check needs it.
    requests: Mutex<Vec<Recorded>>,
    /// While strict, one write at a time is checked and forwarded.
    write_lock: tokio::sync::Mutex<()>,
    /// The requests whose answers were lost after forwarding
    /// ([`retry_key`]), to recognise the SDK's retries of them.
    lost_requests: Mutex<HashSet<String>>,
    /// Lost answers by operation.
    lost_operations: Mutex<BTreeMap<String, usize>>,
    /// Aimed faults, with what is left of their counts.
    rules: Mutex<Vec<Rule>>,
    /// Requests an aimed rule acted on.
    ruled: AtomicUsize,
    /// Writes forwarded to each Lambda alias (`function/alias`), for the
    /// revisions the strict layer gives aliases.
    alias_writes: Mutex<HashMap<String, u64>>,
    /// Connections being served now.
    open: AtomicUsize,
}

/// One request as it arrived: enough to name the IAM action and resource
/// it needs (see `support::iam`).
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The path as sent (percent-encoded), without the query.
    pub path: String,
    pub query: Option<String>,
    /// `Authorization`'s credential scope: `(region, service)`.
    pub scope: Option<(String, String)>,
    pub target: Option<String>,
    pub body: Bytes,
}

impl Recorded {
    /// Whether it is a write: not a GET or HEAD, and not an STS call (a
    /// POST that changes nothing apimount manages).
    pub fn is_write(&self) -> bool {
        self.method != "GET"
            && self.method != "HEAD"
            && self
                .scope
                .as_ref()
                .is_none_or(|(_, service)| service != "sts")
            && !is_read_by_post(&operation_of(&self.method, &self.path))
    }

    fn of(head: &request::Parts, body: &Bytes) -> Recorded {
        let header = |name: &str| {
            head.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let scope = header("authorization").and_then(|auth| {
            let cred = auth.split("Credential=").nth(1)?;
            let parts: Vec<&str> = cred.split(['/', ',']).collect();
            Some((parts.get(2)?.to_string(), parts.get(3)?.to_string()))
        });
        Recorded {
            method: head.method.to_string(),
            path: head.uri.path().to_string(),
            query: head.uri.query().map(str::to_string),
            scope,
            target: header("x-amz-target"),
            body: body.clone(),
        }
    }
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
    /// A proxy that only judges by AWS's rules: no faults, no delays, the
    /// strict layer on, and these rules.
    pub fn strict(upstream: &str, rules: Vec<Rule>) -> FaultProxy {
        FaultProxy::start(
            upstream,
            FaultConfig {
                fault_rate: 0.0,
                delay_rate: 0.0,
                strict: true,
                rules,
                ..FaultConfig::default()
            },
        )
    }

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
            strict: config.strict,
            after_forward_ppm: ppm(config.after_forward_rate),
            draws: Mutex::new(Draws {
                rng: StdRng::seed_from_u64(config.seed),
                bag: Vec::new(),
                after_bag: Vec::new(),
            }),
            counters: Counters::default(),
            calls: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            write_lock: tokio::sync::Mutex::new(()),
            lost_requests: Mutex::new(HashSet::new()),
            lost_operations: Mutex::new(BTreeMap::new()),
            rules: Mutex::new(config.rules.clone()),
            ruled: AtomicUsize::new(0),
            alias_writes: Mutex::new(HashMap::new()),
            open: AtomicUsize::new(0),
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
                shared.open.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    // A connection never lives longer than apimount's own
                    // per-attempt timeout would allow.
                    let _ = tokio::time::timeout(
                        Duration::from_secs(30),
                        serve(client, shared.clone()),
                    )
                    .await;
                    shared.open.fetch_sub(1, Ordering::SeqCst);
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
    /// Replaces the aimed rules.
    pub fn set_rules(&self, rules: Vec<Rule>) {
        *self.shared.rules.lock().expect("rules lock") = rules;
    }

    /// Waits until no connection is being served: every request a killed
    /// client had sent has been forwarded (or refused) and answered. AWS
    /// carries out a request whose sender died as well; waiting here keeps
    /// such a late write from landing after the next process has read the
    /// API, which, with a restart in milliseconds, no real deployment sees.
    pub fn wait_idle(&self, within: Duration) {
        let end = Instant::now() + within;
        while self.shared.open.load(Ordering::SeqCst) > 0 {
            assert!(
                Instant::now() < end,
                "the proxy still serves {} connection(s) after {within:?}",
                self.shared.open.load(Ordering::SeqCst)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// How many requests aimed rules acted on.
    pub fn ruled(&self) -> usize {
        self.shared.ruled.load(Ordering::Relaxed)
    }

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
            refusals: Refusal::ALL
                .iter()
                .map(|r| (*r, n(&c.refusals[r.index()])))
                .collect(),
            retry_refusals: Refusal::ALL
                .iter()
                .map(|r| (*r, n(&c.retry_refusals[r.index()])))
                .collect(),
            strict_lookups: n(&c.strict_lookups),
            strict_lookup_errors: n(&c.strict_lookup_errors),
            lost: Fault::LOST
                .iter()
                .map(|f| (*f, n(&c.lost[f.index()])))
                .collect(),
            lost_operations: self
                .shared
                .lost_operations
                .lock()
                .expect("lost operations lock")
                .clone(),
        }
    }

    /// The call log: `(arrival time, operation)` of every request forwarded
    /// so far, in arrival order. Operations are named by [`operation_of`].
    /// Faulted requests are not in it (the emulator never saw them).
    /// Every request that arrived so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared
            .requests
            .lock()
            .expect("request log lock")
            .clone()
    }

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
    /// Whether the request is signed for STS (GetCallerIdentity, AssumeRole).
    fn is_sts(headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("/sts/aws4_request"))
    }

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
    /// What an aimed rule says of a request, using up one of its times.
    fn aimed(&self, operation: &str, target: Option<&str>, path: &str) -> Option<RuleAction> {
        let mut rules = self.rules.lock().expect("rules lock");
        let rule = rules.iter_mut().find(|r| {
            (r.operation == "*" || r.operation == operation || Some(r.operation.as_str()) == target)
                && r.path_contains.as_deref().is_none_or(|p| path.contains(p))
                && r.times != Some(0)
        })?;
        if let Some(n) = &mut rule.times {
            *n -= 1;
        }
        self.ruled.fetch_add(1, Ordering::Relaxed);
        Some(rule.action)
    }

    fn decide(&self, service: Service) -> Decision {
        let mut draws = self.draws.lock().expect("draws lock");
        let Draws { rng, bag, .. } = &mut *draws;
        if draw(bag, self.fault_ppm, rng) {
            let kinds: Vec<Fault> = Fault::RANDOM
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

    /// Whether the answer of a forwarded write is lost, and how.
    fn lose(&self) -> Option<Fault> {
        if self.after_forward_ppm == 0 {
            // No draw: the fault mix of a seed stays what it was.
            return None;
        }
        let mut draws = self.draws.lock().expect("draws lock");
        let Draws { rng, after_bag, .. } = &mut *draws;
        if !draw(after_bag, self.after_forward_ppm, rng) {
            return None;
        }
        Some(Fault::LOST[rng.random_range(0..Fault::LOST.len())])
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
    shared
        .requests
        .lock()
        .expect("request log lock")
        .push(Recorded::of(&head, &body));
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

    let target = head
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let aimed = shared.aimed(
        &request_operation(&head, &body),
        target.as_deref(),
        head.uri
            .path_and_query()
            .map_or(head.uri.path(), |p| p.as_str()),
    );
    let mut lose_aimed = None;
    let decision = match aimed {
        Some(RuleAction::Fail(f)) => Decision::Fault(f),
        Some(RuleAction::Delay(d)) => Decision::Forward(Some(d)),
        Some(RuleAction::LoseAnswer(f)) => {
            lose_aimed = Some(f);
            Decision::Forward(None)
        }
        None => shared.decide(service),
    };
    match decision {
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
            let operation = request_operation(&head, &body);
            // STS's calls, and CloudWatch's reads, are POSTs that change
            // nothing apimount manages.
            let write = head.method != Method::GET
                && head.method != Method::HEAD
                && !Service::is_sts(&head.headers)
                && !is_read_by_post(&operation);
            let path = head.uri.path().to_string();
            let key = retry_key(&head, &body);
            // Held until the emulator has answered: the check stays true.
            let serialised = if shared.strict && write {
                Some(shared.write_lock.lock().await)
            } else {
                None
            };
            let refused = if shared.strict && write {
                strict::check(&shared, &operation, service, &head, &body).await
            } else if shared.strict && Service::is_sts(&head.headers) {
                strict::assume_role(&shared, &head, &body).await
            } else {
                None
            };
            {
                if let Some((refusal, answer)) = refused {
                    c.refusals[refusal.index()].fetch_add(1, Ordering::Relaxed);
                    let retry = shared
                        .lost_requests
                        .lock()
                        .expect("lost requests lock")
                        .contains(&key);
                    if retry {
                        c.retry_refusals[refusal.index()].fetch_add(1, Ordering::Relaxed);
                    }
                    return Ok(answer);
                }
            }
            c.forwarded.fetch_add(1, Ordering::Relaxed);
            shared
                .calls
                .lock()
                .expect("call log lock")
                .push((received, operation.clone()));
            let answer = match forward(head, body, shared.upstream).await {
                Ok(answer) => answer,
                Err(e) => {
                    c.upstream_errors.fetch_add(1, Ordering::Relaxed);
                    let message = format!("fault proxy: emulator unreachable: {e}");
                    return Ok(json(StatusCode::BAD_GATEWAY, None, &message));
                }
            };
            let answer = if shared.strict {
                strict::alias_answer(&shared, &operation, &path, answer).await
            } else {
                answer
            };
            drop(serialised);
            if !write {
                return Ok(answer);
            }
            let Some(fault) = lose_aimed.or_else(|| shared.lose()) else {
                return Ok(answer);
            };
            // The emulator executed the request; its answer is lost.
            c.lost[fault.index()].fetch_add(1, Ordering::Relaxed);
            *shared
                .lost_operations
                .lock()
                .expect("lost operations lock")
                .entry(operation)
                .or_default() += 1;
            shared
                .lost_requests
                .lock()
                .expect("lost requests lock")
                .insert(key);
            match lost_answer(fault) {
                Some(answer) => Ok(answer),
                None => {
                    conn.reset.notify_one();
                    std::future::pending().await
                }
            }
        }
    }
}

/// What identifies a request and the SDK's retries of it: the invocation id
/// the SDK sends with every attempt of one call (`amz-sdk-invocation-id`),
/// the method, the URI and the body.
fn retry_key(head: &request::Parts, body: &Bytes) -> String {
    let invocation = head
        .headers
        .get("amz-sdk-invocation-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    format!(
        "{invocation} {} {} {}",
        head.method,
        head.uri,
        String::from_utf8_lossy(body)
    )
}

/// The answer in place of a lost one; `None` for [`Fault::Reset`].
fn lost_answer(fault: Fault) -> Option<Answer> {
    let (status, message) = match fault {
        Fault::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Service unavailable (injected by the fault proxy after forwarding)",
        ),
        Fault::Reset => return None,
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal server error (injected by the fault proxy after forwarding)",
        ),
    };
    Some(json(status, None, message))
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
        Fault::BadRequest => (
            StatusCode::BAD_REQUEST,
            Some("BadRequestException"),
            "Private REST API doesn't have a resource policy attached to it (injected by the fault proxy)",
        ),
        Fault::CredentialsRejected => (
            StatusCode::FORBIDDEN,
            Some("UnrecognizedClientException"),
            "The security token included in the request is invalid. (injected by the fault proxy)",
        ),
    };
    Some(json(status, error_type, message))
}

/// A JSON error answer `{"message": …}` (hyper adds `Content-Length`, and
/// `Connection: close` since keep-alive is off).
fn json(status: StatusCode, error_type: Option<&'static str>, message: &str) -> Answer {
    error_answer(
        status,
        error_type,
        serde_json::json!({ "message": message }).to_string(),
    )
}

/// An error answer with this JSON body.
fn error_answer(status: StatusCode, error_type: Option<&'static str>, body: String) -> Answer {
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

// ----- the strict layer ------------------------------------------------------------

/// AWS's answers where moto is lenient, decided from the emulator's state.
mod strict {
    use super::{forward, json, Answer, Refusal, Service, Shared};

    use std::sync::atomic::Ordering;

    use http_body_util::BodyExt;
    use hyper::body::Bytes;
    use hyper::header;
    use hyper::http::request;
    use hyper::{Method, Request, StatusCode};
    use serde_json::Value;

    /// The verbs PutMethod accepts.
    const VERBS: [&str; 8] = [
        "GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS", "ANY",
    ];

    /// What the proxy answers instead of forwarding, if anything. A failed
    /// lookup is counted and lets the request through unchecked.
    pub(super) async fn check(
        shared: &Shared,
        operation: &str,
        service: Service,
        head: &request::Parts,
        body: &Bytes,
    ) -> Option<(Refusal, Answer)> {
        let segs: Vec<&str> = head.uri.path().trim_matches('/').split('/').collect();
        let lookup = Lookup { shared, head };
        let decided = match (service, operation) {
            (Service::ApiGateway, "apigateway:CreateResource") => {
                create_resource(&lookup, &segs, body).await
            }
            (Service::ApiGateway, "apigateway:PutMethod") => put_method(&lookup, &segs).await,
            (Service::ApiGateway, "apigateway:CreateDeployment") => {
                create_deployment(&lookup, segs[1]).await
            }
            (Service::ApiGateway, "apigateway:DeleteResource") => {
                let path = format!("/restapis/{}/resources/{}", segs[1], segs[3]);
                delete_missing(&lookup, &path, "Invalid Resource identifier specified").await
            }
            (Service::ApiGateway, "apigateway:DeleteMethod") => {
                let path = format!(
                    "/restapis/{}/resources/{}/methods/{}",
                    segs[1], segs[3], segs[5]
                );
                delete_missing(&lookup, &path, "Invalid Method identifier specified").await
            }
            (Service::Lambda, "lambda:AddPermission") => {
                add_permission(&lookup, head, &segs, body).await
            }
            (Service::Lambda, "lambda:CreateAlias" | "lambda:UpdateAlias") => {
                alias_write(&lookup, operation, &segs, body).await
            }
            (Service::ApiGateway, "apigateway:UpdateStage") => match too_many_patches(body) {
                Some(refused) => Ok(Some(refused)),
                None => setting_removal(&lookup, segs[1], segs[3], body).await,
            },
            (Service::ApiGateway, "apigateway:TagResource") => Ok(tag_characters(body)),
            (Service::ApiGateway, "apigateway:UpdateMethod") => Ok(empty_authorizer(body)),
            _ => Ok(None),
        };
        match decided {
            Ok(refusal) => refusal,
            Err(e) => {
                shared
                    .counters
                    .strict_lookup_errors
                    .fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "fault proxy: strict check of {operation} failed ({e}); forwarded unchecked"
                );
                None
            }
        }
    }

    type Decided = Result<Option<(Refusal, Answer)>, String>;

    /// STS AssumeRole: refused as AWS does unless the role exists in its
    /// account and its trust policy lets the caller's account assume it
    /// (with the external id its condition asks for). Other STS calls pass.
    pub(super) async fn assume_role(
        shared: &Shared,
        head: &request::Parts,
        body: &Bytes,
    ) -> Option<(Refusal, Answer)> {
        let form = form_fields(body);
        if form.get("Action").map(String::as_str) != Some("AssumeRole") {
            return None;
        }
        let role_arn = form.get("RoleArn").cloned().unwrap_or_default();
        let decided = async {
            let caller = query_call(
                shared,
                head,
                "sts",
                None,
                "Action=GetCallerIdentity&Version=2011-06-15",
            )
            .await?
            .and_then(|xml| xml_text(&xml, "Account"))
            .ok_or("GetCallerIdentity named no account")?;
            let parts: Vec<&str> = role_arn.splitn(6, ':').collect();
            let (account, name) = match parts[..] {
                [_, _, "iam", "", account, resource] => (
                    account.to_string(),
                    resource.rsplit('/').next().unwrap_or_default().to_string(),
                ),
                _ => return Ok::<_, String>(Some(format!("{role_arn} is not a role ARN"))),
            };
            let role = query_call(
                shared,
                head,
                "iam",
                Some(&account),
                &format!("Action=GetRole&RoleName={name}&Version=2010-05-08"),
            )
            .await?;
            let Some(trust) = role
                .as_deref()
                .and_then(|xml| xml_text(xml, "AssumeRolePolicyDocument"))
            else {
                return Ok(Some(format!("the role {role_arn} does not exist")));
            };
            let trust = super::super::iam::decode(&trust);
            let doc: Value = serde_json::from_str(&trust)
                .map_err(|e| format!("trust policy of {role_arn}: {e}: {trust}"))?;
            let external = form.get("ExternalId").map(String::as_str);
            Ok(trusts(&doc, &caller, external)
                .err()
                .map(|why| format!("{why} ({role_arn})")))
        }
        .await;
        match decided {
            Ok(None) => None,
            Ok(Some(why)) => {
                let message = format!(
                    "User is not authorized to perform: sts:AssumeRole on resource: {role_arn}: {why}"
                );
                let xml = format!(
                    "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>{message}</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>"
                );
                let mut answer = hyper::Response::new(http_body_util::Full::new(Bytes::from(xml)));
                *answer.status_mut() = StatusCode::FORBIDDEN;
                answer.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("text/xml"),
                );
                Some((Refusal::RoleNotAssumable, answer))
            }
            Err(e) => {
                shared
                    .counters
                    .strict_lookup_errors
                    .fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "fault proxy: strict check of sts:AssumeRole failed ({e}); forwarded unchecked"
                );
                None
            }
        }
    }

    /// Whether a trust policy lets `caller` (an account) assume the role:
    /// an Allow of sts:AssumeRole to the account's root, the account, or
    /// any of its principals, whose `sts:ExternalId` condition, if any, is met.
    pub(super) fn trusts(doc: &Value, caller: &str, external: Option<&str>) -> Result<(), String> {
        let list = |v: &Value| -> Vec<String> {
            match v {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            }
        };
        let statements = match &doc["Statement"] {
            Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        };
        let mut why = format!("no statement of the trust policy lets account {caller} assume it");
        for st in statements {
            let allows = st["Effect"] == "Allow"
                && list(&st["Action"])
                    .iter()
                    .any(|a| a == "sts:AssumeRole" || a == "sts:*");
            let names_caller = list(&st["Principal"]["AWS"]).iter().any(|p| {
                p == caller
                    || p == &format!("arn:aws:iam::{caller}:root")
                    || p.starts_with(&format!("arn:aws:iam::{caller}:"))
            });
            if !(allows && names_caller) {
                continue;
            }
            let wanted = &st["Condition"]["StringEquals"]["sts:ExternalId"];
            if wanted.is_null() || wanted.as_str() == external {
                return Ok(());
            }
            why = format!("the external id {external:?} is not the one the trust policy asks for");
        }
        Err(why)
    }

    /// The fields of a form-encoded body.
    fn form_fields(body: &Bytes) -> std::collections::BTreeMap<String, String> {
        String::from_utf8_lossy(body)
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| {
                (
                    super::super::iam::decode(k),
                    super::super::iam::decode(&v.replace('+', " ")),
                )
            })
            .collect()
    }

    /// The text of the first `<tag>` in an XML answer.
    fn xml_text(xml: &str, tag: &str) -> Option<String> {
        let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
        let end = xml[start..].find(&format!("</{tag}>"))? + start;
        Some(xml[start..end].to_string())
    }

    /// A query-protocol call to the emulator for `service`, in `account`
    /// (moto's account header) or the caller's, with the incoming request's
    /// credentials; `None` when the emulator answers 404 or NoSuchEntity.
    async fn query_call(
        shared: &Shared,
        head: &request::Parts,
        service: &str,
        account: Option<&str>,
        form: &str,
    ) -> Result<Option<String>, String> {
        shared
            .counters
            .strict_lookups
            .fetch_add(1, Ordering::Relaxed);
        let auth = head
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or("an unsigned request")?
            .replace("/sts/aws4_request", &format!("/{service}/aws4_request"));
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/")
            .header(header::HOST, shared.upstream.to_string())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("authorization", auth);
        for name in ["x-amz-date", "x-amz-security-token"] {
            if let Some(value) = head.headers.get(name) {
                request = request.header(name, value.clone());
            }
        }
        if let Some(a) = account {
            request = request.header("x-moto-account-id", a);
        }
        let (parts, ()) = request
            .body(())
            .map_err(|e| format!("{service} {form}: {e}"))?
            .into_parts();
        let answer = forward(parts, Bytes::from(form.to_string()), shared.upstream)
            .await
            .map_err(|e| format!("{service} {form}: {e}"))?;
        let status = answer.status();
        let body = match answer.into_body().collect().await {
            Ok(body) => body.to_bytes(),
            Err(never) => match never {},
        };
        let text = String::from_utf8_lossy(&body).into_owned();
        if status == StatusCode::NOT_FOUND || text.contains("NoSuchEntity") {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(format!("{service} {form}: {status}: {text}"));
        }
        Ok(Some(text))
    }

    /// GETs to the emulator on behalf of one incoming request.
    struct Lookup<'a> {
        shared: &'a Shared,
        head: &'a request::Parts,
    }

    impl Lookup<'_> {
        /// `GET path_and_query` with the incoming request's signature
        /// headers (moto picks the service and region from the credential
        /// scope and checks nothing else); `None` on 404.
        async fn get(&self, path_and_query: &str) -> Result<Option<Value>, String> {
            self.shared
                .counters
                .strict_lookups
                .fetch_add(1, Ordering::Relaxed);
            let mut request = Request::builder()
                .method(Method::GET)
                .uri(path_and_query)
                .header(header::HOST, self.shared.upstream.to_string())
                .header(header::ACCEPT, "application/json");
            for name in ["authorization", "x-amz-date", "x-amz-security-token"] {
                if let Some(value) = self.head.headers.get(name) {
                    request = request.header(name, value.clone());
                }
            }
            let (parts, ()) = request
                .body(())
                .map_err(|e| format!("GET {path_and_query}: {e}"))?
                .into_parts();
            let answer = forward(parts, Bytes::new(), self.shared.upstream)
                .await
                .map_err(|e| format!("GET {path_and_query}: {e}"))?;
            let status = answer.status();
            let body = match answer.into_body().collect().await {
                Ok(body) => body.to_bytes(),
                Err(never) => match never {},
            };
            match status {
                StatusCode::NOT_FOUND => Ok(None),
                s if s.is_success() => serde_json::from_slice(&body).map(Some).map_err(|e| {
                    format!(
                        "GET {path_and_query}: not JSON ({e}): {}",
                        String::from_utf8_lossy(&body)
                    )
                }),
                s => Err(format!(
                    "GET {path_and_query}: {s}: {}",
                    String::from_utf8_lossy(&body)
                )),
            }
        }

        /// Every resource of `api` (`embed=methods`), following `position`.
        async fn resources(&self, api: &str) -> Result<Vec<Value>, String> {
            let mut all = Vec::new();
            let mut position: Option<String> = None;
            loop {
                let mut path = format!("/restapis/{api}/resources?embed=methods&limit=500");
                if let Some(p) = position.take() {
                    path.push_str(&format!("&position={p}"));
                }
                let Some(page) = self.get(&path).await? else {
                    // No such API: the emulator answers the request itself.
                    return Ok(all);
                };
                if let Some(items) = page["item"].as_array() {
                    all.extend(items.iter().cloned());
                }
                match page["position"].as_str() {
                    Some(p) if !p.is_empty() => position = Some(p.to_string()),
                    _ => return Ok(all),
                }
            }
        }
    }

    fn body_field(body: &Bytes, field: &str) -> Option<String> {
        let v: Value = serde_json::from_slice(body).ok()?;
        v.get(field)?.as_str().map(str::to_string)
    }

    /// `POST /restapis/{api}/resources/{parentId}` `{"pathPart": …}`.
    async fn create_resource(lookup: &Lookup<'_>, segs: &[&str], body: &Bytes) -> Decided {
        let (api, parent) = (segs[1], segs[3]);
        let Some(part) = body_field(body, "pathPart") else {
            return Ok(None);
        };
        let taken = lookup.resources(api).await?.iter().any(|r| {
            r["parentId"].as_str() == Some(parent) && r["pathPart"].as_str() == Some(&part)
        });
        Ok(taken.then(|| {
            (
                Refusal::DuplicateSibling,
                json(
                    StatusCode::CONFLICT,
                    Some("ConflictException"),
                    &format!("Another resource with the same parent already has this name: {part}"),
                ),
            )
        }))
    }

    /// `PUT /restapis/{api}/resources/{id}/methods/{verb}`.
    async fn put_method(lookup: &Lookup<'_>, segs: &[&str]) -> Decided {
        let verb = segs[5];
        if !VERBS.contains(&verb) {
            let message = format!(
                "Invalid HttpMethod specified. Valid options are {}",
                VERBS.join(",")
            );
            return Ok(Some((
                Refusal::InvalidVerb,
                json(
                    StatusCode::BAD_REQUEST,
                    Some("BadRequestException"),
                    &message,
                ),
            )));
        }
        let path = format!("/restapis/{}/resources/{}/methods/{verb}", segs[1], segs[3]);
        let exists = lookup.get(&path).await?.is_some();
        Ok(exists.then(|| {
            (
                Refusal::MethodExists,
                json(
                    StatusCode::CONFLICT,
                    Some("ConflictException"),
                    "Method already exists for this resource",
                ),
            )
        }))
    }

    /// `POST /restapis/{api}/deployments`: refused while any method of the
    /// API has no integration.
    async fn create_deployment(lookup: &Lookup<'_>, api: &str) -> Decided {
        let mut bare: Vec<String> = Vec::new();
        for r in lookup.resources(api).await? {
            let Some(methods) = r["resourceMethods"].as_object() else {
                continue;
            };
            for (verb, m) in methods {
                if m.get("methodIntegration").is_none_or(Value::is_null) {
                    let path = r["path"].as_str().unwrap_or("?");
                    bare.push(format!("{verb} {path} ({})", m["operationName"]));
                }
            }
        }
        if !bare.is_empty() {
            // AWS names none of them; whoever reads the test's output wants to.
            eprintln!(
                "fault proxy (strict): CreateDeployment of {api} refused, no integration on {}",
                bare.join(", ")
            );
        }
        Ok((!bare.is_empty()).then(|| {
            (
                Refusal::NoIntegration,
                json(
                    StatusCode::BAD_REQUEST,
                    Some("BadRequestException"),
                    "No integration defined for method",
                ),
            )
        }))
    }

    /// `PATCH /restapis/{api}/stages/{stage}` with `remove /{key}/{verb}`
    /// operations (see [`Refusal::SettingRemoval`]).
    async fn setting_removal(lookup: &Lookup<'_>, api: &str, stage: &str, body: &Bytes) -> Decided {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return Ok(None);
        };
        let removed: Vec<String> = v["patchOperations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|op| op["op"].as_str() == Some("remove"))
            .filter_map(|op| op["path"].as_str())
            .filter_map(|path| {
                let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
                let setting =
                    parts.len() == 2 && !matches!(parts[0], "accessLogSettings" | "variables");
                setting.then(|| parts.join("/"))
            })
            .collect();
        let Some(key) = removed.first() else {
            return Ok(None);
        };
        let Some(stage) = lookup
            .get(&format!("/restapis/{api}/stages/{stage}"))
            .await?
        else {
            return Ok(None);
        };
        if stage["methodSettings"].get(key.as_str()).is_some() {
            return Ok(None);
        }
        Ok(Some((
            Refusal::SettingRemoval,
            json(
                StatusCode::BAD_REQUEST,
                Some("BadRequestException"),
                &format!("Cannot remove method setting {key} because there is no method setting for this method "),
            ),
        )))
    }

    /// UpdateMethod: no `replace /authorizerId ""` (see [`Refusal::EmptyAuthorizerId`]).
    fn empty_authorizer(body: &Bytes) -> Option<(Refusal, Answer)> {
        let v = serde_json::from_slice::<Value>(body).ok()?;
        let empty = v["patchOperations"].as_array()?.iter().any(|op| {
            op["path"] == "/authorizerId"
                && op["value"].as_str().is_none_or(str::is_empty)
                && op["op"] != "remove"
        });
        empty.then(|| {
            (
                Refusal::EmptyAuthorizerId,
                json(
                    StatusCode::BAD_REQUEST,
                    Some("BadRequestException"),
                    "Invalid authorizer id specified",
                ),
            )
        })
    }

    /// UpdateStage: at most 80 patch operations (see [`Refusal::TooManyPatches`]).
    fn too_many_patches(body: &Bytes) -> Option<(Refusal, Answer)> {
        let v = serde_json::from_slice::<Value>(body).ok()?;
        let n = v["patchOperations"].as_array()?.len();
        (n > 80).then(|| {
            (
                Refusal::TooManyPatches,
                json(
                    StatusCode::BAD_REQUEST,
                    Some("BadRequestException"),
                    &format!("{n} patch operations in one UpdateStage; send at most 80 a call"),
                ),
            )
        })
    }

    /// TagResource: every tag key and value within the documented
    /// characters (see [`Refusal::TagCharacters`]).
    fn tag_characters(body: &Bytes) -> Option<(Refusal, Answer)> {
        let v = serde_json::from_slice::<Value>(body).ok()?;
        let allowed = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-=._:/@".contains(c))
        };
        let bad = v["tags"]
            .as_object()?
            .iter()
            .find(|(k, v)| !allowed(k) || !v.as_str().is_some_and(allowed))?;
        Some((
            Refusal::TagCharacters,
            json(
                StatusCode::BAD_REQUEST,
                Some("BadRequestException"),
                &format!(
                    "Invalid tag {}={}: tags may contain letters, digits and + - = . _ : / @",
                    bad.0, bad.1
                ),
            ),
        ))
    }

    /// DeleteResource or DeleteMethod: 404 when `path` is not there.
    async fn delete_missing(lookup: &Lookup<'_>, path: &str, message: &str) -> Decided {
        let missing = lookup.get(path).await?.is_none();
        Ok(missing.then(|| {
            (
                Refusal::DeleteMissing,
                json(StatusCode::NOT_FOUND, Some("NotFoundException"), message),
            )
        }))
    }

    /// `POST /2015-03-31/functions/{fn}/policy[?Qualifier=…]`
    /// `{"StatementId": …}`: refused when the policy of that qualifier holds
    /// the statement id. moto keeps one policy per function and ignores the
    /// qualifier on GetPolicy, so statements are told apart by the qualifier
    /// their `Resource` ARN carries (moto appends it).
    async fn add_permission(
        lookup: &Lookup<'_>,
        head: &request::Parts,
        segs: &[&str],
        body: &Bytes,
    ) -> Decided {
        let Some(sid) = body_field(body, "StatementId") else {
            return Ok(None);
        };
        let function = segs[2];
        let qualifier = head
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .find_map(|kv| kv.strip_prefix("Qualifier="))
            .map(percent_decoded)
            .or_else(|| qualifier_of(&percent_decoded(function)));
        let qualifier = qualifier.filter(|q| q != "$LATEST");
        let mut path = format!("/2015-03-31/functions/{function}/policy");
        if let Some(q) = &qualifier {
            path.push_str(&format!("?Qualifier={q}"));
        }
        let Some(answer) = lookup.get(&path).await? else {
            return Ok(None);
        };
        let policy: Value = match answer["Policy"].as_str() {
            Some(text) => serde_json::from_str(text)
                .map_err(|e| format!("GetPolicy: the Policy is not JSON ({e}): {text}"))?,
            None => return Err(format!("GetPolicy: no Policy in {answer}")),
        };
        let statements = match &policy["Statement"] {
            Value::Array(items) => items.clone(),
            single @ Value::Object(_) => vec![single.clone()],
            _ => Vec::new(),
        };
        let held = statements.iter().any(|s| {
            s["Sid"].as_str() == Some(sid.as_str())
                && s["Resource"]
                    .as_str()
                    .and_then(qualifier_of)
                    .filter(|q| q != "$LATEST")
                    == qualifier
        });
        Ok(held.then(|| {
            let message = format!(
                "The statement id ({sid}) provided already exists. Please provide a new statement id, or remove the existing statement."
            );
            (
                Refusal::DuplicateStatement,
                super::error_answer(
                    StatusCode::CONFLICT,
                    Some("ResourceConflictException"),
                    serde_json::json!({ "Type": "User", "Message": message }).to_string(),
                ),
            )
        }))
    }

    /// `function/alias` of an alias path: the function by name, whether
    /// the path names it by name or by ARN.
    fn alias_key(function_segment: &str, alias: &str) -> String {
        let function = percent_decoded(function_segment);
        let name = match function.strip_prefix("arn:") {
            Some(_) => function.split(':').nth(6).unwrap_or_default().to_string(),
            None => function.split(':').next().unwrap_or_default().to_string(),
        };
        format!("{name}/{}", percent_decoded(alias))
    }

    /// The revision the strict layer gives an alias: a digest of what it
    /// holds and the number of writes made to it through the proxy, so it
    /// changes with every write, and with a change made to moto directly.
    fn alias_revision(shared: &Shared, key: &str, alias: &Value) -> String {
        use std::hash::{Hash, Hasher};
        let writes = shared
            .alias_writes
            .lock()
            .expect("alias writes lock")
            .get(key)
            .copied()
            .unwrap_or(0);
        let mut h = std::collections::hash_map::DefaultHasher::new();
        alias["FunctionVersion"].to_string().hash(&mut h);
        weights_of(alias).hash(&mut h);
        alias["Description"].to_string().hash(&mut h);
        format!("{:016x}-{writes}", h.finish())
    }

    /// An alias's additional version weights, sorted, as text.
    fn weights_of(alias: &Value) -> Vec<(String, String)> {
        let mut list: Vec<(String, String)> = alias["RoutingConfig"]["AdditionalVersionWeights"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.to_string())).collect())
            .unwrap_or_default();
        list.sort();
        list
    }

    /// After an alias call was forwarded: a successful write counts, and
    /// every answer that carries the alias carries the strict layer's
    /// revision instead of moto's.
    pub(super) async fn alias_answer(
        shared: &Shared,
        operation: &str,
        path: &str,
        answer: Answer,
    ) -> Answer {
        if !matches!(
            operation,
            "lambda:GetAlias" | "lambda:CreateAlias" | "lambda:UpdateAlias"
        ) || !answer.status().is_success()
        {
            return answer;
        }
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (head, body) = answer.into_parts();
        let body = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(never) => match never {},
        };
        let Ok(mut alias) = serde_json::from_slice::<Value>(&body) else {
            return hyper::Response::from_parts(head, http_body_util::Full::new(body));
        };
        let name = match operation {
            "lambda:CreateAlias" => alias["Name"].as_str().unwrap_or_default().to_string(),
            _ => segs.get(4).copied().unwrap_or_default().to_string(),
        };
        let key = alias_key(segs.get(2).copied().unwrap_or_default(), &name);
        if operation != "lambda:GetAlias" {
            *shared
                .alias_writes
                .lock()
                .expect("alias writes lock")
                .entry(key.clone())
                .or_default() += 1;
        }
        alias["RevisionId"] = Value::String(alias_revision(shared, &key, &alias));
        let text = Bytes::from(alias.to_string());
        let mut answer = hyper::Response::from_parts(head, http_body_util::Full::new(text.clone()));
        answer.headers_mut().insert(
            header::CONTENT_LENGTH,
            header::HeaderValue::from(text.len()),
        );
        answer
    }

    /// CreateAlias (`POST …/functions/{fn}/aliases`) and UpdateAlias (`PUT
    /// …/functions/{fn}/aliases/{name}`): refused as AWS does for a stale
    /// RevisionId and for routing weights it does not take.
    async fn alias_write(
        lookup: &Lookup<'_>,
        operation: &str,
        segs: &[&str],
        body: &Bytes,
    ) -> Decided {
        let request: Value = serde_json::from_slice(body)
            .map_err(|e| format!("{operation}: the body is not JSON ({e})"))?;
        let function = segs[2];
        let current = match operation {
            "lambda:UpdateAlias" => {
                let path = format!("/2015-03-31/functions/{function}/aliases/{}", segs[4]);
                match lookup.get(&path).await? {
                    Some(a) => Some(a),
                    // moto answers the missing alias itself.
                    None => return Ok(None),
                }
            }
            _ => None,
        };
        let refuse = |refusal, status, code: &'static str, message: String| {
            Ok(Some((
                refusal,
                super::error_answer(
                    status,
                    Some(code),
                    serde_json::json!({ "Type": "User", "Message": message }).to_string(),
                ),
            )))
        };
        if let (Some(current), Some(sent)) = (&current, request["RevisionId"].as_str()) {
            let key = alias_key(function, segs[4]);
            let now = alias_revision(lookup.shared, &key, current);
            if sent != now {
                return refuse(
                    Refusal::StaleRevision,
                    StatusCode::PRECONDITION_FAILED,
                    "PreconditionFailedException",
                    format!("The Revision Id provided does not match the latest Revision Id. Call the GetAlias API to retrieve the latest Revision Id ({sent} is not {now})"),
                );
            }
        }
        let primary = request["FunctionVersion"]
            .as_str()
            .or_else(|| current.as_ref().and_then(|c| c["FunctionVersion"].as_str()))
            .unwrap_or_default()
            .to_string();
        let Some(weights) = request["RoutingConfig"]["AdditionalVersionWeights"].as_object() else {
            return Ok(None);
        };
        let bad = |why: String| {
            refuse(
                Refusal::AliasRouting,
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                why,
            )
        };
        if weights.len() > 1 {
            return bad(format!(
                "An alias can route to one additional version at most, not {}",
                weights.len()
            ));
        }
        for (version, weight) in weights {
            let w = weight.as_f64().unwrap_or(-1.0);
            if version == "$LATEST" || primary == "$LATEST" {
                return bad(
                    "$LATEST is not supported for an alias pointing to more than 1 version".into(),
                );
            }
            if version == &primary {
                return bad(format!(
                    "The additional version {version} must not be the alias's primary version"
                ));
            }
            if !(w > 0.0 && w < 1.0) {
                return bad(format!("The weight {weight} of version {version} must be between 0 and 1, both excluded"));
            }
            let path =
                format!("/2015-03-31/functions/{function}/configuration?Qualifier={version}");
            if lookup.get(&path).await?.is_none() {
                return bad(format!(
                    "Version {version} of the function is not published"
                ));
            }
        }
        Ok(None)
    }

    /// The qualifier of a function name or ARN (`name:live`,
    /// `arn:aws:lambda:REGION:ACCOUNT:function:name:live`).
    fn qualifier_of(function: &str) -> Option<String> {
        if function.starts_with("arn:") {
            function.splitn(8, ':').nth(7).map(str::to_string)
        } else {
            function.split_once(':').map(|(_, q)| q.to_string())
        }
    }

    /// `%XX` escapes decoded (invalid ones are kept as they are).
    fn percent_decoded(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let escaped = (bytes[i] == b'%')
                .then(|| bytes.get(i + 1..i + 3))
                .flatten()
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok());
            match escaped {
                Some(b) => {
                    out.push(b);
                    i += 3;
                }
                None => {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
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

/// Calls that are POSTs but read: CloudWatch's Describe and Get calls.
fn is_read_by_post(operation: &str) -> bool {
    operation.strip_prefix("cloudwatch:").is_some_and(|op| {
        op.starts_with("Describe") || op.starts_with("Get") || op.starts_with("List")
    })
}

/// Names a REST call by its method and path shape: `apigateway:GetResources`,
/// `lambda:GetPolicy`…; unknown shapes come out as `METHOD /shape`.
/// The operation of a request: STS's from its form body (`sts:AssumeRole`),
/// every other from its method and path ([`operation_of`]).
fn request_operation(head: &request::Parts, body: &Bytes) -> String {
    if Service::is_sts(&head.headers) {
        let form = String::from_utf8_lossy(body);
        let action = form
            .split('&')
            .find_map(|kv| kv.strip_prefix("Action="))
            .unwrap_or("Unknown");
        return format!("sts:{action}");
    }
    operation_of(head.method.as_str(), head.uri.path())
}

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
                    "responses" => "{status}",
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
        Some("service") => {
            // CloudWatch (Smithy RPC v2):
            // /service/GraniteServiceVersion20100801/operation/{Operation}.
            if let [_, _, "operation", op] = segs[..] {
                return format!("cloudwatch:{op}");
            }
            segs.clone()
        }
        Some("tags") => segs
            .iter()
            .enumerate()
            .map(|(i, s)| if i == 1 { "{arn}" } else { s })
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
        ("PATCH", "/restapis/{api}/resources/{res}/methods/{verb}") => "apigateway:UpdateMethod",
        ("PATCH", "/restapis/{api}/resources/{res}/methods/{verb}/integration") => {
            "apigateway:UpdateIntegration"
        }
        ("PUT", "/restapis/{api}/resources/{res}/methods/{verb}/integration") => {
            "apigateway:PutIntegration"
        }
        ("GET", "/restapis/{api}/resources/{res}/methods/{verb}/integration") => {
            "apigateway:GetIntegration"
        }
        ("PATCH", "/restapis/{api}/resources/{res}/methods/{verb}/responses/{status}") => {
            "apigateway:UpdateMethodResponse"
        }
        (
            "PATCH",
            "/restapis/{api}/resources/{res}/methods/{verb}/integration/responses/{status}",
        ) => "apigateway:UpdateIntegrationResponse",
        ("PUT", "/restapis/{api}/resources/{res}/methods/{verb}/responses/{status}") => {
            "apigateway:PutMethodResponse"
        }
        (
            "PUT",
            "/restapis/{api}/resources/{res}/methods/{verb}/integration/responses/{status}",
        ) => "apigateway:PutIntegrationResponse",
        ("POST", "/restapis/{api}/deployments") => "apigateway:CreateDeployment",
        ("GET", "/restapis/{api}/deployments") => "apigateway:GetDeployments",
        ("GET", "/restapis/{api}/deployments/{dep}") => "apigateway:GetDeployment",
        ("POST", "/restapis/{api}/stages") => "apigateway:CreateStage",
        ("GET", "/restapis/{api}/stages/{stage}") => "apigateway:GetStage",
        ("PATCH", "/restapis/{api}/stages/{stage}") => "apigateway:UpdateStage",
        ("GET", "/restapis/{api}") => "apigateway:GetRestApi",
        ("GET", "/tags/{arn}") => "apigateway:GetTags",
        ("PUT", "/tags/{arn}") => "apigateway:TagResource",
        ("DELETE", "/tags/{arn}") => "apigateway:UntagResource",
        ("GET", "/2015-03-31/functions/{fn}") => "lambda:GetFunction",
        ("GET", "/2015-03-31/functions/{fn}/policy") => "lambda:GetPolicy",
        ("POST", "/2015-03-31/functions/{fn}/policy") => "lambda:AddPermission",
        ("DELETE", "/2015-03-31/functions/{fn}/policy/{sid}") => "lambda:RemovePermission",
        ("GET", "/2015-03-31/functions/{fn}/configuration") => "lambda:GetFunctionConfiguration",
        ("POST", "/2015-03-31/functions/{fn}/versions") => "lambda:PublishVersion",
        ("POST", "/2015-03-31/functions/{fn}/aliases") => "lambda:CreateAlias",
        ("GET", "/2015-03-31/functions/{fn}/aliases/{sid}") => "lambda:GetAlias",
        ("PUT", "/2015-03-31/functions/{fn}/aliases/{sid}") => "lambda:UpdateAlias",
        ("DELETE", "/2015-03-31/functions/{fn}/aliases/{sid}") => "lambda:DeleteAlias",
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
                "PUT",
                "/tags/arn%3Aaws%3Aapigateway%3Aeu-west-2%3A%3A%2Frestapis%2Fa1b2%2Fstages%2Fprod",
                "apigateway:TagResource",
            ),
            (
                "DELETE",
                "/tags/arn%3Aaws%3Aapigateway%3Aeu-west-2%3A%3A%2Frestapis%2Fa1b2%2Fstages%2Fprod?tagKeys=k",
                "apigateway:UntagResource",
            ),
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

    #[test]
    fn answers_lost_after_forwarding_reach_the_upstream_first() {
        let proxy = FaultProxy::start(
            &echo_upstream(),
            FaultConfig {
                fault_rate: 0.0,
                delay_rate: 0.0,
                after_forward_rate: 0.5,
                seed: 11,
                ..FaultConfig::default()
            },
        );
        let mut seen: BTreeMap<Fault, usize> = BTreeMap::new();
        let mut answered = 0;
        for i in 0..2 * BAG_SIZE {
            let body = format!(r#"{{"pathPart":"p{i}"}}"#);
            match send(
                &proxy,
                "POST",
                "/restapis/a1/resources/r0",
                APIGATEWAY_AUTH,
                &body,
            ) {
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                    *seen.entry(Fault::Reset).or_default() += 1;
                }
                Err(e) => panic!("unexpected error: {e}"),
                Ok(answer) if answer.starts_with("HTTP/1.1 200") => {
                    assert!(answer.ends_with(&body), "{answer}");
                    answered += 1;
                }
                Ok(answer) if answer.starts_with("HTTP/1.1 500") => {
                    *seen.entry(Fault::InternalError).or_default() += 1;
                }
                Ok(answer) if answer.starts_with("HTTP/1.1 503") => {
                    *seen.entry(Fault::Unavailable).or_default() += 1;
                }
                Ok(answer) => panic!("not a lost answer: {answer}"),
            }
        }
        // Reads are never lost.
        for _ in 0..BAG_SIZE {
            let a = send(&proxy, "GET", "/restapis/a1/resources", APIGATEWAY_AUTH, "")
                .expect("GetResources answer");
            assert!(a.starts_with("HTTP/1.1 200"), "{a}");
        }
        let stats = proxy.stats();
        // Exactly half of the writes, by the bag; every one reached the upstream.
        assert_eq!(answered, BAG_SIZE, "{stats}");
        assert_eq!(stats.lost_answers(), BAG_SIZE, "{stats}");
        assert_eq!(stats.lost_of("apigateway:CreateResource"), BAG_SIZE);
        assert_eq!(stats.forwarded, 3 * BAG_SIZE, "{stats}");
        assert_eq!(proxy.calls().len(), 3 * BAG_SIZE);
        assert_eq!(stats.faulted(), 0, "{stats}");
        for kind in Fault::LOST {
            assert_eq!(
                seen.get(&kind).copied().unwrap_or(0),
                stats.lost[&kind],
                "{}: {stats}",
                kind.name()
            );
        }
        assert!(seen.len() >= 2, "one kind of loss only: {stats}");
        // Not strict: nothing was looked up or refused.
        assert_eq!((stats.strict_lookups, stats.refused()), (0, 0), "{stats}");
    }

    // ----- the strict layer, against moto ---------------------------------------

    use super::super::Fixture;
    use aws_sdk_apigateway::error::ProvideErrorMetadata;
    use aws_sdk_apigateway::types::{IntegrationType, Op, PatchOperation};

    /// A strict proxy in front of the fixture's emulator, and SDK clients
    /// going through it.
    fn strict_proxy(
        fx: &Fixture,
        config: FaultConfig,
    ) -> (
        FaultProxy,
        aws_sdk_apigateway::Client,
        aws_sdk_lambda::Client,
    ) {
        let proxy = FaultProxy::start(&fx.endpoint(), config);
        let sdk = fx
            .sdk_config()
            .to_builder()
            .endpoint_url(proxy.url())
            .build();
        (
            proxy,
            aws_sdk_apigateway::Client::new(&sdk),
            aws_sdk_lambda::Client::new(&sdk),
        )
    }

    fn strict_only() -> FaultConfig {
        FaultConfig {
            fault_rate: 0.0,
            delay_rate: 0.0,
            strict: true,
            ..FaultConfig::default()
        }
    }

    /// The error code and message of a failed call, or panics.
    #[track_caller]
    fn refused<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
        result: Result<T, E>,
    ) -> (String, String) {
        let e = result.expect_err("the strict layer should have refused the call");
        (
            e.code().unwrap_or_default().to_string(),
            e.message().unwrap_or_default().to_string(),
        )
    }

    fn refusals(pairs: &[(Refusal, usize)]) -> BTreeMap<Refusal, usize> {
        Refusal::ALL
            .iter()
            .map(|r| {
                let n = pairs.iter().find(|(k, _)| k == r).map_or(0, |(_, n)| *n);
                (*r, n)
            })
            .collect()
    }

    #[tokio::test]
    async fn strict_layer_answers_api_gateway_calls_as_aws() {
        let fx = Fixture::start().await;
        let (api, root) = fx.create_rest_api("strict-api").await;
        let (proxy, ag, _) = strict_proxy(&fx, strict_only());
        let create = |parent: &str, part: &str| {
            ag.create_resource()
                .rest_api_id(&api)
                .parent_id(parent)
                .path_part(part)
                .send()
        };

        // CreateResource: a new name is fine, and so is the same name under
        // another parent; a sibling's name is a 409.
        let a = create(&root, "a").await.expect("create /a");
        let a = a.id().expect("id").to_string();
        let b = create(&root, "b").await.expect("create /b");
        let b = b.id().expect("id").to_string();
        create(&b, "a").await.expect("create /b/a");
        let (code, message) = refused(create(&root, "a").await);
        assert_eq!(code, "ConflictException");
        assert_eq!(
            message,
            "Another resource with the same parent already has this name: a"
        );
        assert_eq!(fx.resource_paths(&api).await, ["/", "/a", "/b", "/b/a"]);

        // PutMethod: a new method is fine; over an existing one, 409; an
        // unknown verb, 400.
        let put = |verb: &str| {
            ag.put_method()
                .rest_api_id(&api)
                .resource_id(&a)
                .http_method(verb)
                .authorization_type("NONE")
                .send()
        };
        put("GET").await.expect("PutMethod GET");
        put("ANY").await.expect("PutMethod ANY");
        let (code, message) = refused(put("GET").await);
        assert_eq!(
            (code.as_str(), message.as_str()),
            (
                "ConflictException",
                "Method already exists for this resource"
            )
        );
        let (code, message) = refused(put("FOO").await);
        assert_eq!(code, "BadRequestException");
        assert!(
            message.starts_with("Invalid HttpMethod specified. Valid options are "),
            "{message}"
        );

        // CreateDeployment while GET /a or ANY /a has no integration: 400.
        let deploy = || ag.create_deployment().rest_api_id(&api).send();
        let (code, message) = refused(deploy().await);
        assert_eq!(
            (code.as_str(), message.as_str()),
            ("BadRequestException", "No integration defined for method")
        );
        assert!(fx.deployments(&api).await.is_empty());
        for verb in ["GET", "ANY"] {
            ag.put_integration()
                .rest_api_id(&api)
                .resource_id(&a)
                .http_method(verb)
                .r#type(IntegrationType::Mock)
                .send()
                .await
                .expect("PutIntegration");
            if verb == "GET" {
                // ANY /a still has none.
                refused(deploy().await);
            }
        }
        let deployment = deploy().await.expect("deployment with every integration");
        assert_eq!(fx.deployments(&api).await.len(), 1);

        // Removing a stage's method-settings key it does not have: refused
        // as AWS refuses it; other stage patches pass.
        ag.create_stage()
            .rest_api_id(&api)
            .stage_name("s")
            .deployment_id(deployment.id().unwrap())
            .send()
            .await
            .expect("CreateStage");
        let patch = |op: Op, path: &str, value: Option<&str>| {
            ag.update_stage()
                .rest_api_id(&api)
                .stage_name("s")
                .patch_operations(
                    PatchOperation::builder()
                        .op(op)
                        .path(path)
                        .set_value(value.map(str::to_string))
                        .build(),
                )
                .send()
        };
        let (code, message) = refused(patch(Op::Remove, "/~1a/GET", None).await);
        assert_eq!(code, "BadRequestException");
        assert!(
            message.contains("no method setting for this method"),
            "{message}"
        );
        patch(Op::Replace, "/~1a/GET/throttling/rateLimit", Some("5"))
            .await
            .expect("a method setting replaced");
        // A key the stage has: let through (moto answers 200 and keeps it).
        let answer = patch(Op::Remove, "/~1a/GET", None)
            .await
            .expect("a present key's removal reaches moto");
        assert!(
            answer.method_settings().unwrap().contains_key("~1a/GET"),
            "moto kept it: the answer shows that"
        );
        // More than 80 operations in one call.
        let many: Vec<PatchOperation> = (0..81)
            .map(|i| {
                PatchOperation::builder()
                    .op(Op::Replace)
                    .path("/~1a/GET/throttling/rateLimit")
                    .value(i.to_string())
                    .build()
            })
            .collect();
        let (code, _) = refused(
            ag.update_stage()
                .rest_api_id(&api)
                .stage_name("s")
                .set_patch_operations(Some(many.clone()))
                .send()
                .await,
        );
        assert_eq!(code, "BadRequestException");
        ag.update_stage()
            .rest_api_id(&api)
            .stage_name("s")
            .set_patch_operations(Some(many[..80].to_vec()))
            .send()
            .await
            .expect("80 operations pass");

        // UpdateMethod with an empty authorizer id: 400, before moto.
        let (code, _) = refused(
            ag.update_method()
                .rest_api_id(&api)
                .resource_id(&a)
                .http_method("GET")
                .patch_operations(
                    PatchOperation::builder()
                        .op(Op::Replace)
                        .path("/authorizerId")
                        .value("")
                        .build(),
                )
                .send()
                .await,
        );
        assert_eq!(code, "BadRequestException");

        // Deleting what is not there: 404; what is there: fine.
        let (code, _) = refused(
            ag.delete_method()
                .rest_api_id(&api)
                .resource_id(&a)
                .http_method("POST")
                .send()
                .await,
        );
        assert_eq!(code, "NotFoundException");
        let (code, _) = refused(
            ag.delete_resource()
                .rest_api_id(&api)
                .resource_id("nosuch")
                .send()
                .await,
        );
        assert_eq!(code, "NotFoundException");
        ag.delete_method()
            .rest_api_id(&api)
            .resource_id(&a)
            .http_method("ANY")
            .send()
            .await
            .expect("DeleteMethod ANY");

        let stats = proxy.stats();
        assert_eq!(
            stats.refusals,
            refusals(&[
                (Refusal::DuplicateSibling, 1),
                (Refusal::MethodExists, 1),
                (Refusal::InvalidVerb, 1),
                (Refusal::NoIntegration, 2),
                (Refusal::DeleteMissing, 2),
                (Refusal::SettingRemoval, 1),
                (Refusal::TooManyPatches, 1),
                (Refusal::EmptyAuthorizerId, 1),
            ]),
            "{stats}"
        );
        assert_eq!(stats.retry_refusals, refusals(&[]), "{stats}");
        assert_eq!(stats.strict_lookup_errors, 0, "{stats}");
        assert!(stats.strict_lookups >= 10, "{stats}");
        // Refused calls never reached the emulator.
        let calls = proxy.calls();
        let count = |op: &str| calls.iter().filter(|(_, o)| o == op).count();
        assert_eq!(count("apigateway:CreateResource"), 3);
        assert_eq!(count("apigateway:PutMethod"), 2);
        assert_eq!(count("apigateway:CreateDeployment"), 1);
        assert_eq!(stats.forwarded + stats.refused(), stats.requests, "{stats}");
    }

    #[tokio::test]
    async fn strict_layer_refuses_a_statement_id_the_policy_holds() {
        let fx = Fixture::start().await;
        let arn = fx.create_function("strict-fn").await;
        fx.create_alias("strict-fn", "live").await;
        let (proxy, _, lambda) = strict_proxy(&fx, strict_only());
        let add = |sid: &str, qualifier: Option<&str>| {
            lambda
                .add_permission()
                .function_name(&arn)
                .set_qualifier(qualifier.map(str::to_string))
                .statement_id(sid)
                .action("lambda:InvokeFunction")
                .principal("apigateway.amazonaws.com")
                .source_arn("arn:aws:execute-api:eu-west-2:210987654321:api/*/*/x")
                .send()
        };
        add("s1", None).await.expect("first s1");
        add("s2", None).await.expect("s2");
        let result = add("s1", None).await;
        assert!(
            result
                .as_ref()
                .err()
                .and_then(|e| e.as_service_error())
                .is_some_and(|e| e.is_resource_conflict_exception()),
            "{result:?}"
        );
        let (_, message) = refused(result);
        assert_eq!(
            message,
            "The statement id (s1) provided already exists. Please provide a new statement id, or remove the existing statement."
        );
        // The alias has a policy of its own (on AWS; moto keeps one).
        add("s1", Some("live")).await.expect("s1 on the alias");
        let (code, _) = refused(add("s1", Some("live")).await);
        assert_eq!(code, "ResourceConflictException");
        // A function name with the qualifier in it names the same policy.
        let (code, _) = refused(
            lambda
                .add_permission()
                .function_name(format!("{arn}:live"))
                .statement_id("s1")
                .action("lambda:InvokeFunction")
                .principal("apigateway.amazonaws.com")
                .send()
                .await,
        );
        assert_eq!(code, "ResourceConflictException");

        let sids: Vec<String> = fx
            .all_policy_statements("strict-fn")
            .await
            .iter()
            .map(|s| s["Sid"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(
            sids,
            ["s1", "s2", "s1"],
            "two on the function, one on the alias"
        );
        let stats = proxy.stats();
        assert_eq!(
            stats.refusals,
            refusals(&[(Refusal::DuplicateStatement, 3)]),
            "{stats}"
        );
        assert_eq!(stats.strict_lookup_errors, 0, "{stats}");
    }

    #[tokio::test]
    async fn strict_layer_refuses_alias_weights_and_stale_revisions_as_aws() {
        let fx = Fixture::start().await;
        fx.create_function("strict-fn").await;
        fx.create_alias("strict-fn", "live").await; // version 1
        fx.lambda
            .update_function_configuration()
            .function_name("strict-fn")
            .description("build 2")
            .send()
            .await
            .expect("UpdateFunctionConfiguration");
        let v2 = fx
            .lambda
            .publish_version()
            .function_name("strict-fn")
            .send()
            .await
            .expect("PublishVersion")
            .version()
            .expect("a version")
            .to_string();
        let (proxy, _, lambda) = strict_proxy(&fx, strict_only());
        let get = || {
            lambda
                .get_alias()
                .function_name("strict-fn")
                .name("live")
                .send()
        };
        let first = get().await.expect("GetAlias");
        let r1 = first.revision_id().expect("a revision").to_string();
        assert_eq!(
            get().await.unwrap().revision_id(),
            Some(r1.as_str()),
            "stable between writes"
        );
        let update = |revision: Option<&str>, weights: &[(&str, f64)]| {
            let map: std::collections::HashMap<String, f64> =
                weights.iter().map(|(v, w)| (v.to_string(), *w)).collect();
            lambda
                .update_alias()
                .function_name("strict-fn")
                .name("live")
                .set_revision_id(revision.map(str::to_string))
                .routing_config(
                    aws_sdk_lambda::types::AliasRoutingConfiguration::builder()
                        .set_additional_version_weights(Some(map))
                        .build(),
                )
                .send()
        };
        // Weights AWS refuses.
        for weights in [
            vec![("1", 0.1)],                                  // the primary version
            vec![("$LATEST", 0.1)],                            // $LATEST
            vec![(v2.as_str(), 0.0)],                          // not above 0
            vec![(v2.as_str(), 1.0)],                          // not below 1
            vec!["9"].into_iter().map(|v| (v, 0.1)).collect(), // not published
        ] {
            let (code, message) = refused(update(Some(&r1), &weights).await);
            assert_eq!(
                code, "InvalidParameterValueException",
                "{weights:?}: {message}"
            );
        }
        // A good write rotates the revision, and the answer carries the new one.
        let written = update(Some(&r1), &[(v2.as_str(), 0.1)])
            .await
            .expect("a good write");
        let r2 = written.revision_id().expect("a revision").to_string();
        assert_ne!(r1, r2);
        assert_eq!(get().await.unwrap().revision_id(), Some(r2.as_str()));
        // The old revision is stale now.
        let (code, _) = refused(update(Some(&r1), &[(v2.as_str(), 0.5)]).await);
        assert_eq!(code, "PreconditionFailedException");
        // A change made behind the proxy's back changes the revision too.
        fx.lambda
            .update_alias()
            .function_name("strict-fn")
            .name("live")
            .description("by hand")
            .send()
            .await
            .expect("UpdateAlias on moto");
        let (code, _) = refused(update(Some(&r2), &[(v2.as_str(), 0.5)]).await);
        assert_eq!(code, "PreconditionFailedException");
        let stats = proxy.stats();
        assert_eq!(
            stats.refusals,
            refusals(&[(Refusal::AliasRouting, 5), (Refusal::StaleRevision, 2)]),
            "{stats}"
        );
        assert!(
            stats.strict_lookups > 0 && stats.strict_lookup_errors == 0,
            "{stats}"
        );
    }

    #[tokio::test]
    async fn strict_layer_refuses_tags_outside_the_documented_characters() {
        let fx = Fixture::start().await;
        let (api, root) = fx.create_rest_api("strict-tags").await;
        fx.put_foreign_method(
            &api,
            &root,
            "GET",
            None,
            crate::support::Integration::HttpProxy("GET", "https://example.com/"),
        )
        .await;
        fx.apigateway
            .create_deployment()
            .rest_api_id(&api)
            .stage_name("prod")
            .send()
            .await
            .expect("a stage");
        let (proxy, ag, _) = strict_proxy(&fx, strict_only());
        let arn = format!(
            "arn:aws:apigateway:{}::/restapis/{api}/stages/prod",
            fx.region()
        );
        let tag =
            |key: &str, value: &str| ag.tag_resource().resource_arn(&arn).tags(key, value).send();
        tag("apimount:o:inflight", "0123abcd.89abcdef")
            .await
            .expect("dots are documented");
        let (code, message) = refused(tag("apimount:o:inflight", "0123abcd 89abcdef").await);
        assert_eq!(code, "BadRequestException");
        assert!(message.contains("Invalid tag"), "{message}");
        let stats = proxy.stats();
        assert_eq!(
            stats.refusals,
            refusals(&[(Refusal::TagCharacters, 1)]),
            "{stats}"
        );
    }

    #[tokio::test]
    async fn lost_answers_are_executed_and_their_retries_refused() {
        const N: usize = 6;
        let fx = Fixture::start().await;
        let (api, root) = fx.create_rest_api("lost-api").await;
        let arn = fx.create_function("lost-fn").await;
        let (proxy, ag, lambda) = strict_proxy(
            &fx,
            FaultConfig {
                after_forward_rate: 1.0,
                seed: 5,
                ..strict_only()
            },
        );
        for i in 0..N {
            // moto creates it, the answer is lost, the SDK retries, and the
            // retry gets AWS's 409.
            let (code, _) = refused(
                ag.create_resource()
                    .rest_api_id(&api)
                    .parent_id(&root)
                    .path_part(format!("lost-{i}"))
                    .send()
                    .await,
            );
            assert_eq!(code, "ConflictException");
            let (code, _) = refused(
                lambda
                    .add_permission()
                    .function_name(&arn)
                    .statement_id(format!("lost-{i}"))
                    .action("lambda:InvokeFunction")
                    .principal("apigateway.amazonaws.com")
                    .send()
                    .await,
            );
            assert_eq!(code, "ResourceConflictException");
        }
        // Reads are never lost.
        ag.get_resources()
            .rest_api_id(&api)
            .send()
            .await
            .expect("GetResources");

        let mut want: Vec<String> = (0..N).map(|i| format!("/lost-{i}")).collect();
        want.insert(0, "/".to_string());
        assert_eq!(fx.resource_paths(&api).await, want, "each made once");
        let sids: Vec<String> = fx
            .all_policy_statements("lost-fn")
            .await
            .iter()
            .map(|s| s["Sid"].as_str().unwrap_or_default().to_string())
            .collect();
        let want: Vec<String> = (0..N).map(|i| format!("lost-{i}")).collect();
        assert_eq!(sids, want, "each added once");

        let stats = proxy.stats();
        assert_eq!(stats.lost_answers(), 2 * N, "{stats}");
        assert_eq!(stats.lost_of("apigateway:CreateResource"), N, "{stats}");
        assert_eq!(stats.lost_of("lambda:AddPermission"), N, "{stats}");
        let both = refusals(&[
            (Refusal::DuplicateSibling, N),
            (Refusal::DuplicateStatement, N),
        ]);
        assert_eq!(stats.refusals, both, "{stats}");
        assert_eq!(
            stats.retry_refusals, both,
            "every refusal was a retry: {stats}"
        );
        assert!(
            stats.lost.values().filter(|n| **n > 0).count() >= 2,
            "one kind of loss only: {stats}"
        );
        eprintln!("lost answers: {stats}");
    }
}
