//! The OpenAPI 3.1 document of the gateway's HTTP API, generated from the handlers'
//! annotations and the wavry-proto types; served at `/openapi.json` and kept in
//! docs/openapi.json (a test fails when the two differ). Each feature module describes its own
//! operations (its `ApiDoc`); this module adds what they share and merges them, then states
//! the handlers' validation rules (`validate::RULES`) on the fields and parameters they apply
//! to, so a client generated from the document refuses what the gateway would.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{Modify as _, OpenApi};
use wavry_proto::account::{ErrorBody, ErrorCode};

use crate::signal::socket;
use crate::validate::{Place, Rule, RULES};
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
        // After the merge: the rules name schemas and operations of every part.
        ValidationRules.modify(&mut doc);
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

/// Puts `validate::RULES` into the document. A rule whose place is missing (a renamed field)
/// is left out, and the OpenAPI test, which looks for every rule in the document, fails.
struct ValidationRules;

impl utoipa::Modify for ValidationRules {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for rule in RULES {
            let target = match rule.place {
                Place::Field(schema, field) => openapi
                    .components
                    .as_mut()
                    .and_then(|c| c.schemas.get_mut(schema))
                    .and_then(|s| match s {
                        RefOr::T(Schema::Object(o)) => o.properties.get_mut(field),
                        _ => None,
                    }),
                Place::Query(path, name) => openapi
                    .paths
                    .paths
                    .get_mut(path)
                    .and_then(|item| item.get.as_mut())
                    .and_then(|op| op.parameters.as_mut())
                    .and_then(|ps| ps.iter_mut().find(|p| p.name == name))
                    .and_then(|p| {
                        // A parameter's description is its own, beside its schema.
                        p.description = Some(rule.note.to_string());
                        p.schema.as_mut()
                    }),
            };
            if let Some(RefOr::T(Schema::Object(o))) = target {
                apply(rule, o);
            }
        }
    }
}

fn apply(rule: &Rule, o: &mut utoipa::openapi::schema::Object) {
    use utoipa::Number;
    let int = |n: i64| Number::Int(isize::try_from(n).unwrap_or(isize::MAX));
    o.min_length = rule.min_length.or(o.min_length);
    o.max_length = rule.max_length.or(o.max_length);
    o.pattern = rule.pattern.map(str::to_string).or(o.pattern.take());
    o.minimum = rule.minimum.map(int).or(o.minimum.take());
    o.maximum = rule.maximum.map(int).or(o.maximum.take());
    if let Place::Field(..) = rule.place {
        o.description = Some(match o.description.take() {
            Some(d) if !d.is_empty() => format!("{d} {}", rule.note),
            _ => rule.note.to_string(),
        });
    }
}

/// The document as pretty JSON.
pub fn json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
