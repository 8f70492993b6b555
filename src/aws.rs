//! The AWS adapter: the only module that knows the SDK. It exposes the narrow
//! set of calls a pass makes, in the project's own types, and maps SDK errors
//! to [`AwsError`] with a kind the reconciler can act on.
//!
//! Every call has a timeout (operation and attempt timeouts on the SDK
//! config); retries of throttling, 5xx and timeouts are the SDK's standard
//! retry policy, not a second layer here.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_apigateway::types::{IntegrationType, Op, PatchOperation};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::manifest::{FunctionRef, HttpMethod};
use crate::metrics::CallCounter;
use crate::model::{
    MethodSettings, Methods, ObservedApi, ObservedIntegration, ObservedMethod, ObservedResource,
    PolicyStatement, ResolvedFunction,
};
use crate::pacing::{Op as Paced, Pacer};

/// What kind of failure, as far as the reconciler cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    NotFound,
    /// 409: an object exists already, or a concurrent modification.
    Conflict,
    AccessDenied,
    Throttled,
    /// A per-API quota such as the resource limit.
    LimitExceeded,
    /// 400: AWS refused the request as malformed.
    BadRequest,
    Timeout,
    Other,
}

/// A failed AWS call: which operation, what kind, and AWS's own words.
#[derive(Debug, Clone)]
pub struct AwsError {
    pub operation: &'static str,
    pub kind: AwsErrorKind,
    pub code: Option<String>,
    pub message: String,
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed", self.operation)?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for AwsError {}

fn map_err<E, R>(operation: &'static str, err: SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    let (kind, code, message) = match &err {
        SdkError::TimeoutError(_) => (
            AwsErrorKind::Timeout,
            None,
            "timed out (after the SDK's retries)".to_string(),
        ),
        SdkError::DispatchFailure(e) => {
            let kind = if e.is_timeout() {
                AwsErrorKind::Timeout
            } else {
                AwsErrorKind::Other
            };
            (kind, None, format!("could not reach AWS: {e:?}"))
        }
        SdkError::ServiceError(se) => {
            let e = se.err();
            let code = e.code().map(str::to_string);
            let message = e.message().unwrap_or("no message").to_string();
            let kind = classify(code.as_deref(), &message);
            (kind, code, message)
        }
        SdkError::ResponseError(_) => (
            AwsErrorKind::Other,
            None,
            "unreadable response from AWS".to_string(),
        ),
        other => (AwsErrorKind::Other, None, format!("{other}")),
    };
    AwsError {
        operation,
        kind,
        code,
        message,
    }
}

fn classify(code: Option<&str>, message: &str) -> AwsErrorKind {
    match code.unwrap_or("") {
        "NotFoundException" | "ResourceNotFoundException" => AwsErrorKind::NotFound,
        "ConflictException" | "ResourceConflictException" => AwsErrorKind::Conflict,
        "AccessDeniedException"
        | "AccessDenied"
        | "UnauthorizedException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException" => AwsErrorKind::AccessDenied,
        "TooManyRequestsException" | "ThrottlingException" | "Throttling" => {
            AwsErrorKind::Throttled
        }
        "LimitExceededException" if message.contains("Maximum number") => {
            AwsErrorKind::LimitExceeded
        }
        "LimitExceededException" => AwsErrorKind::Throttled,
        "BadRequestException" | "InvalidParameterValueException" | "ValidationException" => {
            AwsErrorKind::BadRequest
        }
        _ => AwsErrorKind::Other,
    }
}

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

/// Loads the AWS configuration from the standard chain (environment, profile,
/// container or instance credentials, AWS_ENDPOINT_URL …), adding timeouts and
/// the retry policy.
pub async fn load_config(opts: &ClientOptions) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
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

/// The stage's current deployment, if the stage exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageInfo {
    pub deployment_id: Option<String>,
    /// The stage's tags; apimount keeps its in-flight journal there.
    pub tags: BTreeMap<String, String>,
}

/// API Gateway and Lambda, through the SDK.
#[derive(Clone)]
pub struct Aws {
    apigw: aws_sdk_apigateway::Client,
    lambda: aws_sdk_lambda::Client,
    region: String,
    pacer: std::sync::Arc<Pacer>,
}

