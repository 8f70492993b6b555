//! API Gateway calls: the whole REST API in one paged read, the stage and its
//! tags, deployments, and the writes of a pass. Results are the planner's own
//! types (`plan::model`).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_apigateway::types::{
    Integration, IntegrationType, MethodResponse, MethodSetting, Op, PatchOperation,
};

use super::error::{ignore_not_found, map_err};
use super::pacing::Op as Paced;
use super::{Aws, AwsError, AwsErrorKind};
use crate::manifest::HttpMethod;
use crate::plan::model::{
    Behaviour, IntegrationResponse, MethodResponses, MethodSettings, Methods, ObservedApi,
    ObservedIntegration, ObservedMethod, ObservedResource, ObservedStage, PatchOp, Rate,
    StageMethodSetting,
};

/// An [`ObservedMethod`] from any answer that describes a method (GetMethod,
/// PutMethod, UpdateMethod share the accessors).
macro_rules! observed_method {
    ($m:expr) => {{
        let m = $m;
        ObservedMethod {
            authorization_type: m.authorization_type().unwrap_or("NONE").to_string(),
            authorizer_id: m.authorizer_id().map(str::to_string),
            api_key_required: m.api_key_required().unwrap_or(false),
            operation_name: m.operation_name().map(str::to_string),
            integration: m.method_integration().map(observed_integration),
            responses: method_responses(m.method_responses()),
        }
    }};
}

/// An [`ObservedIntegration`] from any answer that describes an integration
/// (PutIntegration, UpdateIntegration), integration responses left out.
macro_rules! answered_integration {
    ($i:expr) => {{
        let i = $i;
        ObservedIntegration {
            kind: i
                .r#type()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default(),
            http_method: i.http_method().map(str::to_string),
            uri: i.uri().map(str::to_string),
            timeout_ms: u32::try_from(i.timeout_in_millis()).ok().filter(|t| *t > 0),
            request_templates: string_map(i.request_templates()),
            responses: BTreeMap::new(),
        }
    }};
}

pub use crate::plan::stage_settings::StagePatch;

