//! How errors are shown to people: each error type of the project says what
//! failed, its causes are kept as `source()`, and [`chain`] puts the whole
//! chain on one line for logs and reports ("listing s3://b/p failed:
//! s3:ListObjectsV2 failed (AccessDenied): Access Denied").

use std::error::Error;

/// An error and all its causes, separated by ": ".
pub fn chain(e: &dyn Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        // Some errors repeat their cause in their own message; say it once.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading the folder failed")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chains_read_on_one_line() {
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "permission denied",
        ));
        assert_eq!(chain(&e), "reading the folder failed: permission denied");
    }
}
