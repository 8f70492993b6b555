//! The functions a pass reads: each manifest's function reference resolved,
//! with its resource policy reduced to what the planner needs, and the
//! memory of the last reads that the daemon's change passes use (see
//! [`Reads`](super::Reads)).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Instant;

use super::executor::problem_from;
use super::report::{ChangeOutcome, PassReport};
use super::{Reads, Reconciler};
use crate::aws::AwsErrorKind;
use crate::manifest::FunctionRef;
use crate::plan::model::ResolvedFunction;
use crate::plan::names::is_statement_of;
use crate::plan::policy::PolicyStatement;
use crate::plan::{Change, Problem, Reason};

/// A resolved function (or why it cannot be mounted) and its resource policy
/// (`None` when it could not be read).
pub(crate) type Inspected = (Result<ResolvedFunction, Problem>, Option<KnownPolicy>);

/// A function's resource policy reduced to what a pass uses: this owner's
/// statements for this API, and how many statements the policy has in all
/// (for the policy-size warning). Statements of other APIs and tools are not
/// kept: a function shared widely can carry hundreds of them.
#[derive(Debug, Clone)]
pub(crate) struct KnownPolicy {
    pub(crate) ours: Vec<PolicyStatement>,
    pub(crate) total: usize,
}

impl KnownPolicy {
    pub(crate) fn of(statements: Vec<PolicyStatement>, api_id: &str, owner: &str) -> KnownPolicy {
        let total = statements.len();
        let ours = statements
            .into_iter()
            .filter(|s| is_statement_of(&s.sid, api_id, owner))
            .collect();
        KnownPolicy { ours, total }
    }

    /// Adds (or resets) a statement of ours, as a successful change did.
    fn put(&mut self, statement: PolicyStatement) {
        self.remove(&statement.sid);
        self.ours.push(statement);
        self.total += 1;
    }

    fn remove(&mut self, sid: &str) {
        let before = self.ours.len();
        self.ours.retain(|s| s.sid != sid);
        self.total -= before - self.ours.len();
    }
}

/// The policies a plan works from, by function ARN: this owner's statements
/// (`None` where the policy could not be read), and each policy's size.
#[derive(Default)]
pub(crate) struct Policies {
    pub(crate) ours: BTreeMap<String, Option<Vec<PolicyStatement>>>,
    pub(crate) counts: BTreeMap<String, usize>,
}

impl Policies {
    /// Keeps the first policy seen for a function.
    pub(crate) fn keep(&mut self, arn: String, policy: Option<KnownPolicy>) {
        if self.ours.contains_key(&arn) {
            return;
        }
        if let Some(p) = &policy {
            self.counts.insert(arn.clone(), p.total);
        }
        self.ours.insert(arn, policy.map(|p| p.ours));
    }
}

/// Functions as the last read saw them: the resolved function and its policy
/// statements, updated with each permission change made since. Emptied by
/// every [`Reads::All`] pass; an entry goes when a change to that function's
/// policy fails, since what the policy holds is then unknown.
#[derive(Default)]
pub(crate) struct FunctionMemory(Mutex<BTreeMap<FunctionRef, Remembered>>);

/// What was read of a function, and when.
#[derive(Debug, Clone)]
struct Remembered {
    resolved: ResolvedFunction,
    policy: KnownPolicy,
    read_at: Instant,
}

impl FunctionMemory {
    pub(crate) fn clear(&self) {
        self.0.lock().expect("lock").clear();
    }

    /// Forgets what was read of `f`, so the next pass reads it again.
    pub(crate) fn forget(&self, f: &FunctionRef) {
        self.0.lock().expect("lock").remove(f);
    }

