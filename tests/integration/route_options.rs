//! Route options on a real emulator: a CORS preflight, per-route throttling
//! in the stage's method settings and the integration timeout, each applied,
//! in sync on the next plan, healed when changed by hand, and removed with
//! the field or the mount without touching anything that is not the mount's.
//!
//! moto (behind the strict layer, which refuses what AWS refuses) shows the
//! gateway objects; LocalStack also serves the deployed stage, so the
//! preflight's answer is asked of the stage itself.
//!
//! Throttling is one method-settings entry per verb the mount's ANY method
//! answers (OPTIONS is the preflight's here, and not throttled). Neither
//! emulator can remove an entry: moto answers 200 and keeps it, LocalStack
//! answers 400 "Invalid method setting path"; AWS removes it. apimount reads
//! the answer, sees the entry kept, and falls back to giving it the stage
//! default's throttling, saying so. So these tests check that this mount's
//! entries follow the stage default, not that they are gone; that every
//! other entry is left byte for byte is checked either way.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use aws_sdk_apigateway::types::{MethodSetting, Op, PatchOperation};
use aws_sdk_apigateway::Client;

use crate::support::faults::FaultProxy;
use crate::support::localstack::{self, LocalStackFixture};
use crate::support::{
    http_request, manifest_dir, mount_yaml, show, stdout, write_manifest, Fixture,
};

const STAGE: &str = "prod";

const OPTIONS: &str = "  cors:
    allowOrigins: [\"https://app.example.com\", \"http://localhost:3000\"]
    allowHeaders: [Content-Type, X-Trace-Id]
    exposeHeaders: [X-Request-Id]
    maxAge: 600
    allowCredentials: true
  throttle:
    rateLimit: 100
    burstLimit: 200
  timeoutMs: 5000
";

/// The mount's entries: one per verb its ANY methods answer, on each route.
fn our_keys() -> Vec<String> {
    let mut out = Vec::new();
    for path in ["~1accounts", "~1accounts~1{proxy+}"] {
        for verb in ["DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"] {
            out.push(format!("{path}/{verb}"));
        }
    }
    out
}

fn strict(endpoint: &str) -> FaultProxy {
    FaultProxy::strict(endpoint, Vec::new())
}

fn run(mut cmd: std::process::Command, endpoint: &str) -> Output {
    cmd.env("AWS_ENDPOINT_URL", endpoint);
    cmd.output().expect("run apimount")
}

fn args<'a>(verb: &'a str, dir: &'a Path, api: &'a str) -> Vec<&'a str> {
    vec![
        verb,
        "--manifests",
        dir.to_str().unwrap(),
        "--rest-api-id",
        api,
        "--pacing",
        "off",
    ]
}

async fn resource_id(apigw: &Client, api: &str, path: &str) -> String {
    let page = apigw
        .get_resources()
        .rest_api_id(api)
        .limit(500)
        .send()
        .await
        .unwrap();
    page.items()
        .iter()
        .find(|r| r.path() == Some(path))
        .and_then(|r| r.id().map(str::to_string))
        .unwrap_or_else(|| panic!("no resource {path}"))
}

/// The stage's method settings by key.
async fn method_settings(apigw: &Client, api: &str) -> BTreeMap<String, MethodSetting> {
    let stage = apigw
        .get_stage()
        .rest_api_id(api)
        .stage_name(STAGE)
        .send()
        .await
        .unwrap();
    stage
        .method_settings()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

async fn patch_stage(apigw: &Client, api: &str, ops: &[(Op, &str, Option<&str>)]) {
    let ops = ops
        .iter()
        .map(|(op, path, value)| {
            PatchOperation::builder()
                .op(op.clone())
                .path(*path)
                .set_value(value.map(str::to_string))
                .build()
        })
        .collect();
    apigw
        .update_stage()
        .rest_api_id(api)
        .stage_name(STAGE)
        .set_patch_operations(Some(ops))
        .send()
        .await
        .unwrap();
}

/// A route made by hand, as another team's would be (MOCK GET).
async fn foreign_route(apigw: &Client, api: &str, part: &str) {
    let root = resource_id(apigw, api, "/").await;
    let r = apigw
        .create_resource()
        .rest_api_id(api)
        .parent_id(root)
        .path_part(part)
        .send()
        .await
        .unwrap();
    let id = r.id().unwrap();
    apigw
        .put_method()
        .rest_api_id(api)
        .resource_id(id)
        .http_method("GET")
        .authorization_type("NONE")
        .send()
        .await
        .unwrap();
    apigw
        .put_integration()
        .rest_api_id(api)
        .resource_id(id)
        .http_method("GET")
        .r#type(aws_sdk_apigateway::types::IntegrationType::Mock)
        .request_templates("application/json", "{\"statusCode\": 200}")
        .send()
        .await
        .unwrap();
}

/// The header values the preflight's integration response maps, by header.
async fn preflight_headers(
    apigw: &Client,
    api: &str,
    path: &str,
) -> Option<BTreeMap<String, String>> {
    let id = resource_id(apigw, api, path).await;
    let r = apigw
        .get_integration_response()
        .rest_api_id(api)
        .resource_id(id)
        .http_method("OPTIONS")
        .status_code("200")
        .send()
        .await
        .ok()?;
    Some(
        r.response_parameters()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                (
                    k.trim_start_matches("method.response.header.").to_string(),
                    v.clone(),
                )
            })
            .collect(),
    )
}

