//! The rules a well-formed manifest's values must meet. Every problem is
//! collected, not only the first.

use std::path::Path;

use serde_saphyr::Spanned;

use super::format::ServiceMountDoc;
use super::yaml::quoted_at;
use super::{
    check_name, Authorization, ErrorKind, FunctionRef, HttpMethod, ManifestError, Mount, MountPath,
    API_VERSION, KIND,
};

fn pos<T>(s: &Spanned<T>) -> Option<(u64, u64)> {
    let l = s.referenced;
    (l.line() > 0).then(|| (l.line(), l.column()))
}

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
        file: file.to_path_buf(),
        key: file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    })
}
