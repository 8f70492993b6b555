//! The manifest as written: serde types with positions (`Spanned`) for error
//! messages. The same types generate the JSON Schema (see `schema`); the
//! schema-only enums below describe the plain values for editors.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// The manifest as written. `Spanned` keeps positions for error messages; the
/// schema attributes describe the plain values for editors (see `schema`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(
    title = "ServiceMount",
    description = "Mounts one Lambda-backed service at a path of a shared API Gateway REST API."
)]
pub struct ServiceMountDoc {
    /// Always `apimount/v1`.
    #[schemars(with = "ApiVersionSchema")]
    pub api_version: Spanned<String>,
    /// Always `ServiceMount`.
    #[schemars(with = "KindSchema")]
    pub kind: Spanned<String>,
    pub metadata: MetadataDoc,
    pub spec: SpecDoc,
}

#[derive(JsonSchema)]
#[allow(dead_code)]
enum ApiVersionSchema {
    #[serde(rename = "apimount/v1")]
    V1,
}

#[derive(JsonSchema)]
#[allow(dead_code)]
enum KindSchema {
    ServiceMount,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetadataDoc {
    /// Unique among all manifests: lowercase letters, digits and '-', up to 63 characters.
    #[schemars(
        with = "String",
        regex(pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    )]
    pub name: Spanned<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SpecDoc {
    /// Where the service is mounted, e.g. `/accounts` or `/v1/accounts`: literal segments only.
    #[schemars(with = "String", regex(pattern = r"^(/[A-Za-z0-9._-]+)+$"))]
    pub path: Spanned<String>,
    /// Lambda function name, `name:alias`, or full function ARN.
    #[schemars(with = "String")]
    pub function: Spanned<String>,
    /// HTTP methods to serve; default `[ANY]`.
    #[serde(default)]
    #[schemars(with = "Option<Vec<MethodSchema>>")]
    pub methods: Option<Spanned<Vec<Spanned<String>>>>,
    /// Also serve everything below the path through `{proxy+}`; default true.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub proxy: Option<Spanned<bool>>,
    /// Method authorization; default `NONE`.
    #[serde(default)]
    #[schemars(with = "Option<AuthorizationSchema>")]
    pub authorization: Option<Spanned<String>>,
    /// Authorizer id; required for CUSTOM and COGNITO_USER_POOLS, forbidden otherwise.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub authorizer_id: Option<Spanned<String>>,
    /// Require an API key on every method; default false.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub api_key_required: Option<Spanned<bool>>,
    /// Take over an existing route of exactly this shape (made by another tool) instead of
    /// reporting a conflict; default false.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub adopt: Option<Spanned<bool>>,
}

#[derive(JsonSchema)]
#[allow(dead_code, clippy::upper_case_acronyms)]
enum MethodSchema {
    ANY,
    GET,
    PUT,
    POST,
    DELETE,
    PATCH,
    HEAD,
    OPTIONS,
}

#[derive(JsonSchema)]
#[allow(dead_code, non_camel_case_types, clippy::upper_case_acronyms)]
enum AuthorizationSchema {
    NONE,
    AWS_IAM,
    CUSTOM,
    COGNITO_USER_POOLS,
}