async fn timeout_of(apigw: &Client, api: &str, path: &str) -> i32 {
    let id = resource_id(apigw, api, path).await;
    apigw
        .get_integration()
        .rest_api_id(api)
        .resource_id(id)
        .http_method("ANY")
        .send()
        .await
        .unwrap()
        .timeout_in_millis()
}

fn throttling(s: &MethodSetting) -> (f64, i32) {
    (s.throttling_rate_limit(), s.throttling_burst_limit())
}

/// Whether each of this mount's entries has the stage default's
/// throttling: gone (AWS), or kept with the default's values where the
/// backend cannot remove an entry. Never "disabled" under a throttling default.
fn ours_follow_the_stage(settings: &BTreeMap<String, MethodSetting>) -> bool {
    let default = settings.get("*/*").map_or((-1.0, -1), throttling);
    settings
        .iter()
        .filter(|(k, _)| k.starts_with("~1accounts"))
        .all(|(_, s)| throttling(s) == default)
}

/// A plan with changes pending that names each of `lines`.
fn plan_shows(out: &Output, lines: &[&str]) {
    assert_eq!(out.status.code(), Some(2), "{}", show(out));
    let text = stdout(out);
    for line in lines {
        assert!(text.contains(line), "plan lacks {line:?}\n{}", show(out));
    }
}

