//! The ServiceMount manifest: the validated [`Mount`] and the types it is
//! made of, and [`parse`], which turns one file's bytes into a `Mount` or into
//! a list of [`ManifestError`]s that name the file, the position, the field and
//! the problem. It knows nothing of AWS and nothing of how files are found
//! (see `source`).
//!
//! - [`format`]: the wire format as written (serde types, also the schema's source);
//! - [`validate`]: the rules a well-formed document must meet;
//! - [`yaml`]: parser options and the wording of YAML/JSON syntax errors;
//! - [`duplicates`]: checks that need more than one file (two manifests with
//!   the same name or path); which one wins needs the live gateway and is
//!   decided by the reconciler;
//! - [`schema`]: the JSON Schema for editors;
//! - [`options`]: the route options (CORS preflight, throttling, timeout) and their rules;
//! - [`tenants`]: the tenant policy, parsed and validated like a manifest.

use std::fmt;
use std::path::{Path, PathBuf};

pub mod accounts;
pub mod duplicates;
pub mod format;
pub mod options;
pub mod release;
pub mod schema;
pub mod tenants;
pub mod validate;
pub mod yaml;

pub use duplicates::{duplicate_error, find_duplicates, Duplicate};
pub use format::ServiceMountDoc;
pub use options::{Cors, RateLimit, Throttle};

use yaml::{count_documents, strip_json_position, yaml_error, yaml_options};

/// The only `apiVersion` this release understands.
pub const API_VERSION: &str = "apimount/v1";
/// The only `kind` this release understands.
pub const KIND: &str = "ServiceMount";
/// Manifests larger than this are refused unread: a mount fits in a few hundred bytes.
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024;
/// Longest manifest name: a DNS label, so names can appear in logs, metrics and markers.
pub const MAX_NAME_LEN: usize = 63;
/// Most segments in a mount path. Each segment is a resource of the API
/// (300 by default, shared by every team), and the in-flight journal keeps
/// the resources one mount creates in one stage tag of 28 paths; real APIs
/// rarely nest deeper than five or six.
pub const MAX_PATH_SEGMENTS: usize = 16;
/// Deepest YAML nesting accepted; a manifest needs three levels.
pub(crate) const MAX_YAML_DEPTH: usize = 16;
/// YAML aliases accepted in one file; a manifest needs none.
pub(crate) const MAX_YAML_ALIASES: usize = 16;

/// What went wrong with one manifest file, for a person to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    pub file: PathBuf,
    /// 1-based line and column, where the parser knows them.
    pub position: Option<(u64, u64)>,
    /// Dotted field path such as `spec.path`, where one field is at fault.
    pub field: Option<String>,
    pub message: String,
    pub kind: ErrorKind,
}

/// Coarse classes of manifest problems; they pick the status reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file could not be read at all (permissions, vanished, not text, too big).
    Unreadable,
    /// Not well-formed YAML/JSON, or not of the manifest's shape.
    Syntax,
    /// Well-formed but a value breaks a rule.
    Invalid,
    /// Clashes with another manifest (same name or same path).
    Duplicate,
    /// Outside the folder of every tenant of the tenant policy.
    Misplaced,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for ManifestError {}

/// HTTP verbs API Gateway accepts on a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HttpMethod {
    Any,
    Delete,
    Get,
    Head,
    Options,
    Patch,
    Post,
    Put,
}

impl HttpMethod {
    pub const ALL: [HttpMethod; 8] = [
        HttpMethod::Any,
        HttpMethod::Delete,
        HttpMethod::Get,
        HttpMethod::Head,
        HttpMethod::Options,
        HttpMethod::Patch,
        HttpMethod::Post,
        HttpMethod::Put,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Any => "ANY",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
            HttpMethod::Options => "OPTIONS",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
        }
    }

    pub fn parse(s: &str) -> Option<HttpMethod> {
        HttpMethod::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Method authorization types API Gateway knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Authorization {
    #[default]
    None,
    AwsIam,
    Custom,
    CognitoUserPools,
}

impl Authorization {
    pub fn as_str(self) -> &'static str {
        match self {
            Authorization::None => "NONE",
            Authorization::AwsIam => "AWS_IAM",
            Authorization::Custom => "CUSTOM",
            Authorization::CognitoUserPools => "COGNITO_USER_POOLS",
        }
    }

    pub fn parse(s: &str) -> Option<Authorization> {
        [
            Authorization::None,
            Authorization::AwsIam,
            Authorization::Custom,
            Authorization::CognitoUserPools,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }

    /// Whether this type needs an `authorizerId`.
    pub fn needs_authorizer(self) -> bool {
        matches!(
            self,
            Authorization::Custom | Authorization::CognitoUserPools
        )
    }
}

/// A mount path: one or more literal segments, e.g. `/v1/accounts`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MountPath(String);

impl MountPath {
    /// Validates a path as written in a manifest. The error is a sentence.
    pub fn parse(raw: &str) -> Result<MountPath, String> {
        if raw.is_empty() {
            return Err("must not be empty; write a path such as /accounts".into());
        }
        if raw.len() > 1024 {
            return Err(format!(
                "is {} characters long; the limit is 1024",
                raw.len()
            ));
        }
        if !raw.starts_with('/') {
            return Err(format!("must start with '/', as in /{raw}"));
        }
        if raw == "/" {
            return Err(
                "'/' alone would take over the whole API; mount a service below it, such as /accounts"
                    .into(),
            );
        }
        if raw.ends_with('/') {
            return Err(format!(
                "must not end with '/'; write {}",
                raw.trim_end_matches('/')
            ));
        }
        let segments = raw[1..].split('/').count();
        if segments > MAX_PATH_SEGMENTS {
            return Err(format!(
                "has {segments} segments; the limit is {MAX_PATH_SEGMENTS} (every segment is a resource of the shared API)"
            ));
        }
        for segment in raw[1..].split('/') {
            check_segment(segment)?;
        }
        Ok(MountPath(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `self` lies strictly below `other` (`/a/b` is below `/a`).
    pub fn is_below(&self, other: &MountPath) -> bool {
        self.0.len() > other.0.len()
            && self.0.starts_with(&other.0)
            && self.0.as_bytes()[other.0.len()] == b'/'
    }
}

impl fmt::Display for MountPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn check_segment(segment: &str) -> Result<(), String> {
    if segment.is_empty() {
        return Err("contains an empty segment ('//')".into());
    }
    if segment == "." || segment == ".." {
        return Err(format!(
            "contains the segment '{segment}'; relative segments are not allowed"
        ));
    }
    if segment.starts_with('{') || segment.ends_with('}') {
        return Err(format!(
            "contains the path parameter '{segment}'; mount a literal path, apimount adds {{proxy+}} beneath it when proxy is true"
        ));
    }
    if let Some(bad) = segment
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "segment '{}' contains {}; API Gateway allows only letters, digits, '.', '_' and '-' in a path part",
            segment.escape_debug(),
            describe_char(bad)
        ));
    }
    Ok(())
}

fn describe_char(c: char) -> String {
    if c.is_control() || c.is_whitespace() {
        format!("the character U+{:04X}", c as u32)
    } else {
        format!("the character '{c}'")
    }
}

/// AWS partitions a Lambda ARN may name.
const PARTITIONS: &[&str] = &[
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
    "aws-eusc",
];

/// The function a mount points at, as written in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FunctionRef {
    /// `name` or `name:qualifier`, resolved in the API's own account and region.
    Name {
        name: String,
        qualifier: Option<String>,
    },
    /// A full function ARN, optionally qualified.
    Arn {
        partition: String,
        region: String,
        account: String,
        name: String,
        qualifier: Option<String>,
    },
}

