//! The observed world, as the AWS adapter reads it and the planner sees it:
//! the REST API's resources, methods (with their method responses),
//! integrations (with their integration responses), the stage with its
//! method settings, and resolved Lambda functions. Pure data; no I/O and no
//! SDK type.

use std::collections::BTreeMap;
use std::fmt;

use crate::manifest::Authorization;

use super::names::Ownership;

/// The settings of a method that apimount manages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MethodSettings {
    pub authorization: Authorization,
    pub authorizer_id: Option<String>,
    pub api_key_required: bool,
    pub operation_name: String,
}

impl MethodSettings {
    /// The settings of an observed method, to put it back as it was; `None`
    /// for an authorization type apimount does not know.
    pub fn of_observed(m: &ObservedMethod) -> Option<MethodSettings> {
        Some(MethodSettings {
            authorization: Authorization::parse(&m.authorization_type)?,
            authorizer_id: m
                .authorizer()
                .filter(|_| {
                    Authorization::parse(&m.authorization_type)
                        .is_some_and(|a| a.needs_authorizer())
                })
                .map(str::to_string),
            api_key_required: m.api_key_required,
            operation_name: m.operation_name.clone().unwrap_or_default(),
        })
    }

    /// The patch operations (path, value) that turn `from` into these settings.
    pub fn patches_from(&self, from: &ObservedMethod) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if from.authorization_type != self.authorization.as_str() {
            out.push((
                "/authorizationType",
                self.authorization.as_str().to_string(),
            ));
        }
        // Leaving an authorizer is the type change alone: no empty id is
        // sent (no AWS source says `replace /authorizerId ""` is accepted),
        // and an id left on a method that uses none is not read.
        if let Some(id) = self
            .authorizer_id
            .as_ref()
            .filter(|_| self.authorization.needs_authorizer())
        {
            if from.authorizer() != Some(id.as_str()) {
                out.push(("/authorizerId", id.clone()));
            }
        }
        if from.api_key_required != self.api_key_required {
            out.push(("/apiKeyRequired", self.api_key_required.to_string()));
        }
        if from.operation_name.as_deref() != Some(self.operation_name.as_str()) {
            out.push(("/operationName", self.operation_name.clone()));
        }
        out
    }
}

/// One patch operation of an Update call (UpdateStage, UpdateMethodResponse,
/// UpdateIntegrationResponse, UpdateIntegration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchOp {
    /// `add {path} {value}`.
    Add(String, String),
    /// `replace {path} {value}`.
    Replace(String, String),
    /// `remove {path}`.
    Remove(String),
}

/// A map key as a patch path segment (JSON Pointer: `~` as `~0`, `/` as `~1`).
pub fn pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Method responses by status code: each response's parameters
/// (`method.response.header.X`) and whether they are required.
pub type MethodResponses = BTreeMap<String, BTreeMap<String, bool>>;

/// A method as observed on the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedMethod {
    /// Raw authorization type, kept raw so an unknown value is shown, not lost.
    pub authorization_type: String,
    pub authorizer_id: Option<String>,
    pub api_key_required: bool,
    pub operation_name: Option<String>,
    pub integration: Option<ObservedIntegration>,
    /// Empty for the Lambda proxy methods apimount makes; a CORS preflight
    /// has one (200) with its Access-Control-* headers.
    pub responses: MethodResponses,
}

impl ObservedMethod {
    /// A method as AWS shows it right after PutMethod with these settings.
    pub fn from_settings(settings: &MethodSettings) -> ObservedMethod {
        ObservedMethod {
            authorization_type: settings.authorization.as_str().into(),
            authorizer_id: settings.authorizer_id.clone(),
            api_key_required: settings.api_key_required,
            operation_name: Some(settings.operation_name.clone()),
            integration: None,
            responses: MethodResponses::new(),
        }
    }

    /// The authorizer id, where there is one: API Gateway shows an empty
    /// string for "none" on some methods.
    pub fn authorizer(&self) -> Option<&str> {
        self.authorizer_id.as_deref().filter(|s| !s.is_empty())
    }

    /// The Lambda function the integration invokes, if it invokes one.
    pub fn function(&self) -> Option<ResolvedFunction> {
        self.integration
            .as_ref()
            .and_then(|i| i.uri.as_deref())
            .and_then(ResolvedFunction::from_integration_uri)
    }

    pub fn ownership(&self) -> Ownership {
        Ownership::parse(self.operation_name.as_deref())
    }

    /// The authorizer that counts for `want`: a method that uses none may
    /// still show the id it had (AWS need not clear it with the type).
    pub fn authorizer_for(&self, want: &MethodSettings) -> Option<&str> {
        self.authorizer()
            .filter(|_| want.authorization.needs_authorizer())
    }