#[tokio::test]
async fn each_option_is_applied_in_sync_and_healed_on_moto() {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("options").await;
    fx.create_function("account-service").await;
    let proxy = strict(&fx.endpoint());
    let dir = manifest_dir();
    write_manifest(
        dir.path(),
        "accounts.yaml",
        &mount_yaml("accounts", "/accounts", "account-service", OPTIONS),
    );
    let apply = || {
        run(
            fx.apimount_command(args("apply", dir.path(), &api)),
            &proxy.url(),
        )
    };
    let plan = || {
        run(
            fx.apimount_command(args("plan", dir.path(), &api)),
            &proxy.url(),
        )
    };

    // The plan names each option.
    plan_shows(
        &plan(),
        &[
        "+ method OPTIONS /accounts (authorization NONE)",
        "+ CORS preflight OPTIONS /accounts: origins https://app.example.com http://localhost:3000, credentials, max age 600s",
        "+ CORS preflight OPTIONS /accounts/{proxy+}:",
        "(timeout 5000 ms)",
        "+ throttle GET /accounts: 100 requests/s, burst 200",
        "+ throttle HEAD /accounts: 100 requests/s, burst 200",
        "+ throttle PUT /accounts/{proxy+}: 100 requests/s, burst 200",
        ],
    );
    assert!(!stdout(&plan()).contains("throttle ANY"), "no ANY entry");
    let out = apply();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    proxy.stats().assert_nothing_refused();

    // The preflight: MOCK, owned, on both routes, with the headers.
    let table = fx.route_table(&api).await;
    for path in ["/accounts", "/accounts/{proxy+}"] {
        let m = &table[path]["OPTIONS"];
        assert_eq!(m.integration_type.as_deref(), Some("MOCK"), "{path}");
        assert_eq!(m.authorization_type.as_deref(), Some("NONE"), "{path}");
        assert!(
            m.operation_name
                .as_deref()
                .unwrap_or("")
                .starts_with("apimount:"),
            "owned: {m:?}"
        );
        let h = preflight_headers(&fx.apigateway, &api, path).await.unwrap();
        assert_eq!(
            h["Access-Control-Allow-Origin"],
            "'https://app.example.com'"
        );
        assert_eq!(h["Access-Control-Allow-Credentials"], "'true'");
        assert_eq!(
            h["Access-Control-Allow-Headers"],
            "'Content-Type,X-Trace-Id'"
        );
        assert_eq!(h["Access-Control-Expose-Headers"], "'X-Request-Id'");
        assert_eq!(h["Access-Control-Max-Age"], "'600'");
        assert_eq!(
            h["Access-Control-Allow-Methods"],
            "'DELETE,GET,HEAD,OPTIONS,PATCH,POST,PUT'"
        );
        assert_eq!(h["Vary"], "'Origin'");
        assert_eq!(timeout_of(&fx.apigateway, &api, path).await, 5000, "{path}");
    }
    let settings = method_settings(&fx.apigateway, &api).await;
    for key in our_keys() {
        assert_eq!(
            throttling(&settings[&key]),
            (100.0, 200),
            "{key}: {settings:?}"
        );
    }
    assert_eq!(
        settings
            .keys()
            .filter(|k| k.starts_with("~1accounts"))
            .count(),
        12,
        "{settings:?}"
    );
    assert!(
        !settings.keys().any(|k| k.contains("OPTIONS")),
        "a preflight is not throttled: {settings:?}"
    );

    // In sync.
    let out = plan();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let tree = run(
        fx.apimount_command([
            "status",
            "--manifests",
            dir.path().to_str().unwrap(),
            "--rest-api-id",
            &api,
            "--tree",
        ]),
        &proxy.url(),
    );
    let tree_text = stdout(&tree);
    for note in [
        "CORS preflight for https://app.example.com",
        "timeout 5000 ms",
        "throttle 100 requests/s, burst 200",
    ] {
        assert!(
            tree_text.contains(note),
            "tree lacks {note:?}\n{}",
            show(&tree)
        );
    }

    // The stage default starts caching: each entry follows (an entry
    // overrides the default in every field, so one left behind would turn
    // caching off for its route).
    patch_stage(
        &fx.apigateway,
        &api,
        &[
            (Op::Replace, "/*/*/caching/enabled", Some("true")),
            (Op::Replace, "/*/*/caching/ttlInSeconds", Some("60")),
        ],
    )
    .await;
    plan_shows(
        &plan(),
        &["~ throttle GET /accounts: 100 requests/s, burst 200 (was 100 requests/s, burst 200; caching/enabled, caching/ttlInSeconds not as the stage default)"],
    );
    let calls_before = proxy.calls().len();
    let out = apply();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let update_stage_calls = proxy.calls()[calls_before..]
        .iter()
        .filter(|(_, op)| op == "apigateway:UpdateStage")
        .count();
    // 12 entries of 10 operations each: two calls of at most 80.
    assert_eq!(update_stage_calls, 2, "{}", show(&out));
    let settings = method_settings(&fx.apigateway, &api).await;
    for key in our_keys() {
        let e = &settings[&key];
        assert!(e.caching_enabled(), "{key}: {e:?}");
        assert_eq!(e.cache_ttl_in_seconds(), 60, "{key}");
        assert_eq!(throttling(e), (100.0, 200), "{key}");
    }
    let out = plan();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    // Drift on each, by hand: a preflight header, the timeout, the throttle.
    let pid = resource_id(&fx.apigateway, &api, "/accounts/{proxy+}").await;
    fx.apigateway
        .put_integration_response()
        .rest_api_id(&api)
        .resource_id(&pid)
        .http_method("OPTIONS")
        .status_code("200")
        .response_parameters("method.response.header.Access-Control-Allow-Origin", "'*'")
        .send()
        .await
        .unwrap();
    let aid = resource_id(&fx.apigateway, &api, "/accounts").await;
    let uri = fx.lambda_uri(&fx.function_arn("account-service"));
    // moto has no UpdateIntegration: a hand edit puts the integration again.
    fx.apigateway
        .put_integration()
        .rest_api_id(&api)
        .resource_id(&aid)
        .http_method("ANY")
        .r#type(aws_sdk_apigateway::types::IntegrationType::AwsProxy)
        .integration_http_method("POST")
        .uri(&uri)
        .timeout_in_millis(29_000)
        .send()
        .await
        .unwrap();
    patch_stage(
        &fx.apigateway,
        &api,
        &[(
            Op::Replace,
            "/~1accounts/GET/throttling/rateLimit",
            Some("9000"),
        )],
    )
    .await;
    plan_shows(
        &plan(),
        &[
            // The hand edit put the response again with one header: the others are missing.
            "~ CORS preflight OPTIONS /accounts/{proxy+}: Access-Control-Allow-Credentials missing",
            "timeout 29000 ms -> 5000 ms",
            "~ throttle GET /accounts: 100 requests/s, burst 200 (was 9000 requests/s, burst 200)",
        ],
    );
    let out = apply();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        preflight_headers(&fx.apigateway, &api, "/accounts/{proxy+}")
            .await
            .unwrap()["Access-Control-Allow-Origin"],
        "'https://app.example.com'"
    );
    assert_eq!(timeout_of(&fx.apigateway, &api, "/accounts").await, 5000);
    let settings = method_settings(&fx.apigateway, &api).await;
    assert_eq!(throttling(&settings["~1accounts/GET"]), (100.0, 200));
    let out = plan();
    assert_eq!(out.status.code(), Some(0), "healed: {}", show(&out));

    // The manifest rewritten with `extra`, then applied.
    let rewrite = |extra: &str| {
        write_manifest(
            dir.path(),
            "accounts.yaml",
            &mount_yaml("accounts", "/accounts", "account-service", extra),
        );
        let out = apply();
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        out
    };

    // A throttle edit alone is made on the stage and deploys nothing.
    let deployments = fx.deployment_ids(&api).await;
    let edited = OPTIONS.replace("rateLimit: 100", "rateLimit: 50");
    let out = rewrite(&edited);
    let settings = method_settings(&fx.apigateway, &api).await;
    for key in our_keys() {
        assert_eq!(throttling(&settings[&key]), (50.0, 200), "{key}");
    }
    assert_eq!(
        fx.deployment_ids(&api).await,
        deployments,
        "a throttle edit made a deployment\n{}",
        show(&out)
    );
    // A timeout edit changes what is served: it is deployed.
    let edited = edited.replace("timeoutMs: 5000", "timeoutMs: 6000");
    rewrite(&edited);
    assert_eq!(timeout_of(&fx.apigateway, &api, "/accounts").await, 6000);
    assert_eq!(fx.deployment_ids(&api).await.len(), deployments.len() + 1);

    // The throttle removed: moto answers 200 to each removal and keeps the
    // entry. apimount reads that in the answer and gives the entries the
    // stage default's throttling instead, saying so; the plan is in sync after.
    let without: String = edited
        .lines()
        .filter(|l| !l.contains("throttle") && !l.contains("Limit"))
        .map(|l| format!("{l}\n"))
        .collect();
    let out = rewrite(&without);
    assert!(
        stdout(&out).contains("not removed: the backend answered without removing it"),
        "{}",
        show(&out)
    );
    let settings = method_settings(&fx.apigateway, &api).await;
    assert!(ours_follow_the_stage(&settings), "{settings:?}");
    assert!(
        settings["~1accounts/GET"].caching_enabled(),
        "still caching as the stage default does"
    );
    let out = plan();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
}

