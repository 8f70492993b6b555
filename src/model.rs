//! Shared vocabulary of the planner and the AWS adapter: what the gateway looks
//! like (observed), the ownership marker, resolved functions, and the names
//! apimount derives deterministically (statement ids, source ARNs, URIs).
//!
//! Pure data and pure functions; no I/O.

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest, Sha256};

use crate::manifest::Authorization;

/// Prefix of every ownership marker apimount writes into `Method.operationName`.
pub const MARKER_PREFIX: &str = "apimount:";

/// Who owns a method, read from its `operationName`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ownership {
    /// Made by an apimount instance: `apimount:<owner>:<mount>`.
    Apimount { owner: String, mount: String },
    /// Anything else: made by hand, by another tool, or a marker we cannot read.
    Foreign,
}

impl Ownership {
    pub fn parse(operation_name: Option<&str>) -> Ownership {
        let Some(rest) = operation_name.and_then(|s| s.strip_prefix(MARKER_PREFIX)) else {
            return Ownership::Foreign;
        };
        match rest.split_once(':') {
            Some((owner, mount))
                if crate::settings::check_owner(owner).is_ok()
                    && crate::manifest::check_name(mount).is_ok() =>
            {
                Ownership::Apimount {
                    owner: owner.to_string(),
                    mount: mount.to_string(),
                }
            }
            _ => Ownership::Foreign,
        }
    }

    pub fn is(&self, owner: &str) -> bool {
        matches!(self, Ownership::Apimount { owner: o, .. } if o == owner)
    }

    pub fn is_mount(&self, owner: &str, mount: &str) -> bool {
        matches!(self, Ownership::Apimount { owner: o, mount: m } if o == owner && m == mount)
    }
}

/// The marker apimount writes for `owner`'s mount `mount`.
pub fn marker(owner: &str, mount: &str) -> String {
    format!("{MARKER_PREFIX}{owner}:{mount}")
}

/// The settings of a method that apimount manages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MethodSettings {
    pub authorization: Authorization,
    pub authorizer_id: Option<String>,
    pub api_key_required: bool,
    pub operation_name: String,
}

/// A method as observed on the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedMethod {
    /// Raw authorization type, kept raw so an unknown value is shown, not lost.
    pub authorization_type: String,
    pub authorizer_id: Option<String>,
    pub api_key_required: bool,
    pub operation_name: Option<String>,
    pub integration: Option<ObservedIntegration>,
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
        }
    }

    pub fn ownership(&self) -> Ownership {
        Ownership::parse(self.operation_name.as_deref())
    }

    /// Whether the method already has the given settings.
    pub fn matches(&self, want: &MethodSettings) -> bool {
        self.authorization_type == want.authorization.as_str()
            && self.authorizer_id.as_deref().filter(|s| !s.is_empty())
                == want.authorizer_id.as_deref()
            && self.api_key_required == want.api_key_required
            && self.operation_name.as_deref() == Some(want.operation_name.as_str())
    }
}

/// An integration as observed on the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedIntegration {
    pub kind: String,
    pub http_method: Option<String>,
    pub uri: Option<String>,
}

impl ObservedIntegration {
    /// The Lambda proxy integration apimount puts (POST to `uri`).
    pub fn lambda_proxy(uri: &str) -> ObservedIntegration {
        ObservedIntegration {
            kind: "AWS_PROXY".into(),
            http_method: Some("POST".into()),
            uri: Some(uri.to_string()),
        }
    }

    pub fn is_lambda_proxy_to(&self, uri: &str) -> bool {
        self.kind == "AWS_PROXY"
            && self.http_method.as_deref() == Some("POST")
            && self.uri.as_deref() == Some(uri)
    }
}

/// A resource as observed on the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedResource {
    pub id: String,
    pub parent_id: Option<String>,
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
}