impl Aws {
    /// Clients from the shared configuration. Every call is logged at debug
    /// level; with `metrics`, it is also counted.
    pub fn new(
        config: &aws_config::SdkConfig,
        metrics: Option<&std::sync::Arc<crate::metrics::Metrics>>,
    ) -> Result<Aws, String> {
        let region = config.region().map(|r| r.to_string()).ok_or_else(|| {
            "no AWS region is configured: set AWS_REGION (or a region in your AWS profile)"
                .to_string()
        })?;
        let calls = metrics.map_or_else(CallCounter::log_only, |m| m.interceptor());
        let apigw = aws_sdk_apigateway::config::Builder::from(config)
            .retry_classifier(RetryConcurrentModification)
            .interceptor(calls.clone());
        let lambda = aws_sdk_lambda::config::Builder::from(config).interceptor(calls);
        Ok(Aws {
            apigw: aws_sdk_apigateway::Client::from_conf(apigw.build()),
            lambda: aws_sdk_lambda::Client::from_conf(lambda.build()),
            region,
            pacer: std::sync::Arc::new(Pacer::aws_quotas()),
        })
    }

    /// Replaces the pacer (e.g. to disable pacing against an emulator).
    pub fn with_pacer(mut self, pacer: Pacer) -> Aws {
        self.pacer = std::sync::Arc::new(pacer);
        self
    }

    /// The region of the API, from the configuration chain.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The whole API: every resource with its methods and integrations, paged.
    pub async fn observe_api(&self, api_id: &str) -> Result<ObservedApi, AwsError> {
        let mut out = Vec::new();
        let mut position: Option<String> = None;
        loop {
            self.pacer.take(Paced::GetResources).await;
            let page = self
                .apigw
                .get_resources()
                .rest_api_id(api_id)
                .embed("methods")
                .limit(500)
                .set_position(position.clone())
                .send()
                .await
                .map_err(|e| map_err("apigateway:GetResources", e))?;
            for r in page.items() {
                let methods: Methods = r
                    .resource_methods()
                    .into_iter()
                    .flatten()
                    .map(|(verb, m)| {
                        let method = ObservedMethod {
                            authorization_type: m
                                .authorization_type()
                                .unwrap_or("NONE")
                                .to_string(),
                            authorizer_id: m.authorizer_id().map(str::to_string),
                            api_key_required: m.api_key_required().unwrap_or(false),
                            operation_name: m.operation_name().map(str::to_string),
                            integration: m.method_integration().map(|i| ObservedIntegration {
                                kind: i
                                    .r#type()
                                    .map(|t| t.as_str().to_string())
                                    .unwrap_or_default(),
                                http_method: i.http_method().map(str::to_string),
                                uri: i.uri().map(str::to_string),
                            }),
                        };
                        (verb.clone(), method)
                    })
                    .collect();
                out.push(ObservedResource {
                    id: r.id().unwrap_or_default().to_string(),
                    parent_id: r.parent_id().map(str::to_string),
                    path: r.path().unwrap_or_default().to_string(),
                    methods,
                });
            }
            match page.position() {
                Some(p) if !p.is_empty() && Some(p) != position.as_deref() => {
                    position = Some(p.to_string())
                }
                _ => break,
            }
        }
        Ok(ObservedApi::from_resources(out))
    }

