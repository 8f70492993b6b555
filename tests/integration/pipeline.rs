//! A team's pipeline knows when its route is live: `apimount wait` against
//! the emulator, with and without a controller at work, and the status
//! documents the controller writes for each manifest.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::daemon::{Daemon, DEADLINE};
use crate::support::faults::FaultProxy;
use crate::support::{manifest_dir, mount_yaml, show, stdout, write_manifest, Fixture};

fn wait(fx: &Fixture, api: &str, dir: &Path, file: &str, timeout: &str) -> (Output, Duration) {
    wait_with(fx, api, dir, file, timeout, &[])
}

fn wait_with(
    fx: &Fixture,
    api: &str,
    dir: &Path,
    file: &str,
    timeout: &str,
    more: &[&str],
) -> (Output, Duration) {
    let started = Instant::now();
    let file = dir.join(file);
    let mut args = vec![
        "wait",
        "--rest-api-id",
        api,
        "--manifests",
        dir.to_str().unwrap(),
        "--file",
        file.to_str().unwrap(),
        "--timeout",
        timeout,
    ];
    args.extend_from_slice(more);
    let out = fx.apimount(&args);
    (out, started.elapsed())
}

const GET_RESOURCES: &str = "apigateway:GetResources";
const GET_STAGE: &str = "apigateway:GetStage";

fn apply(fx: &Fixture, api: &str, dir: &Path) -> Output {
    fx.apimount(&[
        "apply",
        "--rest-api-id",
        api,
        "--manifests",
        dir.to_str().unwrap(),
        "--pacing",
        "off",
    ])
}

#[tokio::test]
async fn wait_returns_once_the_stage_serves_the_version_and_never_before() {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("shared").await;
    fx.create_function("pl-a").await;
    fx.create_function("pl-b").await;
    let dir = manifest_dir();
    write_manifest(dir.path(), "a.yaml", &mount_yaml("a", "/a", "pl-a", ""));

    // No controller: a new manifest is never served; the wait times out.
    let (resources, stages) = (fx.strict_count(GET_RESOURCES), fx.strict_count(GET_STAGE));
    let (out, took) = wait(&fx, &api, dir.path(), "a.yaml", "5s");
    assert_eq!(out.status.code(), Some(124), "{}", show(&out));
    // At the asked time, not long after: one look (2 s apart) at most past it.
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(8),
        "the timeout is honoured: {took:?}"
    );
    // Cheap: the API read once (nothing moved after), the stage at every look.
    assert_eq!(
        fx.strict_count(GET_RESOURCES) - resources,
        1,
        "{}",
        show(&out)
    );
    let stage_reads = fx.strict_count(GET_STAGE) - stages;
    assert!(
        (3..=5).contains(&stage_reads),
        "one GetStage a look, a look every 2 s: {stage_reads}"
    );

    // Live: 0 at once, at the first look.
    assert_eq!(apply(&fx, &api, dir.path()).status.code(), Some(0));
    let (out, _) = wait(&fx, &api, dir.path(), "a.yaml", "30s");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("waiting"),
        "at once\n{}",
        show(&out)
    );

    // A comment changes nothing: still that version.
    let text = std::fs::read_to_string(dir.path().join("a.yaml")).unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        format!("# owned by team a\n{text}"),
    )
    .unwrap();
    assert_eq!(
        wait(&fx, &api, dir.path(), "a.yaml", "10s").0.status.code(),
        Some(0)
    );

    // An edit: never 0 while the old version is served.
    write_manifest(dir.path(), "a.yaml", &mount_yaml("a", "/a", "pl-b", ""));
    let (out, _) = wait(&fx, &api, dir.path(), "a.yaml", "3s");
    assert_eq!(
        out.status.code(),
        Some(124),
        "the old version is live\n{}",
        show(&out)
    );
    // Changed on the gateway but not deployed: still not 0.
    let deployments = fx.deployment_ids(&api).await;
    let stage_before = fx.stage_deployment(&api, "prod").await;
    assert_eq!(apply(&fx, &api, dir.path()).status.code(), Some(0));
    assert_ne!(fx.stage_deployment(&api, "prod").await, stage_before);
    assert!(fx.deployment_ids(&api).await.len() > deployments.len());
    fx.apigateway
        .update_stage()
        .rest_api_id(&api)
        .stage_name("prod")
        .patch_operations(
            aws_sdk_apigateway::types::PatchOperation::builder()
                .op(aws_sdk_apigateway::types::Op::Replace)
                .path("/deploymentId")
                .value(stage_before.clone().unwrap())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let (out, _) = wait(&fx, &api, dir.path(), "a.yaml", "3s");
    assert_eq!(
        out.status.code(),
        Some(124),
        "the stage serves the old deployment\n{}",
        show(&out)
    );
    assert_eq!(apply(&fx, &api, dir.path()).status.code(), Some(0));
    assert_eq!(
        wait(&fx, &api, dir.path(), "a.yaml", "30s").0.status.code(),
        Some(0)
    );
}

