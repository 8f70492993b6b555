//! A mount's throttling, as entries of the stage's method settings. Pure.
//!
//! How AWS reads these entries (docs/OPERATIONS.md, "Throttling on AWS",
//! gives the sources):
//!
//! - An entry is keyed `{resourcePath}/{httpMethod}` with `/` written `~1`
//!   ([`settings_key`]). AWS documents no `…/ANY` key, so a route served by
//!   an ANY method gets one entry per concrete verb that ANY answers
//!   ([`route_keys`]); each entry is a bucket of its own. Entries earlier
//!   versions wrote under `…/ANY` are taken away like any entry the mount no
//!   longer wants.
//! - An entry overrides the stage default (`*/*`) in every field, and AWS
//!   starts a new one from its own defaults (caching off). An entry apimount
//!   throttles therefore carries a copy of everything else `*/*` sets
//!   (logging, data trace, metrics, every caching field), and a later change
//!   to `*/*` is drift to follow.
//! - A throttle of `-1` means throttling disabled at that level, not "as the
//!   stage": apimount never writes it to hand a route back. It removes the
//!   entry; when the entry must stay because someone gave it settings of its
//!   own, its throttling takes the values `*/*` has and follows them.
//! - UpdateStage answers with the stage as it left it: each change is judged
//!   by that answer ([`took_effect`]), and a removal the backend ignored
//!   falls back to following `*/*` ([`fallback`]). Calls carry at most
//!   [`MAX_PATCHES_PER_CALL`] operations ([`pack`]).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use super::change::Change;
#[cfg(test)]
use super::model::Behaviour;
use super::model::{PatchOp, Rate, StageMethodSetting};
use crate::manifest::{HttpMethod, Throttle};

/// The stage's default method settings.
pub const STAGE_DEFAULT_KEY: &str = "*/*";

/// The most patch operations apimount sends in one UpdateStage call.
pub const MAX_PATCHES_PER_CALL: usize = 80;

/// The verbs a request can have (every verb but ANY, which answers each
/// that has no method of its own).
fn concrete_verbs() -> impl Iterator<Item = HttpMethod> {
    HttpMethod::ALL
        .into_iter()
        .filter(|v| *v != HttpMethod::Any)
}

/// Throttling disabled at an entry's level, as AWS shows it.
pub const DISABLED: (Rate, i32) = (Rate(-1.0), -1);

/// The method-settings key of a route and method: `~1accounts~1{proxy+}/GET`.
pub fn settings_key(path: &str, verb: &str) -> String {
    format!("{}/{verb}", path.replace('~', "~0").replace('/', "~1"))
}

/// One patch operation on the stage (a [`PatchOp`]; the stage's settings
/// use `replace` and `remove`).
pub type StagePatch = PatchOp;

/// Who holds a method on a resource, for finding which entries are a mount's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// A method the mount lists: throttled with the mount.
    Listed,
    /// The mount's CORS preflight: never throttled.
    Preflight,
    /// Someone else's.
    Other,
}

/// The method that answers `verb` on a resource: its own, or ANY.
fn serving<T: Copy>(methods: &BTreeMap<String, T>, verb: HttpMethod) -> Option<T> {
    methods
        .get(verb.as_str())
        .or_else(|| methods.get(HttpMethod::Any.as_str()))
        .copied()
}

/// The entries of one route that are a mount's, by verb.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteKeys {
    /// Verbs whose entry carries the mount's throttle.
    pub throttled: BTreeSet<String>,
    /// Verbs whose entry the mount no longer throttles (taken away if present).
    pub cleared: BTreeSet<String>,
}

