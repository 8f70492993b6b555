//! The names apimount derives deterministically and reads back: the
//! ownership marker in `Method.operationName`, permission statement ids and
//! source ARNs per route, and the fingerprints recorded in deployment
//! descriptions. Pure functions.

use std::collections::BTreeSet;
use std::fmt;

use sha2::{Digest, Sha256};

use super::model::ObservedApi;
use crate::manifest::{Mount, MountId};

/// Prefix of every ownership marker apimount writes into `Method.operationName`.
pub const MARKER_PREFIX: &str = "apimount:";

/// Who owns a method, read from its `operationName`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ownership {
    /// Made by an apimount instance.
    Apimount(Marker),
    /// Anything else: made by hand, by another tool, or a marker we cannot read.
    Foreign,
}

/// apimount's ownership marker:
/// `apimount:{owner}:{mount}@{source}.{generation}`, where `{mount}` is the
/// mount's name, or `{tenant}/{name}` under a tenant policy, `{source}` a
/// short hash of the key of the manifest file it came from, and
/// `{generation}` the manifest's generation when the method was written.
/// Markers written before the last two existed (`apimount:{owner}:{name}`)
/// are read too.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Marker {
    pub owner: String,
    pub mount: MountId,
    /// [`source_tag`] of the manifest file's key, if recorded.
    pub source: Option<String>,
    /// [`Mount::generation`] of the manifest, if recorded.
    pub generation: Option<String>,
}

impl Marker {
    /// The marker of `owner`'s methods for `mount`.
    pub fn of(owner: &str, mount: &Mount) -> Marker {
        Marker {
            owner: owner.to_string(),
            mount: mount.id(),
            source: Some(source_tag(&mount.key)),
            generation: Some(mount.generation()),
        }
    }

    fn parse(operation_name: &str) -> Option<Marker> {
        let rest = operation_name.strip_prefix(MARKER_PREFIX)?;
        let (owner, rest) = rest.split_once(':')?;
        crate::settings::check_owner(owner).ok()?;
        let (id, tags) = match rest.split_once('@') {
            Some((id, tags)) => (id, Some(tags)),
            None => (rest, None),
        };
        let mount = MountId::parse(id)?;
        let (source, generation) = match tags {
            None => (None, None),
            Some(tags) => {
                let (source, generation) = tags.split_once('.')?;
                if !is_tag(source) || !is_tag(generation) {
                    return None;
                }
                (Some(source.to_string()), Some(generation.to_string()))
            }
        };
        Some(Marker {
            owner: owner.to_string(),
            mount,
            source,
            generation,
        })
    }
}

impl fmt::Display for Marker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{MARKER_PREFIX}{}:{}", self.owner, self.mount)?;
        if let (Some(source), Some(generation)) = (&self.source, &self.generation) {
            write!(f, "@{source}.{generation}")?;
        }
        Ok(())
    }
}

