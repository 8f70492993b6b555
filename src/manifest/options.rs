//! The route options a mount may ask for beyond its path and function: a CORS
//! preflight answer, per-route throttling and the integration timeout. The
//! validated values and the rules for them; `validate` applies the rules to
//! a document, `plan` turns the values into gateway objects.

use std::fmt;

use super::HttpMethod;

/// Most steady requests per second a manifest may write at all. The bound
/// that matters is the account's own limit in the API's region (10,000 by
/// default, 2,500 in some regions, raisable on request): the planner refuses
/// a throttle above it (`plan::stage_settings::above_account_limit`). This
/// ceiling only keeps absurd numbers out of the manifest.
pub const MAX_RATE_LIMIT: f64 = 1_000_000.0;
/// Largest burst a manifest may write at all; the account's burst (5,000
/// by default) is the bound the planner holds it to.
pub const MAX_BURST_LIMIT: u32 = 1_000_000;
/// Shortest integration timeout API Gateway accepts, in milliseconds.
pub const MIN_TIMEOUT_MS: u32 = 50;
/// Longest integration timeout of a REST API without a quota increase, and
/// the default (what an integration without `timeoutInMillis` has).
pub const MAX_TIMEOUT_MS: u32 = 29_000;
/// Longest preflight cache a browser honours (Firefox; Chrome caps at 7200).
pub const MAX_CORS_MAX_AGE: u32 = 86_400;

/// Request headers a preflight allows when the manifest lists none: what
/// browsers send to API Gateway most often (the same list Serverless
/// Framework's `cors: true` allows).
pub const DEFAULT_ALLOW_HEADERS: [&str; 6] = [
    "Content-Type",
    "X-Amz-Date",
    "Authorization",
    "X-Api-Key",
    "X-Amz-Security-Token",
    "X-Amz-User-Agent",
];

/// The CORS preflight answer of a mount, as validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cors {
    /// `*` alone, or origins `scheme://host[:port]`, in the manifest's order.
    pub allow_origins: Vec<String>,
    /// `None`: the mount's methods (every method for ANY) and OPTIONS.
    pub allow_methods: Option<Vec<HttpMethod>>,
    /// `None`: [`DEFAULT_ALLOW_HEADERS`].
    pub allow_headers: Option<Vec<String>>,
    pub expose_headers: Vec<String>,
    pub max_age: Option<u32>,
    pub allow_credentials: bool,
}

impl Cors {
    /// The `Access-Control-Allow-Methods` value for a mount serving `methods`.
    pub fn methods_header(&self, methods: &[HttpMethod]) -> String {
        let mut verbs: Vec<HttpMethod> = match &self.allow_methods {
            Some(list) => list.clone(),
            None if methods.contains(&HttpMethod::Any) => HttpMethod::ALL
                .into_iter()
                .filter(|m| *m != HttpMethod::Any)
                .collect(),
            None => methods
                .iter()
                .copied()
                .chain([HttpMethod::Options])
                .collect(),
        };
        verbs.sort();
        verbs.dedup();
        let names: Vec<&str> = verbs.iter().map(|m| m.as_str()).collect();
        names.join(",")
    }

    /// The `Access-Control-Allow-Headers` value.
    pub fn headers_header(&self) -> String {
        match &self.allow_headers {
            Some(list) => list.join(","),
            None => DEFAULT_ALLOW_HEADERS.join(","),
        }
    }

    /// Whether the origin the browser sent must be echoed back (more than one
    /// origin: `Access-Control-Allow-Origin` holds exactly one).
    pub fn echoes_origin(&self) -> bool {
        self.allow_origins.len() > 1
    }

    /// A one-line summary for plans and the route tree.
    pub fn summary(&self) -> String {
        let mut s = format!("origins {}", self.allow_origins.join(" "));
        if self.allow_credentials {
            s.push_str(", credentials");
        }
        if let Some(age) = self.max_age {
            s.push_str(&format!(", max age {age}s"));
        }
        s
    }
}

/// A throttle's steady rate, requests per second: finite, more than 0, at
/// most [`MAX_RATE_LIMIT`] (checked by validation). Compared by value, so it
/// can live in `Eq` types.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct RateLimit(f64);

impl RateLimit {
    /// A rate within the bounds, or why not.
    pub fn new(rate: f64) -> Result<RateLimit, String> {
        if !rate.is_finite() || rate <= 0.0 {
            return Err(format!(
                "{rate} is not a rate; give requests per second, more than 0"
            ));
        }
        if rate > MAX_RATE_LIMIT {
            return Err(format!(
                "{rate} is above {MAX_RATE_LIMIT} requests per second, more than any account is given"
            ));
        }
        Ok(RateLimit(rate))
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl Eq for RateLimit {}

impl std::hash::Hash for RateLimit {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state)
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Per-route throttling: each route and method of the mount gets these limits
/// in the stage's method settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Throttle {
    pub rate_limit: RateLimit,
    pub burst_limit: u32,
}

impl fmt::Display for Throttle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests/s, burst {}",
            self.rate_limit, self.burst_limit
        )
    }
}