/// Which of a route's entries are a mount's. `before` holds the resource's
/// methods as observed (`true`: the mount's), `after` as they will be. A
/// verb's entry is the mount's when the method answering that verb is (its
/// own method, else ANY), before or after; the verb is throttled when that
/// method is one the mount lists. The legacy `ANY` key of an ANY method the
/// mount holds is always taken away.
pub fn route_keys(before: &BTreeMap<String, bool>, after: &BTreeMap<String, Holder>) -> RouteKeys {
    let mut keys = RouteKeys::default();
    for verb in concrete_verbs() {
        let now = serving(after, verb);
        let was_ours = serving(before, verb) == Some(true);
        match now {
            Some(Holder::Listed) => {
                keys.throttled.insert(verb.as_str().to_string());
            }
            Some(Holder::Preflight) => {
                keys.cleared.insert(verb.as_str().to_string());
            }
            Some(Holder::Other) => {}
            None if was_ours => {
                keys.cleared.insert(verb.as_str().to_string());
            }
            None => {}
        }
    }
    let any = HttpMethod::Any.as_str();
    if before.get(any) == Some(&true) || matches!(after.get(any), Some(Holder::Listed)) {
        keys.cleared.insert(any.to_string());
    }
    keys
}

/// The stage default's entry, when there is one.
pub fn stage_default(
    settings: &BTreeMap<String, StageMethodSetting>,
) -> Option<&StageMethodSetting> {
    settings.get(STAGE_DEFAULT_KEY)
}

/// The throttling a route without an entry of its own has: the stage
/// default's, or none at the stage level.
pub fn default_throttling(settings: &BTreeMap<String, StageMethodSetting>) -> (Rate, i32) {
    stage_default(settings).map_or(DISABLED, StageMethodSetting::throttling)
}

fn wants(throttle: Throttle) -> (Rate, i32) {
    (
        Rate(throttle.rate_limit.get()),
        i32::try_from(throttle.burst_limit).unwrap_or(i32::MAX),
    )
}

/// The change that brings one entry to what the mount wants: its throttle
/// (`Some`) or none (`None`). `settings` are the stage's entries, `None`
/// before the stage exists.
pub fn throttle_change(
    path: &str,
    verb: &str,
    want: Option<Throttle>,
    settings: Option<&BTreeMap<String, StageMethodSetting>>,
) -> Option<Change> {
    let entry = settings.and_then(|s| s.get(&settings_key(path, verb)));
    let default = settings.and_then(stage_default).map(|d| &d.behaviour);
    match want {
        Some(throttle) => {
            let verb = HttpMethod::parse(verb)?;
            let Some(e) = entry else {
                return Some(Change::PutThrottle {
                    path: path.to_string(),
                    verb,
                    throttle,
                    copy: default.cloned(),
                    was: None,
                });
            };
            let throttle_ok = e.throttling() == wants(throttle);
            let drift = default
                .map(|d| e.behaviour.differences(d))
                .unwrap_or_default();
            if throttle_ok && drift.is_empty() {
                return None;
            }
            let mut was = describe_throttling(e.throttling());
            if !drift.is_empty() {
                was.push_str(&format!("; {} not as the stage default", drift.join(", ")));
            }
            Some(Change::PutThrottle {
                path: path.to_string(),
                verb,
                throttle,
                copy: (!drift.is_empty()).then(|| default.cloned()).flatten(),
                was: Some(was),
            })
        }
        None => {
            let settings = settings?;
            let e = entry?;
            let to = default_throttling(settings);
            if e.throttling() == to {
                return None;
            }
            let base = default.cloned().unwrap_or_default();
            Some(Change::ClearThrottle {
                path: path.to_string(),
                verb: verb.to_string(),
                keep: !e.behaviour.same_effect(&base),
                to,
                was: describe_throttling(e.throttling()),
            })
        }
    }
}

/// The changes for every entry of one route that is a mount's.
pub fn route_changes(
    path: &str,
    keys: &RouteKeys,
    throttle: Option<Throttle>,
    settings: Option<&BTreeMap<String, StageMethodSetting>>,
) -> Vec<Change> {
    let throttled = keys
        .throttled
        .iter()
        .filter_map(|v| throttle_change(path, v, throttle, settings));
    let cleared = keys
        .cleared
        .iter()
        .filter(|v| !keys.throttled.contains(*v))
        .filter_map(|v| throttle_change(path, v, None, settings));
    throttled.chain(cleared).collect()
}

fn key_of(c: &Change) -> String {
    match c {
        Change::PutThrottle { path, verb, .. } => settings_key(path, verb.as_str()),
        Change::ClearThrottle { path, verb, .. } => settings_key(path, verb),
        other => unreachable!("not a stage setting: {other}"),
    }
}

