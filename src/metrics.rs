//! Prometheus metrics, and the SDK interceptor that counts every AWS call by
//! service, operation and outcome. Names follow Prometheus conventions:
//! `apimount_` prefix, `_total` counters, `_seconds` durations.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub service: String,
    pub operation: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

/// All metrics of one process.
pub struct Metrics {
    registry: Mutex<Registry>,
    pub passes: Family<ResultLabel, Counter>,
    pub pass_duration: Histogram,
    pub aws_calls: Family<CallLabels, Counter>,
    pub mounts: Family<StateLabel, Gauge>,
    pub drift_corrections: Counter,
    pub orphans_removed: Counter,
    pub deployments: Counter,
    pub last_success: Gauge<f64, AtomicU64>,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("apimount");
        let passes = Family::<ResultLabel, Counter>::default();
        registry.register("passes", "Reconcile passes by result", passes.clone());
        let pass_duration =
            Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0]);
        registry.register(
            "pass_duration_seconds",
            "Wall time of a reconcile pass",
            pass_duration.clone(),
        );
        let aws_calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "aws_calls",
            "AWS API calls by service, operation and outcome (after SDK retries)",
            aws_calls.clone(),
        );
        let mounts = Family::<StateLabel, Gauge>::default();
        registry.register("mounts", "Mounts by state", mounts.clone());
        let drift_corrections = Counter::default();
        registry.register(
            "drift_corrections",
            "Methods, integrations and permissions put back after a change made outside apimount",
            drift_corrections.clone(),
        );
        let orphans_removed = Counter::default();
        registry.register(
            "orphans_removed",
            "Objects of removed mounts deleted",
            orphans_removed.clone(),
        );
        let deployments = Counter::default();
        registry.register("deployments", "Deployments made", deployments.clone());
        let last_success = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "last_successful_pass_timestamp_seconds",
            "Unix time of the last pass that converged",
            last_success.clone(),
        );
        Arc::new(Metrics {
            registry: Mutex::new(registry),
            passes,
            pass_duration,
            aws_calls,
            mounts,
            drift_corrections,
            orphans_removed,
            deployments,
            last_success,
        })
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().expect("metrics lock");
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode to String");
        out
    }

    /// An SDK interceptor that counts calls into this registry.
    pub fn interceptor(self: &Arc<Metrics>) -> CallCounter {
        CallCounter {
            metrics: Some(self.clone()),
        }
    }
}

/// When an operation started (its first attempt), for the debug log.
#[derive(Debug, Clone)]
struct CallStarted(Instant);

impl Storable for CallStarted {
    type Storer = StoreReplace<CallStarted>;
}

/// Counts each AWS operation once, when it finishes (retries included), and
/// logs its duration at debug level.
#[derive(Clone)]
pub struct CallCounter {
    /// Where to count; without it (one-shot commands) calls are only logged.
    metrics: Option<Arc<Metrics>>,
}

impl CallCounter {
    /// Logs calls without counting them.
    pub fn log_only() -> CallCounter {
        CallCounter { metrics: None }
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
            Some(m) => (m.service().to_string(), m.name().to_string()),
            None => ("unknown".to_string(), "unknown".to_string()),
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
        if let Some(metrics) = &self.metrics {
            metrics
                .aws_calls
                .get_or_create(&CallLabels {
                    service,
                    operation,
                    outcome,
                })
                .inc();
        }
        Ok(())
    }
}
