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
    /// Answer CORS preflights: an OPTIONS method (MOCK integration) on the path and on its
    /// `{proxy+}` that returns these Access-Control-* headers. The headers of real responses
    /// come from the function (Lambda proxy integration). Not with OPTIONS in `methods`.
    #[serde(default)]
    #[schemars(with = "Option<CorsDoc>")]
    pub cors: Option<Spanned<CorsDoc>>,
    /// Per-route throttling in the stage's method settings, for each route and method of
    /// this mount; takes effect without a deployment.
    #[serde(default)]
    #[schemars(with = "Option<ThrottleDoc>")]
    pub throttle: Option<Spanned<ThrottleDoc>>,
    /// Integration timeout in milliseconds (50 to 29000); default 29000.
    #[serde(default)]
    #[schemars(with = "Option<u32>", range(min = 50, max = 29000))]
    pub timeout_ms: Option<Spanned<i64>>,
    /// Release a published version of the function progressively: its route's traffic moves
    /// to the version in steps on an alias apimount owns for the mount, and goes back by itself
    /// when an alarm fires. `function` must then be unqualified.
    #[serde(default)]
    #[schemars(with = "Option<ReleaseDoc>")]
    pub release: Option<Spanned<ReleaseDoc>>,
}

/// A progressive release of a published version.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReleaseDoc {
    /// A published version of the function, such as "42" (not $LATEST).
    #[schemars(with = "String", regex(pattern = r"^[1-9][0-9]{0,9}$"))]
    pub version: Spanned<String>,
    /// The steps: the percent of traffic the version takes (1 to 99, rising) and how long
    /// (1s to 24h) before the next step; after the last step the version takes all of it.
    /// Default: 10 percent for 5 minutes. Not with `strategy`.
    #[serde(default)]
    #[schemars(with = "Option<Vec<StepDoc>>")]
    pub steps: Option<Spanned<Vec<StepDoc>>>,
    /// A named set of steps instead of `steps`.
    #[serde(default)]
    #[schemars(with = "Option<StrategySchema>")]
    pub strategy: Option<Spanned<String>>,
    /// CloudWatch alarms (at most 10) that roll the release back when they go to ALARM.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>", length(max = 10))]
    pub alarms: Option<Spanned<Vec<Spanned<String>>>>,
    /// An alarm apimount creates on the new version's error rate for the release's duration.
    #[serde(default)]
    #[schemars(with = "Option<GuardDoc>")]
    pub guard: Option<Spanned<GuardDoc>>,
}

/// One step of a release.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StepDoc {
    /// Percent of the route's traffic the new version takes (1 to 99).
    #[schemars(with = "u8", range(min = 1, max = 99))]
    pub weight: Spanned<i64>,
    /// How long the step lasts: 30s, 5m, 1h (1s to 24h).
    #[schemars(with = "String")]
    pub pause: Spanned<String>,
}

/// The guard alarm of a release.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GuardDoc {
    /// Percent of the new version's invocations that may fail over a minute (0.1 to 100).
    #[schemars(with = "f64", range(min = 0.1, max = 100))]
    pub max_error_rate: Spanned<f64>,
}

#[derive(JsonSchema)]
#[allow(dead_code)]
enum StrategySchema {
    AllAtOnce,
    Canary10Percent5Minutes,
    Canary10Percent10Minutes,
    Canary10Percent30Minutes,
    Linear10PercentEvery1Minute,
    Linear10PercentEvery10Minutes,
}

/// The CORS preflight answer of a mount.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CorsDoc {
    /// Origins allowed to call: `*`, or `scheme://host[:port]` such as `https://app.example.com`.
    #[schemars(with = "Vec<String>", length(min = 1))]
    pub allow_origins: Spanned<Vec<Spanned<String>>>,
    /// Methods a browser may use; default: the mount's methods (all of them for ANY) and OPTIONS.
    #[serde(default)]
    #[schemars(with = "Option<Vec<CorsMethodSchema>>")]
    pub allow_methods: Option<Spanned<Vec<Spanned<String>>>>,
    /// Request headers a browser may send; default: Content-Type, X-Amz-Date, Authorization,
    /// X-Api-Key, X-Amz-Security-Token, X-Amz-User-Agent.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub allow_headers: Option<Spanned<Vec<Spanned<String>>>>,
    /// Response headers a browser may read (browsers take this header from real responses,
    /// which the function sends).
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub expose_headers: Option<Spanned<Vec<Spanned<String>>>>,
    /// Seconds a browser may cache the preflight answer (0 to 86400).
    #[serde(default)]
    #[schemars(with = "Option<u32>", range(min = 0, max = 86400))]
    pub max_age: Option<Spanned<i64>>,
    /// Allow credentials (cookies, Authorization); not with the origin `*`. Default false.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub allow_credentials: Option<Spanned<bool>>,
}

/// Per-route throttling, bounded by the account's limits (10,000 requests/s, burst 5,000 by
/// default in most regions).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ThrottleDoc {
    /// Steady requests per second each route and method may take (more than 0, fractions
    /// allowed). apimount refuses a rate above the account's limit in the API's region:
    /// 10000 by default (2500 in some regions), or what `--account-throttle` says AWS raised it to.
    #[schemars(with = "f64", range(max = 1000000), extend("exclusiveMinimum" = 0))]
    pub rate_limit: Spanned<f64>,
    /// Requests a burst may take at once (at least 1; at most the account's burst: 5000 by
    /// default, 1250 in some regions, or what `--account-throttle` says).
    #[schemars(with = "u32", range(min = 1, max = 1000000))]
    pub burst_limit: Spanned<i64>,
}

#[derive(JsonSchema)]
#[allow(dead_code, clippy::upper_case_acronyms)]
enum CorsMethodSchema {
    GET,
    PUT,
    POST,
    DELETE,
    PATCH,
    HEAD,
    OPTIONS,
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
