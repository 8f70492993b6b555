//! Hooks on every SDK call: the interceptor that logs each AWS operation with
//! its duration and reports it to a [`CallSink`] (the controller's metrics),
//! and the retry classifier for API Gateway's retryable 409s.

use std::sync::Arc;
use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef, InterceptorContext,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::classifiers::{
    ClassifyRetry, RetryAction, RetryClassifierPriority,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

/// Where finished AWS operations are reported (retries included): service
/// (`apigateway`), operation (`PutMethod`) and outcome (`success`,
/// `throttled`, `http_409`, `error`).
pub trait CallSink: Send + Sync {
    fn record(&self, service: &str, operation: &str, outcome: &str);
}

/// When an operation started (its first attempt), for the debug log.
#[derive(Debug, Clone)]
struct CallStarted(Instant);

impl Storable for CallStarted {
    type Storer = StoreReplace<CallStarted>;
}

/// Logs each AWS operation once, when it finishes (retries included), with
/// its duration at debug level, and reports it to the sink if there is one.
#[derive(Clone)]
pub(crate) struct CallCounter {
    /// Where to count; without it (one-shot commands) calls are only logged.
    sink: Option<Arc<dyn CallSink>>,
}

impl CallCounter {
    pub(crate) fn new(sink: Option<Arc<dyn CallSink>>) -> CallCounter {
        CallCounter { sink }
    }
}

impl std::fmt::Debug for CallCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallCounter")
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "apimount.CallCounter"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state()
            .store_put(CallStarted(Instant::now()));
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let outcome = match context.output_or_error() {
            Some(Ok(_)) => "success".to_string(),
            _ => match context.response().map(|r| r.status().as_u16()) {
                Some(429) => "throttled".to_string(),
                Some(code) => format!("http_{code}"),
                None => "error".to_string(),
            },
        };
        let (service, operation) = match cfg.load::<Metadata>() {
            Some(m) => (m.service(), m.name()),
            None => ("unknown", "unknown"),
        };
        if let Some(started) = cfg.load::<CallStarted>() {
            tracing::debug!(
                service,
                operation,
                outcome,
                ms = started.0.elapsed().as_secs_f64() * 1e3,
                "aws call"
            );
        }
        if let Some(sink) = &self.sink {
            sink.record(service, operation, &outcome);
        }
        Ok(())
    }
}

/// Says whether this process may write to AWS now: under a leader lease,
/// only until the lease's safe end.
pub trait WriteGate: Send + Sync {
    fn may_write(&self) -> bool;
}

/// Where the gate is put once the reconciler exists (the clients are built
/// before it).
pub(crate) type GateSlot = Arc<std::sync::OnceLock<Arc<dyn WriteGate>>>;

/// Checks the gate immediately before each attempt of a write leaves the
/// process, retries included: a process frozen past its lease (a VM pause,
/// `docker pause`) sends nothing when it wakes, even the write it had in
/// flight or the SDK's retry of it.
#[derive(Clone)]
pub(crate) struct LeaseGuard {
    pub(crate) gate: GateSlot,
}

impl std::fmt::Debug for LeaseGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeaseGuard")
    }
}

/// The message of a write the guard kept back.
pub const NOT_SENT: &str =
    "not sent: the leader lease is not held now (it ran out while this call waited)";

impl Intercept for LeaseGuard {
    fn name(&self) -> &'static str {
        "apimount.LeaseGuard"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let write = !matches!(context.request().method(), "GET" | "HEAD");
        match self.gate.get() {
            Some(g) if write && !g.may_write() => Err(NOT_SENT.into()),
            _ => Ok(()),
        }
    }
}

/// Retries 409s that AWS documents as retryable: concurrent modification of
/// the API and a deployment already in progress. Other 409s (an object that
/// exists) are answers, not faults, and are not retried; nor is a web page
/// where an AWS error should be.
#[derive(Debug, Default)]
pub(crate) struct RetryConcurrentModification;

impl ClassifyRetry for RetryConcurrentModification {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(resp) = ctx.response() else {
            return RetryAction::NoActionIndicated;
        };
        // A web page instead of an AWS error: the operation is not there
        // (an emulator). Retrying cannot help, and AWS never answers so.
        if super::error::is_web_page(resp) {
            return RetryAction::RetryForbidden;
        }
        if resp.status().as_u16() != 409 {
            return RetryAction::NoActionIndicated;
        }
        let body = resp.body().bytes().unwrap_or_default();
        let text = String::from_utf8_lossy(body);
        if text.contains("concurrent modification")
            || text.contains("Another Deployment is in progress")
        {
            RetryAction::transient_error()
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "apimount.RetryConcurrentModification"
    }

    /// After the SDK's own classifiers, so that its verdict on a 409 or a 5xx
    /// can be overridden.
    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}