impl Aws {
    /// The whole API: every resource with its methods and integrations, paged.
    pub async fn observe_api(&self, api_id: &str) -> Result<ObservedApi, AwsError> {
        let mut out = Vec::new();
        let mut position: Option<String> = None;
        let mut pages = 0;
        loop {
            pages += 1;
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
                            integration: m.method_integration().map(observed_integration),
                            responses: method_responses(m.method_responses()),
                        };
                        (verb.clone(), method)
                    })
                    .collect();
                out.push(ObservedResource {
                    id: r.id().unwrap_or_default().to_string(),
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
        self.api_pages
            .store(pages, std::sync::atomic::Ordering::Relaxed);
        Ok(ObservedApi::from_resources(out))
    }

    /// The API's authorizers, id → name (paged).
    pub async fn authorizer_names(
        &self,
        api_id: &str,
    ) -> Result<BTreeMap<String, String>, AwsError> {
        let mut out = BTreeMap::new();
        let mut position: Option<String> = None;
        loop {
            self.pacer.take(Paced::ApiGateway).await;
            let page = self
                .apigw
                .get_authorizers()
                .rest_api_id(api_id)
                .limit(500)
                .set_position(position.clone())
                .send()
                .await
                .map_err(|e| map_err("apigateway:GetAuthorizers", e))?;
            for a in page.items() {
                if let (Some(id), Some(name)) = (a.id(), a.name()) {
                    out.insert(id.to_string(), name.to_string());
                }
            }
            match page.position() {
                Some(p) if !p.is_empty() && Some(p) != position.as_deref() => {
                    position = Some(p.to_string())
                }
                _ => break,
            }
        }
        Ok(out)
    }

    pub async fn get_stage(
        &self,
        api_id: &str,
        stage: &str,
    ) -> Result<Option<ObservedStage>, AwsError> {
        self.pacer.take(Paced::ApiGateway).await;
        match self
            .apigw
            .get_stage()
            .rest_api_id(api_id)
            .stage_name(stage)
            .send()
            .await
        {
            Ok(s) => Ok(Some(ObservedStage {
                deployment_id: s.deployment_id().map(str::to_string),
                tags: s
                    .tags()
                    .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
                method_settings: s
                    .method_settings()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), stage_method_setting(v)))
                    .collect(),
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
    ) -> Result<ObservedMethod, AwsError> {
        self.pacer.take(Paced::ApiGateway).await;
        let out = self
            .apigw
            .put_method()
            .rest_api_id(api_id)
            .resource_id(resource_id)
            .http_method(verb.as_str())
            .authorization_type(settings.authorization.as_str())
            .set_authorizer_id(settings.authorizer_id.clone())
            .api_key_required(settings.api_key_required)
            .set_operation_name(Some(settings.operation_name.clone()).filter(|o| !o.is_empty()))
            .send()
            .await
            .map_err(|e| map_err("apigateway:PutMethod", e))?;
        Ok(observed_method!(&out))
    }

    /// One method, as the API has it now (`None` when there is none).
    pub async fn get_method(
        &self,
        api_id: &str,
        resource_id: &str,
        verb: HttpMethod,
    ) -> Result<Option<ObservedMethod>, AwsError> {
        self.pacer.take(Paced::ApiGateway).await;
        match self
            .apigw
            .get_method()
            .rest_api_id(api_id)
            .resource_id(resource_id)
            .http_method(verb.as_str())
            .send()
            .await
        {
            Ok(m) => Ok(Some(observed_method!(&m))),
            Err(e) => {
                let e = map_err("apigateway:GetMethod", e);
                if e.kind == AwsErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
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

    /// Puts an integration (overwriting one that exists), with its timeout
    /// and request templates. Its integration responses are put separately
    /// ([`Aws::put_integration_response`]).
    pub async fn put_integration(
        &self,
        api_id: &str,
        resource_id: &str,
        verb: HttpMethod,
        integration: &ObservedIntegration,
    ) -> Result<ObservedIntegration, AwsError> {
        self.pacer.take(Paced::ApiGateway).await;
        let templates: HashMap<String, String> = integration
            .request_templates
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let out = self
            .apigw
            .put_integration()
            .rest_api_id(api_id)
            .resource_id(resource_id)
            .http_method(verb.as_str())
            .r#type(IntegrationType::from(integration.kind.as_str()))
            .set_integration_http_method(integration.http_method.clone())
            .set_uri(integration.uri.clone())
            .set_timeout_in_millis(integration.timeout_ms.map(|t| t as i32))
            .set_request_templates((!templates.is_empty()).then_some(templates))
            .send()
            .await
            .map_err(|e| map_err("apigateway:PutIntegration", e))?;
        Ok(answered_integration!(&out))
    }

    /// Puts a method response: its status code and response parameters.
    pub async fn put_method_response(
        &self,
        api_id: &str,
        resource_id: &str,
        verb: HttpMethod,
        status: &str,
        parameters: &BTreeMap<String, bool>,
    ) -> Result<(), AwsError> {
        self.pacer.take(Paced::ApiGateway).await;
        let parameters: HashMap<String, bool> =
            parameters.iter().map(|(k, v)| (k.clone(), *v)).collect();
        self.apigw
            .put_method_response()
            .rest_api_id(api_id)
            .resource_id(resource_id)
            .http_method(verb.as_str())
            .status_code(status)
            .set_response_parameters((!parameters.is_empty()).then_some(parameters))
            .send()
            .await
            .map_err(|e| map_err("apigateway:PutMethodResponse", e))?;
        Ok(())
    }

    /// Puts an integration response (overwriting one of the same status code).
    pub async fn put_integration_response(
        &self,
        api_id: &str,
        resource_id: &str,
        verb: HttpMethod,
        status: &str,
        response: &IntegrationResponse,
    ) -> Result<(), AwsError> {
        self.pacer.take(Paced::ApiGateway).await;
        let parameters: HashMap<String, String> = response
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let templates: HashMap<String, String> = response
            .templates
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.apigw
            .put_integration_response()
            .rest_api_id(api_id)
            .resource_id(resource_id)
            .http_method(verb.as_str())
            .status_code(status)
            .set_response_parameters((!parameters.is_empty()).then_some(parameters))
            .set_response_templates((!templates.is_empty()).then_some(templates))
            .send()
            .await
            .map_err(|e| map_err("apigateway:PutIntegrationResponse", e))?;
        Ok(())
    }

    /// Changes the stage's method settings: one UpdateStage whose patch
    /// operations name only the keys given (never `*/*` or another key).
    /// Answers with the method settings of the stage as the backend left it.
    pub async fn patch_stage_settings(
        &self,
        api_id: &str,
        stage: &str,
        patches: &[StagePatch],
    ) -> Result<BTreeMap<String, StageMethodSetting>, AwsError> {
        self.pacer.take(Paced::ApiGateway).await;
        let ops = patch_operations(patches);
        let out = self
            .apigw
            .update_stage()
            .rest_api_id(api_id)
            .stage_name(stage)
            .set_patch_operations(Some(ops))
            .send()
            .await
            .map_err(|e| map_err("apigateway:UpdateStage", e))?;
        Ok(out
            .method_settings()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), stage_method_setting(v)))
            .collect())
    }

    /// Patches a method in place (`replace /authorizationType AWS_IAM`…);
    /// answers with it as the backend left it.
    pub async fn update_method(
        &self,
        api_id: &str,
        resource_id: &str,
        verb: HttpMethod,
        patches: &[PatchOp],
    ) -> Result<ObservedMethod, AwsError> {
        self.pacer.take(Paced::ApiGateway).await;
        let out = self
            .apigw
            .update_method()
            .rest_api_id(api_id)
            .resource_id(resource_id)
            .http_method(verb.as_str())
            .set_patch_operations(Some(patch_operations(patches)))
            .send()
            .await
            .map_err(|e| map_err("apigateway:UpdateMethod", e))?;
        Ok(observed_method!(&out))
    }

    /// Patches an integration in place; answers with it as the backend left it.
    pub async fn update_integration(
        &self,
        api_id: &str,
        resource_id: &str,
        verb: HttpMethod,
        patches: &[PatchOp],
    ) -> Result<ObservedIntegration, AwsError> {
        self.pacer.take(Paced::ApiGateway).await;
        let out = self
            .apigw
            .update_integration()
            .rest_api_id(api_id)
            .resource_id(resource_id)
            .http_method(verb.as_str())
            .set_patch_operations(Some(patch_operations(patches)))
            .send()
            .await
            .map_err(|e| map_err("apigateway:UpdateIntegration", e))?;
        Ok(answered_integration!(&out))
    }

    /// Patches a method response in place; answers with its parameters as
    /// the backend left them.
    pub async fn update_method_response(
        &self,
        api_id: &str,
        resource_id: &str,
        verb: HttpMethod,
        status: &str,
        patches: &[PatchOp],
    ) -> Result<BTreeMap<String, bool>, AwsError> {
        self.pacer.take(Paced::ApiGateway).await;
        let out = self
            .apigw
            .update_method_response()
            .rest_api_id(api_id)
            .resource_id(resource_id)
            .http_method(verb.as_str())
            .status_code(status)
            .set_patch_operations(Some(patch_operations(patches)))
            .send()
            .await
            .map_err(|e| map_err("apigateway:UpdateMethodResponse", e))?;
        Ok(out
            .response_parameters()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), *v))
            .collect())
    }

    /// Patches an integration response in place; answers with it as the
    /// backend left it.
    pub async fn update_integration_response(
        &self,
        api_id: &str,
        resource_id: &str,
        verb: HttpMethod,
        status: &str,
        patches: &[PatchOp],
    ) -> Result<IntegrationResponse, AwsError> {
        self.pacer.take(Paced::ApiGateway).await;
        let out = self
            .apigw
            .update_integration_response()
            .rest_api_id(api_id)
            .resource_id(resource_id)
            .http_method(verb.as_str())
            .status_code(status)
            .set_patch_operations(Some(patch_operations(patches)))
            .send()
            .await
            .map_err(|e| map_err("apigateway:UpdateIntegrationResponse", e))?;
        Ok(IntegrationResponse {
            parameters: string_map(out.response_parameters()),
            templates: string_map(out.response_templates()),
        })
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

/// A string map of an answer, ordered.
fn string_map(m: Option<&HashMap<String, String>>) -> BTreeMap<String, String> {
    m.into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// An integration as the planner sees it. A timeout of 0 means the backend
/// showed none.
fn observed_integration(i: &Integration) -> ObservedIntegration {
    ObservedIntegration {
        kind: i
            .r#type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
        http_method: i.http_method().map(str::to_string),
        uri: i.uri().map(str::to_string),
        timeout_ms: u32::try_from(i.timeout_in_millis()).ok().filter(|t| *t > 0),
        request_templates: string_map(i.request_templates()),
        responses: i
            .integration_responses()
            .into_iter()
            .flatten()
            .map(|(status, r)| {
                let response = IntegrationResponse {
                    parameters: string_map(r.response_parameters()),
                    templates: string_map(r.response_templates()),
                };
                (status.clone(), response)
            })
            .collect(),
    }
}

fn method_responses(m: Option<&HashMap<String, MethodResponse>>) -> MethodResponses {
    m.into_iter()
        .flatten()
        .map(|(status, r)| {
            let params = r
                .response_parameters()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            (status.clone(), params)
        })
        .collect()
}

fn stage_method_setting(m: &MethodSetting) -> StageMethodSetting {
    let default = Behaviour::default();
    StageMethodSetting {
        rate_limit: Rate(m.throttling_rate_limit()),
        burst_limit: m.throttling_burst_limit(),
        behaviour: Behaviour {
            logging_level: m.logging_level().unwrap_or("OFF").to_string(),
            data_trace: m.data_trace_enabled(),
            metrics: m.metrics_enabled(),
            caching: m.caching_enabled(),
            cache_ttl_seconds: m.cache_ttl_in_seconds(),
            cache_encrypted: m.cache_data_encrypted(),
            cache_requires_authorization: m.require_authorization_for_cache_control(),
            cache_unauthorized_strategy: m
                .unauthorized_cache_control_header_strategy()
                .map(|s| s.as_str().to_string())
                .unwrap_or(default.cache_unauthorized_strategy),
        },
    }
}

/// Patch operations as the SDK takes them.
fn patch_operations(patches: &[PatchOp]) -> Vec<PatchOperation> {
    patches
        .iter()
        .map(|p| match p {
            PatchOp::Add(path, value) => PatchOperation::builder()
                .op(Op::Add)
                .path(path)
                .value(value)
                .build(),
            PatchOp::Replace(path, value) => PatchOperation::builder()
                .op(Op::Replace)
                .path(path)
                .value(value)
                .build(),
            PatchOp::Remove(path) => PatchOperation::builder().op(Op::Remove).path(path).build(),
        })
        .collect()
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
