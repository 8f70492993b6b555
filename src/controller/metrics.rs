//! Prometheus metrics of the controller. AWS calls are counted by service,
//! operation and outcome as the AWS adapter reports them (see
//! `aws::CallSink`). Names follow Prometheus conventions: `apimount_` prefix,
//! `_total` counters, `_seconds` durations.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use crate::aws::CallSink;
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MountLabel {
    pub mount: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantStateLabel {
    pub tenant: String,
    pub state: String,
}

/// All metrics of one process.
pub struct Metrics {
    registry: Mutex<Registry>,
    pub passes: Family<ResultLabel, Counter>,
    pub pass_duration: Histogram,
    pub aws_calls: Family<CallLabels, Counter>,
    pub mounts: Family<StateLabel, Gauge>,
    pub tenant_mounts: Family<TenantStateLabel, Gauge>,
    pub drift_corrections: Counter,
    pub orphans_removed: Counter,
    pub deployments: Counter,
    pub deploy_blocked: Gauge,
    pub last_success: Gauge<f64, AtomicU64>,
    pub watch_armed: Gauge,
    pub other_instance: Gauge,
    pub release_weight: Family<MountLabel, Gauge>,
    pub release_rollbacks: Counter,
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
        let tenant_mounts = Family::<TenantStateLabel, Gauge>::default();
        registry.register(
            "tenant_mounts",
            "Mounts by tenant of the tenant policy and state",
            tenant_mounts.clone(),
        );
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
        let deploy_blocked = Gauge::default();
        registry.register(
            "deploy_blocked",
            "1 while the last pass could not deploy (reason DeployBlocked): the stage serves an older deployment",
            deploy_blocked.clone(),
        );
        let last_success = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "last_successful_pass_timestamp_seconds",
            "Unix time of the last pass that read everything and deployed what it had to (a mount failing on its own does not hold it back)",
            last_success.clone(),
        );
        let watch_armed = Gauge::default();
        registry.register(
            "watch_armed",
            "1 while the manifest folder is watched; 0 while it cannot be (the loop polls the folder every second instead)",
            watch_armed.clone(),
        );
        let other_instance = Gauge::default();
        registry.register(
            "other_instance",
            "1 while another instance of this owner holds the lease (or the stage's instance tag) and this one stands by; 0 otherwise",
            other_instance.clone(),
        );
        let release_weight = Family::<MountLabel, Gauge>::default();
        registry.register(
            "release_weight",
            "Percent of a release mount's traffic its manifest's version takes (100 once promoted, 0 after a rollback)",
            release_weight.clone(),
        );
        let release_rollbacks = Counter::default();
        registry.register(
            "release_rollbacks",
            "Releases rolled back by apimount (an alarm, alarms unreadable too long, a removed mount)",
            release_rollbacks.clone(),
        );
        Arc::new(Metrics {
            registry: Mutex::new(registry),
            passes,
            pass_duration,
            aws_calls,
            mounts,
            tenant_mounts,
            drift_corrections,
            orphans_removed,
            deployments,
            deploy_blocked,
            last_success,
            watch_armed,
            other_instance,
            release_weight,
            release_rollbacks,
        })
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().expect("metrics lock");
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode to String");
        out
    }
}

impl CallSink for Metrics {
    fn record(&self, service: &str, operation: &str, outcome: &str) {
        self.aws_calls
            .get_or_create(&CallLabels {
                service: service.to_string(),
                operation: operation.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }
}
