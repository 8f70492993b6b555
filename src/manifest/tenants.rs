//! The tenant policy: which path subtrees, functions and authorization types
//! each team may use, and how many resources its mounts may need. The
//! platform team owns it and keeps it outside the manifest source
//! (`--tenants FILE`). It is parsed and validated like a manifest: every
//! problem names the file, the line and column where known, and the field.
//!
//! ```yaml
//! apiVersion: apimount/v1
//! kind: TenantPolicy
//! accounts:                            # accounts other than the API's whose functions
//!   - id: "222222222222"               #   may be mounted, and the role apimount
//!     roleArn: arn:aws:iam::222222222222:role/apimount-grants  # assumes in each
//!     externalId: platform-apimount    # optional
//! tenants:
//!   - name: accounts                   # also the name of its folder / S3 sub-prefix
//!     paths: [/accounts]               # subtrees it may mount at or below
//!     functions: ["accounts-*"]        # function names, or full ARNs, as globs
//!     authorizations: [NONE, AWS_IAM]  # default: AWS_IAM, CUSTOM, COGNITO_USER_POOLS
//!     authorizers: [abc123, team-jwt]  # authorizers (id or name) its CUSTOM and
//!                                      #   COGNITO_USER_POOLS mounts may use; default none
//!     adopt: false                     # default false
//!     maxResources: 40                 # default: no budget of its own
//!     cors: true                       # default true: may answer CORS preflights
//!     maxRateLimit: 500                # default: no bound; each mount must then throttle,
//!     maxBurstLimit: 1000              #   within these
//!     maxTimeoutMs: 10000              # default: no bound (29,000 is the gateway's own)
//!     accounts: ["222222222222"]       # default: the API's account only
//!     release:                         # bounds on spec.release; default: any release
//!       allowed: true                  #   may its mounts release at all
//!       requireAlarms: true            #   each release names an alarm (or a guard)
//!       minPause: 1m                   #   the shortest step
//!       maxFirstWeight: 25             #   the most traffic the first step gives
//! ```
//!
//! What the rules mean for a mount is decided in `plan::tenancy`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::accounts::{check_external_id, check_role_arn, is_account_id, AccountRole};
use super::options::{RateLimit, MAX_BURST_LIMIT, MAX_TIMEOUT_MS, MIN_TIMEOUT_MS};
use super::yaml::{pos, quoted_at, yaml_error, yaml_options};
use super::{check_tenant_name, Authorization, ErrorKind, ManifestError, MountPath, API_VERSION};

/// The `kind` of a tenant policy.
pub const POLICY_KIND: &str = "TenantPolicy";
/// Largest policy file read: thousands of tenants fit in far less.
pub const MAX_POLICY_BYTES: u64 = 1024 * 1024;
/// The authorization types a tenant may use when its policy lists none:
/// every type but NONE, which must be granted explicitly.
pub const DEFAULT_AUTHORIZATIONS: [Authorization; 3] = [
    Authorization::AwsIam,
    Authorization::Custom,
    Authorization::CognitoUserPools,
];

/// A validated tenant policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPolicy {
    pub file: PathBuf,
    /// Accounts other than the API's, with the role for each.
    pub accounts: Vec<AccountRole>,
    pub tenants: Vec<Tenant>,
}

/// What one tenant may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Also the name of its folder (or S3 sub-prefix) of manifests.
    pub name: String,
    /// Path subtrees it may mount at or below (`/` for the whole API).
    pub paths: Vec<String>,
    /// Functions its mounts may name.
    pub functions: Vec<FunctionPattern>,
    pub authorizations: Vec<Authorization>,
    /// The authorizers (by id or by name) its `CUSTOM` and
    /// `COGNITO_USER_POOLS` mounts may name: an authorizer decides who gets
    /// in, so one that lets everyone in would be `NONE` under another name,
    /// and another team's would let this team's routes ride on it.
    pub authorizers: Vec<String>,
    /// Whether its mounts may take over routes of their shape made by other tools.
    pub adopt: bool,
    /// Most API resources its mounts may need in all.
    pub max_resources: Option<usize>,
    /// Whether its mounts may answer CORS preflights (`spec.cors`).
    pub cors: bool,
    /// The highest `throttle.rateLimit` its mounts may set; with it (or
    /// `max_burst_limit`) every mount must set `throttle`, since an
    /// unthrottled route runs at the stage's and account's limits.
    pub max_rate_limit: Option<RateLimit>,
    /// The highest `throttle.burstLimit` its mounts may set.
    pub max_burst_limit: Option<u32>,
    /// The longest `timeoutMs` its mounts may set (a mount without one has
    /// API Gateway's 29,000 ms).
    pub max_timeout_ms: Option<u32>,
    /// The accounts whose functions its mounts may name; `None`: the API's
    /// account only.
    pub accounts: Option<Vec<String>>,
    /// What its mounts' releases (`spec.release`) may do.
    pub release: ReleaseBounds,
}