impl FunctionRef {
    pub fn parse(raw: &str) -> Result<FunctionRef, String> {
        if raw.is_empty() {
            return Err(
                "must not be empty; give a function name, name:alias or function ARN".into(),
            );
        }
        if let Some(rest) = raw.strip_prefix("arn:") {
            let parts: Vec<&str> = rest.split(':').collect();
            if parts.len() < 6 || parts.len() > 7 || parts[1] != "lambda" || parts[4] != "function"
            {
                return Err(format!(
                    "'{raw}' is not a Lambda function ARN (expected arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER])"
                ));
            }
            let (partition, region, account, name) = (parts[0], parts[2], parts[3], parts[5]);
            if !PARTITIONS.contains(&partition) {
                return Err(format!("'{partition}' in '{raw}' is not an AWS partition"));
            }
            if region.is_empty()
                || !region
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err(format!("'{region}' in '{raw}' is not an AWS region"));
            }
            if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
                return Err(format!(
                    "'{account}' in '{raw}' is not a 12-digit AWS account id"
                ));
            }
            check_function_name(name)?;
            let qualifier = parts.get(6).map(|q| q.to_string());
            if let Some(q) = &qualifier {
                check_qualifier(q)?;
            }
            return Ok(FunctionRef::Arn {
                partition: partition.into(),
                region: region.into(),
                account: account.into(),
                name: name.into(),
                qualifier,
            });
        }
        let (name, qualifier) = match raw.split_once(':') {
            Some((n, q)) => (n, Some(q)),
            None => (raw, None),
        };
        check_function_name(name)?;
        if let Some(q) = qualifier {
            check_qualifier(q)?;
        }
        Ok(FunctionRef::Name {
            name: name.into(),
            qualifier: qualifier.map(str::to_string),
        })
    }

    pub fn name(&self) -> &str {
        match self {
            FunctionRef::Name { name, .. } | FunctionRef::Arn { name, .. } => name,
        }
    }

    pub fn qualifier(&self) -> Option<&str> {
        match self {
            FunctionRef::Name { qualifier, .. } | FunctionRef::Arn { qualifier, .. } => {
                qualifier.as_deref()
            }
        }
    }

    /// Lambda's `FunctionName` for this reference, without the qualifier
    /// (which Lambda takes as a separate parameter).
    pub fn unqualified(&self) -> String {
        match self {
            FunctionRef::Name { name, .. } => name.clone(),
            FunctionRef::Arn {
                partition,
                region,
                account,
                name,
                ..
            } => format!("arn:{partition}:lambda:{region}:{account}:function:{name}"),
        }
    }
}

impl fmt::Display for FunctionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.unqualified())?;
        if let Some(q) = self.qualifier() {
            write!(f, ":{q}")?;
        }
        Ok(())
    }
}

fn check_function_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!(
            "function name '{name}' must be 1 to 64 characters long"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_')))
    {
        return Err(format!(
            "function name '{}' contains {}; Lambda allows letters, digits, '-' and '_'",
            name.escape_debug(),
            describe_char(bad)
        ));
    }
    Ok(())
}

fn check_qualifier(q: &str) -> Result<(), String> {
    let ok = q == "$LATEST"
        || (!q.is_empty()
            && q.len() <= 128
            && q.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "qualifier '{}' is not a version or alias name (letters, digits, '-' and '_', up to 128 characters)",
            q.escape_debug()
        ))
    }
}

/// A validated mount, ready for planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub name: String,
    /// The tenant whose folder the manifest is in, under a tenant policy.
    pub tenant: Option<String>,
    pub path: MountPath,
    pub function: FunctionRef,
    /// Sorted and without repeats.
    pub methods: Vec<HttpMethod>,
    pub proxy: bool,
    pub authorization: Authorization,
    pub authorizer_id: Option<String>,
    pub api_key_required: bool,
    /// Adopt an existing route of the same shape instead of reporting a conflict.
    pub adopt: bool,
    /// Answer CORS preflights with an OPTIONS method on each route.
    pub cors: Option<Cors>,
    /// Throttle each route and method in the stage's method settings.
    pub throttle: Option<Throttle>,
    /// The integration timeout; `None`: API Gateway's default (29,000 ms).
    pub timeout_ms: Option<u32>,
    /// A progressive release of a published version; `function` is then
    /// the function qualified by the mount's alias (see [`release::alias_name`]).
    pub release: Option<release::Release>,
    /// The file this mount came from, as shown to people.
    pub file: PathBuf,
    /// The file's key within its source: the path below the folder
    /// (`accounts.yaml`, `accounts/api.yaml`) or below the S3 prefix. It is
    /// the same however the source was named on the command line, and is
    /// recorded (hashed) in the ownership marker, so a live mount belongs to
    /// the file it came from.
    pub key: String,
}

