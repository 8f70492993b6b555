//! The AWS adapter: the only module that uses the AWS SDK (`aws_sdk_*`,
//! `aws_smithy_*`, `aws_config`). It exposes the narrow set of calls apimount
//! makes, in the project's own types, and maps SDK errors to [`AwsError`].
//!
//! - [`apigateway`]: the REST API, its stage and deployments;
//! - [`lambda`]: functions and their resource policies;
//! - [`accounts`]: the API's account, and Lambda in other accounts through roles;
//! - [`alias`]: the Lambda alias a release moves traffic on;
//! - [`alarms`]: CloudWatch alarms of releases, and the guard alarm;
//! - [`s3`]: the objects of an S3 manifest source;
//! - [`dynamodb`]: the conditional writes of the leader lease;
//! - [`stage_tags`]: the instance claim on the stage, when there is no lease table;
//! - [`pacing`]: token buckets that keep calls within the account's quotas;
//! - [`calls`]: the per-call log and counter, and the retry classifier;
//! - [`error`]: [`AwsError`] and the mapping of SDK errors.
//!
//! Every call has a timeout (operation and attempt timeouts on the SDK
//! config); retries of throttling, 5xx and timeouts are the SDK's standard
//! retry policy, not a second layer here.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;

pub mod accounts;
pub mod alarms;
pub mod alias;
pub mod apigateway;
pub mod calls;
pub mod dynamodb;
pub mod error;
pub mod lambda;
pub mod pacing;
pub mod s3;
pub mod stage_tags;

pub use apigateway::partition_of_region;
pub use calls::CallSink;
pub use error::{AwsError, AwsErrorKind};

use calls::{CallCounter, RetryConcurrentModification};
use pacing::Pacer;

/// Settings for the SDK clients.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Whole-operation timeout, retries included.
    pub operation_timeout: Duration,
    /// Timeout of one attempt.
    pub attempt_timeout: Duration,
    /// Attempts per call (first try included).
    pub max_attempts: u32,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            operation_timeout: Duration::from_secs(60),
            attempt_timeout: Duration::from_secs(15),
            max_attempts: 5,
        }
    }
}

/// The shared AWS configuration: region, credentials, endpoint, timeouts and
/// retry policy. Every client apimount makes is built from it.
#[derive(Clone)]
pub struct AwsConfig {
    sdk: aws_config::SdkConfig,
    /// Reported every finished call, in the daemon.
    sink: Option<Arc<dyn CallSink>>,
}

impl AwsConfig {
    /// Loads the configuration from the standard chain (environment, profile,
    /// container or instance credentials, AWS_ENDPOINT_URL …), adding timeouts
    /// and the retry policy.
    pub async fn load(opts: &ClientOptions) -> AwsConfig {
        AwsConfig {
            sdk: load_sdk_config(opts).await,
            sink: None,
        }
    }

    /// A configuration made elsewhere (a benchmark or test that points the
    /// SDK at an emulator by hand).
    pub fn from_sdk(sdk: aws_config::SdkConfig) -> AwsConfig {
        AwsConfig { sdk, sink: None }
    }

    /// Every client built from this configuration reports its calls to `sink`.
    pub fn with_sink(mut self, sink: Arc<dyn CallSink>) -> AwsConfig {
        self.sink = Some(sink);
        self
    }

    /// The region of the configuration chain, if one is set.
    pub fn region(&self) -> Option<String> {
        self.sdk.region().map(|r| r.to_string())
    }

    /// Whether an endpoint override (an emulator) is configured.
    pub fn has_endpoint_override(&self) -> bool {
        self.sdk.endpoint_url().is_some()
    }

    fn calls(&self) -> CallCounter {
        CallCounter::new(self.sink.clone())
    }
}

/// How long a connection may take to open, for every client.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The timeouts of a client whose every call, retries included, must give
/// up after `limit` (the lease's clients: a renewal cannot outlast the
/// lease it renews). The connect timeout is every client's, so the client
/// shares the one connector of the shared HTTPS client.
pub(crate) fn bounded_timeouts(limit: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(limit)
        .operation_timeout(limit)
        .build()
}