#[tokio::test]
async fn wait_fails_fast_with_the_reason_when_it_cannot_happen() {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("shared").await;
    let dir = manifest_dir();
    write_manifest(
        dir.path(),
        "ghost.yaml",
        &mount_yaml("ghost", "/ghost", "no-such-function", ""),
    );
    write_manifest(dir.path(), "broken.yaml", "kind: [\n");
    for (file, reason) in [
        ("ghost.yaml", "FunctionNotFound"),
        ("broken.yaml", "InvalidManifest"),
    ] {
        // Exit 1, not 124 after the long timeout: it gave up at the first look.
        let (out, _) = wait(&fx, &api, dir.path(), file, "600s");
        assert_eq!(out.status.code(), Some(1), "{file}\n{}", show(&out));
        assert!(
            stdout(&out).starts_with(reason),
            "{file}: the reason is printed\n{}",
            show(&out)
        );
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("waiting"),
            "{file}: at once\n{}",
            show(&out)
        );
    }
}

#[tokio::test]
async fn a_pipeline_drops_a_manifest_and_waits_for_the_controller() {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("shared").await;
    fx.create_function("pl-c").await;
    fx.create_function("pl-d").await;
    let dir = manifest_dir();
    let status = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "c.yaml", &mount_yaml("c", "/c", "pl-c", ""));
    let d = Daemon::start(
        &fx,
        &[
            "--rest-api-id",
            &api,
            "--manifests",
            dir.path().to_str().unwrap(),
            "--status-dir",
            status.path().to_str().unwrap(),
        ],
    );
    d.wait_ready().await;

    // The pipeline's step: write the manifest, wait for it.
    write_manifest(dir.path(), "d.yaml", &mount_yaml("d", "/d", "pl-d", ""));
    let (out, _) = wait(&fx, &api, dir.path(), "d.yaml", "60s");
    assert_eq!(out.status.code(), Some(0), "{}\n{}", show(&out), d.stderr());
    assert!(fx.route_table(&api).await.contains_key("/d"));

    // With the status documents, the wait reads them and asks AWS only to
    // confirm what they say: an edit is waited for without polling the API.
    write_manifest(dir.path(), "d.yaml", &mount_yaml("d", "/d", "pl-c", ""));
    let status_dir = status.path().to_str().unwrap();
    let own = FaultProxy::strict(&fx.endpoint(), Vec::new());
    let file = dir.path().join("d.yaml");
    let doc_wait = || {
        let mut cmd = fx.apimount_command([
            "wait",
            "--rest-api-id",
            &api,
            "--manifests",
            dir.path().to_str().unwrap(),
            "--file",
            file.to_str().unwrap(),
            "--timeout",
            "60s",
            "--status-dir",
            status_dir,
        ]);
        cmd.env("AWS_ENDPOINT_URL", own.url());
        cmd.output().expect("run apimount wait")
    };
    let out = doc_wait();
    assert_eq!(out.status.code(), Some(0), "{}\n{}", show(&out), d.stderr());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("waiting: the controller"),
        "it read the document first\n{}",
        show(&out)
    );
    // Its only API reads: the one confirmation.
    let count = |op: &str| own.calls().iter().filter(|(_, o)| o == op).count();
    assert_eq!(
        (count(GET_RESOURCES), count(GET_STAGE)),
        (1, 1),
        "{}",
        show(&out)
    );
    // A document for another version is never taken for this one.
    write_manifest(dir.path(), "d.yaml", &mount_yaml("d", "/d", "pl-d", ""));
    let out = doc_wait();
    assert_eq!(out.status.code(), Some(0), "{}\n{}", show(&out), d.stderr());
    let table = fx.route_table(&api).await;
    assert!(
        table["/d"]["ANY"]
            .integration_uri
            .as_deref()
            .unwrap_or_default()
            .contains("pl-d"),
        "served only once this version is live: {table:?}"
    );

    // Its status document says so, with the manifest's generation.
    let doc_path = status.path().join("d.yaml.status.json");
    let doc = d
        .wait_for("d's document programmed", DEADLINE, || async {
            let doc: Value =
                serde_json::from_str(&std::fs::read_to_string(&doc_path).ok()?).ok()?;
            (condition(&doc, "Programmed")["status"] == "True").then_some(doc)
        })
        .await;
    assert_eq!(doc["kind"], "ServiceMountStatus");
    assert_eq!(doc["name"], "d");
    assert_eq!(doc["observedGeneration"].as_str().unwrap().len(), 8);
    for c in ["Accepted", "ResolvedRefs", "Programmed"] {
        assert_eq!(condition(&doc, c)["status"], "True", "{c}: {doc}");
        assert!(condition(&doc, c)["lastTransitionTime"]
            .as_str()
            .unwrap()
            .ends_with('Z'));
    }

    // A state change updates it: the function goes missing.
    write_manifest(
        dir.path(),
        "d.yaml",
        &mount_yaml("d", "/d", "no-such-fn", ""),
    );
    d.wait_for("d's document says FunctionNotFound", DEADLINE, || async {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&doc_path).ok()?).ok()?;
        let c = condition(&doc, "ResolvedRefs");
        (c["status"] == "False" && c["reason"] == "FunctionNotFound").then_some(())
    })
    .await;
    // `status --output json` prints the same documents.
    let out = fx.apimount(&[
        "status",
        "--rest-api-id",
        &api,
        "--manifests",
        dir.path().to_str().unwrap(),
        "--output",
        "json",
    ]);
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let d_doc = json["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "d")
        .expect("d in status");
    assert_eq!(
        condition(d_doc, "ResolvedRefs")["reason"],
        "FunctionNotFound"
    );

    // Removed with its manifest.
    std::fs::remove_file(dir.path().join("d.yaml")).unwrap();
    d.wait_for("d's document removed", DEADLINE, || async {
        (!doc_path.exists()).then_some(())
    })
    .await;
    assert!(status.path().join("c.yaml.status.json").exists());
}

