//! The OpenAPI document: docs/openapi.json is the current one, the gateway serves it, and every
//! operation it lists exists on a running gateway (no route documented but missing).

use crate::common;

use common::*;
use reqwest::{Method, StatusCode};
use wavry_gateway::AdminToken;

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