/// One HTTPS client for every SDK client the process makes (API Gateway,
/// Lambda, STS, S3, DynamoDB, CloudWatch, and the clients of team
/// accounts). Left to themselves, each SDK client builds its own, each with
/// its own TLS configuration (the trusted roots parsed again) and connection
/// pool; shared, the clients whose connect and read timeouts agree share one
/// connector. Built as the SDK's default is: rustls with aws-lc, and the
/// proxy named by `HTTPS_PROXY` / `NO_PROXY`, if any.
fn shared_https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    use aws_smithy_http_client::{Builder, ConnectorBuilder};
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector =
            ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::AwsLc));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

async fn load_sdk_config(opts: &ClientOptions) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(shared_https_client())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(opts.attempt_timeout)
                .operation_timeout(opts.operation_timeout)
                .build(),
        )
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(opts.max_attempts)
                .with_initial_backoff(Duration::from_millis(200))
                .with_max_backoff(Duration::from_secs(10)),
        )
        .load()
        .await
}

/// The configuration chain names no region.
#[derive(Debug, thiserror::Error)]
#[error("no AWS region is configured: set AWS_REGION (or a region in your AWS profile)")]
pub struct NoRegion;

/// The patch operations a repair prefers to delete-and-put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patching {
    /// UpdateMethod.
    Method = 0,
    /// UpdateIntegration.
    Integration = 1,
    /// UpdateMethodResponse and UpdateIntegrationResponse.
    Responses = 2,
}

impl Patching {
    pub fn name(self) -> &'static str {
        match self {
            Patching::Method => "apigateway:UpdateMethod",
            Patching::Integration => "apigateway:UpdateIntegration",
            Patching::Responses => "apigateway:UpdateIntegrationResponse",
        }
    }
}

/// API Gateway and Lambda, through the SDK: the calls of a reconcile pass.
#[derive(Clone)]
pub struct Aws {
    apigw: aws_sdk_apigateway::Client,
    /// Lambda in the API's account, with the controller's own credentials.
    lambda: aws_sdk_lambda::Client,
    /// Lambda in other accounts, through the roles (see [`accounts`]).
    teams: accounts::Teams,
    sts: aws_sdk_sts::Client,
    /// The account of the controller's credentials, which is the API's:
    /// learnt once (see [`Aws::api_account`]).
    caller: Arc<tokio::sync::OnceCell<String>>,
    region: String,
    pacer: Arc<Pacer>,
    /// Whether the endpoint is overridden (an emulator, or a proxy in
    /// front of one): only then may a backend that cannot patch send
    /// repairs to delete-and-put. Against AWS an error page is an error.
    overridden: bool,
    /// Per operation, set once an overridden endpoint has shown it does not
    /// implement it: [`Patching::Method`], [`Patching::Integration`],
    /// [`Patching::Responses`].
    no_patching: Arc<[AtomicBool; 3]>,
    /// GetResources pages the last read of the API took.
    api_pages: Arc<AtomicUsize>,
    /// The write gate (the leader lease), checked before every write attempt.
    gate: calls::GateSlot,
}

impl Aws {
    /// Clients from the shared configuration, pacing calls at AWS's quotas.
    /// Every call is logged at debug level and reported to the
    /// configuration's sink, if it has one.
    pub fn new(config: &AwsConfig) -> Result<Aws, NoRegion> {
        let region = config.region().ok_or(NoRegion)?;
        let calls = config.calls();
        let gate: calls::GateSlot = Arc::new(std::sync::OnceLock::new());
        let guard = calls::LeaseGuard { gate: gate.clone() };
        let apigw = aws_sdk_apigateway::config::Builder::from(&config.sdk)
            .retry_classifier(RetryConcurrentModification)
            .interceptor(calls.clone())
            .interceptor(guard.clone());
        let lambda = aws_sdk_lambda::config::Builder::from(&config.sdk)
            .interceptor(calls.clone())
            .interceptor(guard.clone())
            .build();
        let sts = aws_sdk_sts::config::Builder::from(&config.sdk)
            .interceptor(calls.clone())
            .build();
        Ok(Aws {
            apigw: aws_sdk_apigateway::Client::from_conf(apigw.build()),
            lambda: aws_sdk_lambda::Client::from_conf(lambda.clone()),
            teams: accounts::Teams::new(config.sdk.clone(), lambda, calls, guard),
            sts: aws_sdk_sts::Client::from_conf(sts),
            caller: Arc::new(tokio::sync::OnceCell::new()),
            region,
            pacer: Arc::new(Pacer::aws_quotas()),
            overridden: config.has_endpoint_override(),
            no_patching: Arc::new(Default::default()),
            api_pages: Arc::new(AtomicUsize::new(1)),
            gate,
        })
    }