fn replace_throttling(key: &str, (rate, burst): (Rate, i32)) -> [StagePatch; 2] {
    [
        StagePatch::Replace(format!("/{key}/throttling/rateLimit"), rate.to_string()),
        StagePatch::Replace(format!("/{key}/throttling/burstLimit"), burst.to_string()),
    ]
}

/// The patch operations of a stage-settings change.
pub fn patches(c: &Change) -> Vec<StagePatch> {
    let key = key_of(c);
    match c {
        Change::PutThrottle { throttle, copy, .. } => {
            let mut p = replace_throttling(&key, wants(*throttle)).to_vec();
            if let Some(b) = copy {
                p.extend(
                    b.fields()
                        .into_iter()
                        .map(|(field, v)| StagePatch::Replace(format!("/{key}/{field}"), v)),
                );
            }
            p
        }
        Change::ClearThrottle { keep: true, to, .. } => replace_throttling(&key, *to).to_vec(),
        Change::ClearThrottle { .. } => vec![StagePatch::Remove(format!("/{key}"))],
        other => unreachable!("not a stage setting: {other}"),
    }
}

/// What to send instead when the backend would not remove an entry: the
/// entry stays, following the stage default's throttling.
pub fn fallback(c: &Change) -> Option<Vec<StagePatch>> {
    match c {
        Change::ClearThrottle {
            keep: false, to, ..
        } => Some(replace_throttling(&key_of(c), *to).to_vec()),
        _ => None,
    }
}

/// Whether the stage the backend answered with shows the change made:
/// `removed` says whether the removal itself was sent (not its fallback).
/// `Err` says what the stage shows instead.
pub fn took_effect(
    c: &Change,
    removed: bool,
    answer: &BTreeMap<String, StageMethodSetting>,
) -> Result<(), String> {
    let key = key_of(c);
    let entry = answer.get(&key);
    let (want, copy) = match c {
        Change::PutThrottle { throttle, copy, .. } => (wants(*throttle), copy.as_ref()),
        Change::ClearThrottle { to, .. } if !removed => (*to, None),
        Change::ClearThrottle { .. } => {
            return match entry {
                None => Ok(()),
                Some(e) => Err(format!(
                    "the stage still has the entry {key} ({})",
                    describe_throttling(e.throttling())
                )),
            }
        }
        other => unreachable!("not a stage setting: {other}"),
    };
    let Some(e) = entry else {
        return Err(format!("the stage shows no entry {key}"));
    };
    if e.throttling() != want {
        return Err(format!(
            "the stage shows {} for {key}, not {}",
            describe_throttling(e.throttling()),
            describe_throttling(want)
        ));
    }
    if let Some(b) = copy {
        let differ = e.behaviour.differences(b);
        if !differ.is_empty() {
            return Err(format!(
                "the stage shows {} of {key} unchanged",
                differ.join(", ")
            ));
        }
    }
    Ok(())
}

