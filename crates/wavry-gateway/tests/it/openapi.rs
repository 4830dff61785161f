//! The OpenAPI document: docs/openapi.json is the current one, the gateway serves it, every
//! operation it lists exists on a running gateway (no route documented but missing), and the
//! validation rules it states are the ones the handlers apply.

use crate::common;

use common::*;
use reqwest::{Method, StatusCode};
use rift_crypto::identity::PublicKey;
use wavry_gateway::validate::{Place, RULES};
use wavry_gateway::AdminToken;
use wavry_proto::account::{ErrorCode, EMAIL_MAX_BYTES, PASSWORD_MAX_BYTES, PASSWORD_MIN_CHARS};
use wavry_proto::registry::DEVICE_NAME_MAX_BYTES;

fn committed_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

#[test]
fn docs_openapi_json_is_current() {
    let current = wavry_gateway::openapi::json() + "\n";
    let path = committed_path();
    if std::env::var_os("WAVRY_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &current).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == current,
        "docs/openapi.json is out of date: run \
         `WAVRY_UPDATE_OPENAPI=1 cargo test -p wavry-gateway --test openapi` and commit it"
    );
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let token = "openapi-admin-token-0123456789abcdefgh";
    let gw = TestGateway::start_with(
        dir.path(),
        std::sync::Arc::new(wavry_gateway::ManualClock::new(T0_MS)),
        |c| c.admin_token = Some(AdminToken::new(token)),
    )
    .await;
    let served = gw.get("/openapi.json", None).await;
    assert_eq!(served.status(), StatusCode::OK);
    let doc: serde_json::Value = served.json().await.unwrap();
    assert_eq!(
        doc,
        serde_json::from_str::<serde_json::Value>(&wavry_gateway::openapi::json()).unwrap()
    );
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 20, "{} paths", paths.len());
    let mut operations = 0;
    for (path, item) in paths {
        for (method, _) in item.as_object().unwrap() {
            let url = gw.url(&path.replace(['{', '}'], ""));
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut rb = gw.http.request(method.clone(), url).bearer_auth(token);
            if method == Method::POST {
                rb = rb.json(&serde_json::json!({}));
            }
            let resp = rb.send().await.unwrap();
            let status = resp.status();
            let body = resp.text().await.unwrap();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                !body.contains("no such endpoint"),
                "{method} {path} is documented but not served"
            );
            operations += 1;
        }
    }
    assert!(operations >= 25, "{operations}");
    gw.stop().await;
}

/// The schema (or parameter schema) a rule names in the served document.
fn place(doc: &serde_json::Value, p: Place) -> &serde_json::Value {
    match p {
        Place::Field(schema, field) => &doc["components"]["schemas"][schema]["properties"][field],
        Place::Query(path, name) => doc["paths"][path]["get"]["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .map_or(&serde_json::Value::Null, |p| &p["schema"]),
    }
}

/// Every validation rule stands in the committed document, at its place, with its numbers: a
/// renamed field or a rule left out fails here.
#[test]
fn every_validation_rule_is_in_the_document() {
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(committed_path()).unwrap()).unwrap();
    let n = |v: Option<i64>| v.map_or(serde_json::Value::Null, |v| serde_json::json!(v));
    let len = |v: Option<usize>| v.map_or(serde_json::Value::Null, |v| serde_json::json!(v));
    for rule in RULES {
        let s = place(&doc, rule.place);
        assert!(
            s.is_object(),
            "{:?} is not in docs/openapi.json",
            rule.place
        );
        assert_eq!(s["minLength"], len(rule.min_length), "{:?}", rule.place);
        assert_eq!(s["maxLength"], len(rule.max_length), "{:?}", rule.place);
        assert_eq!(s["minimum"], n(rule.minimum), "{:?}", rule.place);
        assert_eq!(s["maximum"], n(rule.maximum), "{:?}", rule.place);
        let pattern = rule.pattern.map_or(serde_json::Value::Null, |p| p.into());
        assert_eq!(s["pattern"], pattern, "{:?}", rule.place);
    }
    // The limits are the ones wavry-proto and the validators use.
    let reg = &doc["components"]["schemas"]["RegisterRequest"]["properties"];
    assert_eq!(reg["email"]["maxLength"], EMAIL_MAX_BYTES);
    assert_eq!(reg["password"]["minLength"], PASSWORD_MIN_CHARS);
    assert_eq!(reg["password"]["maxLength"], PASSWORD_MAX_BYTES);
    let dev = &doc["components"]["schemas"]["RegisterDeviceRequest"]["properties"];
    assert_eq!(dev["name"]["maxLength"], DEVICE_NAME_MAX_BYTES);
}