/// Tags in a marker are 8 lowercase hex digits.
fn is_tag(s: &str) -> bool {
    s.len() == 8
        && s.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// A short, stable hash of a manifest file's key within its source.
pub fn source_tag(key: &str) -> String {
    Sha256::digest(key.as_bytes())[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Ownership {
    pub fn parse(operation_name: Option<&str>) -> Ownership {
        match operation_name.and_then(Marker::parse) {
            Some(m) => Ownership::Apimount(m),
            None => Ownership::Foreign,
        }
    }

    /// The marker, if it is one of `owner`'s.
    pub fn of(&self, owner: &str) -> Option<&Marker> {
        match self {
            Ownership::Apimount(m) if m.owner == owner => Some(m),
            _ => None,
        }
    }

    pub fn is(&self, owner: &str) -> bool {
        self.of(owner).is_some()
    }

    pub fn is_mount(&self, owner: &str, mount: &MountId) -> bool {
        self.of(owner).is_some_and(|m| &m.mount == mount)
    }
}

/// The marker apimount writes for `owner`'s mount.
pub fn marker(owner: &str, mount: &Mount) -> String {
    Marker::of(owner, mount).to_string()
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
            Ownership::Apimount(mk) => Some(mk.owner),
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

/// The distinct mounts `owner` has routes for.
pub fn managed_mounts(api: &ObservedApi, owner: &str) -> BTreeSet<MountId> {
    api.methods()
        .filter_map(|(_, _, m)| m.ownership().of(owner).map(|mk| mk.mount.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trip() {
        let mount = |tenant: Option<&str>| {
            crate::manifest::Mount {
            tenant: tenant.map(str::to_string),
            key: "accounts.yaml".into(),
            ..crate::manifest::parse(
                std::path::Path::new("accounts.yaml"),
                b"apiVersion: apimount/v1\nkind: ServiceMount\nmetadata:\n  name: accounts\nspec:\n  path: /accounts\n  function: f\n",
            )
            .unwrap()
        }
        };
        for tenant in [None, Some("team-x")] {
            let m = mount(tenant);
            let text = marker("team-a", &m);
            let parsed = Ownership::parse(Some(&text));
            assert_eq!(
                parsed,
                Ownership::Apimount(Marker::of("team-a", &m)),
                "{text}"
            );
            assert!(parsed.is_mount("team-a", &m.id()));
            assert!(!parsed.is("team-b"));
            // Another owner's, or another mount of the same name elsewhere.
            assert!(!parsed.is_mount("team-b", &m.id()));
            let other = MountId {
                tenant: Some("team-y".into()),
                name: m.id().name,
            };
            assert!(!parsed.is_mount("team-a", &other));
        }
        assert_eq!(
            marker("team-a", &mount(Some("team-x"))),
            format!(
                "apimount:team-a:team-x/accounts@{}.{}",
                source_tag("accounts.yaml"),
                mount(None).generation()
            )
        );
        // Markers from before the source and generation were recorded.
        let legacy = Ownership::parse(Some("apimount:team-a:accounts"));
        let Ownership::Apimount(legacy) = legacy else {
            panic!("legacy marker not read: {legacy:?}")
        };
        assert_eq!((legacy.source, legacy.generation), (None, None));
        for foreign in [
            "getAccounts",
            "apimount:x",
            "apimount:x:Bad Name",
            "apimount:x:a@12345678",
            "apimount:x:a@1234567.12345678",
            "apimount:x:a@XXXXXXXX.12345678",
            "apimount:x:Team/a",
            "apimount:x:a/b/c",
        ] {
            assert_eq!(
                Ownership::parse(Some(foreign)),
                Ownership::Foreign,
                "{foreign}"
            );
        }
        assert_eq!(Ownership::parse(None), Ownership::Foreign);
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
        // The prefix with anything but 16 hex digits after it is not ours.
        let prefix = statement_prefix("api1", "a");
        for other in ["0123456789abcde", "0123456789abcdef0", "0123456789abcdeg"] {
            assert!(
                !is_statement_of(&format!("{prefix}{other}"), "api1", "a"),
                "{other}"
            );
        }
        assert!(is_statement_of(
            &format!("{prefix}0123456789abcdef"),
            "api1",
            "a"
        ));
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

    #[test]
    fn a_deployment_names_every_owner_on_the_api_and_no_other_tool() {
        use crate::plan::model::{Methods, ObservedMethod, ObservedResource};
        let mount = |name: &str| {
            crate::manifest::parse(
                std::path::Path::new("m.yaml"),
                format!("apiVersion: apimount/v1\nkind: ServiceMount\nmetadata:\n  name: {name}\nspec:\n  path: /{name}\n  function: f\n").as_bytes(),
            )
            .unwrap()
        };
        let method = |operation_name: Option<String>| ObservedMethod {
            authorization_type: "NONE".into(),
            authorizer_id: None,
            api_key_required: false,
            operation_name,
            integration: None,
            responses: Default::default(),
        };
        let resource = |id: &str, owner: Option<&str>| {
            let mut methods = Methods::new();
            let name = owner.map(|o| marker(o, &mount(id)));
            methods.insert("GET".into(), method(name.or(Some("handmade".into()))));
            ObservedResource {
                id: id.into(),
                path: format!("/{id}"),
                methods,
            }
        };
        let api = ObservedApi::from_resources(vec![
            resource("a1", Some("team-b")),
            resource("a2", Some("team-a")),
            resource("a3", Some("team-b")),
            resource("a4", None),
        ]);
        assert_eq!(
            owners_on(&api),
            vec!["team-a".to_string(), "team-b".to_string()]
        );
        // The mounts an owner has routes for: its own, each once.
        let names = |owner: &str| -> Vec<String> {
            managed_mounts(&api, owner)
                .into_iter()
                .map(|id| id.to_string())
                .collect()
        };
        assert_eq!(names("team-b"), ["a1", "a3"]);
        assert_eq!(names("team-a"), ["a2"]);
        assert!(names("team-c").is_empty());
        let d = deployment_description(&api);
        for owner in ["team-a", "team-b"] {
            assert_eq!(
                fingerprint_in_description(&d, owner),
                Some(owner_fingerprint(&api, owner).as_str()),
                "{d}"
            );
        }
        assert_eq!(d.split_whitespace().count(), 3, "{d}");
        // A fingerprint is the owner's routes: another owner's change, or a
        // hand-made method's, leaves it; a change of its own moves it.
        let (a, b) = (
            owner_fingerprint(&api, "team-a"),
            owner_fingerprint(&api, "team-b"),
        );
        assert_eq!(a.len(), 12);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
        let mut changed = api.clone();
        let m = changed.resources.get_mut("/a1").unwrap();
        m.methods.get_mut("GET").unwrap().api_key_required = true;
        changed.resources.get_mut("/a4").unwrap().methods.clear();
        assert_eq!(owner_fingerprint(&changed, "team-a"), a);
        assert_ne!(owner_fingerprint(&changed, "team-b"), b);
    }
}