/// Splits changes of `sizes` patch operations into runs that fit in one
/// call each, in order, never splitting a change.
pub fn pack(sizes: &[usize]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut ops = 0;
    for (i, n) in sizes.iter().enumerate() {
        if i > start && ops + n > MAX_PATCHES_PER_CALL {
            out.push(start..i);
            start = i;
            ops = 0;
        }
        ops += n;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// Throttling for plans: `12.5 requests/s, burst 40`, or `disabled`.
pub fn describe_throttling((rate, burst): (Rate, i32)) -> String {
    if rate.0 < 0.0 && burst < 0 {
        return "throttling disabled".to_string();
    }
    let part = |n: f64| {
        if n < 0.0 {
            "disabled".to_string()
        } else {
            format!("{n}")
        }
    };
    format!(
        "{} requests/s, burst {}",
        part(rate.0),
        part(f64::from(burst))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn behaviour(caching: bool, logging: &str) -> Behaviour {
        Behaviour {
            caching,
            logging_level: logging.into(),
            ..Behaviour::default()
        }
    }

    fn entry(rate: f64, burst: i32, b: Behaviour) -> StageMethodSetting {
        StageMethodSetting {
            rate_limit: Rate(rate),
            burst_limit: burst,
            behaviour: b,
        }
    }

    fn throttle(rate: f64, burst: u32) -> Throttle {
        Throttle {
            rate_limit: crate::manifest::options::RateLimit::new(rate).unwrap(),
            burst_limit: burst,
        }
    }

    fn methods<T: Copy>(list: &[(&str, T)]) -> BTreeMap<String, T> {
        list.iter().map(|(v, t)| (v.to_string(), *t)).collect()
    }

    fn set(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn keys_escape_the_path() {
        assert_eq!(settings_key("/accounts", "GET"), "~1accounts/GET");
        assert_eq!(settings_key("/a/{proxy+}", "PUT"), "~1a~1{proxy+}/PUT");
        assert_eq!(settings_key("/a~b", "GET"), "~1a~0b/GET");
    }

    #[test]
    fn route_keys_by_table() {
        use Holder::*;
        let all = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"];
        let all_but = |gone: &[&str]| {
            let v: Vec<&str> = all.iter().copied().filter(|v| !gone.contains(v)).collect();
            set(&v)
        };
        // (before, after, throttled, cleared)
        type Row<'a> = (
            Vec<(&'a str, bool)>,
            Vec<(&'a str, Holder)>,
            BTreeSet<String>,
            BTreeSet<String>,
        );
        let rows: Vec<Row> = vec![
            // A new ANY mount: every verb, the legacy key among the cleared.
            (vec![], vec![("ANY", Listed)], set(&all), set(&["ANY"])),
            // ANY with a CORS preflight: OPTIONS is the preflight's, not throttled.
            (
                vec![],
                vec![("ANY", Listed), ("OPTIONS", Preflight)],
                all_but(&["OPTIONS"]),
                set(&["ANY", "OPTIONS"]),
            ),
            // Someone else's GET on the same resource keeps its own entry.
            (
                vec![("GET", false)],
                vec![("ANY", Listed), ("GET", Other)],
                all_but(&["GET"]),
                set(&["ANY"]),
            ),
            // Explicit verbs only.
            (
                vec![],
                vec![("GET", Listed), ("POST", Listed)],
                set(&["GET", "POST"]),
                set(&[]),
            ),
            // Narrowed from ANY to GET: the other verbs' entries go, and the legacy key.
            (vec![("ANY", true)], vec![("GET", Listed)], set(&["GET"]), {
                let mut s = all_but(&["GET"]);
                s.insert("ANY".into());
                s
            }),
            // Removed (a cleanup): everything it answered goes; another's ANY keeps the rest.
            (
                vec![("GET", true), ("ANY", false)],
                vec![("ANY", Other)],
                set(&[]),
                set(&[]),
            ),
            (vec![("GET", true)], vec![], set(&[]), set(&["GET"])),
            // Someone else's ANY, our GET: only GET is ours.
            (
                vec![("ANY", false)],
                vec![("ANY", Other), ("GET", Listed)],
                set(&["GET"]),
                set(&[]),
            ),
        ];
        for (i, (before, after, throttled, cleared)) in rows.into_iter().enumerate() {
            let got = route_keys(&methods(&before), &methods(&after));
            assert_eq!(got.throttled, throttled, "row {i}: throttled");
            assert_eq!(got.cleared, cleared, "row {i}: cleared");
        }
    }

    #[test]
    fn a_new_entry_copies_every_setting_of_the_stage_default() {
        let default = behaviour(true, "INFO");
        let settings: BTreeMap<_, _> = [(
            STAGE_DEFAULT_KEY.to_string(),
            entry(50.0, 100, default.clone()),
        )]
        .into();
        let c = throttle_change("/a", "GET", Some(throttle(10.0, 20)), Some(&settings)).unwrap();
        let Change::PutThrottle { copy, was, .. } = &c else {
            panic!("{c:?}")
        };
        assert_eq!(copy.as_ref(), Some(&default));
        assert!(was.is_none());
        let p = patches(&c);
        assert_eq!(p.len(), 10);
        assert!(p.contains(&StagePatch::Replace(
            "/~1a/GET/caching/enabled".into(),
            "true".into()
        )));
        assert!(p.contains(&StagePatch::Replace(
            "/~1a/GET/logging/loglevel".into(),
            "INFO".into()
        )));
        // Without a stage default nothing is copied: AWS's defaults are the stage's.
        let c = throttle_change(
            "/a",
            "GET",
            Some(throttle(10.0, 20)),
            Some(&BTreeMap::new()),
        );
        assert_eq!(patches(&c.unwrap()).len(), 2);
    }

    #[test]
    fn a_change_of_the_stage_default_is_followed() {
        let mut settings: BTreeMap<_, _> = [
            (
                STAGE_DEFAULT_KEY.to_string(),
                entry(50.0, 100, behaviour(false, "OFF")),
            ),
            (
                "~1a/GET".to_string(),
                entry(10.0, 20, behaviour(false, "OFF")),
            ),
        ]
        .into();
        assert_eq!(
            throttle_change("/a", "GET", Some(throttle(10.0, 20)), Some(&settings)),
            None
        );
        settings
            .get_mut(STAGE_DEFAULT_KEY)
            .unwrap()
            .behaviour
            .caching = true;
        let c = throttle_change("/a", "GET", Some(throttle(10.0, 20)), Some(&settings)).unwrap();
        assert_eq!(
            c.to_string(),
            "~ throttle GET /a: 10 requests/s, burst 20 (was 10 requests/s, burst 20; caching/enabled not as the stage default)"
        );
        // The stage default's own throttling is not copied.
        settings
            .get_mut(STAGE_DEFAULT_KEY)
            .unwrap()
            .behaviour
            .caching = false;
        settings.get_mut(STAGE_DEFAULT_KEY).unwrap().rate_limit = Rate(7.0);
        assert_eq!(
            throttle_change("/a", "GET", Some(throttle(10.0, 20)), Some(&settings)),
            None
        );
    }

    #[test]
    fn taking_throttling_away_never_writes_minus_one_over_a_stage_throttle() {
        let default = entry(50.0, 100, behaviour(false, "OFF"));
        let with = |e: StageMethodSetting| -> BTreeMap<String, StageMethodSetting> {
            [
                (STAGE_DEFAULT_KEY.to_string(), default.clone()),
                ("~1a/GET".to_string(), e),
            ]
            .into()
        };
        // Only throttling: removed.
        let s = with(entry(10.0, 20, behaviour(false, "OFF")));
        let c = throttle_change("/a", "GET", None, Some(&s)).unwrap();
        assert_eq!(patches(&c), vec![StagePatch::Remove("/~1a/GET".into())]);
        assert_eq!(
            fallback(&c).unwrap(),
            vec![
                StagePatch::Replace("/~1a/GET/throttling/rateLimit".into(), "50".into()),
                StagePatch::Replace("/~1a/GET/throttling/burstLimit".into(), "100".into()),
            ]
        );
        // An earlier version's reset (-1) is taken away the same way.
        let s = with(entry(-1.0, -1, behaviour(false, "OFF")));
        let c = throttle_change("/a", "GET", None, Some(&s)).unwrap();
        assert_eq!(patches(&c), vec![StagePatch::Remove("/~1a/GET".into())]);
        // Someone's caching on it: kept, throttling as the stage default's.
        let s = with(entry(10.0, 20, behaviour(true, "OFF")));
        let c = throttle_change("/a", "GET", None, Some(&s)).unwrap();
        assert_eq!(
            patches(&c),
            vec![
                StagePatch::Replace("/~1a/GET/throttling/rateLimit".into(), "50".into()),
                StagePatch::Replace("/~1a/GET/throttling/burstLimit".into(), "100".into()),
            ]
        );
        assert_eq!(fallback(&c), None);
        assert!(
            c.to_string()
                .contains("follows the stage default (50 requests/s, burst 100)"),
            "{c}"
        );
        // Already following: nothing.
        let s = with(entry(50.0, 100, behaviour(true, "OFF")));
        assert_eq!(throttle_change("/a", "GET", None, Some(&s)), None);
        // No stage default: throttling disabled is what the stage has.
        let s: BTreeMap<_, _> = [(
            "~1a/GET".to_string(),
            entry(-1.0, -1, behaviour(true, "OFF")),
        )]
        .into();
        assert_eq!(throttle_change("/a", "GET", None, Some(&s)), None);
        // No entry, or no stage: nothing.
        assert_eq!(
            throttle_change("/a", "GET", None, Some(&with(default.clone()))),
            None
        );
        assert_eq!(throttle_change("/b", "GET", None, None), None);
    }

    #[test]
    fn the_answer_decides_whether_a_change_was_made() {
        let b = behaviour(true, "INFO");
        let put = Change::PutThrottle {
            path: "/a".into(),
            verb: HttpMethod::Get,
            throttle: throttle(10.0, 20),
            copy: Some(b.clone()),
            was: None,
        };
        let answer = |e: Option<StageMethodSetting>| -> BTreeMap<String, StageMethodSetting> {
            e.map(|e| ("~1a/GET".to_string(), e)).into_iter().collect()
        };
        assert_eq!(
            took_effect(&put, false, &answer(Some(entry(10.0, 20, b.clone())))),
            Ok(())
        );
        assert!(took_effect(&put, false, &answer(None)).is_err());
        assert!(took_effect(&put, false, &answer(Some(entry(10.0, 21, b.clone())))).is_err());
        let e = took_effect(
            &put,
            false,
            &answer(Some(entry(10.0, 20, behaviour(false, "INFO")))),
        );
        assert_eq!(
            e,
            Err("the stage shows caching/enabled of ~1a/GET unchanged".into())
        );
        let clear = Change::ClearThrottle {
            path: "/a".into(),
            verb: "GET".into(),
            keep: false,
            to: (Rate(50.0), 100),
            was: String::new(),
        };
        assert_eq!(took_effect(&clear, true, &answer(None)), Ok(()));
        assert!(took_effect(&clear, true, &answer(Some(entry(10.0, 20, b.clone())))).is_err());
        // Its fallback is judged by the throttling it sets.
        assert_eq!(
            took_effect(&clear, false, &answer(Some(entry(50.0, 100, b.clone())))),
            Ok(())
        );
        assert!(took_effect(&clear, false, &answer(Some(entry(-1.0, -1, b)))).is_err());
    }

    #[test]
    fn calls_carry_at_most_eighty_operations_and_never_split_a_change() {
        assert_eq!(pack(&[]), Vec::<Range<usize>>::new());
        assert_eq!(pack(&[10; 8]), vec![0..8]);
        assert_eq!(pack(&[10; 9]), vec![0..8, 8..9]);
        assert_eq!(pack(&[2, 79, 1]), vec![0..1, 1..3]);
        assert_eq!(pack(&[81]), vec![0..1]);
        for sizes in [
            vec![10usize; 30],
            vec![1; 200],
            vec![2, 10, 2, 10, 79, 80, 1],
        ] {
            let runs = pack(&sizes);
            let flat: Vec<usize> = runs.iter().flat_map(|r| r.clone()).collect();
            assert_eq!(flat, (0..sizes.len()).collect::<Vec<_>>());
            for r in runs {
                let n: usize = sizes[r.clone()].iter().sum();
                assert!(n <= MAX_PATCHES_PER_CALL || r.len() == 1, "{r:?}");
            }
        }
    }

    #[test]
    fn throttling_is_described_without_minus_one() {
        assert_eq!(
            describe_throttling((Rate(12.5), 40)),
            "12.5 requests/s, burst 40"
        );
        assert_eq!(describe_throttling(DISABLED), "throttling disabled");
        assert_eq!(
            describe_throttling((Rate(-1.0), 40)),
            "disabled requests/s, burst 40"
        );
        // Zero is a limit (nothing passes), not "disabled".
        assert_eq!(describe_throttling((Rate(0.0), 0)), "0 requests/s, burst 0");
        assert_eq!(
            describe_throttling((Rate(0.0), -1)),
            "0 requests/s, burst disabled"
        );
        assert_eq!(
            describe_throttling((Rate(5.0), -1)),
            "5 requests/s, burst disabled"
        );
    }
}
