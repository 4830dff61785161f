//! The application assembled: every feature's routes merged into one router with the
//! fallbacks and the middleware, and the task that hands other instances' notices to it. The
//! one module that knows every feature; nothing imports it but the crate root.

use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use sqlx::postgres::PgListener;
use wavry_proto::account::ErrorCode;

use crate::error::ApiError;
use crate::metrics::{HttpLabels, RouteLabel};
use crate::signal::bus;
use crate::signal::socket;
use crate::state::AppState;
use crate::{accounts, admin, health, openapi, registry_api};

pub(crate) fn router(state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    let admin = if state.config.admin_token.is_some() {
        admin::routes()
    } else {
        Router::new()
    };
    Router::new()
        .merge(health::routes())
        .route("/openapi.json", get(openapi_json))
        .merge(accounts::routes())
        .merge(registry_api::routes())
        .merge(socket::routes())
        .merge(admin)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            log_and_no_store,
        ))
        .with_state(state)
}

/// Log and count each request, and keep answers (tokens, TOTP secrets) out of every cache.
async fn log_and_no_store(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let start = Instant::now();
    let mut resp = next.run(req).await;
    st.metrics
        .http_requests
        .get_or_create(&HttpLabels {
            method: method.to_string(),
            route: route.clone(),
            status: resp.status().as_u16(),
        })
        .inc();
    st.metrics
        .http_seconds
        .get_or_create(&RouteLabel { route })
        .observe(start.elapsed().as_secs_f64());
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    tracing::debug!(
        %method,
        path,
        status = resp.status().as_u16(),
        micros = start.elapsed().as_micros() as u64,
        "request"
    );
    resp
}

async fn openapi_json() -> Response {
    let mut resp = axum::response::IntoResponse::into_response(openapi::json());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "method not allowed on this endpoint",
    )
}

/// Receive the other instances' notices until the gateway stops, handing each to signaling
/// (which passes the account side's on to the throttles).
pub(crate) async fn listen_bus(st: AppState, mut listener: PgListener) {
    loop {
        let received = &st.metrics.bus_received;
        let Some(msg) = bus::receive(&mut listener, &st.db, &st.signal.instance_id, received).await
        else {
            continue;
        };
        let now_ms = st.clock.now_ms();
        st.signal
            .handle_bus(&st.db, &st.throttle, &st.register_limit, msg, now_ms)
            .await;
    }
}
