//! The HTTP device registry (docs/SIGNALING.md): devices, host sharing, the host list and the
//! gateway's signing keys.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use rift_crypto::identity::PublicKey;
use wavry_proto::account::ErrorCode;
use wavry_proto::registry::{
    DeviceInfo, DeviceKind, DeviceList, HostInfo, HostList, RegisterDeviceRequest, ShareInfo,
    ShareList, ShareRequest, SigningKeyInfo,
};

use crate::audit::{self, Actor, Event};
use crate::error::{random_failed, ApiError};
use crate::extract::{ApiJson, Auth};
use crate::registry_db::{self, DeviceRow, NewDevice};
use crate::signing_key::SigningKeySet;
use crate::state::AppState;
use crate::validate::{check_device_name, normalize_email, parse_device_key};
use crate::{db, token};

/// Most devices per account.
const MAX_DEVICES: usize = 100;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/devices", get(list_devices).post(register_device))
        .route("/v1/devices/{device_id}", delete(delete_device))
        .route(
            "/v1/devices/{device_id}/shares",
            get(list_shares).post(add_share),
        )
        .route(
            "/v1/devices/{device_id}/shares/{user_id}",
            delete(remove_share),
        )
        .route("/v1/hosts", get(list_hosts))
        .route("/v1/gateway/signing-key", get(signing_key))
        .route("/v1/gateway/signing-keys", get(signing_keys))
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    register_device,
    list_devices,
    delete_device,
    list_shares,
    add_share,
    remove_share,
    list_hosts,
    signing_key,
    signing_keys,
))]
pub(crate) struct ApiDoc;

fn device_info(d: DeviceRow) -> Result<DeviceInfo, ApiError> {
    let kind = DeviceKind::parse(&d.kind)
        .ok_or_else(|| ApiError::internal(format_args!("device {} has kind {:?}", d.id, d.kind)))?;
    let fingerprint = PublicKey::from_base64(&d.public_key)
        .map_err(ApiError::internal)?
        .fingerprint()
        .to_string();
    Ok(DeviceInfo {
        device_id: d.id,
        name: d.name,
        kind,
        public_key: d.public_key,
        fingerprint,
        created_at: d.created_at,
    })
}

