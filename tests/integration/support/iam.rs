//! What IAM would say of the calls apimount made: each recorded request
//! (see [`Recorded`]) named as the IAM action and resource ARN AWS
//! authorises it by, with the condition keys apimount's policy uses, and
//! judged against `deploy/iam-policy.json` by IAM's matching rules: actions
//! case-insensitive, `*` and `?` wildcards in actions and resources (a `*`
//! crosses `:` and `/`), `StringEquals` / `StringLike` conditions that fail
//! when their key is absent, an explicit Deny over any Allow.

use std::collections::BTreeMap;

use serde_json::Value;

use super::faults::Recorded;

/// One call as IAM sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct IamCall {
    pub action: String,
    pub resource: String,
    /// Condition keys with their values (`lambda:Principal`, `s3:prefix`).
    pub context: BTreeMap<String, String>,
}

/// Names a recorded request as IAM would; `Ok(None)` for calls no policy
/// needs to allow (STS GetCallerIdentity), `Err` for a request this does
/// not know how to name (the test must learn it, not skip it).
pub fn iam_call(r: &Recorded, partition: &str, account: &str) -> Result<Option<IamCall>, String> {
    let Some((region, service)) = r.scope.clone() else {
        return Err(format!("{} {}: unsigned request", r.method, r.path));
    };
    let call = |action: String, resource: String| IamCall {
        action,
        resource,
        context: BTreeMap::new(),
    };
    let query = |name: &str| -> Option<String> {
        r.query.as_deref()?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then(|| decode(v))
        })
    };
    match service.as_str() {
        // GetCallerIdentity needs no permission; AssumeRole is judged on
        // the role asked for.
        "sts" => {
            let body = String::from_utf8_lossy(&r.body).to_string();
            let param = |name: &str| {
                body.split('&').find_map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (k == name).then(|| decode(v))
                })
            };
            match param("Action").as_deref() {
                Some("GetCallerIdentity") => Ok(None),
                Some("AssumeRole") => match param("RoleArn") {
                    Some(role) => Ok(Some(call("sts:AssumeRole".into(), role))),
                    None => Err(format!("sts AssumeRole without a RoleArn: {body}")),
                },
                other => Err(format!("sts {other:?}: unknown operation")),
            }
        }
        "apigateway" => Ok(Some(call(
            format!("apigateway:{}", r.method),
            format!("arn:{partition}:apigateway:{region}::{}", r.path),
        ))),
        "lambda" => {
            let segs: Vec<&str> = r.path.trim_matches('/').split('/').collect();
            if segs.len() < 3 || segs[1] != "functions" {
                return Err(format!("lambda {} {}: unknown path", r.method, r.path));
            }
            let function = decode(segs[2]);
            let mut arn = if function.starts_with("arn:") {
                function
            } else {
                format!("arn:{partition}:lambda:{region}:{account}:function:{function}")
            };
            if let Some(q) = query("Qualifier") {
                if arn.matches(':').count() == 6 {
                    arn = format!("{arn}:{q}");
                }
            }
            let action = match (r.method.as_str(), &segs[3..]) {
                ("GET", []) => "lambda:GetFunction",
                ("GET", ["configuration"]) => "lambda:GetFunctionConfiguration",
                ("GET", ["policy"]) => "lambda:GetPolicy",
                ("POST", ["policy"]) => "lambda:AddPermission",
                ("DELETE", ["policy", _]) => "lambda:RemovePermission",
                ("POST", ["aliases"]) => "lambda:CreateAlias",
                ("GET", ["aliases", _]) => "lambda:GetAlias",
                ("PUT", ["aliases", _]) => "lambda:UpdateAlias",
                (m, rest) => return Err(format!("lambda {m} {rest:?}: unknown operation")),
            };
            let mut c = call(action.to_string(), arn);
            if action == "lambda:AddPermission" {
                let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                if let Some(p) = body["Principal"].as_str() {
                    c.context.insert("lambda:Principal".into(), p.to_string());
                }
            }
            Ok(Some(c))
        }
        "s3" => {
            // Path style (apimount forces it with an endpoint override).
            let path = r.path.trim_start_matches('/');
            let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
            let key = decode(key);
            if key.is_empty() {
                return match r.method.as_str() {
                    "GET" | "HEAD" => {
                        let mut c = call(
                            "s3:ListBucket".into(),
                            format!("arn:{partition}:s3:::{bucket}"),
                        );
                        c.context
                            .insert("s3:prefix".into(), query("prefix").unwrap_or_default());
                        Ok(Some(c))
                    }
                    m => Err(format!("s3 {m} on bucket {bucket}: unknown operation")),
                };
            }
            if r.query
                .as_deref()
                .is_some_and(|q| !q.is_empty() && !q.starts_with("x-id="))
            {
                return Err(format!(
                    "s3 {} {}?{:?}: unknown sub-resource",
                    r.method, r.path, r.query
                ));
            }
            let action = match r.method.as_str() {
                "GET" | "HEAD" => "s3:GetObject",
                "PUT" => "s3:PutObject",
                "DELETE" => "s3:DeleteObject",
                m => return Err(format!("s3 {m} {key}: unknown operation")),
            };
            Ok(Some(call(
                action.into(),
                format!("arn:{partition}:s3:::{bucket}/{key}"),
            )))
        }
        "dynamodb" => {
            let target = r.target.as_deref().unwrap_or_default();
            let op = target
                .split('.')
                .nth(1)
                .ok_or_else(|| format!("dynamodb call without a target: {target:?}"))?;
            let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            let table = body["TableName"]
                .as_str()
                .ok_or_else(|| format!("dynamodb {op} without TableName"))?;
            Ok(Some(call(
                format!("dynamodb:{op}"),
                format!("arn:{partition}:dynamodb:{region}:{account}:table/{table}"),
            )))
        }
        // CloudWatch (Smithy RPC v2 CBOR): the operation in the path, the
        // alarm's name in the body.
        "monitoring" => {
            let op = r
                .path
                .rsplit_once("/operation/")
                .map(|(_, op)| op.to_string())
                .ok_or_else(|| format!("cloudwatch {}: unknown path", r.path))?;
            let alarm =
                |name: &str| format!("arn:{partition}:cloudwatch:{region}:{account}:alarm:{name}");
            let resource = match op.as_str() {
                "DescribeAlarms" => alarm("*"),
                "PutMetricAlarm" => alarm(
                    &cbor_text_after(&r.body, "AlarmName")
                        .ok_or("PutMetricAlarm without an AlarmName")?,
                ),
                "DeleteAlarms" => alarm(
                    &cbor_text_after(&r.body, "AlarmNames")
                        .ok_or("DeleteAlarms without AlarmNames")?,
                ),
                other => return Err(format!("cloudwatch {other}: unknown operation")),
            };
            Ok(Some(call(format!("cloudwatch:{op}"), resource)))
        }
        other => Err(format!("{other}: a service the policy check does not know")),
    }
}