/// A tenant's bounds on progressive releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseBounds {
    /// Whether its mounts may release at all (default true).
    pub allowed: bool,
    /// Whether each release must name an alarm (or a guard) that can stop it.
    pub require_alarms: bool,
    /// The shortest step a release may have.
    pub min_pause: Option<std::time::Duration>,
    /// The largest share (percent) its first step may give the new version;
    /// a release all at once gives it 100.
    pub max_first_weight: Option<u8>,
}

impl Default for ReleaseBounds {
    fn default() -> Self {
        ReleaseBounds {
            allowed: true,
            require_alarms: false,
            min_pause: None,
            max_first_weight: None,
        }
    }
}

/// A function name glob (`accounts-*`) or function ARN glob
/// (`arn:aws:lambda:*:*:function:accounts-*`): `*` stands for any run of
/// characters, `?` for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionPattern(String);

impl FunctionPattern {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the pattern is about ARNs rather than names.
    pub fn is_arn(&self) -> bool {
        self.0.starts_with("arn:")
    }

    /// Whether `text` (a name, or an ARN for an ARN pattern) matches.
    pub fn matches(&self, text: &str) -> bool {
        glob_matches(self.0.as_bytes(), text.as_bytes())
    }
}

/// Whether a wildcard may stand for this byte: never for the separators of
/// an ARN (`:`) or a path (`/`), so `arn:…:function:*-team` cannot reach
/// into the qualifier (`payments:x-team`) or another field.
fn wild(c: u8) -> bool {
    c != b':' && c != b'/'
}