#[utoipa::path(
    post,
    path = "/v1/devices",
    tag = "devices",
    request_body = RegisterDeviceRequest,
    responses((status = 201, body = DeviceInfo), crate::error::ClientError),
    security(("session" = []))
)]
async fn register_device(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<RegisterDeviceRequest>,
) -> Result<(StatusCode, Json<DeviceInfo>), ApiError> {
    let name = check_device_name(&req.name)?;
    let key = parse_device_key(&req.public_key)?;
    if registry_db::count_devices(&st.db, &auth.user_id).await? >= MAX_DEVICES {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidDevice,
            format!("an account has at most {MAX_DEVICES} devices"),
        ));
    }
    let id = token::new_id().map_err(random_failed)?;
    let public_key = key.to_base64(); // canonical spelling
    let now = st.clock.now_secs();
    let row = NewDevice {
        id: &id,
        user_id: &auth.user_id,
        name,
        kind: req.kind.as_str(),
        public_key: &public_key,
        now,
    };
    match registry_db::insert_device(&st.db, &row).await {
        Ok(()) => {}
        Err(e) if db::is_unique_violation(&e) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::DeviceExists,
                "this account has a device with this public key",
            ))
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(user_id = %auth.user_id, device_id = %id, kind = req.kind.as_str(), "device registered");
    let e = Event::new(Actor::User(&auth.user_id), "device.registered").target(&id);
    audit::record(&st, e.detail(format!("{} {name}", req.kind.as_str()))).await;
    Ok((
        StatusCode::CREATED,
        Json(DeviceInfo {
            device_id: id,
            name: name.to_string(),
            kind: req.kind,
            fingerprint: key.fingerprint().to_string(),
            public_key,
            created_at: now,
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/devices",
    tag = "devices",
    responses((status = 200, body = DeviceList), crate::error::ClientError),
    security(("session" = []))
)]
async fn list_devices(
    State(st): State<AppState>,
    auth: Auth,
) -> Result<Json<DeviceList>, ApiError> {
    let devices = registry_db::list_devices(&st.db, &auth.user_id)
        .await?
        .into_iter()
        .map(device_info)
        .collect::<Result<_, _>>()?;
    Ok(Json(DeviceList { devices }))
}

/// A path parameter that does not decode names nothing.
fn path_id(p: Result<Path<String>, PathRejection>, what: &str) -> Result<String, ApiError> {
    p.map(|Path(id)| id).map_err(|_| ApiError::not_found(what))
}

#[utoipa::path(
    delete,
    path = "/v1/devices/{device_id}",
    tag = "devices",
    params(("device_id" = String, Path)),
    responses((status = 204, description = "removed; its signaling socket is closed"), crate::error::ClientError),
    security(("session" = []))
)]
async fn delete_device(
    State(st): State<AppState>,
    auth: Auth,
    device_id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let device_id = path_id(device_id, "no such device")?;
    if !registry_db::delete_own_device(&st.db, &device_id, &auth.user_id).await? {
        return Err(ApiError::not_found("no such device"));
    }
    st.signal
        .device_removed(&st.db, &device_id, st.clock.now_ms())
        .await;
    tracing::info!(user_id = %auth.user_id, %device_id, "device removed");
    let e = Event::new(Actor::User(&auth.user_id), "device.removed").target(&device_id);
    audit::record(&st, e).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `device_id` if it is one of `auth`'s hosts.
async fn own_host(st: &AppState, auth: &Auth, device_id: &str) -> Result<DeviceRow, ApiError> {
    registry_db::device_by_id(&st.db, device_id)
        .await?
        .filter(|d| d.user_id == auth.user_id && d.kind == DeviceKind::Host.as_str())
        .ok_or_else(|| ApiError::not_found("no such host on this account"))
}

#[utoipa::path(
    get,
    path = "/v1/devices/{device_id}/shares",
    tag = "devices",
    params(("device_id" = String, Path, description = "one of your hosts")),
    responses((status = 200, body = ShareList), crate::error::ClientError),
    security(("session" = []))
)]
async fn list_shares(
    State(st): State<AppState>,
    auth: Auth,
    device_id: Result<Path<String>, PathRejection>,
) -> Result<Json<ShareList>, ApiError> {
    let host = own_host(&st, &auth, &path_id(device_id, "no such host")?).await?;
    let shares = registry_db::list_shares(&st.db, &host.id)
        .await?
        .into_iter()
        .map(|(user_id, email, created_at)| ShareInfo {
            user_id,
            email,
            created_at,
        })
        .collect();
    Ok(Json(ShareList { shares }))
}

#[utoipa::path(
    post,
    path = "/v1/devices/{device_id}/shares",
    tag = "devices",
    request_body = ShareRequest,
    params(("device_id" = String, Path, description = "one of your hosts")),
    responses((status = 201, body = ShareInfo), crate::error::ClientError),
    security(("session" = []))
)]
async fn add_share(
    State(st): State<AppState>,
    auth: Auth,
    device_id: Result<Path<String>, PathRejection>,
    ApiJson(req): ApiJson<ShareRequest>,
) -> Result<(StatusCode, Json<ShareInfo>), ApiError> {
    let host = own_host(&st, &auth, &path_id(device_id, "no such host")?).await?;
    let email = normalize_email(&req.email)?;
    let user = db::user_auth_by_email(&st.db, &email)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NoSuchAccount,
                "no account with this email",
            )
        })?;
    if user.id == auth.user_id {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidDevice,
            "a host is always its owner's; share it with others",
        ));
    }
    let now = st.clock.now_secs();
    registry_db::insert_share(&st.db, &host.id, &user.id, now).await?;
    tracing::info!(user_id = %auth.user_id, host_id = %host.id, shared_with = %user.id, "host shared");
    let e = Event::new(Actor::User(&auth.user_id), "host.shared").target(&host.id);
    audit::record(&st, e.detail(format!("with {}", user.id))).await;
    Ok((
        StatusCode::CREATED,
        Json(ShareInfo {
            user_id: user.id,
            email,
            created_at: now,
        }),
    ))
}

