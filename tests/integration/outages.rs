//! The controller through an outage, on the emulator behind the test proxy:
//! AWS refusing the credentials, or not answering at all, then answering
//! again; and the API deleted under it. A pass that cannot
//! observe AWS reads no function (after the first), logs one line, says
//! `Unknown` in the metrics and `Programmed` Unknown in every status
//! document without deleting any; the documents are whole again after it,
//! and a status folder removed by hand is written again within a resync.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::daemon::{Daemon, DEADLINE};
use crate::support::faults::{Fault, FaultProxy, Rule};
use crate::support::{manifest_dir, mount_yaml, write_manifest, Fixture};

const MOUNTS: usize = 6;

fn doc(dir: &Path, i: usize) -> Option<Value> {
    let text = std::fs::read_to_string(dir.join(format!("m{i}.yaml.status.json"))).ok()?;
    serde_json::from_str(&text).ok()
}

fn programmed(doc: &Value) -> (String, String) {
    let c = doc["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Programmed")
        .cloned()
        .unwrap_or(Value::Null);
    (
        c["status"].as_str().unwrap_or_default().to_string(),
        c["reason"].as_str().unwrap_or_default().to_string(),
    )
}

/// The value of one metric line, `name{labels} value`.
fn metric(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Six functions `{prefix}-{i}` and their manifests `m{i}.yaml` at `/m{i}`.
async fn six_mounts(fx: &Fixture, dir: &Path, prefix: &str) {
    for i in 0..MOUNTS {
        fx.create_function(&format!("{prefix}-{i}")).await;
        write_manifest(
            dir,
            &format!("m{i}.yaml"),
            &mount_yaml(
                &format!("m{i}"),
                &format!("/m{i}"),
                &format!("{prefix}-{i}"),
                "  proxy: false\n",
            ),
        );
    }
}

/// The daemon on `api` through `proxy`, writing status documents into
/// `status`, resyncing every 2 s.
fn start(fx: &Fixture, proxy: &FaultProxy, dir: &Path, status: &Path, api: &str) -> Daemon {
    Daemon::start_through(
        fx,
        &proxy.url(),
        &[
            "--manifests",
            dir.to_str().unwrap(),
            "--rest-api-id",
            api,
            "--status-dir",
            status.to_str().unwrap(),
            "--resync-interval",
            "2s",
        ],
    )
}

/// Whether every mount's document says `Programmed` True.
fn all_programmed(status: &Path) -> Option<()> {
    (0..MOUNTS)
        .all(|i| doc(status, i).is_some_and(|d| programmed(&d).0 == "True"))
        .then_some(())
}

#[tokio::test]
async fn an_outage_reads_no_function_keeps_every_status_document_and_says_unknown() {
    through_an_outage(Fault::CredentialsRejected, "CredentialsRejected", 1).await;
}

/// AWS unreachable: every connection is cut without an answer. The SDK
/// retries each read (5 attempts), then the pass fails as above.
#[tokio::test]
async fn aws_unreachable_costs_the_same_bounded_reads_and_lines() {
    through_an_outage(Fault::Reset, "AwsError", 5).await;
}

/// Runs six mounts to Ready, then `fault` on every request until four
/// passes failed with `reason` (each of the pass's two reads sent at most
/// `attempts` times), then AWS again.
async fn through_an_outage(fault: Fault, reason: &str, attempts: usize) {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("outage").await;
    let dir = manifest_dir();
    six_mounts(&fx, dir.path(), "outage").await;
    let status = tempfile::tempdir().unwrap();
    let proxy = FaultProxy::strict(&fx.endpoint(), Vec::new());
    let mut d = start(&fx, &proxy, dir.path(), status.path(), &api);
    d.wait_for("every document programmed", DEADLINE, || async {
        all_programmed(status.path())
    })
    .await;

    // AWS refuses the credentials.
    proxy.set_rules(vec![Rule::every(fault)]);
    let failed = |n: usize| {
        let d = &d;
        move || async move {
            let lines = d.lines_with("pass failed");
            (lines.len() >= n).then_some(lines)
        }
    };
    let lines = d.wait_for("a failed pass", DEADLINE, failed(1)).await;
    assert!(lines[0].contains(reason), "{lines:?}");
    assert!(
        lines[0].contains("functions_not_read=6") && lines[0].contains("mounts_not_evaluated=6"),
        "what was not done is counted: {lines:?}"
    );
    d.wait_for("a second failed pass", DEADLINE, failed(2))
        .await;
    let seen = proxy.requests().len();
    let warnings_before = d.lines().len();
    let failed_before = d.lines_with("pass failed").len();
    d.wait_for(
        "two more failed passes",
        DEADLINE,
        failed(failed_before + 2),
    )
    .await;
    let during: Vec<_> = proxy.requests()[seen..].to_vec();
    let failed_during = d.lines_with("pass failed").len() - failed_before;
    let lambda = during
        .iter()
        .filter(|r| r.scope.as_ref().is_some_and(|(_, s)| s == "lambda"))
        .count();
    assert_eq!(
        lambda, 0,
        "no function is read while the API cannot be: {during:?}"
    );
    // The pass running when the window closed may have sent its reads too.
    assert!(
        during.len() <= (failed_during + 1) * 2 * attempts,
        "a failed pass costs its two reads: {} requests over {failed_during} passes",
        during.len()
    );
    // Two lines per failed pass (the failure, the retry), nothing per
    // function or per mount.
    let new_lines = &d.lines()[warnings_before..];
    let passes = new_lines
        .iter()
        .filter(|l| l.contains("pass failed"))
        .count();
    assert!(passes >= 2, "{new_lines:#?}");
    assert!(
        new_lines.len() <= 2 * passes,
        "log lines during the outage stay bounded: {new_lines:#?}"
    );

    // Every document is still there, Programmed Unknown, the state kept.
    for i in 0..MOUNTS {
        let doc = doc(status.path(), i).unwrap_or_else(|| panic!("m{i}'s document kept"));
        assert_eq!(
            programmed(&doc),
            ("Unknown".to_string(), reason.to_string()),
            "{doc}"
        );
        assert_eq!(doc["state"], "Ready", "{doc}");
    }
    // The metrics say so.
    let (_, text) = d.get("/metrics").expect("metrics");
    assert_eq!(
        metric(&text, "apimount_mounts{state=\"Unknown\"}"),
        Some(MOUNTS as f64),
        "{text}"
    );
    assert_eq!(metric(&text, "apimount_mounts{state=\"Ready\"}"), Some(0.0));

    // AWS answers again: everything is known and programmed again.
    proxy.set_rules(Vec::new());
    d.wait_for("every document programmed again", DEADLINE, || async {
        all_programmed(status.path())
    })
    .await;
    let (_, text) = d.get("/metrics").expect("metrics");
    assert_eq!(
        metric(&text, "apimount_mounts{state=\"Unknown\"}"),
        Some(0.0)
    );
    assert_eq!(
        metric(&text, "apimount_mounts{state=\"Ready\"}"),
        Some(MOUNTS as f64)
    );

    // The status folder removed by hand: written again within a resync.
    std::fs::remove_dir_all(status.path()).unwrap();
    d.wait_for(
        "the documents written again",
        Duration::from_secs(15),
        || async {
            (0..MOUNTS)
                .all(|i| doc(status.path(), i).is_some())
                .then_some(())
        },
    )
    .await;
    let exit = d.terminate();
    assert!(exit.success(), "{}", d.stderr());
}

#[tokio::test]
async fn the_watch_follows_a_folder_made_again_and_sighup_reloads() {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("watch").await;
    for f in ["watch-a", "watch-b", "watch-c"] {
        fx.create_function(f).await;
    }
    let root = tempfile::tempdir().unwrap();
    let folder = root.path().join("manifests");
    std::fs::create_dir(&folder).unwrap();
    let write = |name: &str| {
        write_manifest(
            &folder,
            &format!("{name}.yaml"),
            &mount_yaml(
                name,
                &format!("/{name}"),
                &format!("watch-{name}"),
                "  proxy: false\n",
            ),
        )
    };
    write("a");
    // A long resync: only the watch (or its fallback poll) can see a change in time.
    let mut d = Daemon::start(
        &fx,
        &[
            "--manifests",
            folder.to_str().unwrap(),
            "--rest-api-id",
            &api,
            "--resync-interval",
            "300s",
        ],
    );
    let served = |path: &'static str| {
        let fx = &fx;
        let api = api.clone();
        move || {
            let api = api.clone();
            async move { fx.route_table(&api).await.contains_key(path).then_some(()) }
        }
    };
    d.wait_for("/a mounted", DEADLINE, served("/a")).await;

    // The folder deleted and made again (as a deploy tool that replaces it does).
    std::fs::remove_dir_all(&folder).unwrap();
    std::fs::create_dir(&folder).unwrap();
    write("a");
    write("b");
    d.wait_for("/b mounted from the new folder", DEADLINE, served("/b"))
        .await;
    // Re-armed at once, or (when the loop looked while the folder was gone)
    // by the fallback poll within a second, maybe after /b's pass.
    d.wait_for("the re-armed watch logged", DEADLINE, || async {
        (!d.lines_with("watching it again").is_empty()).then_some(())
    })
    .await;
    let (_, text) = d.get("/metrics").expect("metrics");
    assert_eq!(metric(&text, "apimount_watch_armed"), Some(1.0), "{text}");

    // SIGHUP reloads and the daemon goes on.
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &d.pid.to_string()])
        .status()
        .expect("kill -HUP");
    assert!(sent.success());
    d.wait_for("the reload logged", DEADLINE, || async {
        (!d.lines_with("SIGHUP").is_empty()).then_some(())
    })
    .await;
    d.wait_for("a pass after the reload", DEADLINE, || async {
        (!d.lines_with("trigger=\"reload\"").is_empty()).then_some(())
    })
    .await;
    d.assert_running();
    write("c");
    d.wait_for("/c mounted after the reload", DEADLINE, served("/c"))
        .await;
    let exit = d.terminate();
    assert!(exit.success(), "{}", d.stderr());
}