/// `*` matches any run (possibly empty), `?` any one byte, neither across
/// `:` or `/`; all else itself.
fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it is trying to cover.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && ((pattern[p] == b'?' && wild(text[t])) || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star.filter(|&(_, st)| wild(text[st])) {
            // The star takes one more byte, if it may.
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

// ---- wire format -------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicyDoc {
    api_version: Spanned<String>,
    kind: Spanned<String>,
    #[serde(default)]
    accounts: Option<Spanned<Vec<AccountDoc>>>,
    tenants: Spanned<Vec<TenantDoc>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AccountDoc {
    id: Spanned<String>,
    role_arn: Spanned<String>,
    #[serde(default)]
    external_id: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TenantDoc {
    name: Spanned<String>,
    paths: Spanned<Vec<Spanned<String>>>,
    functions: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    authorizations: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    authorizers: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    adopt: Option<Spanned<bool>>,
    #[serde(default)]
    max_resources: Option<Spanned<u64>>,
    #[serde(default)]
    cors: Option<Spanned<bool>>,
    #[serde(default)]
    max_rate_limit: Option<Spanned<f64>>,
    #[serde(default)]
    max_burst_limit: Option<Spanned<i64>>,
    #[serde(default)]
    max_timeout_ms: Option<Spanned<i64>>,
    #[serde(default)]
    accounts: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    release: Option<Spanned<ReleaseBoundsDoc>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ReleaseBoundsDoc {
    #[serde(default)]
    allowed: Option<Spanned<bool>>,
    #[serde(default)]
    require_alarms: Option<Spanned<bool>>,
    #[serde(default)]
    min_pause: Option<Spanned<String>>,
    #[serde(default)]
    max_first_weight: Option<Spanned<i64>>,
}

/// Reads and validates the policy file.
pub fn load_policy(file: &Path) -> Result<TenantPolicy, Vec<ManifestError>> {
    let unreadable = |message: String| {
        vec![ManifestError {
            file: file.to_path_buf(),
            position: None,
            field: None,
            message,
            kind: ErrorKind::Unreadable,
        }]
    };
    let f = std::fs::File::open(file).map_err(|e| unreadable(format!("cannot be read: {e}")))?;
    let mut bytes = Vec::new();
    f.take(MAX_POLICY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| unreadable(format!("cannot be read: {e}")))?;
    if bytes.len() as u64 > MAX_POLICY_BYTES {
        return Err(unreadable(format!(
            "is larger than {MAX_POLICY_BYTES} bytes, the limit for a tenant policy"
        )));
    }
    parse_policy(file, &bytes)
}

/// Parses and validates a policy's bytes; every problem is listed.
pub fn parse_policy(file: &Path, bytes: &[u8]) -> Result<TenantPolicy, Vec<ManifestError>> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        vec![ManifestError {
            file: file.to_path_buf(),
            position: None,
            field: None,
            message: format!(
                "file is not UTF-8 text (invalid byte at offset {})",
                e.valid_up_to()
            ),
            kind: ErrorKind::Unreadable,
        }]
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let doc: PolicyDoc = serde_saphyr::from_str_with_options(text, yaml_options())
        .map_err(|e| vec![yaml_error(file, text, &e)])?;
    Check::new(file, text).policy(doc)
}

/// Collects the problems of one policy document.
struct Check<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<ManifestError>,
}

impl<'a> Check<'a> {
    fn new(file: &'a Path, text: &'a str) -> Check<'a> {
        Check {
            file,
            text,
            errors: Vec::new(),
        }
    }

    fn fail(&mut self, position: Option<(u64, u64)>, field: &str, message: String) {
        self.errors.push(ManifestError {
            file: self.file.to_path_buf(),
            position,
            field: Some(field.to_string()),
            message,
            kind: ErrorKind::Invalid,
        });
    }

    fn policy(mut self, doc: PolicyDoc) -> Result<TenantPolicy, Vec<ManifestError>> {
        if doc.api_version.value != API_VERSION {
            self.fail(
                pos(&doc.api_version),
                "apiVersion",
                format!(
                    "'{}' is not supported; use '{API_VERSION}'",
                    doc.api_version.value.escape_debug()
                ),
            );
        }
        if doc.kind.value != POLICY_KIND {
            self.fail(
                pos(&doc.kind),
                "kind",
                format!(
                    "'{}' is not a tenant policy; use '{POLICY_KIND}'",
                    doc.kind.value.escape_debug()
                ),
            );
        }
        if doc.tenants.value.is_empty() {
            self.fail(
                pos(&doc.tenants),
                "tenants",
                "must list at least one tenant".into(),
            );
        }
        let accounts = self.accounts(doc.accounts.as_ref());
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        // Each delegated path, with the tenant (index) it went to first.
        let mut delegated: BTreeMap<String, usize> = BTreeMap::new();
        let mut tenants = Vec::new();
        for (i, t) in doc.tenants.value.iter().enumerate() {
            let at = format!("tenants[{i}]");
            if let Some(tenant) = self.tenant(&at, t) {
                match names.get(&tenant.name) {
                    Some(first) => self.fail(
                        pos(&t.name),
                        &format!("{at}.name"),
                        format!("'{}' is already the name of tenants[{first}]", tenant.name),
                    ),
                    None => {
                        names.insert(tenant.name.clone(), i);
                    }
                }
                for (j, p) in tenant.paths.iter().enumerate() {
                    match delegated.get(p) {
                        Some(&other) if other != i => self.fail(
                            pos(&t.paths.value[j]),
                            &format!("{at}.paths[{j}]"),
                            format!(
                                "{p} is already delegated to tenants[{other}] ({}); a path goes to one tenant (give a more specific path to carve out a subtree)",
                                doc.tenants.value[other].name.value
                            ),
                        ),
                        Some(_) => self.fail(
                            pos(&t.paths.value[j]),
                            &format!("{at}.paths[{j}]"),
                            format!("{p} is listed twice"),
                        ),
                        None => {
                            delegated.insert(p.clone(), i);
                        }
                    }
                }
                tenants.push(tenant);
            }
        }
        if self.errors.is_empty() {
            Ok(TenantPolicy {
                file: self.file.to_path_buf(),
                accounts,
                tenants,
            })
        } else {
            Err(self.errors)
        }
    }

    fn tenant(&mut self, at: &str, t: &TenantDoc) -> Option<Tenant> {
        let before = self.errors.len();
        if let Err(m) = check_tenant_name(&t.name.value) {
            self.fail(pos(&t.name), &format!("{at}.name"), m);
        }
        if t.paths.value.is_empty() {
            self.fail(
                pos(&t.paths),
                &format!("{at}.paths"),
                "must list at least one path subtree, such as /accounts".into(),
            );
        }
        let mut paths = Vec::new();
        for (j, p) in t.paths.value.iter().enumerate() {
            let raw = p.value.as_str();
            if raw == "/" {
                paths.push(raw.to_string());
                continue;
            }
            match MountPath::parse(raw) {
                Ok(path) => paths.push(path.as_str().to_string()),
                Err(m) => self.fail(
                    pos(p),
                    &format!("{at}.paths[{j}]"),
                    format!("'{}' {m}", raw.escape_debug()),
                ),
            }
        }
        if t.functions.value.is_empty() {
            self.fail(
                pos(&t.functions),
                &format!("{at}.functions"),
                "must list at least one function name or ARN pattern, such as \"accounts-*\""
                    .into(),
            );
        }
        let mut functions = Vec::new();
        for (j, f) in t.functions.value.iter().enumerate() {
            match check_function_pattern(&f.value) {
                Ok(()) => functions.push(FunctionPattern(f.value.clone())),
                Err(m) => self.fail(pos(f), &format!("{at}.functions[{j}]"), m),
            }
        }
        let authorizations = match &t.authorizations {
            None => DEFAULT_AUTHORIZATIONS.to_vec(),
            Some(list) => {
                let mut out = Vec::new();
                for (j, a) in list.value.iter().enumerate() {
                    let field = format!("{at}.authorizations[{j}]");
                    match Authorization::parse(&a.value) {
                        Some(x) if out.contains(&x) => {
                            self.fail(pos(a), &field, format!("{} is listed twice", x.as_str()))
                        }
                        Some(x) => out.push(x),
                        None => self.fail(
                            pos(a),
                            &field,
                            format!(
                                "'{}' is not one of NONE, AWS_IAM, CUSTOM, COGNITO_USER_POOLS",
                                a.value.escape_debug()
                            ),
                        ),
                    }
                }
                out
            }
        };
        let mut authorizers: Vec<String> = Vec::new();
        for (j, a) in t
            .authorizers
            .iter()
            .flat_map(|l| l.value.iter())
            .enumerate()
        {
            let field = format!("{at}.authorizers[{j}]");
            let v = a.value.as_str();
            if v.is_empty()
                || v.chars().count() > 128
                || v.chars().any(|c| c.is_control() || c.is_whitespace())
            {
                self.fail(
                    pos(a),
                    &field,
                    format!(
                        "'{}' is not an authorizer id or name (1 to 128 characters, no spaces or control characters)",
                        v.escape_debug()
                    ),
                );
            } else if authorizers.iter().any(|x| x == v) {
                self.fail(pos(a), &field, format!("'{v}' is listed twice"));
            } else {
                authorizers.push(v.to_string());
            }
        }
        for (name, flag) in [("adopt", &t.adopt), ("cors", &t.cors)] {
            if let Some(a) = flag {
                if let Some(quote) = quoted_at(self.text, pos(a)) {
                    self.fail(
                        pos(a),
                        &format!("{at}.{name}"),
                        format!(
                            "expected a boolean (true or false), found the string {quote}{}{quote}",
                            a.value
                        ),
                    );
                }
            }
        }
        let max_rate_limit = t.max_rate_limit.as_ref().and_then(|r| {
            let field = format!("{at}.maxRateLimit");
            if let Some(quote) = quoted_at(self.text, pos(r)) {
                self.fail(
                    pos(r),
                    &field,
                    format!(
                        "expected a number, found the string {quote}{}{quote}",
                        r.value
                    ),
                );
                return None;
            }
            RateLimit::new(r.value)
                .map_err(|m| self.fail(pos(r), &field, m))
                .ok()
        });
        let max_burst_limit = t.max_burst_limit.as_ref().and_then(|b| {
            self.whole(
                b,
                &format!("{at}.maxBurstLimit"),
                1,
                u64::from(MAX_BURST_LIMIT),
                "requests",
            )
        });
        let max_timeout_ms = t.max_timeout_ms.as_ref().and_then(|m| {
            self.whole(
                m,
                &format!("{at}.maxTimeoutMs"),
                u64::from(MIN_TIMEOUT_MS),
                u64::from(MAX_TIMEOUT_MS),
                "milliseconds",
            )
        });
        let max_resources = t.max_resources.as_ref().map(|m| m.value);
        if let Some(m) = &t.max_resources {
            if m.value == 0 {
                self.fail(
                    pos(m),
                    &format!("{at}.maxResources"),
                    "must be at least 1 (leave it out for no budget of its own)".into(),
                );
            }
        }
        let mut accounts: Option<Vec<String>> = None;
        if let Some(list) = &t.accounts {
            let mut out: Vec<String> = Vec::new();
            for (j, a) in list.value.iter().enumerate() {
                let field = format!("{at}.accounts[{j}]");
                if !is_account_id(&a.value) {
                    self.fail(
                        pos(a),
                        &field,
                        format!(
                            "'{}' is not an account id (12 digits, quoted)",
                            a.value.escape_debug()
                        ),
                    );
                } else if out.contains(&a.value) {
                    self.fail(pos(a), &field, format!("{} is listed twice", a.value));
                } else {
                    out.push(a.value.clone());
                }
            }
            accounts = Some(out);
        }
        let release = t
            .release
            .as_ref()
            .map(|r| self.release_bounds(&r.value, at))
            .unwrap_or_default();
        (self.errors.len() == before).then(|| Tenant {
            name: t.name.value.clone(),
            paths,
            functions,
            authorizations,
            authorizers,
            adopt: t.adopt.as_ref().is_some_and(|a| a.value),
            max_resources: max_resources.map(|m| m as usize),
            cors: t.cors.as_ref().is_none_or(|c| c.value),
            max_rate_limit,
            max_burst_limit: max_burst_limit.map(|b| b as u32),
            max_timeout_ms: max_timeout_ms.map(|m| m as u32),
            accounts,
            release,
        })
    }

    /// A tenant's `release` bounds.
    fn release_bounds(&mut self, r: &ReleaseBoundsDoc, at: &str) -> ReleaseBounds {
        for (name, flag) in [
            ("allowed", &r.allowed),
            ("requireAlarms", &r.require_alarms),
        ] {
            if let Some(a) = flag {
                if let Some(quote) = quoted_at(self.text, pos(a)) {
                    self.fail(
                        pos(a),
                        &format!("{at}.release.{name}"),
                        format!(
                            "expected a boolean (true or false), found the string {quote}{}{quote}",
                            a.value
                        ),
                    );
                }
            }
        }
        let min_pause = r.min_pause.as_ref().and_then(|p| {
            crate::settings::parse_duration(&p.value)
                .map_err(|e| self.fail(pos(p), &format!("{at}.release.minPause"), e.to_string()))
                .ok()
        });
        let max_first_weight = r.max_first_weight.as_ref().and_then(|w| {
            self.whole(
                w,
                &format!("{at}.release.maxFirstWeight"),
                1,
                100,
                "percent",
            )
        });
        ReleaseBounds {
            allowed: r.allowed.as_ref().is_none_or(|a| a.value),
            require_alarms: r.require_alarms.as_ref().is_some_and(|a| a.value),
            min_pause,
            max_first_weight: max_first_weight.map(|w| w as u8),
        }
    }

    /// The policy's `accounts`: ids, roles in those accounts, external ids.
    fn accounts(&mut self, list: Option<&Spanned<Vec<AccountDoc>>>) -> Vec<AccountRole> {
        let mut out: Vec<AccountRole> = Vec::new();
        for (i, a) in list.iter().flat_map(|l| l.value.iter()).enumerate() {
            let at = format!("accounts[{i}]");
            let id = a.id.value.as_str();
            if !is_account_id(id) {
                self.fail(
                    pos(&a.id),
                    &format!("{at}.id"),
                    format!(
                        "'{}' is not an account id (12 digits, quoted)",
                        id.escape_debug()
                    ),
                );
                continue;
            }
            if out.iter().any(|x| x.account == id) {
                self.fail(
                    pos(&a.id),
                    &format!("{at}.id"),
                    format!("{id} is listed twice"),
                );
                continue;
            }
            let mut ok = true;
            if let Err(m) = check_role_arn(id, &a.role_arn.value) {
                self.fail(pos(&a.role_arn), &format!("{at}.roleArn"), m);
                ok = false;
            }
            if let Some(x) = &a.external_id {
                if let Err(m) = check_external_id(&x.value) {
                    self.fail(pos(x), &format!("{at}.externalId"), m);
                    ok = false;
                }
            }
            if ok {
                out.push(AccountRole {
                    account: id.to_string(),
                    role_arn: a.role_arn.value.clone(),
                    external_id: a.external_id.as_ref().map(|x| x.value.clone()),
                });
            }
        }
        out
    }

    /// A whole number within `min..=max`, or `None` after reporting why not.
    fn whole(
        &mut self,
        v: &Spanned<i64>,
        field: &str,
        min: u64,
        max: u64,
        unit: &str,
    ) -> Option<u64> {
        if let Some(quote) = quoted_at(self.text, pos(v)) {
            self.fail(
                pos(v),
                field,
                format!(
                    "expected a number, found the string {quote}{}{quote}",
                    v.value
                ),
            );
            return None;
        }
        match u64::try_from(v.value) {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.fail(
                    pos(v),
                    field,
                    format!("{} is out of range: {min} to {max} {unit}", v.value),
                );
                None
            }
        }
    }
}

