//! Tenant isolation against a hostile team, on the emulator behind the
//! strict layer (which refuses what AWS refuses): a team that can write
//! only its own folder (or S3 sub-prefix) squats another team's paths and
//! names, links to its files, floods its own folder past the caps, leaves
//! unreadable files, borrows its authorizer; the other team's routes,
//! reasons, `wait` exit codes, status documents and metrics stay what they
//! would be without it, and budgets hold. The generated proof of the rule
//! is `reconcile::noninterference`; these are its representative cases on
//! AWS's API.

use std::path::PathBuf;
use std::process::Output;

use crate::support::daemon::{Daemon, DEADLINE};
use crate::support::faults::FaultProxy;
use crate::support::logs::{metric, parse_metrics};
use crate::support::{
    assert_exit_code, assert_success, mount_yaml, show, stderr, stdout, untagged, write_manifest,
    Fixture,
};
use tempfile::TempDir;

const OWNER: &str = "apimount";

/// accounts is the hostile one: it may use CUSTOM but has no authorizer of
/// its own; payments' authorizer is delegated to payments by name.
const POLICY: &str = "apiVersion: apimount/v1
kind: TenantPolicy
tenants:
  - name: accounts
    paths: [/accounts]
    functions: [\"account-*\"]
    authorizations: [NONE, CUSTOM]
  - name: payments
    paths: [/payments]
    functions: [\"payment-*\"]
    authorizations: [NONE, CUSTOM]
    authorizers: [payments-jwt]
";

struct Bench {
    fx: Fixture,
    proxy: FaultProxy,
    api: String,
    root: TempDir,
}

impl Bench {
    async fn start(policy: &str) -> Bench {
        let fx = Fixture::start().await;
        let (api, _) = fx.create_rest_api("shared").await;
        fx.create_function("account-service").await;
        fx.create_function("payment-service").await;
        let proxy = FaultProxy::strict(&fx.endpoint(), Vec::new());
        let root = tempfile::tempdir().expect("tempdir");
        for t in ["accounts", "payments"] {
            std::fs::create_dir_all(root.path().join("manifests").join(t)).unwrap();
        }
        std::fs::write(root.path().join("tenants.yaml"), policy).unwrap();
        Bench {
            fx,
            proxy,
            api,
            root,
        }
    }

    fn manifests(&self) -> PathBuf {
        self.root.path().join("manifests")
    }

    fn policy(&self) -> PathBuf {
        self.root.path().join("tenants.yaml")
    }

    fn write(&self, file: &str, name: &str, path: &str, function: &str, extra: &str) {
        write_manifest(
            &self.manifests(),
            file,
            &mount_yaml(name, path, function, extra),
        );
    }

    /// `apimount VERB` on the folder under the policy, through the strict layer.
    fn run(&self, verb: &str, more: &[&str]) -> Output {
        let dir = self.manifests();
        let policy = self.policy();
        let mut args = vec![
            verb,
            "--manifests",
            dir.to_str().unwrap(),
            "--tenants",
            policy.to_str().unwrap(),
            "--rest-api-id",
            &self.api,
            "--pacing",
            "off",
        ];
        args.extend_from_slice(more);
        let mut cmd = self.fx.apimount_command(&args);
        cmd.env("AWS_ENDPOINT_URL", self.proxy.url());
        cmd.output().expect("run apimount")
    }

    fn wait(&self, name: &str, tenant: &str) -> Output {
        self.run(
            "wait",
            &["--name", name, "--tenant", tenant, "--timeout", "30s"],
        )
    }

    /// The function and untagged marker of the ANY method at `path`.
    async fn route(&self, path: &str) -> Option<(String, String)> {
        let table = self.fx.route_table(&self.api).await;
        let m = table.get(path)?.get("ANY")?.clone();
        let uri = m.integration_uri?;
        let function = uri
            .split("/functions/")
            .nth(1)?
            .trim_end_matches("/invocations");
        let name = function.rsplit(':').next()?.to_string();
        Some((name, untagged(m.operation_name.as_deref())?.to_string()))
    }

    async fn paths_below(&self, root: &str) -> Vec<String> {
        self.fx
            .resource_paths(&self.api)
            .await
            .into_iter()
            .filter(|p| p == root || p.starts_with(&format!("{root}/")))
            .collect()
    }

    /// Nothing the strict layer had to refuse, and it did look.
    fn assert_nothing_refused(&self) {
        self.proxy.stats().assert_nothing_refused();
    }

    async fn create_authorizer(&self, name: &str) -> String {
        let uri = format!(
            "arn:aws:apigateway:{}:lambda:path/2015-03-31/functions/{}/invocations",
            self.fx.region(),
            self.fx.function_arn("payment-service")
        );
        self.fx
            .apigateway
            .create_authorizer()
            .rest_api_id(&self.api)
            .name(name)
            .r#type(aws_sdk_apigateway::types::AuthorizerType::Token)
            .authorizer_uri(uri)
            .identity_source("method.request.header.Authorization")
            .send()
            .await
            .expect("CreateAuthorizer")
            .id
            .expect("an authorizer id")
    }
}

/// The lines of `out` that mention `what`.
fn lines_with<'a>(text: &'a str, what: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(what)).collect()
}

