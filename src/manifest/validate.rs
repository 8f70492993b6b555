//! The rules a well-formed manifest's values must meet. Every problem is
//! collected, not only the first.

use std::path::Path;

use serde_saphyr::Spanned;

use super::format::{CorsDoc, ReleaseDoc, ServiceMountDoc, ThrottleDoc};
use super::options::{
    check_header_name, check_origin, Cors, RateLimit, Throttle, MAX_BURST_LIMIT, MAX_CORS_MAX_AGE,
    MAX_TIMEOUT_MS, MIN_TIMEOUT_MS,
};
use super::release::{
    check_alarm_name, check_steps, check_version, with_alias, Guard, Release, Step, MAX_ALARMS,
};
use super::yaml::{pos, quoted_at};
use super::{
    check_name, Authorization, ErrorKind, FunctionRef, HttpMethod, ManifestError, Mount, MountPath,
    API_VERSION, KIND,
};

/// Reports one problem: position, field, message.
type Fail<'a> = dyn FnMut(Option<(u64, u64)>, &str, String) + 'a;

/// Checks the values of a well-formed document.
pub(crate) fn validate(
    file: &Path,
    text: &str,
    doc: ServiceMountDoc,
) -> Result<Mount, Vec<ManifestError>> {
    let mut errors = Vec::new();
    let mut fail = |s_pos: Option<(u64, u64)>, field: &str, message: String| {
        errors.push(ManifestError {
            file: file.to_path_buf(),
            position: s_pos,
            field: Some(field.to_string()),
            message,
            kind: ErrorKind::Invalid,
        })
    };

    // The parser reads `"true"` as a boolean; a quoted value is a string.
    for (field, value) in [
        ("spec.proxy", &doc.spec.proxy),
        ("spec.apiKeyRequired", &doc.spec.api_key_required),
        ("spec.adopt", &doc.spec.adopt),
    ] {
        if let Some(v) = value {
            if let Some(quote) = quoted_at(text, pos(v)) {
                fail(
                    pos(v),
                    field,
                    format!(
                        "expected a boolean (true or false), found the string {quote}{}{quote}",
                        v.value
                    ),
                );
            }
        }
    }

    if doc.api_version.value != API_VERSION {
        fail(
            pos(&doc.api_version),
            "apiVersion",
            format!(
                "'{}' is not supported; use '{API_VERSION}'",
                doc.api_version.value.escape_debug()
            ),
        );
    }
    if doc.kind.value != KIND {
        fail(
            pos(&doc.kind),
            "kind",
            format!(
                "'{}' is not supported; use '{KIND}'",
                doc.kind.value.escape_debug()
            ),
        );
    }

    let name = &doc.metadata.name.value;
    if let Err(m) = check_name(name) {
        fail(pos(&doc.metadata.name), "metadata.name", m);
    }

    let path = match MountPath::parse(&doc.spec.path.value) {
        Ok(p) => Some(p),
        Err(m) => {
            fail(
                pos(&doc.spec.path),
                "spec.path",
                format!("'{}' {m}", doc.spec.path.value.escape_debug()),
            );
            None
        }
    };

    let function = match FunctionRef::parse(&doc.spec.function.value) {
        Ok(f) => Some(f),
        Err(m) => {
            fail(pos(&doc.spec.function), "spec.function", m);
            None
        }
    };

    let mut methods = Vec::new();
    match &doc.spec.methods {
        None => methods.push(HttpMethod::Any),
        Some(list) if list.value.is_empty() => fail(
            pos(list),
            "spec.methods",
            "must list at least one method, or be left out to mean [ANY]".into(),
        ),
        Some(list) => {
            for (i, m) in list.value.iter().enumerate() {
                let field = format!("spec.methods[{i}]");
                match HttpMethod::parse(&m.value) {
                    Some(verb) if methods.contains(&verb) => {
                        fail(pos(m), &field, format!("{verb} is listed twice"))
                    }
                    Some(verb) => methods.push(verb),
                    None => {
                        let hint = match HttpMethod::parse(&m.value.to_ascii_uppercase()) {
                            Some(v) => format!("; write it in capitals: {v}"),
                            None => String::new(),
                        };
                        fail(
                            pos(m),
                            &field,
                            format!(
                                "'{}' is not a method API Gateway knows (ANY, GET, PUT, POST, DELETE, PATCH, HEAD, OPTIONS){hint}",
                                m.value.escape_debug()
                            ),
                        )
                    }
                }
            }
        }
    }
    methods.sort();

    let authorization = match &doc.spec.authorization {
        None => Some(Authorization::None),
        Some(a) => match Authorization::parse(&a.value) {
            Some(a) => Some(a),
            None => {
                fail(
                    pos(a),
                    "spec.authorization",
                    format!(
                        "'{}' is not one of NONE, AWS_IAM, CUSTOM, COGNITO_USER_POOLS",
                        a.value.escape_debug()
                    ),
                );
                None
            }
        },
    };
    let authorizer_id = doc.spec.authorizer_id.as_ref().map(|a| a.value.clone());
    if let Some(auth) = authorization {
        match (&doc.spec.authorizer_id, auth.needs_authorizer()) {
            (None, true) => fail(
                doc.spec.authorization.as_ref().and_then(pos),
                "spec.authorizerId",
                format!(
                    "is required when authorization is {}",
                    auth.as_str()
                ),
            ),
            (Some(id), false) => fail(
                pos(id),
                "spec.authorizerId",
                format!(
                    "is only allowed with authorization CUSTOM or COGNITO_USER_POOLS, not {}",
                    auth.as_str()
                ),
            ),
            (Some(id), true)
                if id.value.is_empty()
                    || id.value.len() > 64
                    || !id.value.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                fail(
                    pos(id),
                    "spec.authorizerId",
                    format!(
                        "'{}' is not an authorizer id (letters and digits, as API Gateway shows it)",
                        id.value.escape_debug()
                    ),
                )
            }
            _ => {}
        }
    }

    let cors = doc.spec.cors.as_ref().and_then(|c| {
        if methods.contains(&HttpMethod::Options) {
            let at = doc.spec.methods.as_ref().and_then(pos).or(pos(c));
            fail(
                at,
                "spec.cors",
                "cannot be used with OPTIONS in spec.methods: the function answers preflights itself; drop OPTIONS from methods or drop cors".into(),
            );
        }
        cors_of(text, &c.value, &mut fail)
    });
    let throttle = doc
        .spec
        .throttle
        .as_ref()
        .and_then(|t| throttle_of(text, &t.value, &mut fail));
    let timeout_ms = doc.spec.timeout_ms.as_ref().and_then(|t| {
        number_in(
            text,
            t,
            "spec.timeoutMs",
            u64::from(MIN_TIMEOUT_MS),
            u64::from(MAX_TIMEOUT_MS),
            "milliseconds: API Gateway's REST integrations time out after 50 ms at the least and 29,000 ms at the most",
            &mut fail,
        )
    });

    let release = doc
        .spec
        .release
        .as_ref()
        .and_then(|r| release_of(text, &r.value, &mut fail));
    if let (Some(_), Some(f)) = (&doc.spec.release, &function) {
        if f.qualifier().is_some() {
            fail(
                pos(&doc.spec.function),
                "spec.function",
                format!(
                    "'{f}' names an alias or version; with spec.release give the function unqualified: apimount routes it through an alias of its own"
                ),
            );
        }
    }
    let function = match (&release, function) {
        (Some(_), Some(f)) => Some(with_alias(f, None, name)),
        (_, f) => f,
    };

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Mount {
        name: name.clone(),
        tenant: None,
        path: path.expect("checked above"),
        function: function.expect("checked above"),
        methods,
        proxy: doc.spec.proxy.is_none_or(|b| b.value),
        authorization: authorization.expect("checked above"),
        authorizer_id,
        api_key_required: doc.spec.api_key_required.is_some_and(|b| b.value),
        adopt: doc.spec.adopt.is_some_and(|b| b.value),
        cors,
        throttle,
        timeout_ms: timeout_ms.map(|t| t as u32),
        release,
        file: file.to_path_buf(),
        key: file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    })
}