impl ObservedApi {
    pub fn from_resources(list: Vec<ObservedResource>) -> ObservedApi {
        ObservedApi {
            resources: list.into_iter().map(|r| (r.path.clone(), r)).collect(),
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

/// One route of a mount: the mount path itself, or its `{proxy+}` child.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route(pub String);

impl Route {
    /// The `execute-api` SourceArn that lets API Gateway invoke the function for
    /// this route only: `{proxy+}` becomes `*`, stages and methods are `*`.
    pub fn source_arn(&self, partition: &str, region: &str, account: &str, api_id: &str) -> String {
        let pattern: Vec<&str> = self.0[1..]
            .split('/')
            .map(|seg| if seg.starts_with('{') { "*" } else { seg })
            .collect();
        format!(
            "arn:{partition}:execute-api:{region}:{account}:{api_id}/*/*/{}",
            pattern.join("/")
        )
    }

    /// The deterministic statement id for this route's permission. The same
    /// route of the same API and owner always gets the same id, so passes
    /// never add a second statement.
    pub fn statement_id(&self, api_id: &str, owner: &str) -> String {
        format!("{}{}", statement_prefix(api_id, owner), route_hash(&self.0))
    }
}

/// The prefix of all statement ids `owner` writes for `api_id`.
pub fn statement_prefix(api_id: &str, owner: &str) -> String {
    format!("apimount-{api_id}-{owner}-")
}

/// Statement ids end in 16 hex digits so that an owner containing '-' can't
/// make one owner's prefix match another's ids.
pub fn is_statement_of(sid: &str, api_id: &str, owner: &str) -> bool {
    sid.strip_prefix(&statement_prefix(api_id, owner))
        .is_some_and(|h| h.len() == 16 && h.chars().all(|c| c.is_ascii_hexdigit()))
}

fn route_hash(path: &str) -> String {
    let digest = Sha256::digest(path.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// One statement of a Lambda resource policy, reduced to what apimount checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyStatement {
    pub sid: String,
    pub effect: String,
    pub action: String,
    pub principal_service: Option<String>,
    pub source_arn: Option<String>,
    /// The function ARN the statement is attached to, as the policy says.
    pub resource: Option<String>,
}

impl PolicyStatement {
    /// The statement AddPermission makes for apimount: API Gateway may
    /// invoke `function` from `source_arn`.
    pub fn invoke_from(sid: &str, source_arn: &str, function: &str) -> PolicyStatement {
        PolicyStatement {
            sid: sid.to_string(),
            effect: "Allow".into(),
            action: "lambda:InvokeFunction".into(),
            principal_service: Some("apigateway.amazonaws.com".into()),
            source_arn: Some(source_arn.to_string()),
            resource: Some(function.to_string()),
        }
    }

    /// Whether this statement is exactly the permission apimount would add.
    pub fn grants_invoke_from(&self, source_arn: &str) -> bool {
        self.effect == "Allow"
            && self.action == "lambda:InvokeFunction"
            && self.principal_service.as_deref() == Some("apigateway.amazonaws.com")
            && self.source_arn.as_deref() == Some(source_arn)
    }

    /// Parses a policy document as GetPolicy returns it.
    pub fn parse_policy(doc: &str) -> Result<Vec<PolicyStatement>, serde_json::Error> {
        let v: serde_json::Value = serde_json::from_str(doc)?;
        let statements = match v.get("Statement") {
            Some(serde_json::Value::Array(a)) => a.clone(),
            Some(one @ serde_json::Value::Object(_)) => vec![one.clone()],
            _ => Vec::new(),
        };
        Ok(statements
            .iter()
            .map(|s| {
                let text = |key: &str| -> String {
                    match s.get(key) {
                        Some(serde_json::Value::String(x)) => x.clone(),
                        Some(serde_json::Value::Array(a)) if a.len() == 1 => {
                            a[0].as_str().unwrap_or_default().to_string()
                        }
                        _ => String::new(),
                    }
                };
                let principal_service = match s.get("Principal") {
                    Some(serde_json::Value::Object(p)) => p
                        .get("Service")
                        .and_then(|x| x.as_str())
                        .map(str::to_string),
                    Some(serde_json::Value::String(x)) => Some(x.clone()),
                    _ => None,
                };
                let source_arn = s
                    .get("Condition")
                    .and_then(|c| c.get("ArnLike"))
                    .and_then(|c| c.get("AWS:SourceArn"))
                    .and_then(|x| x.as_str())
                    .map(str::to_string);
                let resource = Some(text("Resource")).filter(|r| !r.is_empty());
                PolicyStatement {
                    resource,
                    sid: text("Sid"),
                    effect: text("Effect"),
                    action: text("Action"),
                    principal_service,
                    source_arn,
                }
            })
            .collect())
    }
}

/// The stage as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedStage {
    pub deployment_id: Option<String>,
    /// Description of the deployment the stage points at, if known.
    pub deployment_description: Option<String>,
}

/// A short fingerprint of the routes `owner` has on the API: what a deployment
/// must contain for this owner to be "deployed". Recorded in the deployment's
/// description so a later pass can tell whether its changes are live, even
/// after a crash between a change and its deployment.
pub fn owner_fingerprint(api: &ObservedApi, owner: &str) -> String {
    let mut h = Sha256::new();
    for (path, verb, m) in api.methods() {
        if !m.ownership().is(owner) {
            continue;
        }
        h.update(path.as_bytes());
        h.update(b"\0");
        h.update(verb.as_bytes());
        h.update(b"\0");
        h.update(m.authorization_type.as_bytes());
        h.update(b"\0");
        h.update(m.authorizer_id.as_deref().unwrap_or("").as_bytes());
        h.update(if m.api_key_required { b"\x01" } else { b"\x00" });
        h.update(m.operation_name.as_deref().unwrap_or("").as_bytes());
        h.update(b"\0");
        if let Some(i) = &m.integration {
            h.update(i.kind.as_bytes());
            h.update(b"\0");
            h.update(i.http_method.as_deref().unwrap_or("").as_bytes());
            h.update(b"\0");
            h.update(i.uri.as_deref().unwrap_or("").as_bytes());
        }
        h.update(b"\n");
    }
    h.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every apimount owner that has methods on the API.
pub fn owners_on(api: &ObservedApi) -> Vec<String> {
    let mut owners: Vec<String> = api
        .methods()
        .filter_map(|(_, _, m)| match m.ownership() {
            Ownership::Apimount { owner, .. } => Some(owner),
            Ownership::Foreign => None,
        })
        .collect();
    owners.sort();
    owners.dedup();
    owners
}

/// The description apimount writes on a deployment: the fingerprint of every
/// apimount owner's routes at that moment, since a deployment carries them all.
pub fn deployment_description(api: &ObservedApi) -> String {
    let mut s = String::from("apimount");
    for owner in owners_on(api) {
        s.push(' ');
        s.push_str(&owner);
        s.push('=');
        s.push_str(&owner_fingerprint(api, &owner));
    }
    s
}

/// Reads `owner`'s fingerprint back from a deployment description.
pub fn fingerprint_in_description<'a>(description: &'a str, owner: &str) -> Option<&'a str> {
    let rest = description.strip_prefix("apimount")?;
    rest.split_whitespace().find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == owner).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trip() {
        let m = marker("team-a", "accounts");
        assert_eq!(
            Ownership::parse(Some(&m)),
            Ownership::Apimount {
                owner: "team-a".into(),
                mount: "accounts".into()
            }
        );
        assert_eq!(Ownership::parse(Some("getAccounts")), Ownership::Foreign);
        assert_eq!(Ownership::parse(None), Ownership::Foreign);
        assert_eq!(Ownership::parse(Some("apimount:x")), Ownership::Foreign);
        assert_eq!(
            Ownership::parse(Some("apimount:x:Bad Name")),
            Ownership::Foreign
        );
    }

    #[test]
    fn source_arn_per_route() {
        let r = Route("/v1/accounts".into());
        assert_eq!(
            r.source_arn("aws-cn", "cn-north-1", "111122223333", "abc123"),
            "arn:aws-cn:execute-api:cn-north-1:111122223333:abc123/*/*/v1/accounts"
        );
        let p = Route("/v1/accounts/{proxy+}".into());
        assert_eq!(
            p.source_arn("aws", "eu-west-2", "111122223333", "abc123"),
            "arn:aws:execute-api:eu-west-2:111122223333:abc123/*/*/v1/accounts/*"
        );
    }

    #[test]
    fn statement_ids_are_deterministic_and_owner_scoped() {
        let r = Route("/accounts".into());
        let a = r.statement_id("api1", "a");
        assert_eq!(a, r.statement_id("api1", "a"));
        assert!(a.len() <= 100);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert!(is_statement_of(&a, "api1", "a"));
        assert!(!is_statement_of(&a, "api2", "a"));
        let ab = r.statement_id("api1", "a-b");
        assert!(!is_statement_of(&ab, "api1", "a"));
        assert!(is_statement_of(&ab, "api1", "a-b"));
        assert_ne!(
            a,
            Route("/accounts/{proxy+}".into()).statement_id("api1", "a")
        );
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
    }

    #[test]
    fn policy_parsing() {
        let doc = r#"{"Version":"2012-10-17","Statement":[{"Sid":"s1","Effect":"Allow",
          "Principal":{"Service":"apigateway.amazonaws.com"},"Action":"lambda:InvokeFunction",
          "Resource":"arn:aws:lambda:us-east-1:1:function:f",
          "Condition":{"ArnLike":{"AWS:SourceArn":"arn:x"}}}]}"#;
        let s = PolicyStatement::parse_policy(doc).unwrap();
        assert_eq!(s.len(), 1);
        assert!(s[0].grants_invoke_from("arn:x"));
        assert!(!s[0].grants_invoke_from("arn:y"));
    }

    #[test]
    fn fingerprints_in_descriptions() {
        let d = "apimount a=0123456789ab team-b=ffffffffffff";
        assert_eq!(fingerprint_in_description(d, "a"), Some("0123456789ab"));
        assert_eq!(
            fingerprint_in_description(d, "team-b"),
            Some("ffffffffffff")
        );
        assert_eq!(fingerprint_in_description(d, "c"), None);
        assert_eq!(fingerprint_in_description("manual deploy", "a"), None);
    }

    #[test]
    fn methods_behave_as_a_sorted_map() {
        let m = |op: &str| ObservedMethod {
            authorization_type: "NONE".into(),
            authorizer_id: None,
            api_key_required: false,
            operation_name: Some(op.into()),
            integration: None,
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
            parent_id: None,
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