/// The report block of mount `id` in `apply`'s output (its header line and
/// the indented lines below it).
fn block(out: &Output, id: &str) -> String {
    let text = stdout(out);
    let header = format!("{id} (");
    let mut lines = text.lines().skip_while(|l| !l.starts_with(&header));
    let Some(first) = lines.next() else {
        return String::new();
    };
    std::iter::once(first)
        .chain(lines.take_while(|l| l.starts_with(' ')))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_hostile_tenant_cannot_block_read_or_crowd_out_another_in_a_folder() {
    let b = Bench::start(POLICY).await;
    let ours = b.create_authorizer("payments-jwt").await;
    b.write(
        "payments/api.yaml",
        "api",
        "/payments",
        "payment-service",
        "",
    );
    assert_success(&b.run("apply", &[]));
    let live = b.route("/payments").await.expect("payments mounted");

    // accounts squats the path and name payments is about to use, in a file
    // that sorts first; links to payments' manifest; leaves a FIFO (a file
    // of unknown name it cannot read); and borrows payments' authorizer.
    b.write(
        "accounts/0-squat.yaml",
        "orders",
        "/payments/orders",
        "account-service",
        "  authorization: NONE\n",
    );
    std::os::unix::fs::symlink(
        "../payments/api.yaml",
        b.manifests().join("accounts/0-link.yaml"),
    )
    .unwrap();
    let fifo = b.manifests().join("accounts/fifo.yaml");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success()));
    b.write(
        "accounts/borrow.yaml",
        "borrow",
        "/accounts/borrow",
        "account-service",
        &format!("  authorization: CUSTOM\n  authorizerId: {ours}\n"),
    );
    // payments adds its route, a route behind its own authorizer, and its
    // live method was deleted by hand.
    b.write(
        "payments/orders.yaml",
        "orders",
        "/payments/orders",
        "payment-service",
        "",
    );
    b.write(
        "payments/secure.yaml",
        "secure",
        "/payments/secure",
        "payment-service",
        &format!("  proxy: false\n  authorization: CUSTOM\n  authorizerId: {ours}\n"),
    );
    let res = b.fx.resource_at(&b.api, "/payments").await.unwrap();
    b.fx.apigateway
        .delete_method()
        .rest_api_id(&b.api)
        .resource_id(res.id.unwrap())
        .http_method("ANY")
        .send()
        .await
        .unwrap();

    let out = b.run("apply", &[]);
    assert_exit_code(&out, 1);
    let all = format!("{}\n{}", stdout(&out), stderr(&out));
    // payments got everything it asked for.
    assert_eq!(b.route("/payments").await, Some(live), "{}", show(&out));
    assert_eq!(
        b.route("/payments/orders").await,
        Some((
            "payment-service".into(),
            format!("apimount:{OWNER}:payments/orders")
        )),
        "{}",
        show(&out)
    );
    let secure = b.fx.route_table(&b.api).await["/payments/secure"]["ANY"].clone();
    assert_eq!(secure.authorizer_id.as_deref(), Some(ours.as_str()));
    for id in ["payments/api", "payments/orders", "payments/secure"] {
        let report = block(&out, id);
        assert!(!report.is_empty(), "{id} reported\n{}", show(&out));
        for bad in ["Duplicate", "Failed", "NotDelegated", "accounts"] {
            assert!(!report.contains(bad), "{id}: {report}");
        }
    }
    assert!(lines_with(&all, "DuplicateManifest").is_empty(), "{all}");
    // accounts' own refusals, each its own.
    assert!(
        block(&out, "accounts/orders").contains("NotDelegated"),
        "{all}"
    );
    let borrow = block(&out, "accounts/borrow");
    assert!(
        borrow.contains("AuthorizationNotAllowed") && borrow.contains("payments-jwt"),
        "{borrow}"
    );
    // The link is refused without a word of what it leads to.
    let link = lines_with(&all, "0-link.yaml");
    assert!(!link.is_empty(), "{all}");
    for l in &link {
        assert!(
            l.contains("leads outside the folder of tenant 'accounts'"),
            "{l}"
        );
        assert!(!l.contains("payments"), "{l}");
    }
    assert!(b.paths_below("/accounts").await.is_empty());
    assert_success(&b.wait("orders", "payments"));
    assert_exit_code(&b.wait("orders", "accounts"), 1);

    // accounts floods its folder past the caps (files smaller than any
    // manifest); payments moves a route meanwhile: its removal and its new
    // route both go ahead.
    for i in 0..5001 {
        std::fs::write(b.manifests().join(format!("accounts/j-{i:04}.yaml")), "").unwrap();
    }
    std::fs::remove_file(b.manifests().join("payments/orders.yaml")).unwrap();
    b.write(
        "payments/refunds.yaml",
        "refunds",
        "/payments/refunds",
        "payment-service",
        "",
    );
    // And re-points its first route: the old function's statements for it
    // go, though accounts' FIFO (a file of unknown name) is still there.
    b.fx.create_function("payment-v2").await;
    b.write("payments/api.yaml", "api", "/payments", "payment-v2", "");
    let out = b.run("apply", &[]);
    assert_exit_code(&out, 1);
    let all = format!("{}\n{}", stdout(&out), stderr(&out));
    assert!(b.route("/payments/orders").await.is_none(), "{all}");
    assert!(b.route("/payments/refunds").await.is_some(), "{all}");
    assert_eq!(b.route("/payments").await.unwrap().0, "payment-v2");
    let sids = |statements: Vec<serde_json::Value>| -> std::collections::BTreeSet<String> {
        statements
            .iter()
            .filter_map(|s| s["Sid"].as_str().map(str::to_string))
            .collect()
    };
    let old = sids(b.fx.policy_statements("payment-service", None).await);
    let new = sids(b.fx.policy_statements("payment-v2", None).await);
    assert_eq!(new.len(), 2, "{new:?}\n{all}");
    assert!(
        old.is_disjoint(&new),
        "the re-pointed routes' statements left on the old function: {old:?}\n{all}"
    );
    let summary = lines_with(&all, "manifest files not read");
    assert_eq!(summary.len(), 1, "one summary\n{all}");
    assert!(summary[0].contains("tenant 'accounts'"), "{}", summary[0]);
    assert_success(&b.wait("refunds", "payments"));
    b.assert_nothing_refused();
}