    /// Forgets, in each account, the `n` functions among `refs` read
    /// longest ago, so the pass reads them again: a rolling verification of
    /// every function's policy spread over resyncs, within each account's
    /// own Lambda quota (the quotas are per account, so one team's many
    /// functions do not slow the verification of another's).
    pub(crate) fn expire_oldest(&self, refs: &BTreeSet<&FunctionRef>, n: usize) {
        let mut memory = self.0.lock().expect("lock");
        let mut by_account: BTreeMap<String, Vec<(Instant, FunctionRef)>> = BTreeMap::new();
        for f in refs {
            if let Some(r) = memory.get(*f) {
                by_account
                    .entry(r.resolved.account.clone())
                    .or_default()
                    .push((r.read_at, (*f).clone()));
            }
        }
        for (_, mut known) in by_account {
            known.sort();
            for (_, f) in known.into_iter().take(n) {
                memory.remove(&f);
            }
        }
    }

    fn get(&self, f: &FunctionRef) -> Option<(ResolvedFunction, KnownPolicy)> {
        self.0
            .lock()
            .expect("lock")
            .get(f)
            .map(|r| (r.resolved.clone(), r.policy.clone()))
    }

    fn insert(&self, f: &FunctionRef, resolved: &ResolvedFunction, policy: &KnownPolicy) {
        self.0.lock().expect("lock").insert(
            f.clone(),
            Remembered {
                resolved: resolved.clone(),
                policy: policy.clone(),
                read_at: Instant::now(),
            },
        );
    }

    /// Brings the remembered policies up to date with a pass's permission
    /// changes; a function whose change failed is forgotten.
    pub(crate) fn remember_writes(&self, report: &PassReport) {
        // By function first: a first pass makes thousands of permission changes.
        let mut by_function: BTreeMap<&str, Vec<&ChangeOutcome>> = BTreeMap::new();
        for outcome in report.all_changes() {
            if let Change::AddPermission { function, .. }
            | Change::ReplacePermission { function, .. }
            | Change::RemovePermission { function, .. } = &outcome.change
            {
                by_function.entry(function).or_default().push(outcome);
            }
        }
        if by_function.is_empty() {
            return;
        }
        self.0.lock().expect("lock").retain(|_, r| {
            let (f, policy) = (&r.resolved, &mut r.policy);
            let Some(outcomes) = by_function.get(f.arn().as_str()) else {
                return true;
            };
            for outcome in outcomes {
                if outcome.error.is_some() {
                    return false;
                }
                match &outcome.change {
                    Change::AddPermission {
                        function,
                        sid,
                        source_arn,
                    }
                    | Change::ReplacePermission {
                        function,
                        sid,
                        source_arn,
                    } => policy.put(PolicyStatement::invoke_from(sid, source_arn, function)),
                    Change::RemovePermission { sid, .. } => policy.remove(sid),
                    _ => {}
                }
            }
            true
        });
    }
}

impl Reconciler {
    /// A function's resolution and policy: from the last read when `reads`
    /// allows and there is one, else read now (and remembered when it worked).
    pub(crate) async fn inspect_with(&self, f: &FunctionRef, reads: Reads) -> Inspected {
        if reads != Reads::All {
            if let Some((resolved, policy)) = self.functions.get(f) {
                return (Ok(resolved), Some(policy));
            }
        }
        let (resolved, policy) = self.inspect(f).await;
        if let (Ok(resolved), Some(policy)) = (&resolved, &policy) {
            self.functions.insert(f, resolved, policy);
        }
        (resolved, policy)
    }

    /// Resolves one function reference and reads its resource policy.
    async fn inspect(&self, f: &FunctionRef) -> Inspected {
        let (resolved, statements) = match self.aws.inspect_function(f).await {
            Ok(x) => x,
            Err(e) if e.kind == AwsErrorKind::NotFound => {
                let problem = Problem::new(
                    Reason::FunctionNotFound,
                    format!(
                        "Lambda function '{f}' does not exist in {} (as seen with the current credentials)",
                        self.target.region
                    ),
                );
                return (Err(problem), None);
            }
            Err(e) if e.operation == "lambda:GetPolicy" => {
                // The function may be fine; only its policy is unreadable.
                tracing::warn!(function = %f, error = %e, "could not read the function's resource policy");
                return match self.aws.resolve_function(f).await {
                    Ok(r) => (self.check_region(f, r), None),
                    Err(e) => (Err(problem_from(&e, "resolving the function")), None),
                };
            }
            Err(e) => return (Err(problem_from(&e, "resolving the function")), None),
        };
        let policy = KnownPolicy::of(statements, &self.target.rest_api_id, &self.target.owner);
        (self.check_region(f, resolved), Some(policy))
    }