/// A whole number within `min..=max`, or `None` after reporting why not.
fn number_in(
    text: &str,
    v: &Spanned<i64>,
    field: &str,
    min: u64,
    max: u64,
    unit: &str,
    fail: &mut Fail<'_>,
) -> Option<u64> {
    if let Some(quote) = quoted_at(text, pos(v)) {
        fail(
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
            fail(
                pos(v),
                field,
                format!("{} is out of range: {min} to {max} {unit}", v.value),
            );
            None
        }
    }
}

/// A list of strings each `check` accepts, without repeats; `None` after
/// reporting every bad entry.
fn string_list(
    list: &Spanned<Vec<Spanned<String>>>,
    field: &str,
    check: fn(&str) -> Result<(), String>,
    fail: &mut Fail<'_>,
) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    let mut ok = true;
    for (i, item) in list.value.iter().enumerate() {
        let at = format!("{field}[{i}]");
        if let Err(m) = check(&item.value) {
            fail(pos(item), &at, m);
            ok = false;
        } else if out.iter().any(|o| o.eq_ignore_ascii_case(&item.value)) {
            fail(pos(item), &at, format!("{} is listed twice", item.value));
            ok = false;
        } else {
            out.push(item.value.clone());
        }
    }
    ok.then_some(out)
}

