//! A mount's progressive release (`spec.release`): the version its route is
//! to serve, the steps by which traffic moves to it, and the alarms that
//! stop it. The validated values and the rules for them; `validate` applies
//! the rules to a document, `plan::release` decides what each step does.

use std::time::Duration;

use super::FunctionRef;

/// Shortest pause between two steps: alarms need time to see anything.
pub const MIN_PAUSE: Duration = Duration::from_secs(1);
/// Longest pause between two steps.
pub const MAX_PAUSE: Duration = Duration::from_secs(24 * 3600);
/// Most alarms a release may name (one DescribeAlarms page holds 100).
pub const MAX_ALARMS: usize = 10;
/// Most steps a release may have.
pub const MAX_STEPS: usize = 20;
/// Prefix of the aliases apimount owns; mount names and tenant names have
/// no '_', so the name cannot be read two ways.
pub const ALIAS_PREFIX: &str = "apimount_";

/// One step: the share of the route's traffic the new version takes, and how
/// long it takes it before the next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Step {
    /// Percent, 1 to 99.
    pub weight: u8,
    pub pause: Duration,
}

/// An alarm apimount creates on the new version's error rate while a
/// release runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Guard {
    /// Percent of the new version's invocations that may fail (0.1 to 100,
    /// in tenths).
    pub max_error_rate_tenths: u16,
}

impl Guard {
    pub fn max_error_rate(&self) -> f64 {
        f64::from(self.max_error_rate_tenths) / 10.0
    }
}

/// A validated `spec.release`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Release {
    /// A published version of the function: digits.
    pub version: String,
    /// Rising weights; empty: all at once.
    pub steps: Vec<Step>,
    /// CloudWatch alarms of the team; any of them in ALARM rolls back.
    pub alarms: Vec<String>,
    pub guard: Option<Guard>,
}

impl Release {
    /// The default steps: 10 % for five minutes.
    pub fn default_steps() -> Vec<Step> {
        vec![Step {
            weight: 10,
            pause: Duration::from_secs(300),
        }]
    }

    /// The steps of a named strategy, as CodeDeploy names them.
    pub fn strategy(name: &str) -> Option<Vec<Step>> {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        Some(match name {
            "AllAtOnce" => Vec::new(),
            "Canary10Percent5Minutes" => vec![Step {
                weight: 10,
                pause: minutes(5),
            }],
            "Canary10Percent10Minutes" => vec![Step {
                weight: 10,
                pause: minutes(10),
            }],
            "Canary10Percent30Minutes" => vec![Step {
                weight: 10,
                pause: minutes(30),
            }],
            "Linear10PercentEvery1Minute" => (1..=9)
                .map(|i| Step {
                    weight: i * 10,
                    pause: minutes(1),
                })
                .collect(),
            "Linear10PercentEvery10Minutes" => (1..=9)
                .map(|i| Step {
                    weight: i * 10,
                    pause: minutes(10),
                })
                .collect(),
            _ => return None,
        })
    }

    /// The strategies [`Release::strategy`] knows.
    pub const STRATEGIES: [&'static str; 6] = [
        "AllAtOnce",
        "Canary10Percent5Minutes",
        "Canary10Percent10Minutes",
        "Canary10Percent30Minutes",
        "Linear10PercentEvery1Minute",
        "Linear10PercentEvery10Minutes",
    ];
}

/// The alias apimount owns for a mount: `apimount_{name}`, or
/// `apimount_{tenant}_{name}` under a tenant policy (at most 106
/// characters; Lambda allows 128).
pub fn alias_name(tenant: Option<&str>, name: &str) -> String {
    match tenant {
        Some(t) => format!("{ALIAS_PREFIX}{t}_{name}"),
        None => format!("{ALIAS_PREFIX}{name}"),
    }
}

/// `function` routed through the mount's alias.
pub fn with_alias(function: FunctionRef, tenant: Option<&str>, name: &str) -> FunctionRef {
    let alias = Some(alias_name(tenant, name));
    match function {
        FunctionRef::Name { name, .. } => FunctionRef::Name {
            name,
            qualifier: alias,
        },
        FunctionRef::Arn {
            partition,
            region,
            account,
            name,
            ..
        } => FunctionRef::Arn {
            partition,
            region,
            account,
            name,
            qualifier: alias,
        },
    }
}

/// Checks a version as `release.version` gives it: a published version
/// number (not `$LATEST`, not an alias).
pub fn check_version(v: &str) -> Result<(), String> {
    if v == "$LATEST" {
        return Err("$LATEST cannot be released: it changes under the release; publish a version and name its number".into());
    }
    if v.is_empty() || v.len() > 10 || !v.chars().all(|c| c.is_ascii_digit()) || v.starts_with('0')
    {
        return Err(format!(
            "'{}' is not a published version number (such as \"42\")",
            v.escape_debug()
        ));
    }
    Ok(())
}