/// The text string that follows the text key `key` in a CBOR map (the
/// first element when it is an array): enough of CBOR to name the alarm
/// of a CloudWatch call.
fn cbor_text_after(body: &[u8], key: &str) -> Option<String> {
    let mut encoded = vec![0x60 + key.len() as u8];
    encoded.extend_from_slice(key.as_bytes());
    let at = body.windows(encoded.len()).position(|w| w == encoded)? + encoded.len();
    let mut i = at;
    if (0x80..=0x97).contains(body.get(i)?) {
        i += 1;
    }
    let (len, start) = match *body.get(i)? {
        b @ 0x60..=0x77 => (usize::from(b - 0x60), i + 1),
        0x78 => (usize::from(*body.get(i + 1)?), i + 2),
        0x79 => (
            usize::from(u16::from_be_bytes([*body.get(i + 1)?, *body.get(i + 2)?])),
            i + 3,
        ),
        _ => return None,
    };
    String::from_utf8(body.get(start..start + len)?.to_vec()).ok()
}

/// Percent-decodes `s` (`%3A` → `:`); anything else is kept as it is.
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// IAM's wildcard match: `*` any run of characters, `?` any one.
pub fn wildcard(pattern: &str, value: &str, case_insensitive: bool) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = if case_insensitive {
        (
            pattern.to_lowercase().chars().collect(),
            value.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), value.chars().collect())
    };
    // Classic two-pointer glob match with backtracking to the last `*`.
    let (mut i, mut j) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while j < v.len() {
        if i < p.len() && (p[i] == '?' || p[i] == v[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    while i < p.len() && p[i] == '*' {
        i += 1;
    }
    i == p.len()
}

/// A policy document, placeholders filled in.
pub struct Policy {
    statements: Vec<Value>,
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

impl Policy {
    /// Reads `text`, replacing each `(PLACEHOLDER, value)`.
    pub fn parse(text: &str, fill: &[(&str, &str)]) -> Policy {
        let mut text = text.to_string();
        for (k, v) in fill {
            text = text.replace(k, v);
        }
        let doc: Value = serde_json::from_str(&text).expect("the IAM policy is JSON");
        let statements = match &doc["Statement"] {
            Value::Array(a) => a.clone(),
            one => vec![one.clone()],
        };
        Policy { statements }
    }

    fn matches(st: &Value, call: &IamCall) -> bool {
        let action = strings(&st["Action"])
            .iter()
            .any(|a| wildcard(a, &call.action, true));
        let resource = strings(&st["Resource"])
            .iter()
            .any(|r| wildcard(r, &call.resource, false));
        let condition = match st["Condition"].as_object() {
            None => true,
            Some(ops) => ops.iter().all(|(op, keys)| {
                keys.as_object().is_some_and(|keys| {
                    keys.iter().all(|(key, wanted)| {
                        let Some(have) = call.context.get(key) else {
                            return false;
                        };
                        let wanted = strings(wanted);
                        match op.as_str() {
                            "StringEquals" => wanted.iter().any(|w| w == have),
                            "StringLike" => wanted.iter().any(|w| wildcard(w, have, false)),
                            other => panic!("condition operator {other} is not known here"),
                        }
                    })
                })
            }),
        };
        action && resource && condition
    }

    /// Whether the policy allows the call.
    pub fn allows(&self, call: &IamCall) -> bool {
        let effect = |e: &str| {
            self.statements
                .iter()
                .filter(|st| st["Effect"] == e)
                .any(|st| Policy::matches(st, call))
        };
        effect("Allow") && !effect("Deny")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_as_iam_reads_them() {
        assert!(wildcard("apigateway:GET", "APIGateway:get", true));
        assert!(!wildcard("apigateway:GET", "apigateway:PUT", true));
        assert!(wildcard(
            "arn:aws:s3:::b/p/*",
            "arn:aws:s3:::b/p/x/y.yaml",
            false
        ));
        assert!(!wildcard("arn:aws:s3:::b/p/*", "arn:aws:s3:::b/q/x", false));
        assert!(wildcard("a*c", "abbbc", false));
        assert!(wildcard("a?c", "abc", false));
        assert!(!wildcard("a?c", "ac", false));
        assert!(wildcard("*", "", false));
        assert!(!wildcard(
            "/restapis/x/resources",
            "/restapis/x/resources/abc",
            false
        ));
        assert!(wildcard(
            "arn:aws:lambda:r:1:function:team-*",
            "arn:aws:lambda:r:1:function:team-a:live",
            false
        ));
    }

    #[test]
    fn conditions_and_denies_decide() {
        let policy = Policy::parse(
            r#"{"Version":"2012-10-17","Statement":[
              {"Effect":"Allow","Action":"lambda:AddPermission","Resource":"arn:aws:lambda:r:1:function:*",
               "Condition":{"StringEquals":{"lambda:Principal":"apigateway.amazonaws.com"}}},
              {"Effect":"Allow","Action":["s3:ListBucket"],"Resource":"arn:aws:s3:::THE_BUCKET",
               "Condition":{"StringLike":{"s3:prefix":["THE_PREFIX/*"]}}},
              {"Effect":"Allow","Action":"apigateway:*","Resource":"*"},
              {"Effect":"Deny","Action":"apigateway:DELETE","Resource":"*"}
            ]}"#,
            &[("THE_BUCKET", "bucket"), ("THE_PREFIX", "m")],
        );
        let call = |action: &str, resource: &str, ctx: &[(&str, &str)]| IamCall {
            action: action.into(),
            resource: resource.into(),
            context: ctx
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let f = "arn:aws:lambda:r:1:function:f";
        assert!(policy.allows(&call(
            "lambda:AddPermission",
            f,
            &[("lambda:Principal", "apigateway.amazonaws.com")]
        )));
        assert!(!policy.allows(&call(
            "lambda:AddPermission",
            f,
            &[("lambda:Principal", "s3.amazonaws.com")]
        )));
        assert!(
            !policy.allows(&call("lambda:AddPermission", f, &[])),
            "absent key"
        );
        let bucket = "arn:aws:s3:::bucket";
        assert!(policy.allows(&call("s3:ListBucket", bucket, &[("s3:prefix", "m/a/")])));
        assert!(!policy.allows(&call("s3:ListBucket", bucket, &[("s3:prefix", "")])));
        assert!(policy.allows(&call("apigateway:GET", "arn:x", &[])));
        assert!(
            !policy.allows(&call("apigateway:DELETE", "arn:x", &[])),
            "deny wins"
        );
        assert!(
            !policy.allows(&call("dynamodb:GetItem", "arn:x", &[])),
            "nothing allows it"
        );
    }
}