#[tokio::test]
async fn a_budget_holds_and_live_mounts_keep_their_place() {
    let policy = "apiVersion: apimount/v1
kind: TenantPolicy
tenants:
  - name: payments
    paths: [/payments]
    functions: [\"payment-*\"]
    authorizations: [NONE]
    maxResources: 4
";
    let b = Bench::start(policy).await;
    // 3 resources: /payments, its proxy, /payments/two.
    b.write("payments/p1.yaml", "p1", "/payments", "payment-service", "");
    b.write(
        "payments/p2.yaml",
        "p2",
        "/payments/two",
        "payment-service",
        "  proxy: false\n",
    );
    assert_success(&b.run("apply", &[]));
    let before = b.paths_below("/payments").await;
    assert_eq!(before.len(), 3, "{before:?}");

    // Newcomers sorting first: the one that would take payments to 5 is
    // refused, the one that fits goes live, the live ones stay.
    b.write(
        "payments/0-a.yaml",
        "a",
        "/payments/a",
        "payment-service",
        "",
    );
    b.write(
        "payments/0-b.yaml",
        "b",
        "/payments/b",
        "payment-service",
        "  proxy: false\n",
    );
    let out = b.run("apply", &[]);
    assert_exit_code(&out, 1);
    let a = block(&out, "payments/a");
    assert!(
        a.contains("OverBudget") && a.contains("0-a.yaml"),
        "the refusal names the file\n{}",
        show(&out)
    );
    for id in ["payments/b", "payments/p1", "payments/p2"] {
        assert!(!block(&out, id).contains("Failed"), "{}", show(&out));
    }
    assert_eq!(b.paths_below("/payments").await.len(), 4);

    // A live manifest broken (its name still readable) keeps its routes,
    // and they still count: the next newcomer does not fit.
    write_manifest(
        &b.manifests(),
        "payments/p2.yaml",
        "apiVersion: apimount/v1\nkind: ServiceMount\nmetadata:\n  name: p2\nspec:\n  path: 12\n",
    );
    std::fs::remove_file(b.manifests().join("payments/0-a.yaml")).unwrap();
    b.write(
        "payments/0-c.yaml",
        "c",
        "/payments/c",
        "payment-service",
        "  proxy: false\n",
    );
    let out = b.run("apply", &[]);
    assert_exit_code(&out, 1);
    assert!(
        block(&out, "payments/c").contains("OverBudget"),
        "{}",
        show(&out)
    );
    let paths = b.paths_below("/payments").await;
    assert!(paths.contains(&"/payments/two".to_string()), "{paths:?}");
    assert_eq!(paths.len(), 4, "{paths:?}");
    b.assert_nothing_refused();
}

#[tokio::test]
async fn a_hostile_tenant_in_s3_cannot_block_another() {
    let b = Bench::start(POLICY).await;
    b.fx.create_bucket("shared-manifests").await;
    let put = |key: &'static str, body: String| b.fx.put_object("shared-manifests", key, body);
    put(
        "m/payments/api.yaml",
        mount_yaml("api", "/payments", "payment-service", ""),
    )
    .await;
    // Same name and path, sorting first, in accounts' own sub-prefix.
    put(
        "m/accounts/0-api.yaml",
        mount_yaml("api", "/payments", "account-service", ""),
    )
    .await;
    let policy = b.policy();
    let daemon = |status: &str| {
        let mut cmd = b.fx.apimount_command(["run"]);
        cmd.env("AWS_ENDPOINT_URL", b.proxy.url());
        cmd.args([
            "--source",
            "s3://shared-manifests/m",
            "--tenants",
            policy.to_str().unwrap(),
            "--rest-api-id",
            &b.api,
            "--poll-interval",
            "1s",
            "--resync-interval",
            "300s",
            "--status-prefix",
            status,
        ]);
        cmd
    };
    // Status objects under the manifest prefix are refused at start.
    let out = daemon("s3://shared-manifests/m/status/")
        .args(["--pacing", "off"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        stderr(&out).contains("inside the manifest source"),
        "{}",
        show(&out)
    );
    let mut d = Daemon::start_command(daemon("s3://shared-manifests/status/"), &[]);
    d.wait_ready().await;
    assert_eq!(
        b.route("/payments").await,
        Some((
            "payment-service".into(),
            format!("apimount:{OWNER}:payments/api")
        )),
        "{}",
        d.stderr()
    );
    let s3 = b.fx.s3();
    let doc = |key: &'static str| {
        let s3 = s3.clone();
        async move {
            let o = s3
                .get_object()
                .bucket("shared-manifests")
                .key(key)
                .send()
                .await
                .ok()?;
            let bytes = o.body.collect().await.ok()?.into_bytes();
            String::from_utf8(bytes.to_vec()).ok()
        }
    };
    let ours = d
        .wait_for("payments' document", DEADLINE, || async {
            doc("status/payments/api.yaml.status.json").await
        })
        .await;
    assert!(
        !ours.contains("Duplicate") && !ours.contains("accounts"),
        "{ours}"
    );
    let theirs = d
        .wait_for("accounts' document", DEADLINE, || async {
            doc("status/accounts/0-api.yaml.status.json").await
        })
        .await;
    assert!(theirs.contains("NotDelegated"), "{theirs}");
    assert!(
        d.lines_with("DuplicateManifest").is_empty(),
        "{}",
        d.stderr()
    );
    let exit = d.terminate();
    assert!(exit.success(), "{exit}");
    b.assert_nothing_refused();
}

#[tokio::test]
async fn the_daemon_keeps_one_tenants_outcome_whatever_another_writes() {
    let b = Bench::start(POLICY).await;
    let status = b.root.path().join("status");
    // A status folder inside the manifest folder is refused at start.
    let inside = b.manifests().join("status");
    let out = b.run("run", &["--status-dir", inside.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        stderr(&out).contains("inside the manifest folder"),
        "{}",
        show(&out)
    );

    b.write(
        "payments/api.yaml",
        "api",
        "/payments",
        "payment-service",
        "",
    );
    let dir = b.manifests();
    let policy = b.policy();
    let mut cmd = b.fx.apimount_command(["run"]);
    cmd.env("AWS_ENDPOINT_URL", b.proxy.url());
    let mut d = Daemon::start_command(
        cmd,
        &[
            "--manifests",
            dir.to_str().unwrap(),
            "--tenants",
            policy.to_str().unwrap(),
            "--rest-api-id",
            &b.api,
            "--status-dir",
            status.to_str().unwrap(),
            "--resync-interval",
            "300s",
        ],
    );
    d.wait_ready().await;
    // The attack and payments' new route land together.
    b.write(
        "accounts/0-squat.yaml",
        "orders",
        "/payments/orders",
        "account-service",
        "  authorization: NONE\n",
    );
    let fifo = b.manifests().join("accounts/fifo.yaml");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success()));
    b.write(
        "payments/orders.yaml",
        "orders",
        "/payments/orders",
        "payment-service",
        "",
    );
    let doc = status.join("payments/orders.yaml.status.json");
    let programmed = d
        .wait_for("payments/orders programmed", DEADLINE, || async {
            let text = std::fs::read_to_string(&doc).ok()?;
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            let c = v["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Programmed")?
                .clone();
            (c["status"] == "True").then_some(v)
        })
        .await;
    assert_eq!(programmed["tenant"], "payments");
    assert_success(&b.wait("orders", "payments"));
    let squat = std::fs::read_to_string(status.join("accounts/0-squat.yaml.status.json"))
        .expect("accounts' squat has its own document");
    assert!(squat.contains("NotDelegated"), "{squat}");
    // Metrics: accounts' failures count against accounts alone.
    let (_, body) = d.get("/metrics").expect("/metrics");
    let s = parse_metrics(&body);
    let of = |tenant: &str, state: &str| {
        metric(
            &s,
            "apimount_tenant_mounts",
            &[("tenant", tenant), ("state", state)],
        )
        .unwrap_or(-1.0)
    };
    assert_eq!(of("payments", "Failed"), 0.0, "{body}");
    assert_eq!(of("payments", "Ready"), 2.0, "{body}");
    assert_eq!(of("accounts", "Failed"), 2.0, "{body}");
    assert!(
        d.lines_with("DuplicateManifest").is_empty(),
        "{}",
        d.stderr()
    );
    let exit = d.terminate();
    assert!(exit.success(), "{exit}");
    b.assert_nothing_refused();
}