/// Checks a CloudWatch alarm name: 1 to 255 characters, no control
/// characters.
pub fn check_alarm_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > 255 {
        return Err(format!(
            "alarm name '{}' must be 1 to 255 characters long",
            name.escape_debug()
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(format!(
            "alarm name '{}' contains a control character",
            name.escape_debug()
        ));
    }
    Ok(())
}

/// Checks the steps: weights 1 to 99, rising; pauses within bounds.
pub fn check_steps(steps: &[Step]) -> Result<(), (usize, String)> {
    if steps.len() > MAX_STEPS {
        return Err((
            MAX_STEPS,
            format!("{} steps; a release has at most {MAX_STEPS}", steps.len()),
        ));
    }
    let mut last = 0;
    for (i, s) in steps.iter().enumerate() {
        if !(1..=99).contains(&s.weight) {
            return Err((
                i,
                format!(
                    "weight {} is out of range: 1 to 99 percent (100 is the promotion that follows the last step)",
                    s.weight
                ),
            ));
        }
        if s.weight <= last {
            return Err((
                i,
                format!(
                    "weight {} does not rise above the step before ({last})",
                    s.weight
                ),
            ));
        }
        if s.pause < MIN_PAUSE || s.pause > MAX_PAUSE {
            return Err((
                i,
                format!(
                    "pause {}s is out of range: 1s to 24h",
                    s.pause.as_secs_f64()
                ),
            ));
        }
        last = s.weight;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(weight: u8, secs: u64) -> Step {
        Step {
            weight,
            pause: Duration::from_secs(secs),
        }
    }

    #[test]
    fn steps_rise_within_bounds() {
        let table: [(&[Step], Option<usize>); 8] = [
            (&[], None),
            (&[step(10, 300)], None),
            (&[step(1, 1), step(99, 86_400)], None),
            (&[step(0, 60)], Some(0)),
            (&[step(100, 60)], Some(0)),
            (&[step(10, 60), step(10, 60)], Some(1)),
            (&[step(50, 60), step(20, 60)], Some(1)),
            (&[step(10, 0)], Some(0)),
        ];
        for (steps, bad) in table {
            assert_eq!(check_steps(steps).err().map(|e| e.0), bad, "{steps:?}");
        }
        assert!(check_steps(&[step(10, 86_401)]).is_err());
        let many: Vec<Step> = (1..=21).map(|w| step(w, 1)).collect();
        assert_eq!(check_steps(&many).err().map(|e| e.0), Some(MAX_STEPS));
    }

    #[test]
    fn versions_are_published_numbers() {
        for ok in ["1", "42", "9999999999"] {
            assert_eq!(check_version(ok), Ok(()), "{ok}");
        }
        for bad in ["", "$LATEST", "live", "01", "4.2", "-1", "12345678901"] {
            assert!(check_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn strategies_are_rising_steps() {
        for name in Release::STRATEGIES {
            let steps = Release::strategy(name).expect(name);
            assert_eq!(check_steps(&steps), Ok(()), "{name}");
        }
        assert_eq!(
            Release::strategy("Linear10PercentEvery1Minute")
                .unwrap()
                .len(),
            9
        );
        assert_eq!(Release::strategy("AllAtOnce"), Some(vec![]));
        assert_eq!(Release::strategy("canary"), None);
    }

    #[test]
    fn alias_names_are_lambda_alias_names_and_distinct() {
        let long = "a".repeat(63);
        let tenant = "t".repeat(32);
        let a = alias_name(Some(&tenant), &long);
        assert!(a.len() <= 128, "{}", a.len());
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(alias_name(Some("a-b"), "c"), alias_name(Some("a"), "b-c"));
        assert_ne!(alias_name(None, "a"), alias_name(Some("a"), "a"));
        assert_eq!(alias_name(None, "payments"), "apimount_payments");
    }

    fn parse(
        release: &str,
        function: &str,
    ) -> Result<crate::manifest::Mount, Vec<crate::manifest::ManifestError>> {
        let text = format!(
            "apiVersion: apimount/v1\nkind: ServiceMount\nmetadata:\n  name: pay\nspec:\n  path: /pay\n  function: {function}\n  release:\n{release}"
        );
        crate::manifest::parse(std::path::Path::new("pay.yaml"), text.as_bytes())
    }

    #[test]
    fn manifests_with_a_release_by_table() {
        // (release body, the field of the error, its line; None: valid)
        let table: &[(&str, Option<(&str, u64)>)] = &[
            ("    version: \"42\"\n", None),
            ("    version: 42\n", None),
            ("    version: \"3\"\n    strategy: Linear10PercentEvery1Minute\n    alarms: [a, b]\n    guard: {maxErrorRate: 2.5}\n", None),
            ("    version: \"3\"\n    steps:\n      - {weight: 5, pause: 30s}\n      - {weight: 50, pause: 1h}\n", None),
            ("    version: $LATEST\n", Some(("spec.release.version", 9))),
            ("    version: \"3\"\n    strategy: Blue\n", Some(("spec.release.strategy", 10))),
            ("    version: \"3\"\n    strategy: AllAtOnce\n    steps: []\n", Some(("spec.release.steps", 11))),
            ("    version: \"3\"\n    steps:\n      - {weight: 0, pause: 30s}\n", Some(("spec.release.steps[0].weight", 11))),
            ("    version: \"3\"\n    steps:\n      - {weight: 10, pause: soon}\n", Some(("spec.release.steps[0].pause", 11))),
            ("    version: \"3\"\n    steps:\n      - {weight: 50, pause: 1m}\n      - {weight: 20, pause: 1m}\n", Some(("spec.release.steps[1]", 12))),
            ("    version: \"3\"\n    steps:\n      - {weight: 10, pause: 25h}\n", Some(("spec.release.steps[0]", 11))),
            ("    version: \"3\"\n    alarms: [a, b, c, d, e, f, g, h, i, j]\n", None),
            ("    version: \"3\"\n    alarms: [a, b, c, d, e, f, g, h, i, j, k]\n", Some(("spec.release.alarms", 10))),
            ("    version: \"3\"\n    alarms: [a, a]\n", Some(("spec.release.alarms[1]", 10))),
            ("    version: \"3\"\n    guard: {maxErrorRate: 0}\n", Some(("spec.release.guard.maxErrorRate", 10))),
            ("    version: \"3\"\n    guard: {maxErrorRate: \"5\"}\n", Some(("spec.release.guard.maxErrorRate", 10))),
        ];
        for (body, want) in table {
            let got = parse(body, "pay");
            match (want, got) {
                (None, Ok(m)) => {
                    assert_eq!(m.function.qualifier(), Some("apimount_pay"), "{body}");
                    assert_eq!(m.named_function().qualifier(), None, "{body}");
                }
                (Some((field, line)), Err(errors)) => {
                    let e = &errors[0];
                    assert_eq!(e.field.as_deref(), Some(*field), "{body}: {errors:?}");
                    assert_eq!(e.position.map(|p| p.0), Some(*line), "{body}: {errors:?}");
                    assert_eq!(e.file, std::path::Path::new("pay.yaml"));
                }
                (want, got) => panic!("{body}: wanted {want:?}, got {got:?}"),
            }
        }
        // No steps and no strategy: 10 % for five minutes, then all.
        let plain = parse("    version: \"3\"\n", "pay").unwrap();
        assert_eq!(
            plain.release.unwrap().steps,
            vec![Step {
                weight: 10,
                pause: Duration::from_secs(300)
            }]
        );
        // A release needs the function unqualified.
        let e = parse("    version: \"3\"\n", "pay:live").unwrap_err();
        assert_eq!(e[0].field.as_deref(), Some("spec.function"));
        // Unknown fields are refused.
        assert!(parse("    version: \"3\"\n    weight: 10\n", "pay").is_err());
        // The release is not in the generation: a new version rewrites no route.
        let a = parse("    version: \"3\"\n", "pay").unwrap();
        let b = parse("    version: \"4\"\n    alarms: [x]\n", "pay").unwrap();
        assert_eq!(a.generation(), b.generation());
        // Under a tenant the alias is named after it too.
        let mut t = a.clone();
        t.set_tenant(Some("team".into()));
        assert_eq!(t.function.qualifier(), Some("apimount_team_pay"));
    }

    #[test]
    fn strategies_pause_as_their_names_say_and_guards_keep_their_rate() {
        let canary = Release::strategy("Canary10Percent5Minutes").unwrap();
        assert_eq!(canary[0].pause, Duration::from_secs(300));
        let linear = Release::strategy("Linear10PercentEvery1Minute").unwrap();
        assert!(linear.iter().all(|s| s.pause == Duration::from_secs(60)));
        let weights: Vec<u8> = linear.iter().map(|s| s.weight).collect();
        assert_eq!(weights, [10, 20, 30, 40, 50, 60, 70, 80, 90]);
        assert_eq!(
            Release::strategy("Linear10PercentEvery10Minutes").unwrap()[8],
            Step {
                weight: 90,
                pause: Duration::from_secs(600)
            }
        );
        let m = parse(
            "    version: \"3\"\n    guard: {maxErrorRate: 2.5}\n",
            "pay",
        )
        .unwrap();
        let g = m.release.unwrap().guard.unwrap();
        assert_eq!(g.max_error_rate(), 2.5);
    }

    #[test]
    fn alarm_names() {
        assert!(check_alarm_name(&"x".repeat(255)).is_ok());
        assert!(check_alarm_name("payments-5xx").is_ok());
        assert!(check_alarm_name("with space / slash").is_ok());
        assert!(check_alarm_name("").is_err());
        assert!(check_alarm_name(&"x".repeat(256)).is_err());
        assert!(check_alarm_name("a\nb").is_err());
    }
}