    /// Whether a method AWS answered with (PutMethod, UpdateMethod) shows
    /// the settings asked for; `Err` names the first that it does not.
    pub fn answered(&self, want: &MethodSettings) -> Result<(), String> {
        if self.authorization_type != want.authorization.as_str() {
            return Err(format!(
                "it shows authorization {}, not {}",
                self.authorization_type,
                want.authorization.as_str()
            ));
        }
        if self.authorizer_for(want) != want.authorizer_id.as_deref() {
            return Err(format!(
                "it shows authorizer {}, not {}",
                self.authorizer_for(want).unwrap_or("(none)"),
                want.authorizer_id.as_deref().unwrap_or("(none)")
            ));
        }
        if self.api_key_required != want.api_key_required {
            return Err(format!(
                "it shows API key required {}, not {}",
                self.api_key_required, want.api_key_required
            ));
        }
        if self.operation_name.as_deref() != Some(want.operation_name.as_str()) {
            return Err(format!(
                "it shows the operation name {}, not {}",
                self.operation_name.as_deref().unwrap_or("(none)"),
                want.operation_name
            ));
        }
        Ok(())
    }

    /// Whether the method already has the given settings.
    pub fn matches(&self, want: &MethodSettings) -> bool {
        self.authorization_type == want.authorization.as_str()
            && self.authorizer_for(want) == want.authorizer_id.as_deref()
            && self.api_key_required == want.api_key_required
            && self.operation_name.as_deref() == Some(want.operation_name.as_str())
    }
}

/// An integration response as observed: its parameter mappings
/// (`method.response.header.X` → `'static value'`) and templates by content type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntegrationResponse {
    pub parameters: BTreeMap<String, String>,
    /// An empty template is kept as `""` (AWS and the emulators show it as
    /// an empty string or as null).
    pub templates: BTreeMap<String, String>,
}

/// An integration as observed on the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedIntegration {
    pub kind: String,
    pub http_method: Option<String>,
    pub uri: Option<String>,
    /// `timeoutInMillis`; `None` where the backend shows none (the default).
    pub timeout_ms: Option<u32>,
    /// Request templates by content type (a MOCK integration's `{"statusCode": 200}`).
    pub request_templates: BTreeMap<String, String>,
    /// Integration responses by status code (none for Lambda proxy integrations).
    pub responses: BTreeMap<String, IntegrationResponse>,
}

impl ObservedIntegration {
    /// Whether an integration AWS answered with (PutIntegration,
    /// UpdateIntegration) shows what was asked: its type, target, timeout
    /// and request templates (its responses are put and answered apart).
    pub fn answered(&self, want: &ObservedIntegration) -> Result<(), String> {
        if self.kind != want.kind {
            return Err(format!(
                "it shows the type {}, not {}",
                self.kind, want.kind
            ));
        }
        if self.uri != want.uri {
            return Err(format!(
                "it shows the target {}, not {}",
                self.uri.as_deref().unwrap_or("(none)"),
                want.uri.as_deref().unwrap_or("(none)")
            ));
        }
        if self.timeout() != want.timeout() {
            return Err(format!(
                "it shows a timeout of {} ms, not {} ms",
                self.timeout(),
                want.timeout()
            ));
        }
        if self.request_templates != want.request_templates {
            return Err("its request templates are not the ones asked for".into());
        }
        Ok(())
    }

    /// The Lambda proxy integration apimount puts (POST to `uri`), with the
    /// default timeout.
    pub fn lambda_proxy(uri: &str) -> ObservedIntegration {
        ObservedIntegration {
            kind: "AWS_PROXY".into(),
            http_method: Some("POST".into()),
            uri: Some(uri.to_string()),
            timeout_ms: None,
            request_templates: BTreeMap::new(),
            responses: BTreeMap::new(),
        }
    }

    /// The same integration with the timeout `timeout_ms` (`None`: the default).
    pub fn with_timeout(mut self, timeout_ms: Option<u32>) -> ObservedIntegration {
        self.timeout_ms = timeout_ms;
        self
    }