impl Mount {
    /// Puts the mount under `tenant` (the folder it came from); a release's
    /// alias is named after the tenant too.
    pub fn set_tenant(&mut self, tenant: Option<String>) {
        if self.release.is_some() {
            self.function =
                release::with_alias(self.function.clone(), tenant.as_deref(), &self.name);
        }
        self.tenant = tenant;
    }

    /// The function as the manifest names it: without the release's alias.
    pub fn named_function(&self) -> FunctionRef {
        match (&self.release, &self.function) {
            (None, f) => f.clone(),
            (Some(_), FunctionRef::Name { name, .. }) => FunctionRef::Name {
                name: name.clone(),
                qualifier: None,
            },
            (
                Some(_),
                FunctionRef::Arn {
                    partition,
                    region,
                    account,
                    name,
                    ..
                },
            ) => FunctionRef::Arn {
                partition: partition.clone(),
                region: region.clone(),
                account: account.clone(),
                name: name.clone(),
                qualifier: None,
            },
        }
    }

    pub fn id(&self) -> MountId {
        MountId {
            tenant: self.tenant.clone(),
            name: self.name.clone(),
        }
    }

    /// A digest of what the manifest asks for (its meaning, not its bytes:
    /// comments, key order and formatting do not change it). Recorded in the
    /// ownership marker of every method the mount has, so the version a
    /// route serves can be told from AWS alone.
    ///
    /// The route options that shape routes, `cors` and `timeoutMs`, are part
    /// of it, and only when they are set: a manifest without them keeps the
    /// generation it had before they existed, so an upgrade rewrites no
    /// marker. Because the marker is in what a deployment carries (and in
    /// the deployment fingerprint), a change to them made just before a crash
    /// is still deployed by the next pass. `throttle` is deliberately left
    /// out: it lives in the stage's method settings, not on the routes, is
    /// read back from the stage on every pass, and takes effect without a
    /// deployment; were it in the generation, a throttle edit would rewrite
    /// every method's marker and so deploy the stage.
    pub fn generation(&self) -> String {
        use sha2::{Digest, Sha256};
        let methods: Vec<&str> = self.methods.iter().map(|m| m.as_str()).collect();
        let mut meaning = format!(
            "path={}\nfunction={}\nmethods={}\nproxy={}\nauthorization={}\nauthorizer={}\napiKey={}\nadopt={}\n",
            self.path,
            self.function,
            methods.join(","),
            self.proxy,
            self.authorization.as_str(),
            self.authorizer_id.as_deref().unwrap_or(""),
            self.api_key_required,
            self.adopt,
        );
        if let Some(c) = &self.cors {
            let methods: Vec<&str> = c
                .allow_methods
                .iter()
                .flatten()
                .map(|m| m.as_str())
                .collect();
            meaning.push_str(&format!(
                "cors.origins={}\ncors.methods={}{}\ncors.headers={}{}\ncors.expose={}\ncors.maxAge={}\ncors.credentials={}\n",
                c.allow_origins.join(","),
                if c.allow_methods.is_some() { "=" } else { "" },
                methods.join(","),
                if c.allow_headers.is_some() { "=" } else { "" },
                c.allow_headers.iter().flatten().cloned().collect::<Vec<_>>().join(","),
                c.expose_headers.join(","),
                c.max_age.map(|a| a.to_string()).unwrap_or_default(),
                c.allow_credentials,
            ));
        }
        if let Some(ms) = self.timeout_ms {
            meaning.push_str(&format!("timeoutMs={ms}\n"));
        }
        Sha256::digest(meaning.as_bytes())[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A mount's identity: its name, scoped to its tenant under a tenant policy
/// (two tenants may each have a mount named `api`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MountId {
    pub tenant: Option<String>,
    pub name: String,
}

impl MountId {
    /// Parses `name` or `tenant/name`.
    pub fn parse(s: &str) -> Option<MountId> {
        let (tenant, name) = match s.split_once('/') {
            Some((t, n)) => (Some(t), n),
            None => (None, s),
        };
        if let Some(t) = tenant {
            check_tenant_name(t).ok()?;
        }
        check_name(name).ok()?;
        Some(MountId {
            tenant: tenant.map(str::to_string),
            name: name.to_string(),
        })
    }
}

impl fmt::Display for MountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(t) = &self.tenant {
            write!(f, "{t}/")?;
        }
        f.write_str(&self.name)
    }
}

/// Whether a file name looks like a manifest (by extension), ignoring hidden
/// files and editor leftovers.
pub fn is_manifest_file_name(name: &str) -> bool {
    if name.starts_with('.') || name.ends_with('~') {
        return false;
    }
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".yaml") || lower.ends_with(".yml") || lower.ends_with(".json")
}

