//! The OpenAPI 3.1 document of the gateway's HTTP API, generated from the handlers'
//! annotations and the wavry-proto types; served at `/openapi.json` and kept in
//! docs/openapi.json (a test fails when the two differ). Each feature module describes its own
//! operations (its `ApiDoc`); this module adds what they share and merges them.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;
use wavry_proto::account::{ErrorBody, ErrorCode};

use crate::signal::socket;
use crate::{accounts, admin, health, registry_api};

/// The whole document: the title, the shared schemas and security schemes, and the tags
/// here; the operations from each feature module's own `ApiDoc`.
pub struct ApiDoc;

impl OpenApi for ApiDoc {
    fn openapi() -> utoipa::openapi::OpenApi {
        // Paths and schemas are kept sorted by name, so the order of the parts does not
        // change the document.
        let mut doc = Common::openapi();
        for part in [
            health::ApiDoc::openapi(),
            accounts::ApiDoc::openapi(),
            registry_api::ApiDoc::openapi(),
            socket::ApiDoc::openapi(),
            admin::ApiDoc::openapi(),
        ] {
            doc.merge(part);
        }
        doc
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Wavry gateway",
        description = "Accounts, devices and hosts, and the admin API. Signaling runs over the \
                       WebSocket at /v1/signal (docs/SIGNALING.md). Errors are `ErrorBody` \
                       with an `ErrorCode`."
    ),
    components(schemas(ErrorBody, ErrorCode)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "accounts", description = "Registration, login, sessions, TOTP (docs/GATEWAY.md)"),
        (name = "devices", description = "Devices, host sharing, hosts (docs/SIGNALING.md)"),
        (name = "signaling", description = "The signaling WebSocket (docs/SIGNALING.md)"),
        (name = "admin", description = "Only with ADMIN_PANEL_TOKEN set (docs/ADMIN.md)"),
        (name = "operations", description = "Health and metrics"),
    )
)]
struct Common;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let bearer = |what: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(what))
                    .build(),
            )
        };
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme("session", bearer("the token from POST /v1/auth/login"));
        c.add_security_scheme(
            "admin",
            bearer("ADMIN_PANEL_TOKEN (or the x-admin-token header)"),
        );
        c.add_security_scheme(
            "admin_header",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-admin-token"))),
        );
    }
}

/// The document as pretty JSON.
pub fn json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