    /// The timeout in force: API Gateway's default when none is shown.
    pub fn timeout(&self) -> u32 {
        self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS)
    }

    /// Whether `self` is `want`, a timeout left to the default being the default.
    pub fn same_as(&self, want: &ObservedIntegration) -> bool {
        self.kind == want.kind
            && self.http_method == want.http_method
            && self.uri == want.uri
            && self.timeout() == want.timeout()
            && self.request_templates == want.request_templates
            && self.responses == want.responses
    }

    /// The patch operations that turn `self` into `want`, when patching can
    /// (same type, no templates or responses to change); `None` when the
    /// integration must be put again.
    pub fn patches_to(&self, want: &ObservedIntegration) -> Option<Vec<(&'static str, String)>> {
        if self.kind != want.kind
            || self.request_templates != want.request_templates
            || self.responses != want.responses
        {
            return None;
        }
        let mut out = Vec::new();
        if self.http_method != want.http_method {
            out.push(("/httpMethod", want.http_method.clone()?));
        }
        if self.uri != want.uri {
            out.push(("/uri", want.uri.clone()?));
        }
        if self.timeout() != want.timeout() {
            out.push(("/timeoutInMillis", want.timeout().to_string()));
        }
        Some(out)
    }

    pub fn is_lambda_proxy_to(&self, uri: &str) -> bool {
        self.kind == "AWS_PROXY"
            && self.http_method.as_deref() == Some("POST")
            && self.uri.as_deref() == Some(uri)
    }
}

/// The timeout of an integration that sets none, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u32 = crate::manifest::options::MAX_TIMEOUT_MS;

/// A resource as observed on the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedResource {
    pub id: String,
    /// Full path, `/` for the root.
    pub path: String,
    pub methods: Methods,
}

/// The methods of one resource, keyed by HTTP verb and kept sorted by it.
///
/// A sorted vector rather than a `BTreeMap`: a resource has one to a few
/// methods, and a map's first node is sized for eleven. With thousands of
/// resources in memory during a pass that difference is megabytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Methods(Vec<(String, ObservedMethod)>);

impl Methods {
    pub fn new() -> Methods {
        Methods(Vec::new())
    }

    fn find(&self, verb: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(v, _)| v.as_str().cmp(verb))
    }

    pub fn get(&self, verb: &str) -> Option<&ObservedMethod> {
        self.find(verb).ok().map(|i| &self.0[i].1)
    }

    pub fn get_mut(&mut self, verb: &str) -> Option<&mut ObservedMethod> {
        self.find(verb).ok().map(|i| &mut self.0[i].1)
    }

    pub fn contains_key(&self, verb: &str) -> bool {
        self.find(verb).is_ok()
    }

    /// Adds or replaces the method for `verb`; returns the one replaced.
    pub fn insert(&mut self, verb: String, method: ObservedMethod) -> Option<ObservedMethod> {
        match self.find(&verb) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, method)),
            Err(i) => {
                self.0.insert(i, (verb, method));
                None
            }
        }
    }

    pub fn remove(&mut self, verb: &str) -> Option<ObservedMethod> {
        self.find(verb).ok().map(|i| self.0.remove(i).1)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `(verb, method)` in verb order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &ObservedMethod)> {
        self.0.iter().map(|(v, m)| (v, m))
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(v, _)| v)
    }

    pub fn values(&self) -> impl Iterator<Item = &ObservedMethod> {
        self.0.iter().map(|(_, m)| m)
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }
}

impl FromIterator<(String, ObservedMethod)> for Methods {
    /// A later entry for the same verb replaces an earlier one, as with a map.
    fn from_iter<I: IntoIterator<Item = (String, ObservedMethod)>>(iter: I) -> Methods {
        let iter = iter.into_iter();
        let mut methods = Methods(Vec::with_capacity(iter.size_hint().0));
        for (verb, method) in iter {
            methods.insert(verb, method);
        }
        methods
    }
}

impl<'a> IntoIterator for &'a Methods {
    type Item = (&'a String, &'a ObservedMethod);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, ObservedMethod)>,
        fn(&'a (String, ObservedMethod)) -> (&'a String, &'a ObservedMethod),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(v, m)| (v, m))
    }
}

impl std::ops::Index<&str> for Methods {
    type Output = ObservedMethod;

    fn index(&self, verb: &str) -> &ObservedMethod {
        self.get(verb)
            .unwrap_or_else(|| panic!("no {verb} method on this resource"))
    }
}

/// The whole REST API as one GetResources(embed=methods) shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedApi {
    /// Keyed by full path.
    pub resources: BTreeMap<String, ObservedResource>,
    /// The API's authorizers, id → name; read only when a tenant policy
    /// delegates authorizers by name (see `plan::tenancy`).
    pub authorizers: BTreeMap<String, String>,
}

impl ObservedApi {
    pub fn from_resources(list: Vec<ObservedResource>) -> ObservedApi {
        ObservedApi {
            resources: list.into_iter().map(|r| (r.path.clone(), r)).collect(),
            authorizers: BTreeMap::new(),
        }
    }

    pub fn get(&self, path: &str) -> Option<&ObservedResource> {
        self.resources.get(path)
    }

    /// Direct children of `path`.
    pub fn children(&self, path: &str) -> Vec<&ObservedResource> {
        let prefix = child_prefix(path);
        self.descendants(path)
            .into_iter()
            .filter(|r| !r.path[prefix.len()..].contains('/'))
            .collect()
    }