    pub async fn get_stage(
        &self,
        api_id: &str,
        stage: &str,
    ) -> Result<Option<StageInfo>, AwsError> {
        self.pacer.take(Paced::ApiGateway).await;
        match self
            .apigw
            .get_stage()
            .rest_api_id(api_id)
            .stage_name(stage)
            .send()
            .await
        {
            Ok(s) => Ok(Some(StageInfo {
                deployment_id: s.deployment_id().map(str::to_string),
                tags: s
                    .tags()
                    .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
            })),
            Err(e) => {
                let e = map_err("apigateway:GetStage", e);
                if e.kind == AwsErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    pub async fn deployment_description(
        &self,
        api_id: &str,
        deployment_id: &str,
    ) -> Result<Option<String>, AwsError> {
        self.pacer.take(Paced::ApiGateway).await;
        match self
            .apigw
            .get_deployment()
            .rest_api_id(api_id)
            .deployment_id(deployment_id)
            .send()
            .await
        {
            Ok(d) => Ok(d.description().map(str::to_string)),
            Err(e) => {
                let e = map_err("apigateway:GetDeployment", e);
                if e.kind == AwsErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Resolves a function reference to its ARN with GetFunction.
    pub async fn resolve_function(&self, f: &FunctionRef) -> Result<ResolvedFunction, AwsError> {
        let name = f.unqualified();
        self.pacer.take(Paced::GetFunction).await;
        let out = self
            .lambda
            .get_function()
            .function_name(name)
            .set_qualifier(f.qualifier().map(str::to_string))
            .send()
            .await
            .map_err(|e| map_err("lambda:GetFunction", e))?;
        let arn = out
            .configuration()
            .and_then(|c| c.function_arn())
            .ok_or_else(|| AwsError {
                operation: "lambda:GetFunction",
                kind: AwsErrorKind::Other,
                code: None,
                message: "the answer carried no function ARN".into(),
            })?;
        let mut resolved = ResolvedFunction::from_arn(arn).ok_or_else(|| AwsError {
            operation: "lambda:GetFunction",
            kind: AwsErrorKind::Other,
            code: None,
            message: format!("unexpected function ARN {arn}"),
        })?;
        // The integration must name exactly what the manifest asked for.
        resolved.qualifier = f.qualifier().map(str::to_string);
        Ok(resolved)
    }

    /// Resolves a function reference and reads its resource policy, in one
    /// Lambda read when it can: GetPolicy accepts the bare name, and any
    /// statement of the policy names the function's full ARN in `Resource`.
    /// GetFunction is asked only when the policy is missing or names no ARN
    /// (a function apimount has not mounted yet), so a pass that finds
    /// nothing to change costs one Lambda read per function.
    pub async fn inspect_function(
        &self,
        f: &FunctionRef,
    ) -> Result<(ResolvedFunction, Vec<PolicyStatement>), AwsError> {
        self.pacer.take(Paced::Lambda).await;
        let answer = self
            .lambda
            .get_policy()
            .function_name(f.unqualified())
            .set_qualifier(f.qualifier().map(str::to_string))
            .send()
            .await;
        let statements = match answer {
            Ok(p) => parse_policy_answer(p.policy())?,
            Err(e) => {
                let e = map_err("lambda:GetPolicy", e);
                if e.kind != AwsErrorKind::NotFound {
                    return Err(e);
                }
                // No policy, or no function: GetFunction tells them apart.
                Vec::new()
            }
        };
        let named = statements.iter().find_map(|s| {
            let r = ResolvedFunction::from_arn(s.resource.as_deref()?)?;
            let same = r.name == f.name()
                && r.qualifier.as_deref() == f.qualifier()
                && match f {
                    FunctionRef::Name { .. } => true,
                    FunctionRef::Arn {
                        partition,
                        region,
                        account,
                        ..
                    } => &r.partition == partition && &r.region == region && &r.account == account,
                };
            same.then_some(r)
        });
        let resolved = match named {
            Some(r) => r,
            None => self.resolve_function(f).await?,
        };
        Ok((resolved.clone(), only_statements_of(statements, &resolved)))
    }

    /// The function's resource policy; empty when it has none.
    pub async fn get_policy(
        &self,
        function: &ResolvedFunction,
    ) -> Result<Vec<PolicyStatement>, AwsError> {
        self.pacer.take(Paced::Lambda).await;
        match self
            .lambda
            .get_policy()
            .function_name(function.unqualified_arn())
            .set_qualifier(function.qualifier.clone())
            .send()
            .await
        {
            Ok(p) => Ok(only_statements_of(
                parse_policy_answer(p.policy())?,
                function,
            )),
            Err(e) => {
                let e = map_err("lambda:GetPolicy", e);
                if e.kind == AwsErrorKind::NotFound {
                    // No policy yet (or no function: GetFunction tells those apart).
                    Ok(Vec::new())
                } else {
                    Err(e)
                }
            }
        }
    }

    pub async fn create_resource(
        &self,
        api_id: &str,
        parent_id: &str,
        path_part: &str,
    ) -> Result<String, AwsError> {
        self.pacer.take(Paced::CreateResource).await;
        let out = self
            .apigw
            .create_resource()
            .rest_api_id(api_id)
            .parent_id(parent_id)
            .path_part(path_part)
            .send()
            .await
            .map_err(|e| map_err("apigateway:CreateResource", e))?;
        Ok(out.id().unwrap_or_default().to_string())
    }

    pub async fn delete_resource(&self, api_id: &str, resource_id: &str) -> Result<(), AwsError> {
        self.pacer.take(Paced::DeleteResource).await;
        match self
            .apigw
            .delete_resource()
            .rest_api_id(api_id)
            .resource_id(resource_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => ignore_not_found(map_err("apigateway:DeleteResource", e)),
        }
    }

    pub async fn put_method(
        &self,
        api_id: &str,
        resource_id: &str,
        verb: HttpMethod,
        settings: &MethodSettings,
    ) -> Result<(), AwsError> {
        self.pacer.take(Paced::ApiGateway).await;
        self.apigw
            .put_method()
            .rest_api_id(api_id)
            .resource_id(resource_id)
            .http_method(verb.as_str())
            .authorization_type(settings.authorization.as_str())
            .set_authorizer_id(settings.authorizer_id.clone())
            .api_key_required(settings.api_key_required)
            .operation_name(&settings.operation_name)
            .send()
            .await
            .map_err(|e| map_err("apigateway:PutMethod", e))?;
        Ok(())
    }

    pub async fn delete_method(
        &self,
        api_id: &str,
        resource_id: &str,
        verb: &str,
    ) -> Result<(), AwsError> {
        self.pacer.take(Paced::ApiGateway).await;
        match self
            .apigw
            .delete_method()
            .rest_api_id(api_id)
            .resource_id(resource_id)
            .http_method(verb)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => ignore_not_found(map_err("apigateway:DeleteMethod", e)),
        }
    }

    pub async fn put_integration(
        &self,
        api_id: &str,
        resource_id: &str,
        verb: HttpMethod,
        uri: &str,
    ) -> Result<(), AwsError> {
        self.pacer.take(Paced::ApiGateway).await;
        self.apigw
            .put_integration()
            .rest_api_id(api_id)
            .resource_id(resource_id)
            .http_method(verb.as_str())
            .r#type(IntegrationType::AwsProxy)
            .integration_http_method("POST")
            .uri(uri)
            .send()
            .await
            .map_err(|e| map_err("apigateway:PutIntegration", e))?;
        Ok(())
    }

    pub async fn add_permission(
        &self,
        function: &ResolvedFunction,
        sid: &str,
        source_arn: &str,
    ) -> Result<(), AwsError> {
        self.pacer.take(Paced::Lambda).await;
        self.lambda
            .add_permission()
            .function_name(function.unqualified_arn())
            .set_qualifier(function.qualifier.clone())
            .statement_id(sid)
            .action("lambda:InvokeFunction")
            .principal("apigateway.amazonaws.com")
            .source_arn(source_arn)
            .send()
            .await
            .map_err(|e| map_err("lambda:AddPermission", e))?;
        Ok(())
    }

    pub async fn remove_permission(
        &self,
        function: &ResolvedFunction,
        sid: &str,
    ) -> Result<(), AwsError> {
        self.pacer.take(Paced::Lambda).await;
        match self
            .lambda
            .remove_permission()
            .function_name(function.unqualified_arn())
            .set_qualifier(function.qualifier.clone())
            .statement_id(sid)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => ignore_not_found(map_err("lambda:RemovePermission", e)),
        }
    }

    /// Creates a deployment (without a stage) and returns its id.
    pub async fn create_deployment(
        &self,
        api_id: &str,
        description: &str,
    ) -> Result<String, AwsError> {
        self.pacer.take(Paced::CreateDeployment).await;
        let out = self
            .apigw
            .create_deployment()
            .rest_api_id(api_id)
            .description(description)
            .send()
            .await
            .map_err(|e| map_err("apigateway:CreateDeployment", e))?;
        Ok(out.id().unwrap_or_default().to_string())
    }

    /// Sets one tag on the stage (TagResource merges with the other tags).
    pub async fn tag_stage(
        &self,
        api_id: &str,
        stage: &str,
        key: &str,
        value: &str,
    ) -> Result<(), AwsError> {
        self.pacer.take(Paced::ApiGateway).await;
        self.apigw
            .tag_resource()
            .resource_arn(self.stage_arn(api_id, stage))
            .tags(key, value)
            .send()
            .await
            .map_err(|e| map_err("apigateway:TagResource", e))?;
        Ok(())
    }

    /// Removes one tag from the stage.
    pub async fn untag_stage(&self, api_id: &str, stage: &str, key: &str) -> Result<(), AwsError> {
        self.pacer.take(Paced::ApiGateway).await;
        self.apigw
            .untag_resource()
            .resource_arn(self.stage_arn(api_id, stage))
            .tag_keys(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_err("apigateway:UntagResource", e))
            .or_else(ignore_not_found)
    }

    fn stage_arn(&self, api_id: &str, stage: &str) -> String {
        format!(
            "arn:{}:apigateway:{}::/restapis/{api_id}/stages/{stage}",
            partition_of_region(&self.region),
            self.region
        )
    }

    /// Points the stage at a deployment, creating the stage when it is missing.
    /// UpdateStage keeps the stage's variables, settings and tags.
    pub async fn point_stage(
        &self,
        api_id: &str,
        stage: &str,
        deployment_id: &str,
        exists: bool,
    ) -> Result<(), AwsError> {
        if exists {
            self.pacer.take(Paced::ApiGateway).await;
            self.apigw
                .update_stage()
                .rest_api_id(api_id)
                .stage_name(stage)
                .patch_operations(
                    PatchOperation::builder()
                        .op(Op::Replace)
                        .path("/deploymentId")
                        .value(deployment_id)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| map_err("apigateway:UpdateStage", e))?;
        } else {
            self.pacer.take(Paced::ApiGateway).await;
            self.apigw
                .create_stage()
                .rest_api_id(api_id)
                .stage_name(stage)
                .deployment_id(deployment_id)
                .description("managed by apimount")
                .send()
                .await
                .map_err(|e| map_err("apigateway:CreateStage", e))?;
        }
        Ok(())
    }
}

/// The partition a region belongs to, by the region naming rules of AWS
/// (used only where an ARN must be built before any ARN has been seen).
pub fn partition_of_region(region: &str) -> &'static str {
    const PREFIXES: &[(&str, &str)] = &[
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-isob-", "aws-iso-b"),
        ("us-isof-", "aws-iso-f"),
        ("eu-isoe-", "aws-iso-e"),
        ("us-iso-", "aws-iso"),
        ("eusc-", "aws-eusc"),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, _)| region.starts_with(prefix))
        .map_or("aws", |(_, partition)| partition)
}

fn ignore_not_found(e: AwsError) -> Result<(), AwsError> {
    if e.kind == AwsErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

/// Retries 409s that AWS documents as retryable: concurrent modification of
/// the API and a deployment already in progress. Other 409s (an object that
/// exists) are answers, not faults, and are not retried.
#[derive(Debug, Default)]
pub struct RetryConcurrentModification;

impl aws_smithy_runtime_api::client::retries::classifiers::ClassifyRetry
    for RetryConcurrentModification
{
    fn classify_retry(
        &self,
        ctx: &aws_smithy_runtime_api::client::interceptors::context::InterceptorContext,
    ) -> aws_smithy_runtime_api::client::retries::classifiers::RetryAction {
        use aws_smithy_runtime_api::client::retries::classifiers::RetryAction;
        let Some(resp) = ctx.response() else {
            return RetryAction::NoActionIndicated;
        };
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
}

fn parse_policy_answer(doc: Option<&str>) -> Result<Vec<PolicyStatement>, AwsError> {
    PolicyStatement::parse_policy(doc.unwrap_or("{}")).map_err(|e| AwsError {
        operation: "lambda:GetPolicy",
        kind: AwsErrorKind::Other,
        code: None,
        message: format!("unreadable policy document: {e}"),
    })
}

/// The statements of this exact function and qualifier (Lambda keeps one
/// policy per version or alias; some emulators keep one per function).
fn only_statements_of(
    mut statements: Vec<PolicyStatement>,
    function: &ResolvedFunction,
) -> Vec<PolicyStatement> {
    let arn = function.arn();
    statements.retain(|s| s.resource.is_none() || s.resource.as_deref() == Some(arn.as_str()));
    statements
}
