//! The OpenAPI document, generated: each operation comes from its
//! handler's `#[utoipa::path]` as the router registers it (utoipa-axum),
//! its bodies from the request and response types, and the answers every
//! route shares from the middleware that gives them (auth, the origin
//! guard, the body limit, the extractors). So a route cannot be served
//! without being described, and the served document describes this
//! process: its keys, its applications, its batch limit.

use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, RefOr, Response, ResponseBuilder};

use crate::auth;
use crate::error::ErrorBody;
use crate::settings::ApiConfig;

/// The document's fixed parts; the operations come from the router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sluice",
        description = "A durable job queue on Redis Streams: enqueue, look up, pause, dead letters, and the fleet's state. Errors are `{\"error\": {\"code\", \"message\"}}`."
    ),
    paths(openapi_document),
    components(schemas(ErrorBody))
)]
struct Fixed;

/// `GET /api/openapi.json`: this document, as text made once at start
/// (the router hands it over as an extension).
#[utoipa::path(get, path = "/api/openapi.json", tag = "health", security(()),
    responses((status = 200, description = "This OpenAPI document", body = Object)))]
pub async fn openapi_document(
    axum::Extension(text): axum::Extension<std::sync::Arc<str>>,
) -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        text.to_string(),
    )
}

/// The fixed parts, for the router to add its operations to.
pub fn base() -> Document {
    Fixed::openapi()
}

/// Finish `doc` for a server with the `api` settings: security, the answers
/// the middleware gives, and the configured limits; `is_public` says which
/// paths need no key.
pub fn finish(mut doc: Document, api: &ApiConfig, is_public: impl Fn(&str) -> bool) -> Document {
    let keyed = !api.keys.is_empty();
    if keyed {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in operations(item) {
            let open = !keyed || is_public(path) || (api.open_health && auth::is_health_path(path));
            // An operation's own `security(())` (webhooks, screenshots) wins.
            if op.security.is_none() {
                op.security = Some(vec![if open {
                    SecurityRequirement::default()
                } else {
                    SecurityRequirement::new("bearer", Vec::<String>::new())
                }]);
            }
            if !keyed && path.starts_with("/api/") && method != "get" {
                guard_open_mode(op);
            }
            shared_answers(path, method, op, keyed && !open);
        }
    }
    if let Some(RefOr::T(utoipa::openapi::schema::Schema::Object(batch))) = doc
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut("BatchRequest"))
        && let Some(RefOr::T(utoipa::openapi::schema::Schema::Array(jobs))) =
            batch.properties.get_mut("jobs")
    {
        jobs.max_items = Some(api.max_batch);
    }
    doc
}

/// In open mode a request that changes something must carry what a
/// browser sends cross-site only after a preflight (see `origin.rs`): a
/// JSON body, or for a bodiless one an `X-Sluice-Client` header. OpenAPI
/// cannot say "one or the other", so an optional body becomes required
/// (`{}` is the empty filter), and an operation without one requires the
/// header.
fn guard_open_mode(op: &mut Operation) {
    if let Some(body) = op.request_body.as_mut() {
        body.required = Some(utoipa::openapi::Required::True);
        return;
    }
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let header = ParameterBuilder::new()
        .name(super::origin::CLIENT_HEADER)
        .parameter_in(ParameterIn::Header)
        .required(utoipa::openapi::Required::True)
        .description(Some(
            "Any value, e.g. the client's name: proof that no web page sent the request \
             (a JSON Content-Type or an Authorization header does as well)",
        ))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build();
    op.parameters.get_or_insert_with(Vec::new).push(header);
}

/// The operations of a path item with their methods.
fn operations(item: &mut PathItem) -> Vec<(&'static str, &mut Operation)> {
    [
        ("get", item.get.as_mut()),
        ("post", item.post.as_mut()),
        ("put", item.put.as_mut()),
        ("delete", item.delete.as_mut()),
        ("patch", item.patch.as_mut()),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.map(|op| (m, op)))
    .collect()
}

/// Add the answers the middleware and the extractors give to `op`, unless
/// the operation documents that status itself.
fn shared_answers(path: &str, method: &str, op: &mut Operation, authenticated: bool) {
    let has_params = |kind: &str| {
        op.parameters
            .iter()
            .flatten()
            .any(|p| serde_json::to_value(&p.parameter_in).is_ok_and(|v| v == kind))
    };
    let (path_params, query_params) = (has_params("path"), has_params("query"));
    let has_body = op.request_body.is_some();
    let mut add = |status: u16, description: &str| {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| error_answer(description));
    };
    let is_api = path.starts_with("/api/") && path != "/api/openapi.json";
    let changes_state = method != "get";
    if authenticated {
        add(401, "No API key, or an unknown one");
        add(429, "The API key is over its request rate; see Retry-After");
        if changes_state {
            add(403, "The API key may only read");
        }
    }
    if is_api && changes_state {
        add(403, "The request came from another site's page (Origin)");
        add(
            415,
            "Neither a JSON body, an Authorization header nor X-Sluice-Client",
        );
        add(413, "The body is over the configured limit");
    }
    if has_body {
        add(400, "The body is not JSON");
        add(
            422,
            "The body does not match its schema, or a value is out of range",
        );
    }
    if path_params {
        add(400, "A path segment is not valid (a queue name, an id)");
    }
    if query_params {
        add(
            400,
            "The query is not valid (an unknown or malformed parameter)",
        );
        add(422, "A query value is out of range");
    }
    if path != "/health/live" && path != "/api/openapi.json" {
        add(500, "An internal error; the server log has it");
        add(
            503,
            "Redis (or PostgreSQL) is unreachable; nothing was changed. See Retry-After",
        );
    }
}

fn error_answer(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "Error",
                    ))))
                    .build(),
            )
            .build(),
    )
}