    /// All resources strictly below `path`.
    pub fn descendants(&self, path: &str) -> Vec<&ObservedResource> {
        let prefix = child_prefix(path);
        self.resources
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter(|(p, _)| p.len() > prefix.len())
            .map(|(_, r)| r)
            .collect()
    }

    /// Whether the resource at `path` or anything below it has a method, i.e.
    /// whether that subtree serves anything.
    pub fn serves_at_or_below(&self, path: &str) -> bool {
        self.get(path).is_some_and(|r| !r.methods.is_empty())
            || self.descendants(path).iter().any(|d| !d.methods.is_empty())
    }

    /// Every method on the API with its resource path.
    pub fn methods(&self) -> impl Iterator<Item = (&str, &str, &ObservedMethod)> {
        self.resources.values().flat_map(|r| {
            r.methods
                .iter()
                .map(move |(verb, m)| (r.path.as_str(), verb.as_str(), m))
        })
    }
}

fn child_prefix(path: &str) -> String {
    if path == "/" {
        "/".to_string()
    } else {
        format!("{path}/")
    }
}

/// A Lambda function resolved through GetFunction (or given as a full ARN).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResolvedFunction {
    pub partition: String,
    pub region: String,
    pub account: String,
    pub name: String,
    pub qualifier: Option<String>,
}

impl ResolvedFunction {
    /// Parses a (possibly qualified) function ARN as Lambda returns it.
    pub fn from_arn(arn: &str) -> Option<ResolvedFunction> {
        let parts: Vec<&str> = arn.split(':').collect();
        if parts.len() < 7 || parts.len() > 8 || parts[0] != "arn" || parts[2] != "lambda" {
            return None;
        }
        if parts[5] != "function" {
            return None;
        }
        Some(ResolvedFunction {
            partition: parts[1].to_string(),
            region: parts[3].to_string(),
            account: parts[4].to_string(),
            name: parts[6].to_string(),
            qualifier: parts.get(7).map(|s| s.to_string()),
        })
    }

    /// The ARN the integration invokes, with the qualifier when there is one.
    pub fn arn(&self) -> String {
        let mut arn = self.unqualified_arn();
        if let Some(q) = &self.qualifier {
            arn.push(':');
            arn.push_str(q);
        }
        arn
    }

    /// The function's ARN without qualifier: Lambda's `FunctionName`, with the
    /// qualifier passed separately.
    pub fn unqualified_arn(&self) -> String {
        format!(
            "arn:{}:lambda:{}:{}:function:{}",
            self.partition, self.region, self.account, self.name
        )
    }

    /// The integration URI of a Lambda proxy integration to this function.
    pub fn integration_uri(&self, api_region: &str) -> String {
        format!(
            "arn:{}:apigateway:{}:lambda:path/2015-03-31/functions/{}/invocations",
            self.partition,
            api_region,
            self.arn()
        )
    }

    /// Why this is not the function `asked` names, if it is not: a full ARN
    /// must resolve to the partition, region, account and name it spells
    /// (an emulator answers for a function of that name in its own account,
    /// and nothing else may be mounted in its place); a name must resolve to
    /// that name.
    pub fn mismatch(&self, asked: &crate::manifest::FunctionRef) -> Option<String> {
        use crate::manifest::FunctionRef;
        let mut differ: Vec<&str> = Vec::new();
        match asked {
            FunctionRef::Arn {
                partition,
                region,
                account,
                name,
                ..
            } => {
                for (what, want, got) in [
                    ("partition", partition, &self.partition),
                    ("region", region, &self.region),
                    ("account", account, &self.account),
                    ("name", name, &self.name),
                ] {
                    if want != got {
                        differ.push(what);
                    }
                }
            }
            FunctionRef::Name { name, .. } => {
                if name != &self.name {
                    differ.push("name");
                }
            }
        }
        (!differ.is_empty()).then(|| {
            format!(
                "the manifest names {asked}, but Lambda answered with {} (another {}): a function is mounted only from the account and region its ARN names",
                self.unqualified_arn(),
                differ.join(", ")
            )
        })
    }

    /// Extracts the function from an integration URI apimount (or anyone) wrote.
    pub fn from_integration_uri(uri: &str) -> Option<ResolvedFunction> {
        let start = uri.find("/functions/")? + "/functions/".len();
        let end = uri.rfind("/invocations")?;
        if end <= start {
            return None;
        }
        ResolvedFunction::from_arn(&uri[start..end])
    }
}

impl fmt::Display for ResolvedFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn())
    }
}