/// Parses and validates one manifest file's bytes. All problems found are
/// returned, not only the first.
pub fn parse(file: &Path, bytes: &[u8]) -> Result<Mount, Vec<ManifestError>> {
    let err = |kind, position, field: Option<&str>, message: String| ManifestError {
        file: file.to_path_buf(),
        position,
        field: field.map(str::to_string),
        message,
        kind,
    };
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(vec![err(
            ErrorKind::Unreadable,
            None,
            None,
            format!(
                "file is {} bytes; manifests are limited to {} bytes",
                bytes.len(),
                MAX_MANIFEST_BYTES
            ),
        )]);
    }
    if bytes.contains(&0) {
        return Err(vec![err(
            ErrorKind::Unreadable,
            None,
            None,
            "file contains NUL bytes: it is binary, not a YAML or JSON manifest".into(),
        )]);
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            return Err(vec![err(
                ErrorKind::Unreadable,
                None,
                None,
                format!(
                    "file is not UTF-8 text (invalid byte at offset {})",
                    e.valid_up_to()
                ),
            )])
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let only_comments = text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
    if only_comments {
        return Err(vec![err(
            ErrorKind::Syntax,
            None,
            None,
            "file is empty (nothing but blanks or comments); a manifest needs apiVersion, kind, metadata and spec".into(),
        )]);
    }
    let is_json = file
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        // serde_json's positions are exact for JSON; the YAML parser below then
        // gives field positions and catches duplicate keys, which JSON allows.
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
            return Err(vec![err(
                ErrorKind::Syntax,
                // serde_json says column 0 when the input ends at a line start.
                Some((e.line() as u64, e.column().max(1) as u64)),
                None,
                format!("invalid JSON: {}", strip_json_position(&e.to_string())),
            )]);
        }
    } else if count_documents(text) > 1 {
        return Err(vec![err(
            ErrorKind::Syntax,
            None,
            None,
            "file holds more than one YAML document ('---'); put each mount in its own file".into(),
        )]);
    }
    let doc: ServiceMountDoc = match serde_saphyr::from_str_with_options(text, yaml_options()) {
        Ok(doc) => doc,
        Err(e) => return Err(vec![yaml_error(file, text, &e)]),
    };
    validate::validate(file, text, doc)
}

/// Longest tenant name: it appears in every marker of the tenant's routes.
pub const MAX_TENANT_NAME_LEN: usize = 32;

/// Checks a tenant name: lowercase letters, digits and '-', up to 32.
pub fn check_tenant_name(name: &str) -> Result<(), String> {
    let length = name.chars().count();
    if length > MAX_TENANT_NAME_LEN {
        return Err(format!(
            "'{name}' is {length} characters long; the limit is {MAX_TENANT_NAME_LEN}"
        ));
    }
    check_name(name)
}

/// Checks a manifest name: a DNS label.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    let length = name.chars().count();
    if length > MAX_NAME_LEN {
        return Err(format!(
            "'{name}' is {length} characters long; the limit is {MAX_NAME_LEN}"
        ));
    }
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid_chars || name.starts_with('-') || name.ends_with('-') {
        return Err(format!(
            "'{}' must use only lowercase letters, digits and '-', and start and end with a letter or digit",
            name.escape_debug()
        ));
    }
    Ok(())
}

