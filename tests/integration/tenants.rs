//! Many teams on one API, against the emulator: a live mount belongs to the
//! file it came from, and under a tenant policy each team mounts only what is
//! delegated to it, in its own folder, without touching, shadowing or
//! freezing another team's routes.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::daemon::{Daemon, DEADLINE};
use crate::support::{
    self, assert_exit_code, assert_success, mount_yaml, show, stdout, untagged, write_manifest,
    Fixture,
};
use tempfile::TempDir;

const OWNER: &str = "apimount";

/// Two teams' policy: accounts may use NONE and mount account-* functions at
/// /accounts; payments may use NONE, mount payment-* at /payments, within
/// four resources.
const POLICY: &str = "apiVersion: apimount/v1
kind: TenantPolicy
tenants:
  - name: accounts
    paths: [/accounts]
    functions: [\"account-*\"]
    authorizations: [NONE]
  - name: payments
    paths: [/payments]
    functions: [\"payment-*\"]
    authorizations: [NONE]
    maxResources: 4
";

/// An emulator with one API, the functions account-service and
/// payment-service, and a folder holding `manifests/` and `tenants.yaml`.
struct World {
    fx: Fixture,
    api: String,
    root: TempDir,
}

impl World {
    async fn start() -> World {
        let fx = Fixture::start().await;
        let (api, _) = fx.create_rest_api("shared").await;
        fx.create_function("account-service").await;
        fx.create_function("payment-service").await;
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(root.path().join("manifests")).unwrap();
        World { fx, api, root }
    }

    fn manifests(&self) -> PathBuf {
        self.root.path().join("manifests")
    }

    fn policy(&self) -> PathBuf {
        self.root.path().join("tenants.yaml")
    }

    fn write_policy(&self, text: &str) {
        std::fs::write(self.policy(), text).unwrap();
    }

    /// Writes a manifest at `file` (e.g. `payments/api.yaml`) below `manifests/`.
    fn write(&self, file: &str, name: &str, path: &str, function: &str, extra: &str) {
        write_manifest(
            &self.manifests(),
            file,
            &mount_yaml(name, path, function, extra),
        );
    }

    fn remove(&self, file: &str) {
        std::fs::remove_file(self.manifests().join(file)).unwrap();
    }

    /// `apimount COMMAND` on the folder, with the policy when `tenants`.
    fn run(&self, command: &str, tenants: bool) -> Output {
        let dir = self.manifests();
        let policy = self.policy();
        let mut args = vec![command, "--manifests", dir.to_str().unwrap()];
        if command != "validate" {
            args.extend(["--rest-api-id", &self.api, "--pacing", "off"]);
        }
        if tenants {
            args.extend(["--tenants", policy.to_str().unwrap()]);
        }
        self.fx.apimount(&args)
    }

    fn apply(&self, tenants: bool) -> Output {
        self.run("apply", tenants)
    }

    async fn paths(&self) -> Vec<String> {
        self.fx.resource_paths(&self.api).await
    }

    /// The function ARN the ANY method at `path` integrates, and its marker
    /// without tags.
    async fn route(&self, path: &str) -> Option<(String, String)> {
        let table = self.fx.route_table(&self.api).await;
        let m = table.get(path)?.values().next()?.clone();
        let uri = m.integration_uri?;
        let function = uri
            .split("/functions/")
            .nth(1)?
            .trim_end_matches("/invocations");
        let marker = untagged(m.operation_name.as_deref())?.to_string();
        Some((function.to_string(), marker))
    }

    async fn statements(&self, function: &str) -> Vec<serde_json::Value> {
        self.fx.policy_statements(function, None).await
    }
}

/// Whether the report of mount `id` (its header line and the indented lines
/// below it) contains `what`.
fn mount_says(out: &Output, id: &str, what: &str) -> bool {
    let text = stdout(out);
    let header = format!("{id} (");
    let mut lines = text.lines().skip_while(|l| !l.starts_with(&header));
    let Some(first) = lines.next() else {
        return false;
    };
    std::iter::once(first)
        .chain(lines.take_while(|l| l.starts_with(' ')))
        .any(|l| l.contains(what))
}

fn has_line(out: &Output, pieces: &[&str]) -> bool {
    stdout(out)
        .lines()
        .any(|l| pieces.iter().all(|p| l.contains(p)))
}

#[tokio::test]
async fn a_copy_never_displaces_the_live_mount_and_a_rename_takes_over() {
    let w = World::start().await;
    let intruder = w.fx.create_function("intruder").await;
    w.write(
        "accounts.yaml",
        "accounts",
        "/accounts",
        "account-service",
        "",
    );
    assert_success(&w.apply(false));
    let live = w.route("/accounts").await.expect("mounted");

    // Team B copies name and path, in a file that sorts first, with its own function.
    w.write("0-copy.yaml", "accounts", "/accounts", "intruder", "");
    for round in 0..2 {
        // Each one-shot run starts from nothing but AWS: the rule holds across restarts.
        let out = w.apply(false);
        assert_exit_code(&out, 1);
        assert!(
            has_line(&out, &["0-copy.yaml", "accounts.yaml"]),
            "round {round}: the copy is reported naming both files\n{}",
            show(&out)
        );
        assert_eq!(
            w.route("/accounts").await.as_ref(),
            Some(&live),
            "round {round}"
        );
        assert_eq!(w.route("/accounts/{proxy+}").await.unwrap().0, live.0);
    }
    assert!(w.statements(&intruder).await.is_empty());

    // The original broken: the copy still cannot take the name.
    write_manifest(&w.manifests(), "accounts.yaml", "kind: [\n");
    assert_exit_code(&w.apply(false), 1);
    assert_eq!(w.route("/accounts").await.as_ref(), Some(&live));

    // A rename: the old file gone, a new one with the same name takes over.
    w.remove("accounts.yaml");
    w.remove("0-copy.yaml");
    w.write(
        "renamed.yaml",
        "accounts",
        "/accounts",
        "account-service",
        "",
    );
    let out = w.apply(false);
    assert_success(&out);
    assert_eq!(
        w.route("/accounts").await.as_ref(),
        Some(&live),
        "{}",
        show(&out)
    );
    let plan = w.run("plan", false);
    assert_exit_code(&plan, 0);
    // All of it was judged by AWS's rules: the strict layer looked.
    assert!(w.fx.strict_stats().strict_lookups > 0);
}

#[tokio::test]
async fn a_tenant_cannot_shadow_reach_beyond_or_exceed_what_is_delegated() {
    let w = World::start().await;
    w.write_policy(POLICY);
    w.write(
        "accounts/api.yaml",
        "api",
        "/accounts",
        "account-service",
        "",
    );
    assert_success(&w.apply(true));
    let accounts_live = w.route("/accounts").await.expect("accounts mounted");
    let accounts_statements = w.statements("account-service").await;

    let cases = [
        (
            "login",
            "/accounts/login",
            "account-service",
            "",
            "NotDelegated",
        ),
        (
            "export",
            "/payments/export",
            "account-service",
            "",
            "FunctionNotAllowed",
        ),
        (
            "iam",
            "/payments/iam",
            "payment-service",
            "  authorization: AWS_IAM\n",
            "AuthorizationNotAllowed",
        ),
        (
            "adopt",
            "/payments/adopt",
            "payment-service",
            "  adopt: true\n",
            "AdoptNotAllowed",
        ),
        // /payments and its proxy are 2; this needs /payments/x, /payments/x/y and its proxy: 5 > 4.
        ("big", "/payments/x/y", "payment-service", "", "OverBudget"),
    ];
    w.write(
        "payments/api.yaml",
        "api",
        "/payments",
        "payment-service",
        "",
    );
    for (name, path, function, extra, _) in &cases {
        w.write(
            &format!("payments/{name}.yaml"),
            name,
            path,
            function,
            extra,
        );
    }
    let out = w.apply(true);
    assert_exit_code(&out, 1);
    for (name, _, _, _, reason) in &cases {
        assert!(
            mount_says(&out, &format!("payments/{name}"), reason),
            "{name}: {reason} expected\n{}",
            show(&out)
        );
    }
    // Nothing of a refused mount was made, nothing of accounts changed, and
    // the allowed mount of payments went live beside them.
    let paths = w.paths().await;
    assert_eq!(
        paths,
        [
            "/",
            "/accounts",
            "/accounts/{proxy+}",
            "/payments",
            "/payments/{proxy+}"
        ],
        "{}",
        show(&out)
    );
    assert_eq!(w.route("/accounts").await, Some(accounts_live));
    assert_eq!(w.statements("account-service").await, accounts_statements);
    assert_eq!(w.statements("payment-service").await.len(), 2);
    assert_eq!(
        w.route("/payments").await.unwrap().1,
        format!("apimount:{OWNER}:payments/api")
    );
}

#[tokio::test]
async fn one_tenants_unreadable_file_holds_only_its_own_removals() {
    use std::os::unix::ffi::OsStrExt;
    let w = World::start().await;
    w.write_policy(&POLICY.replace("maxResources: 4", "maxResources: 40"));
    w.write("accounts/a1.yaml", "a1", "/accounts", "account-service", "");
    w.write(
        "accounts/a2.yaml",
        "a2",
        "/accounts/two",
        "account-service",
        "",
    );
    w.write("payments/p1.yaml", "p1", "/payments", "payment-service", "");
    w.write(
        "payments/p2.yaml",
        "p2",
        "/payments/two",
        "payment-service",
        "",
    );
    assert_success(&w.apply(true));

    // A file whose name is not UTF-8 in payments' folder: its mount is unknown.
    let bad = w
        .manifests()
        .join("payments")
        .join(std::ffi::OsStr::from_bytes(b"bad-\xff.yaml"));
    std::fs::write(
        bad,
        mount_yaml("p2", "/payments/two", "payment-service", ""),
    )
    .unwrap();
    w.remove("accounts/a2.yaml");
    w.remove("payments/p2.yaml");
    let out = w.apply(true);
    assert_exit_code(&out, 1);
    let paths = w.paths().await;
    assert!(
        !paths.contains(&"/accounts/two".to_string()),
        "accounts' removal went ahead: {paths:?}\n{}",
        show(&out)
    );
    assert!(
        paths.contains(&"/payments/two".to_string()),
        "payments' removal is held: {paths:?}"
    );
    assert!(
        stdout(&out).contains("of tenant 'payments' are kept"),
        "{}",
        show(&out)
    );
}

#[tokio::test]
async fn a_manifest_outside_every_tenant_folder_is_reported_and_never_applied() {
    let w = World::start().await;
    w.write_policy(POLICY);
    w.write("top.yaml", "top", "/accounts", "account-service", "");
    w.write(
        "marketing/m.yaml",
        "m",
        "/accounts/m",
        "account-service",
        "",
    );
    w.write(
        "accounts/api.yaml",
        "api",
        "/accounts",
        "account-service",
        "",
    );
    let out = w.apply(true);
    assert_exit_code(&out, 1);
    for file in ["top.yaml", "marketing/m.yaml"] {
        assert!(
            has_line(&out, &[file, "outside the folder of every tenant"]),
            "{file}\n{}",
            show(&out)
        );
    }
    assert_eq!(w.paths().await, ["/", "/accounts", "/accounts/{proxy+}"]);
    assert_eq!(
        w.route("/accounts").await.unwrap().1,
        format!("apimount:{OWNER}:accounts/api")
    );
}

#[tokio::test]
async fn two_tenants_mount_manifests_of_the_same_name_from_the_shipped_example() {
    let w = World::start().await;
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tenants");
    let out = w.fx.apimount(&[
        "apply",
        "--rest-api-id",
        &w.api,
        "--manifests",
        example.join("manifests").to_str().unwrap(),
        "--tenants",
        example.join("tenants.yaml").to_str().unwrap(),
        "--pacing",
        "off",
    ]);
    assert_success(&out);
    assert_eq!(
        w.route("/accounts").await.unwrap().1,
        format!("apimount:{OWNER}:accounts/api")
    );
    assert_eq!(
        w.route("/payments").await.unwrap().1,
        format!("apimount:{OWNER}:payments/api")
    );
    let status = w.fx.apimount(&[
        "status",
        "--rest-api-id",
        &w.api,
        "--manifests",
        example.join("manifests").to_str().unwrap(),
        "--tenants",
        example.join("tenants.yaml").to_str().unwrap(),
        "--tree",
    ]);
    assert_success(&status);
    assert!(
        stdout(&status).contains("mount api (tenant payments, this owner)"),
        "{}",
        show(&status)
    );
}

#[tokio::test]
async fn an_invalid_policy_at_start_is_an_error_naming_the_file() {
    let w = World::start().await;
    w.write_policy(&POLICY.replace("paths: [/payments]", "paths: [/accounts]"));
    w.write(
        "accounts/api.yaml",
        "api",
        "/accounts",
        "account-service",
        "",
    );
    for command in ["validate", "apply", "run"] {
        let out = w.run(command, true);
        assert_exit_code(&out, 1);
        let err = support::stderr(&out);
        assert!(
            err.contains("tenants.yaml") && err.contains("tenants[1].paths[0]"),
            "{command}\n{}",
            show(&out)
        );
    }
    assert_eq!(w.paths().await, ["/"], "nothing was applied");
}

#[tokio::test]
async fn routes_made_before_a_policy_are_taken_over_without_a_gap() {
    let w = World::start().await;
    w.write(
        "accounts.yaml",
        "accounts",
        "/accounts",
        "account-service",
        "",
    );
    assert_success(&w.apply(false));
    let before = w.fx.deployment_ids(&w.api).await;
    let statements = w.statements("account-service").await;

    // The platform team moves the file into the team's folder and adds the policy.
    w.remove("accounts.yaml");
    w.write(
        "accounts/accounts.yaml",
        "accounts",
        "/accounts",
        "account-service",
        "",
    );
    w.write_policy(POLICY);
    let out = w.apply(true);
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        !text.contains("- resource") && !text.contains("- method"),
        "nothing is removed:\n{text}"
    );
    for path in ["/accounts", "/accounts/{proxy+}"] {
        assert_eq!(
            w.route(path).await.unwrap().1,
            format!("apimount:{OWNER}:accounts/accounts"),
            "{path}"
        );
    }
    // One deployment, made once every route carried its new marker: the stage
    // served the old routes until then.
    let after = w.fx.deployment_ids(&w.api).await;
    assert_eq!(after.difference(&before).count(), 1, "{text}");
    assert_eq!(w.statements("account-service").await, statements);
    assert_exit_code(&w.run("plan", true), 0);
}

#[tokio::test]
async fn the_daemon_follows_policy_changes_and_keeps_the_last_valid_one() {
    let w = World::start().await;
    let accounts_only = "apiVersion: apimount/v1
kind: TenantPolicy
tenants:
  - name: accounts
    paths: [/accounts]
    functions: [\"account-*\"]
    authorizations: [NONE]
";
    w.write_policy(accounts_only);
    w.write(
        "accounts/api.yaml",
        "api",
        "/accounts",
        "account-service",
        "",
    );
    w.write(
        "payments/api.yaml",
        "api",
        "/payments",
        "payment-service",
        "",
    );
    let dir = w.manifests();
    let policy = w.policy();
    let mut d = Daemon::start(
        &w.fx,
        &[
            "--rest-api-id",
            &w.api,
            "--manifests",
            dir.to_str().unwrap(),
            "--tenants",
            policy.to_str().unwrap(),
            "--resync-interval",
            "300s",
        ],
    );
    d.wait_ready().await;
    assert!(w.route("/accounts").await.is_some());
    assert!(
        w.route("/payments").await.is_none(),
        "payments is no tenant yet"
    );

    // A delegation added: payments' manifest goes live without a restart.
    w.write_policy(POLICY);
    d.wait_for("payments mounted", DEADLINE, || async {
        w.route("/payments").await.map(|_| ())
    })
    .await;

    // An invalid version is reported once; the last valid one stays in force.
    w.write_policy("apiVersion: apimount/v1\nkind: TenantPolicy\ntenants: []\n");
    d.wait_for("the invalid policy reported", DEADLINE, || async {
        (!d.lines_with("tenant policy rejected").is_empty()).then_some(())
    })
    .await;
    // Another event in the folder: still the same report, once.
    w.write(
        "accounts/touch.yaml",
        "touch",
        "/accounts/touch",
        "account-service",
        "  proxy: false\n",
    );
    d.wait_for(
        "touch mounted under the last valid policy",
        DEADLINE,
        || async { w.route("/accounts/touch").await.map(|_| ()) },
    )
    .await;
    assert_eq!(
        d.lines_with("tenant policy rejected").len(),
        1,
        "{}",
        d.stderr()
    );
    assert!(w.route("/payments").await.is_some());

    // A delegation removed: the tenant's routes under it are detached.
    w.write_policy(&POLICY.replace("paths: [/payments]", "paths: [/pay]"));
    d.wait_for("payments detached", DEADLINE, || async {
        (!w.paths().await.iter().any(|p| p.starts_with("/payments"))).then_some(())
    })
    .await;
    assert!(w.route("/accounts").await.is_some());
    let status = d.terminate();
    assert!(status.success(), "{status}");
}