#[utoipa::path(
    delete,
    path = "/v1/devices/{device_id}/shares/{user_id}",
    tag = "devices",
    params(("device_id" = String, Path), ("user_id" = String, Path)),
    responses((status = 204, description = "unshared"), crate::error::ClientError),
    security(("session" = []))
)]
async fn remove_share(
    State(st): State<AppState>,
    auth: Auth,
    ids: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Ok(Path((device_id, user_id))) = ids else {
        return Err(ApiError::not_found("no such share"));
    };
    let host = own_host(&st, &auth, &device_id).await?;
    if !registry_db::delete_share(&st.db, &host.id, &user_id).await? {
        return Err(ApiError::not_found("no such share"));
    }
    // Sockets stay open: the account only loses the right to start new connections.
    tracing::info!(user_id = %auth.user_id, host_id = %host.id, unshared = %user_id, "host unshared");
    let e = Event::new(Actor::User(&auth.user_id), "host.unshared").target(&host.id);
    audit::record(&st, e.detail(format!("with {user_id}"))).await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/v1/hosts",
    tag = "devices",
    responses((status = 200, body = HostList), crate::error::ClientError),
    security(("session" = []))
)]
async fn list_hosts(State(st): State<AppState>, auth: Auth) -> Result<Json<HostList>, ApiError> {
    let now = st.clock.now_secs();
    let hb = i64::try_from(st.signal.config.heartbeat.as_secs()).unwrap_or(i64::MAX);
    // A presence row not refreshed for three heartbeats belongs to a gateway that died.
    let cutoff = now.saturating_sub(hb.saturating_mul(3));
    let hosts = registry_db::hosts_for_user(&st.db, &auth.user_id)
        .await?
        .into_iter()
        .map(|h| {
            let online = h.presence_seen.is_some_and(|t| t >= cutoff);
            HostInfo {
                fingerprint: PublicKey::from_base64(&h.public_key)
                    .map(|k| k.fingerprint().to_string())
                    .unwrap_or_default(),
                owned: h.owner_id == auth.user_id,
                host_id: h.id,
                name: h.name,
                owner: h.owner_email,
                online,
                last_seen: if online { Some(now) } else { h.last_seen },
            }
        })
        .collect();
    Ok(Json(HostList { hosts }))
}

#[utoipa::path(
    get,
    path = "/v1/gateway/signing-key",
    tag = "devices",
    responses((status = 200, body = SigningKeyInfo), crate::error::ClientError)
)]
/// The key this instance signs new host records with.
async fn signing_key(State(st): State<AppState>) -> Json<SigningKeyInfo> {
    let pk = st.signer.verifying_key();
    Json(SigningKeyInfo {
        algorithm: "ed25519".into(),
        public_key: pk.to_base64(),
        key_id: pk.key_id(),
    })
}

/// Every key whose host records may still be valid: after a rotation the retired key stays
/// here until its records have expired. A verifier takes the key a record's `key_id` names.
#[utoipa::path(
    get,
    path = "/v1/gateway/signing-keys",
    tag = "devices",
    responses((status = 200, body = SigningKeySet), crate::error::ClientError)
)]
async fn signing_keys(State(st): State<AppState>) -> Result<Json<SigningKeySet>, ApiError> {
    Ok(Json(
        st.signer.published(&st.db, st.clock.now_secs()).await?,
    ))
}