/// The stage as observed (when it exists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedStage {
    /// The deployment the stage serves.
    pub deployment_id: Option<String>,
    /// The stage's tags; apimount keeps its in-flight journal there.
    pub tags: BTreeMap<String, String>,
    /// Method settings by key: `*/*` (the stage's default) and
    /// `{resourcePath}/{httpMethod}` with the path's `/` written `~1`.
    pub method_settings: BTreeMap<String, StageMethodSetting>,
}

/// One method-settings entry. Every entry overrides the stage's default
/// (`*/*`) for its method in all of these, not only in throttling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageMethodSetting {
    /// Steady requests per second; negative (AWS shows -1) for throttling
    /// disabled at this level.
    pub rate_limit: Rate,
    /// Burst; negative for disabled.
    pub burst_limit: i32,
    /// Everything else the entry sets.
    pub behaviour: Behaviour,
}

impl StageMethodSetting {
    /// The entry's throttling as a pair.
    pub fn throttling(&self) -> (Rate, i32) {
        (self.rate_limit, self.burst_limit)
    }
}

/// What a method-settings entry sets besides throttling: logging, metrics
/// and every caching field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behaviour {
    /// `OFF`, `ERROR`, `INFO` (`OFF` where the backend shows none).
    pub logging_level: String,
    pub data_trace: bool,
    pub metrics: bool,
    pub caching: bool,
    pub cache_ttl_seconds: i32,
    pub cache_encrypted: bool,
    pub cache_requires_authorization: bool,
    /// `FAIL_WITH_403`, `SUCCEED_WITH_RESPONSE_HEADER`, `SUCCEED_WITHOUT_RESPONSE_HEADER`.
    pub cache_unauthorized_strategy: String,
}

impl Default for Behaviour {
    /// What AWS starts a new entry with.
    fn default() -> Behaviour {
        Behaviour {
            logging_level: "OFF".into(),
            data_trace: false,
            metrics: false,
            caching: false,
            cache_ttl_seconds: 300,
            cache_encrypted: false,
            cache_requires_authorization: true,
            cache_unauthorized_strategy: "SUCCEED_WITH_RESPONSE_HEADER".into(),
        }
    }
}

impl Behaviour {
    /// Whether two entries behave alike: the same logging and metrics, and
    /// the same caching when either caches (the cache's settings mean
    /// nothing while caching is off).
    pub fn same_effect(&self, other: &Behaviour) -> bool {
        self.logging_level == other.logging_level
            && self.data_trace == other.data_trace
            && self.metrics == other.metrics
            && self.caching == other.caching
            && (!self.caching || self == other)
    }

    /// The fields in which `self` differs from `other`, by their patch names.
    pub fn differences(&self, other: &Behaviour) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (name, a, b) in self
            .fields()
            .into_iter()
            .zip(other.fields())
            .map(|((n, a), (_, b))| (n, a, b))
        {
            if a != b {
                out.push(name);
            }
        }
        out
    }

    /// Each field as its patch path below the entry's key and its value.
    pub fn fields(&self) -> [(&'static str, String); 8] {
        [
            ("logging/loglevel", self.logging_level.clone()),
            ("logging/dataTrace", self.data_trace.to_string()),
            ("metrics/enabled", self.metrics.to_string()),
            ("caching/enabled", self.caching.to_string()),
            ("caching/ttlInSeconds", self.cache_ttl_seconds.to_string()),
            ("caching/dataEncrypted", self.cache_encrypted.to_string()),
            (
                "caching/requireAuthorizationForCacheControl",
                self.cache_requires_authorization.to_string(),
            ),
            (
                "caching/unauthorizedCacheControlHeaderStrategy",
                self.cache_unauthorized_strategy.clone(),
            ),
        ]
    }
}

/// A requests-per-second figure as the stage shows it, compared by value.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Rate(pub f64);