/// The API deleted under the daemon: passes fail saying the API is gone,
/// no function is read, every status document and route memory is kept
/// (`Programmed` Unknown); pointed at the API made again (a new id, as AWS
/// gives), the daemon serves every mount on it at its first pass.
#[tokio::test]
async fn the_api_deleted_keeps_the_documents_and_a_new_api_gets_every_mount() {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("doomed").await;
    let dir = manifest_dir();
    six_mounts(&fx, dir.path(), "doomed").await;
    let status = tempfile::tempdir().unwrap();
    let proxy = FaultProxy::strict(&fx.endpoint(), Vec::new());
    let mut d = start(&fx, &proxy, dir.path(), status.path(), &api);
    d.wait_for("every document programmed", DEADLINE, || async {
        all_programmed(status.path())
    })
    .await;

    fx.apigateway
        .delete_rest_api()
        .rest_api_id(&api)
        .send()
        .await
        .expect("delete the API");
    let lines = d
        .wait_for("two failed passes", DEADLINE, || async {
            let lines = d.lines_with("pass failed");
            (lines.len() >= 2).then_some(lines)
        })
        .await;
    assert!(
        lines[0].contains(&api) && lines[0].contains("functions_not_read=6"),
        "the line names the API and what was skipped: {lines:?}"
    );
    let seen = proxy.requests().len();
    d.wait_for("two more failed passes", DEADLINE, || async {
        (d.lines_with("pass failed").len() >= 4).then_some(())
    })
    .await;
    let lambda = proxy.requests()[seen..]
        .iter()
        .filter(|r| r.scope.as_ref().is_some_and(|(_, s)| s == "lambda"))
        .count();
    assert_eq!(lambda, 0, "no function is read while the API is gone");
    for i in 0..MOUNTS {
        let doc = doc(status.path(), i).unwrap_or_else(|| panic!("m{i}'s document kept"));
        assert_eq!(programmed(&doc).0, "Unknown", "{doc}");
        assert_eq!(doc["state"], "Ready", "the last known state is kept: {doc}");
    }
    let exit = d.terminate();
    assert!(exit.success(), "{}", d.stderr());

    // The API made again has a new id; the daemon pointed at it builds
    // every route from the manifests.
    let (again, _) = fx.create_rest_api("doomed").await;
    assert_ne!(again, api);
    let mut d = start(&fx, &proxy, dir.path(), status.path(), &again);
    d.wait_for(
        "every document programmed on the new API",
        DEADLINE,
        || async { all_programmed(status.path()) },
    )
    .await;
    let table = fx.route_table(&again).await;
    for i in 0..MOUNTS {
        assert!(table.contains_key(&format!("/m{i}")), "{table:?}");
    }
    let exit = d.terminate();
    assert!(exit.success(), "{}", d.stderr());
}