/// An HTTP request to the deployed stage: status and headers (lowercased names).
fn stage_request(
    fx: &LocalStackFixture<'_>,
    api: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, BTreeMap<String, String>) {
    let path = path.trim_start_matches('/');
    let (status, head, _) = http_request(
        &format!("127.0.0.1:{}", fx.localstack.port()),
        method,
        &format!("/restapis/{api}/{STAGE}/_user_request_/{path}"),
        headers,
    )
    .unwrap_or_else(|| panic!("the stage did not answer {method} /{path}"));
    (status, head)
}

#[tokio::test]
async fn on_localstack_the_stage_answers_preflights_and_removal_leaves_only_others_settings() {
    let ls = localstack::shared();
    let fx = ls.fixture("route-options").await;
    let (api, _) = fx.create_rest_api("route-options").await;
    fx.create_function("options-accounts").await;
    let dir = manifest_dir();
    let write = |extra: &str| {
        write_manifest(
            dir.path(),
            "accounts.yaml",
            &mount_yaml("accounts", "/accounts", "options-accounts", extra),
        )
    };
    let apply = || {
        let out = run(
            fx.apimount_command(args("apply", dir.path(), &api)),
            &fx.endpoint(),
        );
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        out
    };
    let in_sync = || {
        let out = run(
            fx.apimount_command(args("plan", dir.path(), &api)),
            &fx.endpoint(),
        );
        assert_eq!(out.status.code(), Some(0), "not in sync: {}", show(&out));
    };

    // Another team's route and a stage-wide default, both set by hand.
    foreign_route(&fx.apigateway, &api, "other").await;
    write("  proxy: false\n");
    apply();
    patch_stage(
        &fx.apigateway,
        &api,
        &[
            (Op::Replace, "/*/*/throttling/rateLimit", Some("1000")),
            (Op::Replace, "/*/*/throttling/burstLimit", Some("500")),
            (Op::Replace, "/~1other/GET/throttling/rateLimit", Some("7")),
            (Op::Replace, "/~1other/GET/throttling/burstLimit", Some("8")),
        ],
    )
    .await;
    let others = method_settings(&fx.apigateway, &api).await;
    assert_eq!(
        others.keys().collect::<Vec<_>>(),
        vec!["*/*", "~1other/GET"],
        "{others:?}"
    );
    let others_only = |settings: &BTreeMap<String, MethodSetting>| {
        for key in ["*/*", "~1other/GET"] {
            assert_eq!(
                format!("{:?}", settings.get(key)),
                format!("{:?}", others.get(key)),
                "{key} changed"
            );
        }
    };

    // All three options: the stage answers the preflight at once.
    write(OPTIONS);
    apply();
    in_sync();
    for path in ["/accounts", "/accounts/some/thing"] {
        let (status, h) = stage_request(
            &fx,
            &api,
            "OPTIONS",
            path,
            &[
                ("Origin", "http://localhost:3000"),
                ("Access-Control-Request-Method", "POST"),
            ],
        );
        assert_eq!(status, 200, "{path}: {h:?}");
        assert_eq!(
            h.get("access-control-allow-origin").map(String::as_str),
            Some("http://localhost:3000"),
            "{path}: a listed origin is echoed: {h:?}"
        );
        assert_eq!(
            h.get("access-control-allow-credentials")
                .map(String::as_str),
            Some("true"),
            "{path}: {h:?}"
        );
        assert_eq!(
            h.get("access-control-max-age").map(String::as_str),
            Some("600")
        );
    }
    let (_, h) = stage_request(
        &fx,
        &api,
        "OPTIONS",
        "/accounts",
        &[("Origin", "https://evil.example")],
    );
    assert_eq!(
        h.get("access-control-allow-origin").map(String::as_str),
        Some("https://app.example.com"),
        "an origin not listed is not echoed: {h:?}"
    );
    let settings = method_settings(&fx.apigateway, &api).await;
    for key in our_keys() {
        assert_eq!(throttling(&settings[&key]), (100.0, 200), "{key}");
    }
    others_only(&settings);
    assert_eq!(timeout_of(&fx.apigateway, &api, "/accounts").await, 5000);

    // Throttle drift healed in place (UpdateStage), then the field removed:
    // our keys go, byte for byte nothing else changes.
    patch_stage(
        &fx.apigateway,
        &api,
        &[(
            Op::Replace,
            "/~1accounts~1{proxy+}/GET/throttling/burstLimit",
            Some("4000"),
        )],
    )
    .await;
    apply();
    in_sync();
    assert_eq!(
        throttling(&method_settings(&fx.apigateway, &api).await["~1accounts~1{proxy+}/GET"]),
        (100.0, 200)
    );
    let without_throttle: String = OPTIONS
        .lines()
        .filter(|l| !l.contains("throttle") && !l.contains("Limit"))
        .map(|l| format!("{l}\n"))
        .collect();
    write(&without_throttle);
    let out = apply();
    assert!(
        stdout(&out).contains("not removed: the backend refuses to remove method-settings entries"),
        "{}",
        show(&out)
    );
    in_sync();
    let settings = method_settings(&fx.apigateway, &api).await;
    assert!(ours_follow_the_stage(&settings), "{settings:?}");
    assert_eq!(
        throttling(&settings["~1accounts/GET"]),
        (1000.0, 500),
        "never -1 under a stage throttle"
    );
    others_only(&settings);

    // CORS and the timeout removed: the preflight goes, the default timeout is back.
    write("");
    apply();
    in_sync();
    let table = fx.route_table(&api).await;
    assert!(!table["/accounts"].contains_key("OPTIONS"), "{table:?}");
    assert!(!table["/accounts/{proxy+}"].contains_key("OPTIONS"));
    assert_eq!(timeout_of(&fx.apigateway, &api, "/accounts").await, 29_000);
    let (status, _) = stage_request(&fx, &api, "OPTIONS", "/accounts", &[]);
    assert_ne!(status, 200, "the stage no longer answers the preflight");

    // The mount removed with all its options: its settings go with it.
    write(OPTIONS);
    apply();
    std::fs::remove_file(dir.path().join("accounts.yaml")).unwrap();
    // The only mount going is a mass deletion: asked for as such.
    let mut removal = args("apply", dir.path(), &api);
    removal.push("--allow-mass-delete");
    let out = run(fx.apimount_command(removal), &fx.endpoint());
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let settings = method_settings(&fx.apigateway, &api).await;
    assert!(
        ours_follow_the_stage(&settings),
        "{settings:?}\n{}",
        show(&out)
    );
    others_only(&settings);
    let table = fx.route_table(&api).await;
    assert!(!table.contains_key("/accounts"), "{table:?}");
    assert_eq!(
        table["/other"]["GET"].integration_type.as_deref(),
        Some("MOCK")
    );
}