impl Eq for Rate {}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A method with these settings and no integration (for the tests of this
/// layer).
#[cfg(test)]
pub(crate) fn test_method(
    auth: &str,
    authorizer: Option<&str>,
    key: bool,
    op: Option<&str>,
) -> ObservedMethod {
    ObservedMethod {
        authorization_type: auth.into(),
        authorizer_id: authorizer.map(str::to_string),
        api_key_required: key,
        operation_name: op.map(str::to_string),
        integration: None,
        responses: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_integration_is_answered_only_as_asked() {
        let want = ObservedIntegration::lambda_proxy("arn:want").with_timeout(Some(5000));
        let with = |change: &dyn Fn(&mut ObservedIntegration)| {
            let mut i = want.clone();
            change(&mut i);
            i
        };
        assert_eq!(want.answered(&want), Ok(()));
        // The default timeout shown or left out is the same timeout.
        let default = ObservedIntegration::lambda_proxy("arn:want");
        let shown = default.clone().with_timeout(Some(DEFAULT_TIMEOUT_MS));
        assert_eq!(shown.answered(&default), Ok(()));
        let wrong: Vec<(&str, ObservedIntegration)> = vec![
            ("type", with(&|i| i.kind = "HTTP_PROXY".into())),
            ("target", with(&|i| i.uri = Some("arn:other".into()))),
            ("no target", with(&|i| i.uri = None)),
            ("timeout", with(&|i| i.timeout_ms = None)),
            (
                "templates",
                with(&|i| {
                    i.request_templates
                        .insert("application/json".into(), "{}".into());
                }),
            ),
        ];
        for (what, answer) in wrong {
            assert!(answer.answered(&want).is_err(), "{what}");
        }
    }

    #[test]
    fn a_method_is_answered_only_as_asked() {
        let want = MethodSettings {
            authorization: Authorization::Custom,
            authorizer_id: Some("abc123".into()),
            api_key_required: true,
            operation_name: "apimount:o:m".into(),
        };
        let right = test_method("CUSTOM", Some("abc123"), true, Some("apimount:o:m"));
        assert_eq!(right.answered(&want), Ok(()));
        let table: &[(ObservedMethod, &str)] = &[
            (
                test_method("AWS_IAM", Some("abc123"), true, Some("apimount:o:m")),
                "it shows authorization AWS_IAM, not CUSTOM",
            ),
            (
                test_method("CUSTOM", Some("def456"), true, Some("apimount:o:m")),
                "it shows authorizer def456, not abc123",
            ),
            (
                test_method("CUSTOM", None, true, Some("apimount:o:m")),
                "it shows authorizer (none), not abc123",
            ),
            (
                test_method("CUSTOM", Some("abc123"), false, Some("apimount:o:m")),
                "it shows API key required false, not true",
            ),
            (
                test_method("CUSTOM", Some("abc123"), true, Some("getThings")),
                "it shows the operation name getThings, not apimount:o:m",
            ),
            (
                test_method("CUSTOM", Some("abc123"), true, None),
                "it shows the operation name (none), not apimount:o:m",
            ),
        ];
        for (answer, why) in table {
            assert_eq!(answer.answered(&want), Err(why.to_string()));
        }
        // A method of no authorizer may still show the id it had.
        let none = MethodSettings {
            authorization: Authorization::None,
            authorizer_id: None,
            ..want
        };
        let kept = test_method("NONE", Some("abc123"), true, Some("apimount:o:m"));
        assert_eq!(kept.answered(&none), Ok(()));
    }

    #[test]
    fn a_function_is_shown_as_its_arn() {
        let f = ResolvedFunction {
            partition: "aws-us-gov".into(),
            region: "us-gov-west-1".into(),
            account: "111122223333".into(),
            name: "payments".into(),
            qualifier: Some("live".into()),
        };
        assert_eq!(
            f.to_string(),
            "arn:aws-us-gov:lambda:us-gov-west-1:111122223333:function:payments:live"
        );
    }

    #[test]
    fn an_observed_method_is_put_back_as_it_was() {
        // (observed, the settings that put it back, or none)
        let table = [
            (
                test_method("NONE", None, true, Some("apimount:o:m")),
                Some((Authorization::None, None, true, "apimount:o:m")),
            ),
            (
                test_method("CUSTOM", Some("abc123"), false, None),
                Some((Authorization::Custom, Some("abc123"), false, "")),
            ),
            // An authorizer id left on a method that needs none is not kept.
            (
                test_method("AWS_IAM", Some("abc123"), false, Some("x")),
                Some((Authorization::AwsIam, None, false, "x")),
            ),
            (test_method("SOMETHING_NEW", None, false, None), None),
        ];
        for (from, want) in table {
            let got = MethodSettings::of_observed(&from);
            let want = want.map(|(authorization, authorizer, key, op)| MethodSettings {
                authorization,
                authorizer_id: authorizer.map(str::to_string),
                api_key_required: key,
                operation_name: op.to_string(),
            });
            assert_eq!(got, want, "{from:?}");
        }
    }

    #[test]
    fn a_method_is_patched_field_by_field() {
        let want = |auth: Authorization, authorizer: Option<&str>, key: bool| MethodSettings {
            authorization: auth,
            authorizer_id: authorizer.map(str::to_string),
            api_key_required: key,
            operation_name: "apimount:o:m".into(),
        };
        type Row<'a> = (ObservedMethod, MethodSettings, &'a [(&'a str, &'a str)]);
        let table: Vec<Row> = vec![
            // In line: nothing to patch.
            (
                test_method("NONE", None, false, Some("apimount:o:m")),
                want(Authorization::None, None, false),
                &[],
            ),
            (
                test_method("NONE", None, false, Some("apimount:o:m")),
                want(Authorization::AwsIam, None, true),
                &[
                    ("/authorizationType", "AWS_IAM"),
                    ("/apiKeyRequired", "true"),
                ],
            ),
            // Onto an authorizer: the type and the id.
            (
                test_method("NONE", None, false, Some("apimount:o:m")),
                want(Authorization::Custom, Some("abc123"), false),
                &[
                    ("/authorizationType", "CUSTOM"),
                    ("/authorizerId", "abc123"),
                ],
            ),
            // Another authorizer of the same type: the id only.
            (
                test_method("CUSTOM", Some("abc123"), false, Some("apimount:o:m")),
                want(Authorization::Custom, Some("def456"), false),
                &[("/authorizerId", "def456")],
            ),
            // Off an authorizer.
            (
                test_method("CUSTOM", Some("abc123"), false, Some("apimount:o:m")),
                want(Authorization::AwsIam, None, false),
                &[("/authorizationType", "AWS_IAM")],
            ),
            // A marker changed by hand, or missing.
            (
                test_method("NONE", None, false, Some("getThings")),
                want(Authorization::None, None, false),
                &[("/operationName", "apimount:o:m")],
            ),
            (
                test_method("NONE", None, false, None),
                want(Authorization::None, None, false),
                &[("/operationName", "apimount:o:m")],
            ),
        ];
        for (from, to, patches) in table {
            let got = to.patches_from(&from);
            let got: Vec<(&str, &str)> = got.iter().map(|(p, v)| (*p, v.as_str())).collect();
            assert_eq!(got, patches, "{from:?} -> {to:?}");
        }
    }

    #[test]
    fn an_integration_is_patched_or_put_again() {
        let uri = |f: &str| {
            format!("arn:aws:apigateway:r:lambda:path/2015-03-31/functions/arn:aws:lambda:r:1:function:{f}/invocations")
        };
        let proxy =
            |f: &str, t: Option<u32>| ObservedIntegration::lambda_proxy(&uri(f)).with_timeout(t);
        let mock = ObservedIntegration {
            kind: "MOCK".into(),
            http_method: None,
            uri: None,
            timeout_ms: None,
            request_templates: [(
                "application/json".to_string(),
                "{\"statusCode\": 200}".to_string(),
            )]
            .into(),
            responses: Default::default(),
        };
        let get = ObservedIntegration {
            http_method: Some("GET".into()),
            ..proxy("f", None)
        };
        let b = uri("b");
        type Row<'a> = (
            ObservedIntegration,
            ObservedIntegration,
            Option<Vec<(&'a str, &'a str)>>,
        );
        let table: Vec<Row> = vec![
            (proxy("f", None), proxy("f", None), Some(vec![])),
            // The default timeout, shown or not, is the same.
            (proxy("f", Some(29000)), proxy("f", None), Some(vec![])),
            (
                proxy("a", None),
                proxy("b", None),
                Some(vec![("/uri", b.as_str())]),
            ),
            (
                proxy("f", None),
                proxy("f", Some(5000)),
                Some(vec![("/timeoutInMillis", "5000")]),
            ),
            (
                proxy("f", Some(5000)),
                proxy("f", None),
                Some(vec![("/timeoutInMillis", "29000")]),
            ),
            (get, proxy("f", None), Some(vec![("/httpMethod", "POST")])),
            // Another type, or templates to change: put again.
            (mock.clone(), proxy("f", None), None),
            (proxy("f", None), mock, None),
        ];
        for (from, to, want) in table {
            let got = from.patches_to(&to);
            let got: Option<Vec<(&str, &str)>> = got
                .as_ref()
                .map(|v| v.iter().map(|(p, x)| (*p, x.as_str())).collect());
            assert_eq!(got, want, "{from:?} -> {to:?}");
            // Patched as planned, the integration is the one wanted.
            if want.is_some() {
                assert!(from.same_as(&to) == (got.as_ref().unwrap().is_empty()));
            }
        }
    }

    #[test]
    fn function_arn_and_uri() {
        let f = ResolvedFunction::from_arn(
            "arn:aws-us-gov:lambda:us-gov-west-1:111122223333:function:acct:live",
        )
        .unwrap();
        assert_eq!(f.qualifier.as_deref(), Some("live"));
        let uri = f.integration_uri("us-gov-west-1");
        assert_eq!(
            uri,
            "arn:aws-us-gov:apigateway:us-gov-west-1:lambda:path/2015-03-31/functions/arn:aws-us-gov:lambda:us-gov-west-1:111122223333:function:acct:live/invocations"
        );
        assert_eq!(ResolvedFunction::from_integration_uri(&uri), Some(f));
        assert_eq!(
            ResolvedFunction::from_integration_uri("http://example.com"),
            None
        );
        // Not a function ARN: each part wrong on its own.
        for bad in [
            "arn:aws:lambda:eu-west-2:111122223333:function",
            "arn:aws:lambda:eu-west-2:111122223333:function:acct:live:extra",
            "urn:aws:lambda:eu-west-2:111122223333:function:acct",
            "arn:aws:states:eu-west-2:111122223333:function:acct",
            "arn:aws:lambda:eu-west-2:111122223333:layer:acct",
        ] {
            assert_eq!(ResolvedFunction::from_arn(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_function_resolves_only_to_what_the_manifest_names() {
        use crate::manifest::FunctionRef;
        let got =
            ResolvedFunction::from_arn("arn:aws:lambda:eu-west-2:111122223333:function:acct:live")
                .unwrap();
        // (asked, the fields that differ, or none)
        for (asked, differ) in [
            ("acct", None),
            ("acct:live", None),
            ("arn:aws:lambda:eu-west-2:111122223333:function:acct", None),
            (
                "arn:aws:lambda:eu-west-2:111122223333:function:acct:live",
                None,
            ),
            ("other", Some("(another name)")),
            (
                "arn:aws:lambda:eu-west-2:444455556666:function:acct",
                Some("(another account)"),
            ),
            (
                "arn:aws:lambda:eu-west-1:111122223333:function:acct",
                Some("(another region)"),
            ),
            (
                "arn:aws-cn:lambda:eu-west-2:111122223333:function:acct",
                Some("(another partition)"),
            ),
            (
                "arn:aws:lambda:eu-west-1:444455556666:function:other",
                Some("(another region, account, name)"),
            ),
        ] {
            let asked = FunctionRef::parse(asked).unwrap();
            let why = got.mismatch(&asked);
            match differ {
                None => assert_eq!(why, None, "{asked}"),
                Some(part) => {
                    let why = why.unwrap_or_else(|| panic!("{asked} accepted"));
                    assert!(why.contains(part), "{why}");
                    // Both ARNs are named.
                    assert!(why.contains(&asked.to_string()), "{why}");
                    assert!(why.contains(&got.unqualified_arn()), "{why}");
                }
            }
        }
    }

    #[test]
    fn methods_behave_as_a_sorted_map() {
        let m = |op: &str| ObservedMethod {
            authorization_type: "NONE".into(),
            authorizer_id: None,
            api_key_required: false,
            operation_name: Some(op.into()),
            integration: None,
            responses: MethodResponses::new(),
        };
        let mut ms: Methods = [("POST", "p1"), ("GET", "g"), ("POST", "p2")]
            .into_iter()
            .map(|(v, op)| (v.to_string(), m(op)))
            .collect();
        assert_eq!(ms.keys().collect::<Vec<_>>(), vec!["GET", "POST"]);
        assert_eq!(
            ms["POST"].operation_name.as_deref(),
            Some("p2"),
            "last wins"
        );
        assert_eq!(ms.insert("ANY".into(), m("a")), None);
        let old = ms.insert("GET".into(), m("g2")).unwrap();
        assert_eq!(old.operation_name.as_deref(), Some("g"));
        assert_eq!(ms.keys().collect::<Vec<_>>(), vec!["ANY", "GET", "POST"]);
        assert!(ms.contains_key("ANY") && !ms.contains_key("PUT"));
        assert_eq!(
            ms.remove("ANY").unwrap().operation_name.as_deref(),
            Some("a")
        );
        assert_eq!(ms.remove("ANY"), None);
        ms.get_mut("GET").unwrap().api_key_required = true;
        assert!(ms.get("GET").unwrap().api_key_required);
        assert_eq!(ms.len(), 2);
        assert_eq!((&ms).into_iter().count(), 2);
        ms.clear();
        assert!(ms.is_empty());
    }

    #[test]
    fn children_and_descendants() {
        let mk = |p: &str| ObservedResource {
            id: p.into(),
            path: p.into(),
            methods: Methods::new(),
        };
        let api = ObservedApi::from_resources(vec![
            mk("/"),
            mk("/a"),
            mk("/a/b"),
            mk("/a/b/c"),
            mk("/a-x"),
            mk("/b"),
        ]);
        let kids: Vec<_> = api
            .children("/")
            .into_iter()
            .map(|r| r.path.as_str())
            .collect();
        assert_eq!(kids, vec!["/a", "/a-x", "/b"]);
        let kids: Vec<_> = api
            .children("/a")
            .into_iter()
            .map(|r| r.path.as_str())
            .collect();
        assert_eq!(kids, vec!["/a/b"]);
        let desc: Vec<_> = api
            .descendants("/a")
            .into_iter()
            .map(|r| r.path.as_str())
            .collect();
        assert_eq!(desc, vec!["/a/b", "/a/b/c"]);
    }
}
