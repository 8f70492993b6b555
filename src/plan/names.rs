//! The names apimount derives deterministically and reads back: the
//! ownership marker in `Method.operationName`, permission statement ids and
//! source ARNs per route, and the fingerprints recorded in deployment
//! descriptions. Pure functions.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use super::model::ObservedApi;

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

/// How many distinct mounts `owner` has routes for.
pub fn managed_mounts(api: &ObservedApi, owner: &str) -> usize {
    api.methods()
        .filter_map(|(_, _, m)| match m.ownership() {
            Ownership::Apimount { owner: o, mount } if o == owner => Some(mount),
            _ => None,
        })
        .collect::<BTreeSet<_>>()
        .len()
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
}
