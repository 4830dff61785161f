//! `GET /healthz`: whether this gateway can reach its database (for load balancers).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use wavry_proto::account::{ErrorCode, Health};

use crate::db;
use crate::error::ApiError;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz))
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(healthz))]
pub(crate) struct ApiDoc;

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, body = Health), (status = 503, description = "database unreachable", body = wavry_proto::account::ErrorBody), crate::error::ClientError)
)]
async fn healthz(State(st): State<AppState>) -> Result<Json<Health>, ApiError> {
    match db::ping(&st.db).await {
        Ok(()) => Ok(Json(Health {
            status: "ok".into(),
        })),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Busy,
                "database unreachable",
            ))
        }
    }
}