#[tokio::test]
async fn leaving_an_authorizer_is_the_type_change_alone() {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("authorizers").await;
    fx.create_function("account-service").await;
    let authorizer = fx
        .create_token_authorizer(&api, "jwt", "account-service")
        .await;
    let dir = manifest_dir();
    let write = |extra: &str| {
        write_manifest(
            dir.path(),
            "accounts.yaml",
            &mount_yaml("accounts", "/accounts", "account-service", extra),
        )
    };
    let run_ok = |verb: &str| {
        let out = fx.apimount(&args(verb, dir.path(), &api));
        assert_eq!(out.status.code(), Some(0), "{verb}: {}", show(&out));
    };
    write(&format!(
        "  proxy: false\n  authorization: CUSTOM\n  authorizerId: {authorizer}\n"
    ));
    run_ok("apply");
    let table = fx.route_table(&api).await;
    assert_eq!(
        table["/accounts"]["ANY"].authorization_type.as_deref(),
        Some("CUSTOM")
    );
    write("  proxy: false\n");
    run_ok("apply");
    run_ok("plan");
    let table = fx.route_table(&api).await;
    assert_eq!(
        table["/accounts"]["ANY"].authorization_type.as_deref(),
        Some("NONE")
    );
    // No UpdateMethod named the authorizer id (the fixture's strict layer
    // also refuses an empty one, and the fixture checks it refused nothing).
    let named = fx
        .strict_requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.contains("/methods/"))
        .filter(|r| String::from_utf8_lossy(&r.body).contains("authorizerId"))
        .count();
    assert_eq!(named, 0);
}

