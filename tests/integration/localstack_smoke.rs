//! Checks the LocalStack harness (`support::localstack`) end to end with the
//! apimount binary: what `apimount apply` makes is what the live stage serves.
//! If these fail, every LocalStack test is suspect.
//!
//! The tests share one LocalStack (`localstack::shared()`); each makes its own
//! REST API and names its functions after itself.

use std::path::Path;
use std::process::Output;
use std::time::Instant;

use crate::support::localstack::{self, stored_zip, LocalStack, LocalStackFixture};
use crate::support::{self, manifest_dir, mount_yaml, show, write_manifest};

const STAGE: &str = "prod";

/// `apimount apply` of `dir` on `api` (stage prod, no pacing).
fn apply(fx: &LocalStackFixture<'_>, dir: &Path, api: &str) -> Output {
    let dir = dir.to_str().expect("utf-8 temp path");
    let started = Instant::now();
    let out = fx.apimount(&[
        "apply",
        "--manifests",
        dir,
        "--rest-api-id",
        api,
        "--stage",
        STAGE,
        "--pacing",
        "off",
    ]);
    eprintln!(
        "apimount apply on LocalStack took {:.1?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(0), "apply failed\n{}", show(&out));
    out
}

/// The stage has the route: the request reached the integration, whose
/// function cannot run here (no container engine), so the answer is a 5xx.
#[track_caller]
fn assert_served(fx: &LocalStackFixture<'_>, api: &str, path: &str) {
    let status = fx.stage_status(api, STAGE, path);
    assert!(
        (500..600).contains(&status),
        "GET {path} on stage {STAGE}: expected a 5xx (route served, Lambda cannot run), got \
         {status}\nLocalStack log tail:\n{}",
        fx.localstack.log_tail(15)
    );
}

/// The stage has no such route: 403 "Missing Authentication Token" or 404.
#[track_caller]
fn assert_not_served(fx: &LocalStackFixture<'_>, api: &str, path: &str) {
    let status = fx.stage_status(api, STAGE, path);
    assert!(
        status == 403 || status == 404,
        "GET {path} on stage {STAGE}: expected 403/404 (no such route), got {status}\n\
         LocalStack log tail:\n{}",
        fx.localstack.log_tail(15)
    );
}

#[tokio::test]
async fn applied_mount_is_served_by_the_stage() {
    let ls = localstack::shared();
    eprintln!("shared LocalStack started in {:.1?}", ls.startup_time());
    let started = Instant::now();
    let fx = ls.fixture("ls-smoke-served").await;

    // The account comes from LocalStack (GetCallerIdentity), not a constant.
    let account = fx.account_id();
    assert!(
        account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()),
        "{account:?}"
    );
    let function = "ls-smoke-served-accounts";
    let arn = fx.create_function(function).await;
    assert_eq!(arn, fx.function_arn(function));

    let (api, _root) = fx.create_rest_api("shared-api").await;
    let dir = manifest_dir();
    write_manifest(
        dir.path(),
        "accounts.yaml",
        &mount_yaml("accounts", "/accounts", function, ""),
    );
    apply(&fx, dir.path(), &api);

    assert!(fx.stage(&api, STAGE).await.is_some(), "no stage {STAGE}");
    assert_served(&fx, &api, "/accounts");
    assert_served(&fx, &api, "/accounts/x");
    assert_not_served(&fx, &api, "/nope");
    eprintln!(
        "applied_mount_is_served_by_the_stage: {:.1?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn removed_mount_stops_being_served() {
    let ls = localstack::shared();
    let started = Instant::now();
    let fx = ls.fixture("ls-smoke-removed").await;
    let accounts = "ls-smoke-removed-accounts";
    let orders = "ls-smoke-removed-orders";
    fx.create_function(accounts).await;
    fx.create_function(orders).await;
    let (api, _root) = fx.create_rest_api("shared-api").await;

    // Two mounts, so that removing one stays within the mass-deletion guard.
    let dir = manifest_dir();
    write_manifest(
        dir.path(),
        "accounts.yaml",
        &mount_yaml("accounts", "/accounts", accounts, ""),
    );
    write_manifest(
        dir.path(),
        "orders.yaml",
        &mount_yaml("orders", "/orders", orders, ""),
    );
    apply(&fx, dir.path(), &api);
    assert_served(&fx, &api, "/accounts");
    assert_served(&fx, &api, "/orders/1");

    std::fs::remove_file(dir.path().join("accounts.yaml")).expect("remove accounts.yaml");
    let out = apply(&fx, dir.path(), &api);
    assert_not_served(&fx, &api, "/accounts");
    assert_not_served(&fx, &api, "/accounts/x");
    // The other mount is still served.
    assert_served(&fx, &api, "/orders");
    assert_served(&fx, &api, "/orders/1");
    let table = fx.route_table(&api).await;
    assert!(
        !table.keys().any(|path| path.starts_with("/accounts")),
        "/accounts is still in the API: {table:#?}\n{}",
        show(&out)
    );
    eprintln!(
        "removed_mount_stops_being_served: {:.1?}",
        started.elapsed()
    );
}

/// Whether any process of the process group `pgid` is alive.
fn group_alive(pgid: u32) -> bool {
    std::process::Command::new("kill")
        .args(["-s", "0", "--", &format!("-{pgid}")])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_private_localstack_dies_with_its_process_group_on_drop() {
    let ls = LocalStack::start();
    eprintln!(
        "private LocalStack on port {} started in {:.1?}",
        ls.port(),
        ls.startup_time()
    );
    assert_eq!(ls.region(), support::REGION);
    assert!(ls.endpoint().ends_with(&format!(":{}", ls.port())));
    let pgid = ls.pid();
    let dir = ls.scratch_dir().to_path_buf();
    assert!(group_alive(pgid));
    assert!(dir.is_dir());

    let started = Instant::now();
    drop(ls);
    eprintln!("private LocalStack stopped in {:.1?}", started.elapsed());
    assert!(!group_alive(pgid), "process group {pgid} survived the drop");
    assert!(!dir.exists(), "{} survived the drop", dir.display());
}

#[test]
fn stored_zip_has_the_layout_of_a_zip() {
    let content = b"123456789";
    let zip = stored_zip("index.py", content);
    // Local header, name, data, central directory, end record.
    assert_eq!(&zip[..4], b"PK\x03\x04");
    // CRC-32 of "123456789" is the standard check value.
    assert_eq!(&zip[14..18], &0xCBF4_3926u32.to_le_bytes());
    assert_eq!(&zip[30..38], b"index.py");
    assert_eq!(&zip[38..47], content);
    assert_eq!(&zip[47..51], b"PK\x01\x02");
    let end = &zip[zip.len() - 22..];
    assert_eq!(&end[..4], b"PK\x05\x06");
    let central_offset = u32::from_le_bytes(end[16..20].try_into().unwrap());
    assert_eq!(central_offset, 47);
}
