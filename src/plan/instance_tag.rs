//! The instance tag: how an instance without a lease table announces itself
//! on the stage, and how it judges what another instance wrote there. Pure.
//!
//! The tag `apimount:{owner}:instance` holds `{host}/{pid}/{nonce}/{expiresMs}`:
//! which process holds the owner's writes on this API, and until when (Unix
//! milliseconds). An instance that finds another live holder stands by.
//!
//! A holder is live until its expiry, with two exceptions that let a process
//! restarted on the same machine (a crash, a container restart) take over at
//! once instead of waiting out its predecessor's tag:
//! - the same host and the same pid: two live processes cannot share a pid
//!   in one pid namespace, so the tag is this process's predecessor's;
//! - the same host and a pid that no longer runs there.

/// The stage tag holding this owner's instance claim.
pub fn key(owner: &str) -> String {
    format!("apimount:{owner}:instance")
}

/// One process of apimount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    /// Random per process, so two processes that reuse a pid differ.
    pub nonce: String,
}

impl Holder {
    /// A holder; the host name is cut to the characters a tag value may
    /// hold (letters, digits, `. - _`) and to 63 of them.
    pub fn new(host: &str, pid: u32, nonce: &str) -> Holder {
        let host: String = host
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || ".-_".contains(*c))
            .take(63)
            .collect();
        Holder {
            host: if host.is_empty() {
                "unknown".into()
            } else {
                host
            },
            pid,
            nonce: nonce.to_string(),
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.host, self.pid, self.nonce)
    }
}

/// A holder's claim, as written in the tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub holder: Holder,
    pub expires_ms: i64,
}

pub fn encode(claim: &Claim) -> String {
    format!("{}/{}", claim.holder, claim.expires_ms)
}

/// The claim in a tag value; `None` for a value that is not one.
pub fn decode(value: &str) -> Option<Claim> {
    let parts: Vec<&str> = value.split('/').collect();
    let [host, pid, nonce, expires] = parts[..] else {
        return None;
    };
    if host.is_empty() || nonce.is_empty() {
        return None;
    }
    Some(Claim {
        holder: Holder {
            host: host.to_string(),
            pid: pid.parse().ok()?,
            nonce: nonce.to_string(),
        },
        expires_ms: expires.parse().ok()?,
    })
}

/// What a tag value means to the instance `me`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// No live claim: no tag, an unreadable value, an expired claim, or one
    /// of a process of this host that is gone.
    Free,
    /// `me` holds it.
    Mine,
    /// Another process holds it.
    Other(Claim),
}

/// Judges `value` at `now_ms`; `runs(pid)` says whether a process with that
/// pid runs on this host.
pub fn standing(
    value: Option<&str>,
    me: &Holder,
    now_ms: i64,
    runs: impl Fn(u32) -> bool,
) -> Standing {
    let Some(claim) = value.and_then(decode) else {
        return Standing::Free;
    };
    if claim.holder == *me {
        return Standing::Mine;
    }
    if claim.expires_ms <= now_ms {
        return Standing::Free;
    }
    if claim.holder.host == me.host && (claim.holder.pid == me.pid || !runs(claim.holder.pid)) {
        return Standing::Free;
    }
    Standing::Other(claim)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Holder {
        Holder::new("ci-1", 40, "aa")
    }

    fn value(host: &str, pid: u32, nonce: &str, expires: i64) -> String {
        encode(&Claim {
            holder: Holder::new(host, pid, nonce),
            expires_ms: expires,
        })
    }

    #[test]
    fn a_claim_reads_back_as_written() {
        let c = Claim {
            holder: Holder::new("pod-7f9c.example", 1, "0123abcd"),
            expires_ms: 1_800_000_000_123,
        };
        assert_eq!(encode(&c), "pod-7f9c.example/1/0123abcd/1800000000123");
        assert_eq!(decode(&encode(&c)), Some(c));
    }

    #[test]
    fn values_that_are_not_claims_are_refused() {
        for v in [
            "",
            "a/1/n",
            "a/1/n/5/6",
            "/1/n/5",
            "a/1//5",
            "a/x/n/5",
            "a/1/n/soon",
            "a/-1/n/5",
        ] {
            assert_eq!(decode(v), None, "{v:?}");
        }
    }

    #[test]
    fn the_host_keeps_only_tag_characters() {
        assert_eq!(Holder::new("my host!é", 1, "n").host, "myhost");
        assert_eq!(Holder::new("", 1, "n").host, "unknown");
        assert_eq!(Holder::new(&"h".repeat(300), 1, "n").host.len(), 63);
    }

    #[test]
    fn standing_by_table() {
        let now = 1_000_000;
        let live = now + 1;
        let runs = |pid: u32| pid == 7;
        // (tag value, expected)
        let other = |host: &str, pid: u32| {
            Standing::Other(Claim {
                holder: Holder::new(host, pid, "bb"),
                expires_ms: live,
            })
        };
        let table: Vec<(Option<String>, Standing)> = vec![
            (None, Standing::Free),
            (Some("garbage".into()), Standing::Free),
            (Some(value("ci-1", 40, "aa", now - 5)), Standing::Mine),
            (Some(value("ci-1", 40, "aa", live)), Standing::Mine),
            // Another host: live until its expiry, whatever its pid.
            (Some(value("ci-2", 40, "bb", live)), other("ci-2", 40)),
            (Some(value("ci-2", 99, "bb", live)), other("ci-2", 99)),
            (Some(value("ci-2", 7, "bb", now)), Standing::Free),
            (Some(value("ci-2", 7, "bb", now - 1)), Standing::Free),
            // This host: a pid that runs is another live process.
            (Some(value("ci-1", 7, "bb", live)), other("ci-1", 7)),
            // This host: a pid that is gone, or this very pid (a
            // predecessor), is free.
            (Some(value("ci-1", 99, "bb", live)), Standing::Free),
            (Some(value("ci-1", 40, "bb", live)), Standing::Free),
        ];
        for (v, want) in table {
            assert_eq!(standing(v.as_deref(), &me(), now, runs), want, "{v:?}");
        }
    }

    #[test]
    fn the_key_names_the_owner() {
        assert_eq!(key("platform"), "apimount:platform:instance");
    }
}
