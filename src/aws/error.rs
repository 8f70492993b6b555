//! [`AwsError`]: a failed AWS call in the project's own terms. SDK errors are
//! mapped here and nowhere else; what a person sees is
//! "operation failed (ErrorCode): message", never the SDK's Debug output.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// What kind of failure, as far as the reconciler cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    NotFound,
    /// 409: an object exists already, or a concurrent modification.
    Conflict,
    AccessDenied,
    /// The credentials themselves were refused (expired, unknown, badly
    /// signed) or there were none: a matter of the credential chain, not of
    /// the IAM policy.
    CredentialsRejected,
    Throttled,
    /// A per-API quota such as the resource limit.
    LimitExceeded,
    /// 400: AWS refused the request as malformed.
    BadRequest,
    Timeout,
    /// The backend does not implement the operation: it answered with a web
    /// page, not an AWS error. AWS never does; an emulator may (moto's
    /// UpdateMethod and UpdateIntegration).
    NotImplemented,
    Other,
}

/// A failed AWS call: which operation, what kind, and AWS's own words.
///
/// When AWS answered, `code`, `message` and `request_id` are its answer and
/// there is no further cause. When it did not (the connection failed, the
/// call timed out, the answer was unreadable), the SDK's error is kept as the
/// [`Error::source`], so the whole chain can be shown.
#[derive(Debug, Clone)]
pub struct AwsError {
    /// `service:Operation`, e.g. `apigateway:PutMethod`.
    pub operation: &'static str,
    pub kind: AwsErrorKind,
    /// AWS's error code, e.g. `ConflictException`.
    pub code: Option<String>,
    pub message: String,
    /// The request id AWS gave the failed call, for a support case.
    pub request_id: Option<String>,
    cause: Option<Arc<dyn Error + Send + Sync>>,
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed", self.operation)?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl Error for AwsError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.cause.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

impl AwsError {
    /// An error apimount itself raises about an operation (no AWS answer).
    pub fn local(
        operation: &'static str,
        kind: AwsErrorKind,
        message: impl Into<String>,
    ) -> AwsError {
        AwsError {
            operation,
            kind,
            code: None,
            message: message.into(),
            request_id: None,
            cause: None,
        }
    }
}

/// Maps an SDK error of `operation`.
pub(crate) fn map_err<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + Error + Send + Sync + 'static,
{
    let local = |kind, message: &str, err: SdkError<E, HttpResponse>| AwsError {
        cause: Some(Arc::new(err)),
        ..AwsError::local(operation, kind, message)
    };
    let page = match &err {
        SdkError::ServiceError(se) => is_web_page(se.raw()),
        SdkError::ResponseError(re) => is_web_page(re.raw()),
        _ => false,
    };
    if page {
        return local(
            AwsErrorKind::NotImplemented,
            "the backend answered with a web page: it does not implement this operation",
            err,
        );
    }
    match err {
        SdkError::ServiceError(se) => {
            // 501 Not Implemented: the backend lacks the operation (an
            // emulator's answer; AWS has every operation it documents).
            let missing = se.raw().status().as_u16() == 501;
            let e = se.err();
            let code = e.code().map(str::to_string);
            let message = e.message().unwrap_or("no message").to_string();
            let request_id = e.meta().extra("aws_request_id").map(str::to_string);
            AwsError {
                operation,
                kind: if missing {
                    AwsErrorKind::NotImplemented
                } else {
                    classify(code.as_deref(), &message)
                },
                code,
                message,
                request_id,
                cause: None,
            }
        }
        SdkError::TimeoutError(_) => local(
            AwsErrorKind::Timeout,
            "timed out (after the SDK's retries)",
            err,
        ),
        SdkError::DispatchFailure(ref d) => {
            let kind = if d.is_timeout() {
                AwsErrorKind::Timeout
            } else {
                AwsErrorKind::Other
            };
            local(kind, "could not reach AWS", err)
        }
        SdkError::ResponseError(_) => local(
            AwsErrorKind::Other,
            "the answer from AWS could not be read",
            err,
        ),
        // No credentials at all: the SDK cannot sign the request.
        other if chain_mentions_credentials(&other) => local(
            AwsErrorKind::CredentialsRejected,
            "no credentials could be loaded",
            other,
        ),
        other => local(AwsErrorKind::Other, "the request could not be made", other),
    }
}

/// Whether an error's chain of causes speaks of credentials or identity
/// (the SDK's words when the credential chain is empty).
fn chain_mentions_credentials(e: &(dyn Error + 'static)) -> bool {
    let mut at: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(err) = at {
        let text = format!("{err} {err:?}").to_ascii_lowercase();
        if text.contains("credential") || text.contains("no identity") {
            return true;
        }
        at = err.source();
    }
    false
}

/// A server error whose body is an HTML page rather than an AWS error
/// document.
pub(crate) fn is_web_page(resp: &HttpResponse) -> bool {
    resp.status().as_u16() >= 500
        && resp
            .body()
            .bytes()
            .is_some_and(|b| b.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'<'))
}

/// The kind of an AWS error code.
pub(crate) fn classify(code: Option<&str>, message: &str) -> AwsErrorKind {
    match code.unwrap_or("") {
        "NotFoundException" | "ResourceNotFoundException" | "NoSuchKey" => AwsErrorKind::NotFound,
        "ConflictException" | "ResourceConflictException" => AwsErrorKind::Conflict,
        "ExpiredTokenException"
        | "ExpiredToken"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "InvalidSignatureException"
        | "IncompleteSignature" => AwsErrorKind::CredentialsRejected,
        "AccessDeniedException" | "AccessDenied" | "UnauthorizedException" => {
            AwsErrorKind::AccessDenied
        }
        "TooManyRequestsException" | "ThrottlingException" | "Throttling" => {
            AwsErrorKind::Throttled
        }
        "LimitExceededException" if message.contains("Maximum number") => {
            AwsErrorKind::LimitExceeded
        }
        "LimitExceededException" => AwsErrorKind::Throttled,
        "BadRequestException" | "InvalidParameterValueException" | "ValidationException" => {
            AwsErrorKind::BadRequest
        }
        _ => AwsErrorKind::Other,
    }
}

pub(crate) fn ignore_not_found(e: AwsError) -> Result<(), AwsError> {
    if e.kind == AwsErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_kinds() {
        let table = [
            (Some("NotFoundException"), "", AwsErrorKind::NotFound),
            (
                Some("ResourceConflictException"),
                "",
                AwsErrorKind::Conflict,
            ),
            (
                Some("AccessDeniedException"),
                "",
                AwsErrorKind::AccessDenied,
            ),
            (
                Some("ExpiredTokenException"),
                "",
                AwsErrorKind::CredentialsRejected,
            ),
            (
                Some("UnrecognizedClientException"),
                "",
                AwsErrorKind::CredentialsRejected,
            ),
            (
                Some("InvalidClientTokenId"),
                "",
                AwsErrorKind::CredentialsRejected,
            ),
            (
                Some("SignatureDoesNotMatch"),
                "",
                AwsErrorKind::CredentialsRejected,
            ),
            (
                Some("TooManyRequestsException"),
                "",
                AwsErrorKind::Throttled,
            ),
            (
                Some("LimitExceededException"),
                "Maximum number of Resources for this API has been reached",
                AwsErrorKind::LimitExceeded,
            ),
            (
                Some("LimitExceededException"),
                "Rate exceeded",
                AwsErrorKind::Throttled,
            ),
            (Some("BadRequestException"), "", AwsErrorKind::BadRequest),
            (Some("SomethingElse"), "", AwsErrorKind::Other),
            (None, "", AwsErrorKind::Other),
        ];
        for (code, message, kind) in table {
            assert_eq!(classify(code, message), kind, "{code:?} {message}");
        }
    }

    #[test]
    fn only_a_server_error_with_a_web_page_is_taken_for_a_missing_operation() {
        use aws_smithy_runtime_api::http::StatusCode;
        use aws_smithy_types::body::SdkBody;
        let table: &[(u16, &str, bool)] = &[
            (501, "<html><body>Not implemented</body></html>", true),
            (500, "\n  <!DOCTYPE html><html></html>", true),
            (502, "<html>Bad Gateway</html>", true),
            // AWS's own errors are JSON, whatever the status.
            (500, "{\"message\": \"Internal server error\"}", false),
            (503, "", false),
            // A client error is AWS refusing the request, never a missing operation.
            (400, "<html>Bad request</html>", false),
            (404, "<html>Not found</html>", false),
            (200, "<html></html>", false),
        ];
        for (status, body, want) in table {
            let resp =
                HttpResponse::new(StatusCode::try_from(*status).unwrap(), SdkBody::from(*body));
            assert_eq!(is_web_page(&resp), *want, "{status} {body:?}");
        }
    }

    #[test]
    fn people_read_operation_code_and_message() {
        let e = AwsError {
            code: Some("BadRequestException".into()),
            ..AwsError::local(
                "apigateway:PutMethod",
                AwsErrorKind::BadRequest,
                "Invalid HTTP method",
            )
        };
        assert_eq!(
            e.to_string(),
            "apigateway:PutMethod failed (BadRequestException): Invalid HTTP method"
        );
        assert!(e.source().is_none());
    }
}