#[tokio::test]
async fn status_documents_go_to_s3_beside_an_s3_source() {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("shared").await;
    fx.create_function("pl-s").await;
    let s3 = fx.s3();
    fx.create_bucket("pipelines").await;
    let put = |key: &'static str, body: String| fx.put_object("pipelines", key, body);
    put("manifests/s.yaml", mount_yaml("s", "/s", "pl-s", "")).await;
    let d = Daemon::start(
        &fx,
        &[
            "--rest-api-id",
            &api,
            "--source",
            "s3://pipelines/manifests",
            "--poll-interval",
            "1s",
            "--status-prefix",
            "s3://pipelines/status/",
        ],
    );
    d.wait_ready().await;
    let get = |key: &'static str| {
        let s3 = s3.clone();
        async move {
            let o = s3
                .get_object()
                .bucket("pipelines")
                .key(key)
                .send()
                .await
                .ok()?;
            let bytes = o.body.collect().await.ok()?.into_bytes();
            serde_json::from_slice::<Value>(&bytes).ok()
        }
    };
    d.wait_for("s's document programmed", DEADLINE, || async {
        let doc = get("status/s.yaml.status.json").await?;
        (condition(&doc, "Programmed")["status"] == "True").then_some(())
    })
    .await;
    s3.delete_object()
        .bucket("pipelines")
        .key("manifests/s.yaml")
        .send()
        .await
        .unwrap();
    put(
        "manifests/t.yaml",
        mount_yaml("t", "/t", "pl-s", "  proxy: false\n"),
    )
    .await;
    d.wait_for("s's document removed", DEADLINE, || async {
        get("status/s.yaml.status.json")
            .await
            .is_none()
            .then_some(())
    })
    .await;
}

fn condition<'a>(doc: &'a Value, kind: &str) -> &'a Value {
    doc["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {doc}"))
}