/// The numbers the served document states are what the handlers do: at each maxLength a value
/// is taken, one past it is refused with 422, and so on. (ASCII values: JSON Schema counts
/// characters, some limits are bytes.)
#[tokio::test]
async fn the_documented_limits_are_the_handlers() {
    let dir = tempfile::tempdir().unwrap();
    let token = "openapi-admin-token-0123456789abcdefgh";
    let gw = TestGateway::start_with(
        dir.path(),
        std::sync::Arc::new(wavry_gateway::ManualClock::new(T0_MS)),
        |c| {
            c.admin_token = Some(AdminToken::new(token));
            c.throttle.register_burst = 1000;
        },
    )
    .await;
    let doc: serde_json::Value = gw.get("/openapi.json", None).await.json().await.unwrap();
    let prop = |schema: &str, field: &str| -> serde_json::Value {
        doc["components"]["schemas"][schema]["properties"][field].clone()
    };
    let num = |v: &serde_json::Value| usize::try_from(v.as_u64().unwrap()).unwrap();
    let status = |r: reqwest::Response| r.status();

    // Registration: the email's and the password's lengths.
    let email_max = num(&prop("RegisterRequest", "email")["maxLength"]);
    let email_of = |len: usize| format!("a@{}.org", "b".repeat(len - 6));
    let pw_min = num(&prop("RegisterRequest", "password")["minLength"]);
    let pw_max = num(&prop("RegisterRequest", "password")["maxLength"]);
    assert_eq!(
        status(gw.register(&email_of(email_max), PASSWORD).await),
        StatusCode::CREATED
    );
    expect_error(
        gw.register(&email_of(email_max + 1), PASSWORD).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::InvalidEmail,
    )
    .await;
    for (i, (pw, ok)) in [
        ("x".repeat(pw_min), true),
        ("x".repeat(pw_min - 1), false),
        ("x".repeat(pw_max), true),
        ("x".repeat(pw_max + 1), false),
    ]
    .into_iter()
    .enumerate()
    {
        let r = gw.register(&format!("pw{i}@example.org"), &pw).await;
        assert_eq!(
            r.status() == StatusCode::CREATED,
            ok,
            "{} characters",
            pw.len()
        );
    }

    // Devices: the name's length, the key's pattern.
    let ann = gw.user("ann@example.org").await;
    let name_max = num(&prop("RegisterDeviceRequest", "name")["maxLength"]);
    let key_pattern = regex::Regex::new(
        prop("RegisterDeviceRequest", "public_key")["pattern"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let mut n = 0u8;
    let mut register = |name: String, key: Option<String>| {
        n += 1;
        let key = key.unwrap_or_else(|| PublicKey([n; 32]).to_base64());
        let gw = &gw;
        let token = ann.token.clone();
        async move {
            gw.post(
                "/v1/devices",
                serde_json::json!({"name": name, "kind": "client", "public_key": key}),
                Some(&token),
            )
            .await
            .status()
        }
    };
    assert_eq!(
        register("x".repeat(name_max), None).await,
        StatusCode::CREATED
    );
    assert_eq!(
        register("x".repeat(name_max + 1), None).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let good = PublicKey([200; 32]).to_base64();
    let mut bad_bits = good.clone();
    bad_bits.replace_range(42..43, "9");
    for key in [
        good,
        bad_bits,
        PublicKey([201; 32]).to_base64().replace('=', ""),
    ] {
        let want = if key_pattern.is_match(&key) {
            StatusCode::CREATED
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        assert_eq!(register("k".into(), Some(key.clone())).await, want, "{key}");
    }

    // Sharing and banning take an email by the same rule.
    let host = gw
        .post(
            "/v1/devices",
            serde_json::json!({"name": "den", "kind": "host", "public_key": PublicKey([9; 32]).to_base64()}),
            Some(&ann.token),
        )
        .await;
    let host: wavry_proto::registry::DeviceInfo = host.json().await.unwrap();
    let share_max = num(&prop("ShareRequest", "email")["maxLength"]);
    expect_error(
        gw.post(
            &format!("/v1/devices/{}/shares", host.device_id),
            serde_json::json!({"email": email_of(share_max + 1)}),
            Some(&ann.token),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::InvalidEmail,
    )
    .await;
    let ban = |body: serde_json::Value| {
        gw.http
            .post(gw.url("/admin/api/ban"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let ban_max = num(&prop("BanRequest", "email")["maxLength"]);
    let r = ban(serde_json::json!({"email": email_of(ban_max + 1)}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let min_secs = prop("BanRequest", "duration_secs")["minimum"]
        .as_u64()
        .unwrap();
    let r = ban(serde_json::json!({"email": "ann@example.org", "duration_secs": min_secs - 1}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = ban(serde_json::json!({"email": "ann@example.org", "duration_secs": min_secs}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    gw.stop().await;
}