fn cors_of(text: &str, c: &CorsDoc, fail: &mut Fail<'_>) -> Option<Cors> {
    let mut ok = true;
    if let Some(b) = &c.allow_credentials {
        if let Some(quote) = quoted_at(text, pos(b)) {
            fail(
                pos(b),
                "spec.cors.allowCredentials",
                format!(
                    "expected a boolean (true or false), found the string {quote}{}{quote}",
                    b.value
                ),
            );
            ok = false;
        }
    }
    let credentials = c.allow_credentials.as_ref().is_some_and(|b| b.value);
    if c.allow_origins.value.is_empty() {
        fail(
            pos(&c.allow_origins),
            "spec.cors.allowOrigins",
            "must list at least one origin, or \"*\" for any".into(),
        );
        ok = false;
    }
    let origins = string_list(
        &c.allow_origins,
        "spec.cors.allowOrigins",
        check_origin,
        fail,
    );
    if let Some(origins) = &origins {
        let star = origins.iter().any(|o| o == "*");
        if star && origins.len() > 1 {
            fail(
                pos(&c.allow_origins),
                "spec.cors.allowOrigins",
                "\"*\" allows every origin; list it alone, or list the origins without it".into(),
            );
            ok = false;
        }
        if star && credentials {
            fail(
                c.allow_credentials.as_ref().and_then(pos),
                "spec.cors.allowCredentials",
                "cannot be true with the origin \"*\": browsers refuse credentials for any origin; list the origins".into(),
            );
            ok = false;
        }
    }
    let methods = match &c.allow_methods {
        None => Some(None),
        Some(list) if list.value.is_empty() => {
            fail(
                pos(list),
                "spec.cors.allowMethods",
                "must list at least one method, or be left out for the mount's methods".into(),
            );
            None
        }
        Some(list) => {
            let mut out = Vec::new();
            let mut good = true;
            for (i, m) in list.value.iter().enumerate() {
                let field = format!("spec.cors.allowMethods[{i}]");
                match HttpMethod::parse(&m.value) {
                    Some(HttpMethod::Any) | None => {
                        fail(
                            pos(m),
                            &field,
                            format!(
                                "'{}' is not a method a browser sends (GET, PUT, POST, DELETE, PATCH, HEAD, OPTIONS)",
                                m.value.escape_debug()
                            ),
                        );
                        good = false;
                    }
                    Some(v) if out.contains(&v) => {
                        fail(pos(m), &field, format!("{v} is listed twice"));
                        good = false;
                    }
                    Some(v) => out.push(v),
                }
            }
            good.then_some(Some(out))
        }
    };
    let headers = match &c.allow_headers {
        None => Some(None),
        Some(list) => {
            string_list(list, "spec.cors.allowHeaders", check_header_name, fail).map(Some)
        }
    };
    let expose = match &c.expose_headers {
        None => Some(Vec::new()),
        Some(list) => string_list(list, "spec.cors.exposeHeaders", check_header_name, fail),
    };
    let max_age = match &c.max_age {
        None => Some(None),
        Some(a) => number_in(
            text,
            a,
            "spec.cors.maxAge",
            0,
            u64::from(MAX_CORS_MAX_AGE),
            "seconds (browsers cache a preflight for a day at most)",
            fail,
        )
        .map(|n| Some(n as u32)),
    };
    let (Some(origins), Some(methods), Some(headers), Some(expose), Some(max_age), true) =
        (origins, methods, headers, expose, max_age, ok)
    else {
        return None;
    };
    Some(Cors {
        allow_origins: origins,
        allow_methods: methods,
        allow_headers: headers,
        expose_headers: expose,
        max_age,
        allow_credentials: credentials,
    })
}