/// A function name glob, or a function ARN glob.
fn check_function_pattern(p: &str) -> Result<(), String> {
    let part_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*' | '?' | '$'))
    };
    if let Some(rest) = p.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.split(':').collect();
        let shape = (6..=7).contains(&parts.len())
            && matches!(parts[1], "lambda" | "*")
            && matches!(parts[4], "function" | "*")
            && parts.iter().all(|s| part_ok(s));
        if !shape {
            return Err(format!(
                "'{}' is not a function ARN pattern (arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER], with * and ? as wildcards)",
                p.escape_debug()
            ));
        }
        return Ok(());
    }
    if p.len() > 64 || !part_ok(p) || p.contains('$') {
        return Err(format!(
            "'{}' is not a function name pattern (letters, digits, '-' and '_', with * and ? as wildcards)",
            p.escape_debug()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "apiVersion: apimount/v1
kind: TenantPolicy
tenants:
  - name: accounts
    paths: [/accounts]
    functions: [\"accounts-*\"]
    authorizations: [NONE, AWS_IAM]
    adopt: true
    maxResources: 40
    cors: false
    maxRateLimit: 50.5
    maxBurstLimit: 100
    maxTimeoutMs: 10000
  - name: admin
    paths: [/accounts/admin, /admin]
    functions: [\"arn:aws:lambda:*:*:function:admin-?\"]
";

    /// An authorizer one character over the 128 allowed.
    static AUTHORIZER_129: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!("adopt: true\n    authorizers: [\"{}\"]", "a".repeat(129))
    });

    #[test]
    fn a_function_name_pattern_is_at_most_64_characters() {
        assert_eq!(check_function_pattern(&"a".repeat(64)), Ok(()));
        assert_eq!(
            check_function_pattern(&format!("{}*", "a".repeat(63))),
            Ok(())
        );
        assert!(check_function_pattern(&"a".repeat(65))
            .unwrap_err()
            .contains("is not a function name pattern"));
    }

    #[test]
    fn a_policy_file_is_read_up_to_one_mebibyte() {
        assert_eq!(MAX_POLICY_BYTES, 1 << 20);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tenants.yaml");
        std::fs::write(&file, GOOD).unwrap();
        assert_eq!(load_policy(&file).unwrap().tenants.len(), 2);
        // A comment pads it to the limit: still read; one byte more is not.
        let pad = MAX_POLICY_BYTES as usize - GOOD.len() - 2;
        std::fs::write(&file, format!("{GOOD}#{}\n", "x".repeat(pad))).unwrap();
        assert_eq!(load_policy(&file).unwrap().tenants.len(), 2);
        std::fs::write(&file, format!("{GOOD}#{}\n", "x".repeat(pad + 1))).unwrap();
        let e = load_policy(&file).unwrap_err();
        assert!(
            e[0].to_string().contains("is larger than 1048576 bytes"),
            "{e:?}"
        );
    }

    fn errors(text: &str) -> Vec<String> {
        match parse_policy(Path::new("tenants.yaml"), text.as_bytes()) {
            Ok(p) => panic!("should be invalid, parsed as {p:?}"),
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn a_good_policy_and_its_defaults() {
        let p = parse_policy(Path::new("tenants.yaml"), GOOD.as_bytes()).unwrap();
        assert_eq!(p.tenants.len(), 2);
        let a = &p.tenants[0];
        assert_eq!(a.paths, vec!["/accounts"]);
        assert_eq!(
            a.authorizations,
            vec![Authorization::None, Authorization::AwsIam]
        );
        assert!(a.adopt);
        assert_eq!(a.max_resources, Some(40));
        assert!(!a.cors);
        assert_eq!(a.max_rate_limit.map(|r| r.get()), Some(50.5));
        assert_eq!(
            (a.max_burst_limit, a.max_timeout_ms),
            (Some(100), Some(10000))
        );
        let b = &p.tenants[1];
        assert_eq!(b.authorizations, DEFAULT_AUTHORIZATIONS.to_vec());
        assert!(!b.adopt);
        assert_eq!(b.max_resources, None);
        assert!(b.cors);
        assert_eq!(
            (b.max_rate_limit, b.max_burst_limit, b.max_timeout_ms),
            (None, None, None)
        );
        assert!(b.functions[0].is_arn());
    }

    #[test]
    fn each_problem_names_the_field() {
        let table: &[(&str, &str, &str)] = &[
            (
                "kind: TenantPolicy",
                "kind: ServiceMount",
                "kind: 'ServiceMount' is not a tenant policy",
            ),
            (
                "apiVersion: apimount/v1",
                "apiVersion: v2",
                "apiVersion: 'v2' is not supported",
            ),
            (
                "name: admin",
                "name: Admin",
                "tenants[1].name: 'Admin' must use only lowercase",
            ),
            (
                "name: admin",
                "name: accounts",
                "tenants[1].name: 'accounts' is already the name of tenants[0]",
            ),
            (
                "paths: [/accounts]",
                "paths: []",
                "tenants[0].paths: must list at least one path",
            ),
            (
                "paths: [/accounts]",
                "paths: [accounts]",
                "tenants[0].paths[0]: 'accounts' must start with '/'",
            ),
            (
                "paths: [/accounts/admin, /admin]",
                "paths: [/accounts, /admin]",
                "tenants[1].paths[0]: /accounts is already delegated to tenants[0] (accounts)",
            ),
            (
                "paths: [/accounts/admin, /admin]",
                "paths: [/admin, /admin]",
                "tenants[1].paths[1]: /admin is listed twice",
            ),
            (
                "functions: [\"accounts-*\"]",
                "functions: []",
                "tenants[0].functions: must list at least one",
            ),
            (
                "functions: [\"accounts-*\"]",
                "functions: [\"acc/x\"]",
                "tenants[0].functions[0]: 'acc/x' is not a function name pattern",
            ),
            (
                "functions: [\"arn:aws:lambda:*:*:function:admin-?\"]",
                "functions: [\"arn:aws:s3:::b\"]",
                "tenants[1].functions[0]: 'arn:aws:s3:::b' is not a function ARN pattern",
            ),
            (
                "functions: [\"arn:aws:lambda:*:*:function:admin-?\"]",
                "functions: [\"arn:aws:s3:eu-west-1:123456789012:function:b\"]",
                "tenants[1].functions[0]: 'arn:aws:s3:eu-west-1:123456789012:function:b' is not a function ARN pattern",
            ),
            (
                "functions: [\"arn:aws:lambda:*:*:function:admin-?\"]",
                "functions: [\"arn:aws:lambda:*:*:layer:admin-?\"]",
                "tenants[1].functions[0]: 'arn:aws:lambda:*:*:layer:admin-?' is not a function ARN pattern",
            ),
            (
                "adopt: true",
                "adopt: true\n    authorizers: [\"a b\"]",
                "tenants[0].authorizers[0]: 'a b' is not an authorizer id or name",
            ),
            (
                "adopt: true",
                &AUTHORIZER_129,
                "tenants[0].authorizers[0]: 'aaaa",
            ),
            (
                "authorizations: [NONE, AWS_IAM]",
                "authorizations: [NONE, NONE]",
                "tenants[0].authorizations[1]: NONE is listed twice",
            ),
            (
                "authorizations: [NONE, AWS_IAM]",
                "authorizations: [OPEN]",
                "tenants[0].authorizations[0]: 'OPEN' is not one of",
            ),
            (
                "adopt: true",
                "adopt: \"true\"",
                "tenants[0].adopt: expected a boolean",
            ),
            (
                "maxResources: 40",
                "maxResources: 0",
                "tenants[0].maxResources: must be at least 1",
            ),
            ("maxResources: 40", "maxResources: -1", "tenants.yaml:9:"),
            (
                "cors: false",
                "cors: \"false\"",
                "tenants[0].cors: expected a boolean",
            ),
            (
                "maxRateLimit: 50.5",
                "maxRateLimit: 0",
                "tenants[0].maxRateLimit: 0 is not a rate",
            ),
            (
                "maxRateLimit: 50.5",
                "maxRateLimit: 2000000",
                "tenants[0].maxRateLimit: 2000000 is above 1000000",
            ),
            (
                "maxBurstLimit: 100",
                "maxBurstLimit: 1000001",
                "tenants[0].maxBurstLimit: 1000001 is out of range: 1 to 1000000",
            ),
            (
                "maxTimeoutMs: 10000",
                "maxTimeoutMs: 30000",
                "tenants[0].maxTimeoutMs: 30000 is out of range: 50 to 29000",
            ),
            (
                "maxTimeoutMs: 10000",
                "maxTimeoutMs: \"100\"",
                "tenants[0].maxTimeoutMs: expected a number",
            ),
            ("adopt: true", "adopt: true\n    extra: 1", "unknown field"),
        ];
        // The longest authorizer id or name is accepted.
        let longest = GOOD.replacen(
            "adopt: true",
            &format!("adopt: true\n    authorizers: [\"{}\"]", "a".repeat(128)),
            1,
        );
        let p = parse_policy(Path::new("tenants.yaml"), longest.as_bytes()).unwrap();
        assert_eq!(p.tenants[0].authorizers, vec!["a".repeat(128)]);
        for (from, to, want) in table {
            assert!(GOOD.contains(from), "{from}");
            let got = errors(&GOOD.replacen(from, to, 1)).join("\n");
            assert!(got.contains(want), "{to}: expected {want:?} in:\n{got}");
            assert!(got.starts_with("tenants.yaml:"), "{got}");
        }
        let got = errors("apiVersion: apimount/v1\nkind: TenantPolicy\ntenants: []\n").join("\n");
        assert!(
            got.contains("tenants: must list at least one tenant"),
            "{got}"
        );
    }

    #[test]
    fn accounts_and_their_roles() {
        let good = "apiVersion: apimount/v1
kind: TenantPolicy
accounts:
  - id: \"222222222222\"
    roleArn: arn:aws:iam::222222222222:role/apimount-grants
    externalId: platform-apimount
  - id: \"333333333333\"
    roleArn: arn:aws-cn:iam::333333333333:role/teams/apimount
tenants:
  - name: payments
    paths: [/payments]
    functions: [\"payment-*\"]
    accounts: [\"222222222222\"]
  - name: orders
    paths: [/orders]
    functions: [\"order-*\"]
";
        let p = parse_policy(Path::new("tenants.yaml"), good.as_bytes()).unwrap();
        assert_eq!(p.accounts.len(), 2);
        assert_eq!(
            p.accounts[0].external_id.as_deref(),
            Some("platform-apimount")
        );
        assert_eq!(p.accounts[1].external_id, None);
        assert_eq!(
            p.tenants[0].accounts,
            Some(vec!["222222222222".to_string()])
        );
        assert_eq!(p.tenants[1].accounts, None);
        let table: &[(&str, &str, &str)] = &[
            (
                "id: \"222222222222\"",
                "id: \"2222\"",
                "accounts[0].id: '2222' is not an account id",
            ),
            (
                "id: \"333333333333\"",
                "id: \"222222222222\"",
                "accounts[1].id: 222222222222 is listed twice",
            ),
            (
                "roleArn: arn:aws:iam::222222222222:role/apimount-grants",
                "roleArn: arn:aws:iam::444444444444:role/apimount-grants",
                "accounts[0].roleArn: role arn:aws:iam::444444444444:role/apimount-grants is in account 444444444444",
            ),
            (
                "roleArn: arn:aws:iam::222222222222:role/apimount-grants",
                "roleArn: arn:aws:iam::222222222222:user/x",
                "accounts[0].roleArn: 'arn:aws:iam::222222222222:user/x' is not a role ARN",
            ),
            (
                "externalId: platform-apimount",
                "externalId: \"a b\"",
                "accounts[0].externalId: external id 'a b' must be",
            ),
            (
                "accounts: [\"222222222222\"]",
                "accounts: [\"22\"]",
                "tenants[0].accounts[0]: '22' is not an account id",
            ),
            (
                "accounts: [\"222222222222\"]",
                "accounts: [\"222222222222\", \"222222222222\"]",
                "tenants[0].accounts[1]: 222222222222 is listed twice",
            ),
        ];
        for (from, to, want) in table {
            assert!(good.contains(from), "{from}");
            let got = errors(&good.replacen(from, to, 1)).join("\n");
            assert!(got.contains(want), "{to}: expected {want:?} in:\n{got}");
            assert!(got.starts_with("tenants.yaml:"), "{got}");
        }
    }

    #[test]
    fn globs() {
        let table: &[(&str, &str, bool)] = &[
            ("accounts-*", "accounts-api", true),
            ("accounts-*", "accounts-", true),
            ("accounts-*", "account-api", false),
            ("accounts-*", "payments-accounts-api", false),
            ("*-api", "accounts-api", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*", "anything", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            // Wildcards never cross ':' or '/'.
            (
                "arn:aws:lambda:r:1:function:*-team",
                "arn:aws:lambda:r:1:function:payments:x-team",
                false,
            ),
            (
                "arn:aws:lambda:r:1:function:*-team",
                "arn:aws:lambda:r:1:function:a-team",
                true,
            ),
            (
                "arn:aws:lambda:*:1:function:f",
                "arn:aws:lambda:r:x:1:function:f",
                false,
            ),
            (
                "arn:aws:lambda:?:1:function:f",
                "arn:aws:lambda:::1:function:f",
                false,
            ),
            ("a*", "a/b", false),
            ("*", "a:b", false),
        ];
        for (pattern, text, want) in table {
            assert_eq!(
                FunctionPattern(pattern.to_string()).matches(text),
                *want,
                "{pattern} ~ {text}"
            );
        }
    }
}