/// With no strict layer in between (the layer would answer for moto): moto
/// answers 200 to the removal of a method-settings entry and keeps it, and
/// only apimount's reading of the answer keeps that from being reported as
/// done and planned again forever.
#[tokio::test]
async fn a_removal_moto_ignores_is_seen_and_the_plan_is_empty_after_it() {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("plain").await;
    fx.create_function("account-service").await;
    let dir = manifest_dir();
    let write = |extra: &str| {
        write_manifest(
            dir.path(),
            "accounts.yaml",
            &mount_yaml("accounts", "/accounts", "account-service", extra),
        )
    };
    let run = |verb: &str| {
        run(
            fx.apimount_command(args(verb, dir.path(), &api)),
            &fx.endpoint(),
        )
    };
    write("  throttle:\n    rateLimit: 100\n    burstLimit: 200\n");
    let out = run("apply");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let out = run("plan");
    assert_eq!(out.status.code(), Some(0), "in sync: {}", show(&out));
    write("");
    let out = run("apply");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        stdout(&out).contains("not removed: the backend answered without removing it"),
        "{}",
        show(&out)
    );
    let out = run("plan");
    assert_eq!(
        out.status.code(),
        Some(0),
        "in sync after it: {}",
        show(&out)
    );
    let settings = method_settings(&fx.apigateway, &api).await;
    assert!(ours_follow_the_stage(&settings), "{settings:?}");
}