/// Checks one origin: `*`, or `scheme://host[:port]` without path, query or
/// trailing slash (what a browser sends in `Origin`).
pub fn check_origin(origin: &str) -> Result<(), String> {
    if origin == "*" {
        return Ok(());
    }
    let shape = "an origin is * or scheme://host[:port], such as https://app.example.com, without a path or a trailing '/'";
    let Some((scheme, rest)) = origin.split_once("://") else {
        return Err(format!(
            "'{}' is not an origin: {shape}",
            origin.escape_debug()
        ));
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_lowercase())
        && scheme
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err(format!(
            "'{}' has the scheme '{}'; a scheme is lowercase letters, digits, '+', '-' and '.' ({shape})",
            origin.escape_debug(),
            scheme.escape_debug()
        ));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(format!(
            "'{}' does not name a host: {shape}",
            origin.escape_debug()
        ));
    }
    if let Some(p) = port {
        let valid = !p.is_empty()
            && p.len() <= 5
            && p.chars().all(|c| c.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n));
        if !valid {
            return Err(format!(
                "'{}' has the port '{}'; a port is a number from 1 to 65535",
                origin.escape_debug(),
                p.escape_debug()
            ));
        }
    }
    Ok(())
}

/// Checks an HTTP header name (an RFC 9110 token without `'`, which would end
/// the quoted static value API Gateway maps it to), or `*`.
pub fn check_header_name(name: &str) -> Result<(), String> {
    let ok = name == "*"
        || (!name.is_empty()
            && name.len() <= 128
            && name.chars().all(|c| {
                c.is_ascii_alphanumeric()
                    || matches!(
                        c,
                        '!' | '#'
                            | '$'
                            | '%'
                            | '&'
                            | '*'
                            | '+'
                            | '-'
                            | '.'
                            | '^'
                            | '_'
                            | '`'
                            | '|'
                            | '~'
                    )
            }));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{}' is not a header name (letters, digits and !#$%&*+-.^_`|~, up to 128 characters)",
            name.escape_debug()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        for ok in [
            "*",
            "https://app.example.com",
            "http://localhost:3000",
            "https://a-b.c.example.org:8443",
            "chrome-extension://abcdef",
        ] {
            assert_eq!(check_origin(ok), Ok(()), "{ok}");
        }
        // A host name of 253 characters, the DNS limit, is one; 254 is not.
        let label = "a".repeat(63);
        let longest = format!("{label}.{label}.{label}.{}", "b".repeat(61));
        assert_eq!(longest.len(), 253);
        assert_eq!(check_origin(&format!("https://{longest}")), Ok(()));
        let e = check_origin(&format!("https://{longest}b")).unwrap_err();
        assert!(e.contains("does not name a host"), "{e}");
        for (bad, why) in [
            ("app.example.com", "is not an origin"),
            ("https://app.example.com/", "does not name a host"),
            ("https://app.example.com/path", "does not name a host"),
            ("HTTPS://app.example.com", "has the scheme"),
            ("https://", "does not name a host"),
            ("https://exa mple.com", "does not name a host"),
            ("https://example.com:0", "has the port '0'"),
            ("https://example.com:70000", "has the port"),
            ("https://example.com:", "has the port ''"),
            ("https://*.example.com", "does not name a host"),
            ("https://-x.example.com", "does not name a host"),
        ] {
            let e = check_origin(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn header_names() {
        for ok in ["Content-Type", "X-Api-Key", "*", "x_custom"] {
            assert_eq!(check_header_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "Content Type", "X-'quoted'", "a,b", "é"] {
            assert!(check_header_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rates_are_bounded_and_compared_by_value() {
        assert!(RateLimit::new(0.0).is_err());
        assert!(RateLimit::new(-1.0).is_err());
        assert!(RateLimit::new(f64::NAN).is_err());
        assert!(RateLimit::new(1_000_000.5).is_err());
        assert_eq!(RateLimit::new(0.5).unwrap(), RateLimit::new(0.5).unwrap());
        assert_eq!(RateLimit::new(1_000_000.0).unwrap().get(), 1_000_000.0);
        assert_eq!(RateLimit::new(20_000.0).unwrap().get(), 20_000.0);
        let t = Throttle {
            rate_limit: RateLimit::new(100.0).unwrap(),
            burst_limit: 200,
        };
        assert_eq!(t.to_string(), "100 requests/s, burst 200");
    }

    #[test]
    fn preflight_header_values() {
        let cors = Cors {
            allow_origins: vec!["https://a.example".into()],
            allow_methods: None,
            allow_headers: None,
            expose_headers: vec![],
            max_age: None,
            allow_credentials: false,
        };
        assert_eq!(
            cors.methods_header(&[HttpMethod::Any]),
            "DELETE,GET,HEAD,OPTIONS,PATCH,POST,PUT"
        );
        assert_eq!(
            cors.methods_header(&[HttpMethod::Post, HttpMethod::Get]),
            "GET,OPTIONS,POST"
        );
        assert!(cors.headers_header().starts_with("Content-Type,X-Amz-Date"));
        let listed = Cors {
            allow_methods: Some(vec![HttpMethod::Put, HttpMethod::Get]),
            allow_headers: Some(vec!["X-One".into()]),
            ..cors
        };
        assert_eq!(listed.methods_header(&[HttpMethod::Any]), "GET,PUT");
        assert_eq!(listed.headers_header(), "X-One");
        assert!(!listed.echoes_origin());
    }
}