/// Best effort: the `metadata.name` of a file that failed validation, so that
/// the routes of its last valid version are kept rather than treated as orphans.
pub fn salvage_name(bytes: &[u8]) -> Option<String> {
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let options = {
        let mut o = yaml_options();
        o.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::LastWins;
        o
    };
    let value: serde_json::Value = serde_saphyr::from_str_with_options(text, options).ok()?;
    let name = value.get("metadata")?.get("name")?.as_str()?;
    check_name(name).ok()?;
    Some(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_hold_at_their_boundaries() {
        // A path of exactly 1024 characters in 16 segments is valid; one more
        // character, or a 17th segment, is not.
        let seg = |n: usize| "a".repeat(n);
        let at_limit = format!(
            "/{}{}",
            (0..15).map(|_| format!("{}/", seg(63))).collect::<String>(),
            seg(1023 - 15 * 64)
        );
        assert_eq!(at_limit.len(), 1024);
        assert_eq!(MountPath::parse(&at_limit).unwrap().as_str(), at_limit);
        let over = format!("{at_limit}b");
        assert_eq!(
            MountPath::parse(&over).unwrap_err(),
            "is 1025 characters long; the limit is 1024"
        );
        let sixteen: String = (0..16).map(|i| format!("/s{i}")).collect();
        assert_eq!(MountPath::parse(&sixteen).unwrap().as_str(), sixteen);
        let seventeen = format!("{sixteen}/s16");
        assert!(MountPath::parse(&seventeen)
            .unwrap_err()
            .starts_with("has 17 segments; the limit is 16"));
        // An authorizer id of 64 letters and digits is taken; 65 are not
        // (rows in `bad_manifests_table`).
        let id = format!(
            "{GOOD}  authorization: CUSTOM\n  authorizerId: {}\n",
            "a1".repeat(32)
        );
        assert_eq!(
            parse(Path::new("m.yaml"), id.as_bytes())
                .unwrap()
                .authorizer_id,
            Some("a1".repeat(32))
        );
        // A manifest of 64 KiB is read; one byte more is refused unread.
        let text = |size: usize| {
            let head = "apiVersion: apimount/v1\nkind: ServiceMount\nmetadata:\n  name: m\nspec:\n  path: /m\n  function: f\n# ";
            format!("{head}{}", "x".repeat(size - head.len()))
        };
        assert!(parse(Path::new("m.yaml"), text(65_536).as_bytes()).is_ok());
        let err = parse(Path::new("m.yaml"), text(65_537).as_bytes()).unwrap_err();
        assert!(err[0].to_string().contains("65537"), "{err:?}");
        // A path is not below itself, nor below a sibling that shares its start.
        let p = |s: &str| MountPath::parse(s).unwrap();
        assert!(!p("/a").is_below(&p("/a")));
        assert!(!p("/ab").is_below(&p("/a")));
        assert!(p("/a/b").is_below(&p("/a")));
        assert!(!p("/a").is_below(&p("/a/b")));
        // A path parameter is refused by either brace.
        for param in ["/{a", "/a}", "/{a}"] {
            let e = MountPath::parse(param).unwrap_err();
            assert!(e.contains("path parameter"), "{param}: {e}");
        }
        // A function ARN: Lambda's, of a function, with 6 or 7 parts.
        for bad in [
            "arn:aws:s3:eu-west-2:111122223333:function:f",
            "arn:aws:lambda:eu-west-2:111122223333:layer:f",
            "arn:aws:s3:eu-west-2:111122223333:layer:f",
            "arn:aws:lambda:eu-west-2:111122223333:function",
            "arn:aws:lambda:eu-west-2:111122223333:function:f:live:extra",
            "arn:aws:lambda::111122223333:function:f",
            "arn:aws:lambda:EU-WEST-2:111122223333:function:f",
            "arn:aws:lambda:eu-west-2:11112222333:function:f",
            "arn:aws:lambda:eu-west-2:11112222333x:function:f",
        ] {
            assert!(FunctionRef::parse(bad).is_err(), "{bad}");
        }
        for good in [
            "arn:aws:lambda:eu-west-2:111122223333:function:f",
            "arn:aws:lambda:eu-west-2:111122223333:function:f:live",
        ] {
            assert!(FunctionRef::parse(good).is_ok(), "{good}");
        }
        // Function names of 1 to 64 characters; qualifiers of up to 128, or $LATEST.
        let name64 = "f".repeat(64);
        for good in [
            name64.clone(),
            "f:$LATEST".into(),
            format!("f:{}", "q".repeat(128)),
            "my-fn_2:live-1".into(),
        ] {
            assert!(FunctionRef::parse(&good).is_ok(), "{good}");
        }
        for bad in [
            format!("{name64}x"),
            "f:".into(),
            "f:a b".into(),
            format!("f:{}", "q".repeat(129)),
            "f!".into(),
            ":live".into(),
        ] {
            assert!(FunctionRef::parse(&bad).is_err(), "{bad}");
        }
        // Names: DNS labels of up to 63 characters; tenants up to 32.
        assert!(check_name(&"a".repeat(63)).is_ok());
        assert!(check_name(&"a".repeat(64))
            .unwrap_err()
            .contains("64 characters"));
        for bad in ["", "-a", "a-", "A", "a_b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_tenant_name(&"t".repeat(32)).is_ok());
        assert!(check_tenant_name(&"t".repeat(33))
            .unwrap_err()
            .contains("33 characters"));
        // A file of blanks and comments is empty; two documents are refused as such.
        let first =
            |text: &str| parse(Path::new("m.yaml"), text.as_bytes()).unwrap_err()[0].to_string();
        assert!(first("\n# nothing here\n   \n").contains("file is empty"));
        let one = "apiVersion: apimount/v1\nkind: ServiceMount\nmetadata:\n  name: m\nspec:\n  path: /m\n  function: f\n";
        assert!(first(&format!("{one}---\n{one}")).contains("more than one YAML document"));
        assert!(parse(Path::new("m.yaml"), format!("---\n{one}").as_bytes()).is_ok());
        // Verbs: known ones only.
        assert_eq!(HttpMethod::parse("GET"), Some(HttpMethod::Get));
        assert_eq!(HttpMethod::parse("get"), None);
        assert_eq!(HttpMethod::parse("NOPE"), None);
    }

    const GOOD: &str = "apiVersion: apimount/v1
kind: ServiceMount
metadata:
  name: accounts
spec:
  path: /accounts
  function: account-service
";

    fn errors(file: &str, text: &str) -> Vec<String> {
        match parse(Path::new(file), text.as_bytes()) {
            Ok(m) => panic!("{file} should be invalid, parsed as {m:?}"),
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn with_spec(extra: &str) -> String {
        format!("{GOOD}{extra}")
    }

    #[test]
    fn good_manifest_and_defaults() {
        let m = parse(Path::new("a.yaml"), GOOD.as_bytes()).unwrap();
        assert_eq!(m.name, "accounts");
        assert_eq!(m.path.as_str(), "/accounts");
        assert_eq!(m.methods, vec![HttpMethod::Any]);
        assert!(m.proxy);
        assert_eq!(m.authorization, Authorization::None);
        assert!(!m.api_key_required);
        let json = r#"{"apiVersion":"apimount/v1","kind":"ServiceMount","metadata":{"name":"p"},
            "spec":{"path":"/v1/payments","function":"arn:aws-cn:lambda:cn-north-1:111122223333:function:pay:live",
            "methods":["POST","GET"],"proxy":false,"authorization":"CUSTOM","authorizerId":"abc123","apiKeyRequired":true}}"#;
        let m = parse(Path::new("p.json"), json.as_bytes()).unwrap();
        assert_eq!(m.methods, vec![HttpMethod::Get, HttpMethod::Post]);
        assert_eq!(m.function.qualifier(), Some("live"));
        assert!(!m.proxy && m.api_key_required);
    }

    /// (file name, content, fragments every message list must contain)
    #[test]
    fn bad_manifests_table() {
        let long_name = format!("metadata:\n  name: {}\n", "a".repeat(64));
        let cases: Vec<(&str, String, Vec<&str>)> = vec![
            (
                "empty.yaml",
                String::new(),
                vec!["empty.yaml: file is empty"],
            ),
            (
                "syntax.yaml",
                "apiVersion: [\n".into(),
                vec!["syntax.yaml:"],
            ),
            (
                "bad.json",
                "{\"apiVersion\": }".into(),
                vec!["bad.json:1:", "invalid JSON"],
            ),
            (
                "unknown.yaml",
                with_spec("  colour: red\n"),
                vec!["unknown.yaml:8:3: colour: unknown field"],
            ),
            (
                "dupkey.yaml",
                with_spec("  path: /x\n"),
                vec!["dupkey.yaml:8:3: path: key appears twice"],
            ),
            (
                "type.yaml",
                with_spec("  proxy: \"yes\"\n"),
                vec!["type.yaml:8:", "proxy:"],
            ),
            (
                "methods-type.yaml",
                with_spec("  methods: GET\n"),
                vec!["methods-type.yaml:8:", "methods"],
            ),
            (
                "missing.yaml",
                "apiVersion: apimount/v1\nkind: ServiceMount\nmetadata:\n  name: a\n".into(),
                vec!["spec: required field is missing"],
            ),
            (
                "version.yaml",
                GOOD.replace("apimount/v1", "apimount/v2"),
                vec!["version.yaml:1:13: apiVersion: 'apimount/v2' is not supported"],
            ),
            (
                "kind.yaml",
                GOOD.replace("ServiceMount", "Mount"),
                vec!["kind: 'Mount' is not supported"],
            ),
            (
                "name.yaml",
                GOOD.replace("name: accounts", "name: Accounts_1"),
                vec!["metadata.name: 'Accounts_1' must use only"],
            ),
            (
                "longname.yaml",
                GOOD.replace("metadata:\n  name: accounts\n", &long_name),
                vec!["metadata.name:", "the limit is 63"],
            ),
            (
                "nopath.yaml",
                GOOD.replace("path: /accounts", "path: \"\""),
                vec!["spec.path: '' must not be empty"],
            ),
            (
                "root.yaml",
                GOOD.replace("path: /accounts", "path: /"),
                vec!["spec.path: '/' '/' alone"],
            ),
            (
                "slashes.yaml",
                GOOD.replace("path: /accounts", "path: /a//b"),
                vec!["spec.path:", "empty segment"],
            ),
            (
                "dots.yaml",
                GOOD.replace("path: /accounts", "path: /a/../b"),
                vec!["spec.path:", "'..'"],
            ),
            (
                "trailing.yaml",
                GOOD.replace("path: /accounts", "path: /accounts/"),
                vec!["spec.path:", "must not end with '/'"],
            ),
            (
                "relative.yaml",
                GOOD.replace("path: /accounts", "path: accounts"),
                vec!["must start with '/'"],
            ),
            (
                "proxyseg.yaml",
                GOOD.replace("path: /accounts", "path: \"/a/{proxy+}\""),
                vec!["path parameter '{proxy+}'"],
            ),
            (
                "param.yaml",
                GOOD.replace("path: /accounts", "path: \"/a/{id}\""),
                vec!["path parameter '{id}'"],
            ),
            (
                "chars.yaml",
                GOOD.replace("path: /accounts", "path: \"/a b\""),
                vec!["U+0020", "only letters, digits"],
            ),
            (
                "encoded.yaml",
                GOOD.replace("path: /accounts", "path: /a%2Fb"),
                vec!["the character '%'"],
            ),
            (
                "fn.yaml",
                GOOD.replace("function: account-service", "function: \"bad name\""),
                vec!["spec.function:", "function name"],
            ),
            (
                "arn.yaml",
                GOOD.replace(
                    "function: account-service",
                    "function: \"arn:aws:s3:::bucket\"",
                ),
                vec!["spec.function:", "not a Lambda function ARN"],
            ),
            (
                "partition.yaml",
                GOOD.replace(
                    "function: account-service",
                    "function: \"arn:aws-moon:lambda:x-1:111122223333:function:f\"",
                ),
                vec!["not an AWS partition"],
            ),
            (
                "verb.yaml",
                with_spec("  methods: [FETCH]\n"),
                vec!["spec.methods[0]: 'FETCH' is not a method"],
            ),
            (
                "lower.yaml",
                with_spec("  methods: [get]\n"),
                vec!["write it in capitals: GET"],
            ),
            (
                "twice.yaml",
                with_spec("  methods: [GET, GET]\n"),
                vec!["spec.methods[1]: GET is listed twice"],
            ),
            (
                "nomethods.yaml",
                with_spec("  methods: []\n"),
                vec!["spec.methods: must list at least one"],
            ),
            (
                "auth.yaml",
                with_spec("  authorization: OAUTH\n"),
                vec!["spec.authorization: 'OAUTH' is not one of"],
            ),
            (
                "needsid.yaml",
                with_spec("  authorization: CUSTOM\n"),
                vec!["spec.authorizerId: is required when authorization is CUSTOM"],
            ),
            (
                "forbidsid.yaml",
                with_spec("  authorizerId: abc\n"),
                vec!["spec.authorizerId: is only allowed with authorization CUSTOM"],
            ),
            (
                "yes.yaml",
                with_spec("  proxy: yes\n"),
                vec!["expected a boolean (true or false)"],
            ),
            (
                "twicekey.yaml",
                with_spec("  path: /again\n"),
                vec!["key appears twice in the same mapping"],
            ),
            (
                "broken.json",
                "{\"apiVersion\": }".into(),
                vec!["invalid JSON: expected value"],
            ),
            (
                "idchars.yaml",
                with_spec("  authorization: CUSTOM\n  authorizerId: ab-12\n"),
                vec!["spec.authorizerId: 'ab-12' is not an authorizer id"],
            ),
            (
                "idempty.yaml",
                with_spec("  authorization: CUSTOM\n  authorizerId: \"\"\n"),
                vec!["spec.authorizerId: '' is not an authorizer id"],
            ),
            (
                "idlong.yaml",
                with_spec(&format!(
                    "  authorization: CUSTOM\n  authorizerId: {}\n",
                    "a".repeat(65)
                )),
                vec!["is not an authorizer id"],
            ),
            (
                "multi.yaml",
                format!("{GOOD}---\n{GOOD}"),
                vec!["more than one YAML document"],
            ),
            ("nul.yaml", "apiVersion: a\0".into(), vec!["NUL bytes"]),
        ];
        for (file, text, wants) in cases {
            let got = errors(file, &text).join("\n");
            for w in wants {
                assert!(got.contains(w), "{file}: expected {w:?} in:\n{got}");
            }
        }
    }

    const OPTIONS: &str = "  cors:
    allowOrigins: [\"https://app.example.com\", \"http://localhost:3000\"]
    allowHeaders: [Content-Type, X-Trace]
    exposeHeaders: [X-Request-Id]
    maxAge: 600
    allowCredentials: true
  throttle:
    rateLimit: 12.5
    burstLimit: 40
  timeoutMs: 5000
";

    #[test]
    fn route_options_parse() {
        let m = parse(Path::new("a.yaml"), with_spec(OPTIONS).as_bytes()).unwrap();
        let cors = m.cors.as_ref().unwrap();
        assert_eq!(
            cors.allow_origins,
            vec!["https://app.example.com", "http://localhost:3000"]
        );
        assert_eq!(cors.allow_methods, None);
        assert_eq!(
            cors.allow_headers.as_deref(),
            Some(&["Content-Type".to_string(), "X-Trace".to_string()][..])
        );
        assert_eq!(cors.expose_headers, vec!["X-Request-Id"]);
        assert_eq!((cors.max_age, cors.allow_credentials), (Some(600), true));
        let t = m.throttle.unwrap();
        assert_eq!((t.rate_limit.get(), t.burst_limit), (12.5, 40));
        assert_eq!(m.timeout_ms, Some(5000));
        let json = r#"{"apiVersion":"apimount/v1","kind":"ServiceMount","metadata":{"name":"p"},
            "spec":{"path":"/p","function":"f","cors":{"allowOrigins":["*"],"allowMethods":["GET"]},
            "throttle":{"rateLimit":100,"burstLimit":200},"timeoutMs":29000}}"#;
        let m = parse(Path::new("p.json"), json.as_bytes()).unwrap();
        assert_eq!(m.cors.unwrap().allow_methods, Some(vec![HttpMethod::Get]));
        assert_eq!(m.throttle.unwrap().rate_limit.get(), 100.0);
    }

    #[test]
    fn generation_follows_the_route_options_but_not_the_throttle() {
        use sha2::{Digest, Sha256};
        let plain = parse(Path::new("a.yaml"), GOOD.as_bytes()).unwrap();
        // Without options, the generation is what it was before they existed.
        let before = "path=/accounts\nfunction=account-service\nmethods=ANY\nproxy=true\nauthorization=NONE\nauthorizer=\napiKey=false\nadopt=false\n";
        let want: String = Sha256::digest(before.as_bytes())[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(plain.generation(), want);
        let gen = |extra: &str| {
            parse(Path::new("a.yaml"), with_spec(extra).as_bytes())
                .unwrap()
                .generation()
        };
        let cors = gen("  cors:\n    allowOrigins: [\"*\"]\n");
        assert_ne!(cors, want);
        assert_ne!(
            gen("  cors:\n    allowOrigins: [\"*\"]\n    maxAge: 5\n"),
            cors
        );
        assert_ne!(gen("  timeoutMs: 5000\n"), want);
        assert_ne!(gen("  timeoutMs: 5000\n"), gen("  timeoutMs: 6000\n"));
        // A throttle edit is made on the stage alone: no marker changes.
        assert_eq!(
            gen("  throttle:\n    rateLimit: 10\n    burstLimit: 20\n"),
            want
        );
    }

    /// (extra spec lines, fragments the messages must contain)
    #[test]
    fn bad_route_options_table() {
        let cors = |body: &str| format!("  cors:\n{body}");
        let throttle = |rate: &str, burst: &str| {
            format!("  throttle:\n    rateLimit: {rate}\n    burstLimit: {burst}\n")
        };
        let cases: Vec<(String, Vec<&str>)> = vec![
            (
                cors("    allowOrigins: []\n"),
                vec!["spec.cors.allowOrigins: must list at least one origin"],
            ),
            (
                cors("    allowOrigins: [app.example.com]\n"),
                vec!["spec.cors.allowOrigins[0]: 'app.example.com' is not an origin"],
            ),
            (
                cors("    allowOrigins: [\"https://a.example/\"]\n"),
                vec!["spec.cors.allowOrigins[0]:", "does not name a host"],
            ),
            (
                cors("    allowOrigins: [\"https://a.example:99999\"]\n"),
                vec!["has the port '99999'"],
            ),
            (
                cors("    allowOrigins: [\"https://a.example\", \"https://a.example\"]\n"),
                vec!["spec.cors.allowOrigins[1]: https://a.example is listed twice"],
            ),
            (
                cors("    allowOrigins: [\"*\", \"https://a.example\"]\n"),
                vec!["list it alone"],
            ),
            (
                cors("    allowOrigins: [\"*\"]\n    allowCredentials: true\n"),
                vec!["spec.cors.allowCredentials: cannot be true with the origin \"*\""],
            ),
            (
                cors("    allowOrigins: [\"*\"]\n    allowCredentials: \"true\"\n"),
                vec!["spec.cors.allowCredentials: expected a boolean"],
            ),
            (
                cors("    allowOrigins: [\"*\"]\n    allowMethods: [ANY]\n"),
                vec!["spec.cors.allowMethods[0]: 'ANY' is not a method a browser sends"],
            ),
            (
                cors("    allowOrigins: [\"*\"]\n    allowMethods: [GET, GET]\n"),
                vec!["spec.cors.allowMethods[1]: GET is listed twice"],
            ),
            (
                cors("    allowOrigins: [\"*\"]\n    allowMethods: []\n"),
                vec!["spec.cors.allowMethods: must list at least one"],
            ),
            (
                cors("    allowOrigins: [\"*\"]\n    allowHeaders: [\"Content Type\"]\n"),
                vec!["spec.cors.allowHeaders[0]: 'Content Type' is not a header name"],
            ),
            (
                cors("    allowOrigins: [\"*\"]\n    exposeHeaders: [\"X-'a'\"]\n"),
                vec!["spec.cors.exposeHeaders[0]:", "is not a header name"],
            ),
            (
                cors("    allowOrigins: [\"*\"]\n    maxAge: 86401\n"),
                vec!["spec.cors.maxAge: 86401 is out of range: 0 to 86400"],
            ),
            (
                cors("    allowOrigins: [\"*\"]\n    maxAge: -1\n"),
                vec!["spec.cors.maxAge: -1 is out of range"],
            ),
            (
                cors("    allowOrigins: [\"*\"]\n    colour: red\n"),
                vec!["colour: unknown field"],
            ),
            (cors("    allowMethods: [GET]\n"), vec!["allowOrigins"]),
            (
                format!(
                    "  methods: [GET, OPTIONS]\n{}",
                    cors("    allowOrigins: [\"*\"]\n")
                ),
                vec!["spec.cors: cannot be used with OPTIONS in spec.methods"],
            ),
            (
                throttle("0", "10"),
                vec!["spec.throttle.rateLimit: 0 is not a rate"],
            ),
            (
                throttle("-5", "10"),
                vec!["spec.throttle.rateLimit: -5 is not a rate"],
            ),
            (
                throttle("1000001", "10"),
                vec!["spec.throttle.rateLimit: 1000001 is above 1000000 requests per second"],
            ),
            (
                throttle("\"100\"", "10"),
                vec!["spec.throttle.rateLimit: expected a number"],
            ),
            (
                throttle("100", "0"),
                vec!["spec.throttle.burstLimit: 0 is out of range: 1 to 1000000"],
            ),
            (
                throttle("100", "1000001"),
                vec!["spec.throttle.burstLimit: 1000001 is out of range: 1 to 1000000"],
            ),
            (throttle("100", "2.5"), vec!["burstLimit"]),
            (
                "  throttle:\n    rateLimit: 100\n".into(),
                vec!["burstLimit"],
            ),
            (
                "  timeoutMs: 49\n".into(),
                vec!["spec.timeoutMs: 49 is out of range: 50 to 29000 milliseconds"],
            ),
            (
                "  timeoutMs: 29001\n".into(),
                vec!["spec.timeoutMs: 29001 is out of range"],
            ),
            (
                "  timeoutMs: \"5000\"\n".into(),
                vec!["spec.timeoutMs: expected a number"],
            ),
            ("  timeoutMs: fast\n".into(), vec!["timeoutMs"]),
        ];
        for (extra, wants) in cases {
            let got = errors("o.yaml", &with_spec(&extra)).join("\n");
            for w in wants {
                assert!(got.contains(w), "{extra}: expected {w:?} in:\n{got}");
            }
            assert!(got.starts_with("o.yaml:"), "{got}");
        }
        // Every problem of the options is listed at once.
        let all = with_spec(&format!(
            "{}{}  timeoutMs: 1\n",
            cors("    allowOrigins: [nope]\n    maxAge: 999999\n"),
            throttle("0", "0")
        ));
        assert_eq!(
            parse(Path::new("o.yaml"), all.as_bytes())
                .unwrap_err()
                .len(),
            5
        );
    }

    #[test]
    fn every_problem_is_reported_not_only_the_first() {
        let text = GOOD
            .replace("name: accounts", "name: Bad")
            .replace("path: /accounts", "path: /a//b")
            .replace("function: account-service", "function: \"x y\"");
        let errs = parse(Path::new("m.yaml"), text.as_bytes()).unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:?}");
    }

    #[test]
    fn size_cap_and_non_utf8() {
        let big = format!("{GOOD}# {}\n", "x".repeat(MAX_MANIFEST_BYTES as usize));
        assert!(errors("big.yaml", &big)[0].contains("limited to 65536 bytes"));
        let e = parse(Path::new("latin1.yaml"), b"name: caf\xe9\n").unwrap_err();
        assert!(e[0].message.contains("not UTF-8"), "{e:?}");
    }

    #[test]
    fn alias_bombs_and_deep_nesting_are_refused() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            bomb.push_str(&format!(
                "b{i}: &b{i} [{}]\n",
                vec![
                    if i == 1 {
                        "*a".to_string()
                    } else {
                        format!("*b{}", i - 1)
                    };
                    8
                ]
                .join(", ")
            ));
        }
        assert!(parse(Path::new("bomb.yaml"), bomb.as_bytes()).is_err());
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(parse(Path::new("deep.yaml"), deep.as_bytes()).is_err());
    }

    #[test]
    fn salvage_reads_the_name_of_an_invalid_file() {
        let text = GOOD.replace("path: /accounts", "path: /a//b");
        assert_eq!(salvage_name(text.as_bytes()).as_deref(), Some("accounts"));
        assert_eq!(salvage_name(b"{{{"), None);
        // At the size limit a file is still read for its name; one byte more
        // and it is not read at all (as parse refuses it).
        let limit = MAX_MANIFEST_BYTES as usize;
        let at_limit = format!("{text}#{}\n", "x".repeat(limit - text.len() - 2));
        assert_eq!(at_limit.len(), limit);
        assert_eq!(
            salvage_name(at_limit.as_bytes()).as_deref(),
            Some("accounts")
        );
        let over = format!("{text}#{}\n", "x".repeat(limit - text.len() - 1));
        assert_eq!(salvage_name(over.as_bytes()), None);
    }

    fn mount(file: &str, name: &str, path: &str) -> Mount {
        let text = GOOD
            .replace("name: accounts", &format!("name: {name}"))
            .replace("path: /accounts", &format!("path: {path}"));
        parse(Path::new(file), text.as_bytes()).unwrap()
    }

    #[test]
    fn duplicates_prefer_the_incumbent_then_file_order() {
        let ms = vec![
            mount("a.yaml", "one", "/x"),
            mount("b.yaml", "two", "/x"),
            mount("c.yaml", "one", "/y"),
            mount("d.yaml", "nested", "/x/admin"),
        ];
        let d = find_duplicates(&ms, &|_| false);
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].loser, d[0].winner, d[0].field), (1, 0, "spec.path"));
        assert_eq!(
            (d[1].loser, d[1].winner, d[1].field),
            (2, 0, "metadata.name")
        );
        // b.yaml is live: it keeps /x and a.yaml loses.
        let d = find_duplicates(&ms, &|m| m.file == Path::new("b.yaml"));
        assert!(d.iter().any(|d| d.loser == 0 && d.winner == 1));
        assert!(duplicate_error(&ms, &d[0])
            .to_string()
            .contains("already used by"));
    }

    #[test]
    fn file_names() {
        for ok in ["a.yaml", "b.yml", "c.json", "D.YAML"] {
            assert!(is_manifest_file_name(ok), "{ok}");
        }
        for skip in [
            "README.md",
            ".a.yaml",
            "a.yaml~",
            ".a.yaml.swp",
            "..data",
            "a.txt",
        ] {
            assert!(!is_manifest_file_name(skip), "{skip}");
        }
    }

    #[test]
    fn nested_paths() {
        let a = MountPath::parse("/accounts").unwrap();
        assert!(MountPath::parse("/accounts/admin").unwrap().is_below(&a));
        assert!(!MountPath::parse("/accounts-admin").unwrap().is_below(&a));
    }
}