    /// A function must live in the API's region and partition.
    fn check_region(
        &self,
        f: &FunctionRef,
        r: ResolvedFunction,
    ) -> Result<ResolvedFunction, Problem> {
        if r.region != self.target.region {
            return Err(Problem::new(
                Reason::FunctionNotFound,
                format!(
                    "function {} is in region {}, but the API is in {}; mount a function of the API's region",
                    r.arn(),
                    r.region,
                    self.target.region
                ),
            ));
        }
        if let Some(why) = r.mismatch(f) {
            return Err(Problem::new(Reason::FunctionNotFound, why));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::names::Route;

    fn statement_id(api: &str, owner: &str, path: &str) -> String {
        Route(path.to_string()).statement_id(api, owner)
    }

    fn statement(sid: &str) -> PolicyStatement {
        PolicyStatement::invoke_from(sid, "arn:aws:execute-api:r:1:api/*/*/x", "arn:f")
    }

    #[test]
    fn a_rolling_verification_reads_the_oldest_of_each_account() {
        let memory = FunctionMemory::default();
        let policy = KnownPolicy::of(Vec::new(), "abc123", "team");
        let refs: Vec<FunctionRef> = (0..6)
            .map(|i| {
                let account = if i < 4 {
                    "111111111111"
                } else {
                    "222222222222"
                };
                FunctionRef::parse(&format!("arn:aws:lambda:eu-west-2:{account}:function:f{i}"))
                    .unwrap()
            })
            .collect();
        for f in &refs {
            let resolved = ResolvedFunction::from_arn(&f.to_string()).unwrap();
            memory.insert(f, &resolved, &policy);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        memory.expire_oldest(&refs.iter().collect(), 2);
        let kept: Vec<bool> = refs.iter().map(|f| memory.get(f).is_some()).collect();
        // The two oldest of each account go: f0, f1 of the first; f4, f5 of
        // the second (it has only two).
        assert_eq!(kept, vec![false, false, true, true, false, false]);
        memory.expire_oldest(&refs.iter().collect(), 1);
        let kept: Vec<bool> = refs.iter().map(|f| memory.get(f).is_some()).collect();
        assert_eq!(kept, vec![false, false, false, true, false, false]);
    }

    #[test]
    fn a_known_policy_keeps_only_this_owners_statements_and_counts_all() {
        let ours = statement_id("abc123", "team", "/x");
        let other_owner = statement_id("abc123", "other", "/x");
        let other_api = statement_id("zzz999", "team", "/x");
        let all = vec![
            statement(&ours),
            statement(&other_owner),
            statement(&other_api),
            statement("hand-made"),
        ];
        let mut p = KnownPolicy::of(all, "abc123", "team");
        assert_eq!(p.total, 4);
        assert_eq!(
            p.ours.iter().map(|s| s.sid.as_str()).collect::<Vec<_>>(),
            vec![ours.as_str()]
        );

        // Resetting a statement does not count it twice; adding and removing do.
        p.put(statement(&ours));
        assert_eq!((p.ours.len(), p.total), (1, 4));
        let second = statement_id("abc123", "team", "/y");
        p.put(statement(&second));
        assert_eq!((p.ours.len(), p.total), (2, 5));
        p.remove(&ours);
        p.remove(&ours);
        assert_eq!((p.ours.len(), p.total), (1, 4));
    }
}