#[tokio::test]
async fn a_throttle_above_the_accounts_limit_is_refused_until_the_flag_raises_it() {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("limits").await;
    fx.create_function("account-service").await;
    let dir = manifest_dir();
    write_manifest(
        dir.path(),
        "accounts.yaml",
        &mount_yaml(
            "accounts",
            "/accounts",
            "account-service",
            "  throttle:\n    rateLimit: 20000\n    burstLimit: 200\n",
        ),
    );
    let run = |extra: &[&str]| {
        let mut a = args("apply", dir.path(), &api);
        a.extend_from_slice(extra);
        run(fx.apimount_command(a), &fx.strict_endpoint())
    };
    // Above the default limit: refused at its field, nothing written.
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = show(&out);
    assert!(
        text.contains("LimitExceeded") && text.contains("throttle.rateLimit 20000"),
        "{text}"
    );
    assert!(text.contains("--account-throttle RATE/BURST"), "{text}");
    let writes = fx.strict_writes();
    assert!(writes.is_empty(), "refused, yet written: {writes:?}");
    // A flag that is not RATE/BURST is a usage error naming the form.
    let out = run(&["--account-throttle", "20000"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(show(&out).contains("RATE/BURST"), "{}", show(&out));
    // The account's raised limit lets it through, every verb at 20000.
    let out = run(&["--account-throttle", "20000/10000"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let settings = method_settings(&fx.apigateway, &api).await;
    for key in our_keys() {
        let entry = settings
            .get(&key)
            .unwrap_or_else(|| panic!("{key}: {settings:?}"));
        assert_eq!(throttling(entry), (20_000.0, 200), "{key}");
    }
    let stats = fx.strict_stats();
    assert!(
        stats.strict_lookups > 0 && stats.strict_lookup_errors == 0,
        "{stats:?}"
    );
}

/// A manifest naming a function by the ARN of another account: moto answers
/// GetFunction with its own account's function of that name, which must not
/// be mounted in its place. Refused with both ARNs, nothing written.
#[tokio::test]
async fn a_function_of_another_account_is_not_taken_for_a_local_one() {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("accounts").await;
    fx.create_function("account-service").await;
    let local = fx.function_arn("account-service");
    let other = if fx.account_id() == "444455556666" {
        "111122223333"
    } else {
        "444455556666"
    };
    let foreign = local.replace(fx.account_id(), other);
    assert_ne!(foreign, local);
    let dir = manifest_dir();
    write_manifest(
        dir.path(),
        "accounts.yaml",
        &mount_yaml("accounts", "/accounts", &foreign, ""),
    );
    // No role for that account: refused before any call reaches Lambda.
    let out = run(
        fx.apimount_command(args("apply", dir.path(), &api)),
        &fx.strict_endpoint(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = show(&out);
    assert!(
        text.contains("AccountNotAllowed") && text.contains(&foreign),
        "{text}"
    );
    let lambda: Vec<String> = fx
        .strict_requests()
        .into_iter()
        .filter(|r| r.scope.as_ref().is_some_and(|(_, s)| s == "lambda"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(lambda.is_empty(), "{lambda:?}");

    // With a role, on an emulator that puts every call in one account (as a
    // role in the wrong account would): the function found is the local
    // one, which is not what the manifest asked for.
    let trust = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{}:root", fx.account_id())}, "Action": "sts:AssumeRole"}]
    });
    fx.iam
        .create_role()
        .role_name("grants")
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .expect("CreateRole");
    let role = format!("{other}=arn:aws:iam::{other}:role/grants");
    let mut cmd = fx.apimount_command(args("apply", dir.path(), &api));
    cmd.args(["--account-role", &role]);
    let out = run(cmd, &fx.strict_endpoint());
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = show(&out);
    assert!(
        text.contains("FunctionNotFound") && text.contains(&foreign) && text.contains(&local),
        "{text}"
    );
    let writes = fx.strict_writes();
    assert!(writes.is_empty(), "refused, yet written: {writes:?}");
    assert!(!fx.route_table(&api).await.contains_key("/accounts"));
}