    /// Replaces the pacer (e.g. to disable pacing against an emulator).
    pub fn with_pacer(mut self, pacer: Pacer) -> Aws {
        self.pacer = Arc::new(pacer);
        self
    }

    /// The region of the API, from the configuration chain.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// How many GetResources pages the last read of the whole API took.
    pub fn api_pages(&self) -> usize {
        self.api_pages.load(Ordering::Relaxed).max(1)
    }

    /// Puts every write of these clients behind `gate`, checked before each
    /// attempt is sent (once; later calls change nothing).
    pub fn guard_writes(&self, gate: Arc<dyn calls::WriteGate>) {
        let _ = self.gate.set(gate);
    }

    /// Whether this patch operation is known not to work here.
    pub fn patching_unsupported(&self, op: Patching) -> bool {
        self.no_patching[op as usize].load(Ordering::Relaxed)
    }

    /// After a patch operation answered with a web page: whether to repair
    /// by delete-and-put instead. Only an overridden endpoint (an emulator)
    /// can lack an operation; AWS has them all, so there the page is an
    /// error to report and retry, and nothing is switched.
    pub fn note_patching_unsupported(&self, op: Patching) -> bool {
        if !self.overridden {
            return false;
        }
        if !self.no_patching[op as usize].swap(true, Ordering::Relaxed) {
            tracing::info!(operation = op.name(), "the API Gateway endpoint (overridden: an emulator) does not implement this operation; repairs it would make delete and put again, and put back what was there if the put fails");
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws(endpoint: Option<&str>) -> Aws {
        let mut sdk = aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("eu-west-2"))
            .behavior_version(BehaviorVersion::latest());
        if let Some(e) = endpoint {
            sdk = sdk.endpoint_url(e);
        }
        Aws::new(&AwsConfig::from_sdk(sdk.build())).expect("a region")
    }

    struct Closed;
    impl calls::WriteGate for Closed {
        fn may_write(&self) -> bool {
            false
        }
    }

    #[tokio::test]
    async fn a_write_is_not_sent_once_the_lease_is_gone_but_reads_are() {
        // Nothing listens on the discard port: a call that is sent fails to connect.
        let sdk = aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("eu-west-2"))
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url("http://127.0.0.1:9")
            .credentials_provider(aws_sdk_apigateway::config::SharedCredentialsProvider::new(
                aws_sdk_apigateway::config::Credentials::new("AKID", "secret", None, None, "test"),
            ))
            .retry_config(RetryConfig::disabled())
            .build();
        let aws = Aws::new(&AwsConfig::from_sdk(sdk)).unwrap();
        aws.guard_writes(Arc::new(Closed));
        let settings = crate::plan::model::MethodSettings {
            authorization: crate::manifest::Authorization::None,
            authorizer_id: None,
            api_key_required: false,
            operation_name: "apimount:o:m".into(),
        };
        let write = aws
            .put_method("api", "res", crate::manifest::HttpMethod::Get, &settings)
            .await
            .unwrap_err();
        assert!(
            crate::errors::chain(&write).contains(calls::NOT_SENT),
            "{}",
            crate::errors::chain(&write)
        );
        let read = aws.get_stage("api", "prod").await.unwrap_err();
        assert!(
            !crate::errors::chain(&read).contains(calls::NOT_SENT),
            "reads go: {}",
            crate::errors::chain(&read)
        );
    }

    #[test]
    fn an_error_page_from_aws_never_switches_repairs_to_delete_and_put() {
        let real = aws(None);
        for op in [Patching::Method, Patching::Integration, Patching::Responses] {
            assert!(!real.note_patching_unsupported(op), "{op:?}");
            assert!(!real.patching_unsupported(op), "{op:?}");
        }
        // An emulator's endpoint: per operation, and only the one that failed.
        let emulator = aws(Some("http://127.0.0.1:4566"));
        assert!(emulator.note_patching_unsupported(Patching::Method));
        assert!(emulator.patching_unsupported(Patching::Method));
        assert!(!emulator.patching_unsupported(Patching::Integration));
        assert!(!emulator.patching_unsupported(Patching::Responses));
    }
}