fn throttle_of(text: &str, t: &ThrottleDoc, fail: &mut Fail<'_>) -> Option<Throttle> {
    let rate = match quoted_at(text, pos(&t.rate_limit)) {
        Some(quote) => {
            fail(
                pos(&t.rate_limit),
                "spec.throttle.rateLimit",
                format!(
                    "expected a number, found the string {quote}{}{quote}",
                    t.rate_limit.value
                ),
            );
            None
        }
        None => match RateLimit::new(t.rate_limit.value) {
            Ok(r) => Some(r),
            Err(m) => {
                fail(pos(&t.rate_limit), "spec.throttle.rateLimit", m);
                None
            }
        },
    };
    let burst = number_in(
        text,
        &t.burst_limit,
        "spec.throttle.burstLimit",
        1,
        u64::from(MAX_BURST_LIMIT),
        "requests",
        fail,
    );
    Some(Throttle {
        rate_limit: rate?,
        burst_limit: burst? as u32,
    })
}

fn release_of(text: &str, r: &ReleaseDoc, fail: &mut Fail<'_>) -> Option<Release> {
    let mut ok = true;
    if let Err(m) = check_version(&r.version.value) {
        fail(pos(&r.version), "spec.release.version", m);
        ok = false;
    }
    let steps = match (&r.steps, &r.strategy) {
        (Some(s), Some(_)) => {
            fail(
                pos(s),
                "spec.release.steps",
                "give steps or strategy, not both".into(),
            );
            None
        }
        (None, Some(name)) => match Release::strategy(&name.value) {
            Some(steps) => Some(steps),
            None => {
                fail(
                    pos(name),
                    "spec.release.strategy",
                    format!(
                        "'{}' is not a strategy apimount knows ({})",
                        name.value.escape_debug(),
                        Release::STRATEGIES.join(", ")
                    ),
                );
                None
            }
        },
        (None, None) => Some(Release::default_steps()),
        (Some(list), None) => {
            let mut steps = Vec::new();
            let mut good = true;
            for (i, s) in list.value.iter().enumerate() {
                let weight = number_in(
                    text,
                    &s.weight,
                    &format!("spec.release.steps[{i}].weight"),
                    1,
                    99,
                    "percent (the promotion after the last step takes 100)",
                    fail,
                );
                let pause = match crate::settings::parse_duration(&s.pause.value) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        fail(
                            pos(&s.pause),
                            &format!("spec.release.steps[{i}].pause"),
                            e.to_string(),
                        );
                        None
                    }
                };
                match (weight, pause) {
                    (Some(w), Some(p)) => steps.push(Step {
                        weight: w as u8,
                        pause: p,
                    }),
                    _ => good = false,
                }
            }
            if good {
                if let Err((i, m)) = check_steps(&steps) {
                    let at = list
                        .value
                        .get(i)
                        .map(|s| pos(&s.weight))
                        .unwrap_or(pos(list));
                    fail(at, &format!("spec.release.steps[{i}]"), m);
                    good = false;
                }
            }
            good.then_some(steps)
        }
    };
    let alarms = match &r.alarms {
        None => Some(Vec::new()),
        Some(list) if list.value.len() > MAX_ALARMS => {
            fail(
                pos(list),
                "spec.release.alarms",
                format!(
                    "{} alarms; a release names at most {MAX_ALARMS}",
                    list.value.len()
                ),
            );
            None
        }
        Some(list) => string_list(list, "spec.release.alarms", check_alarm_name, fail),
    };
    let guard = match &r.guard {
        None => Some(None),
        Some(g) => {
            let rate = &g.value.max_error_rate;
            match quoted_at(text, pos(rate)) {
                Some(quote) => {
                    fail(
                        pos(rate),
                        "spec.release.guard.maxErrorRate",
                        format!(
                            "expected a number, found the string {quote}{}{quote}",
                            rate.value
                        ),
                    );
                    None
                }
                None if !(0.1..=100.0).contains(&rate.value) => {
                    fail(
                        pos(rate),
                        "spec.release.guard.maxErrorRate",
                        format!(
                            "{} is out of range: 0.1 to 100 percent of the new version's invocations",
                            rate.value
                        ),
                    );
                    None
                }
                None => Some(Some(Guard {
                    max_error_rate_tenths: (rate.value * 10.0).round() as u16,
                })),
            }
        }
    };
    let (Some(steps), Some(alarms), Some(guard), true) = (steps, alarms, guard, ok) else {
        return None;
    };
    Some(Release {
        version: r.version.value.clone(),
        steps,
        alarms,
        guard,
    })
}
