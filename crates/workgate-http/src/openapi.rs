//! What the generated OpenAPI document says about errors, in one place because one place in the
//! server answers them.
//!
//! The handlers' annotations list the answers of their own use case (`404` for an unknown id,
//! `409` for a conflict, …). The answers that come from the extractors and `problem.rs` instead,
//! the same for every handler that uses them, are added here, so that no operation can forget one:
//!
//! - every error body is `application/problem+json` (what `ApiError::into_response` sends), not
//!   utoipa's default `application/json`;
//! - an operation that takes a bearer credential answers `401 unauthorized` without a working one,
//!   and an admin operation (every secured one but the member's own, tagged `me`) answers
//!   `403 forbidden` to a credential without the rights (a member's token, a department admin
//!   outside their subtrees);
//! - an operation with a JSON body answers `413` (over the body limit), `415` (not
//!   `application/json`) and `422 validation_failed` (not the documented shape);
//! - an operation with query parameters answers `422 validation_failed` for a wrong or unknown one.
//!
//! It also adds the document's links (OpenAPI 3.1 section 4.8.20): what a `POST` on a collection
//! creates (`201` with an `id`) is what the operations on `{collection}/{id}` take, so that a
//! client (or a stateful tester) can follow from one to the other.

use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Response};

/// The content type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The `utoipa::Modify` that applies the rules of this module's documentation.
pub struct ErrorResponses;

impl utoipa::Modify for ErrorResponses {
    fn modify(&self, doc: &mut OpenApi) {
        for (path, item) in doc.paths.paths.iter_mut() {
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                if path.starts_with("/api/v1/") {
                    add_common_errors(operation);
                }
                problems_as_problem_json(operation);
            }
        }
        add_links(doc);
    }
}

/// Links each `POST {collection}` that answers `201` to every operation on `{collection}/{id}`
/// and below it, with `id` taken from the created object.
fn add_links(doc: &mut OpenApi) {
    let mut targets: Vec<(String, String)> = vec![];
    for (path, item) in &doc.paths.paths {
        let operations = [&item.get, &item.put, &item.post, &item.delete, &item.patch];
        for op in operations.into_iter().flatten() {
            if let Some(id) = &op.operation_id {
                targets.push((path.clone(), id.clone()));
            }
        }
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        let Some(RefOr::T(created)) = item.post.as_mut().and_then(|op| op.responses.responses.get_mut("201")) else {
            continue;
        };
        let under = format!("{path}/{{id}}");
        for (target_path, operation_id) in &targets {
            if target_path == &under || target_path.starts_with(&format!("{under}/")) {
                let mut link = LinkBuilder::new().parameter("id", "$response.body#/id").build();
                // utoipa 5.5 writes `Link::operation_id` as `operation_id`, not OpenAPI's
                // `operationId`: that field stays empty (so unwritten) and the key is set here.
                link.extensions = Some(Extensions::from_iter([("operationId", operation_id.clone())]));
                created.links.insert(operation_id.clone(), RefOr::T(link));
            }
        }
    }
}

fn add_common_errors(op: &mut Operation) {
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let own = op.tags.as_ref().is_some_and(|tags| tags.iter().any(|t| t == "me"));
    let has_query = op.parameters.iter().flatten().any(|p| matches!(p.parameter_in, ParameterIn::Query));
    let json_body = op.request_body.as_ref().is_some_and(|b| b.content.contains_key("application/json"));
    if secured {
        add(op, "401", "`unauthorized`: no credential, or one that is unknown, expired or revoked");
        if !own {
            add(op, "403", "`forbidden`: the credential's role may not do this (e.g. a member's own token)");
        }
    }
    if op.request_body.is_some() {
        add(op, "413", "`payload_too_large`: the body is over this endpoint's limit");
        add(op, "415", "`unsupported_media_type`: the body is not sent as a documented content type");
    }
    if json_body || has_query {
        add(
            op,
            "422",
            "`validation_failed`: a field is missing, unknown, of the wrong type or invalid (`errors` names it)",
        );
    }
}

/// Adds a problem+json answer for `status` unless the operation documents that status already.
fn add(op: &mut Operation, status: &str, description: &str) {
    op.responses.responses.entry(status.to_string()).or_insert_with(|| {
        let mut response = Response::new(description);
        response.content.insert(PROBLEM_JSON.into(), Content::new(Some(Ref::from_schema_name("Problem"))));
        RefOr::T(response)
    });
}

/// Every answer whose body is a `Problem` is served as `application/problem+json`.
fn problems_as_problem_json(op: &mut Operation) {
    for response in op.responses.responses.values_mut() {
        let RefOr::T(response) = response else { continue };
        let is_problem = response.content.get("application/json").is_some_and(
            |c| matches!(&c.schema, Some(RefOr::Ref(r)) if r.ref_location == "#/components/schemas/Problem"),
        );
        if is_problem && let Some(content) = response.content.shift_remove("application/json") {
            response.content.insert(PROBLEM_JSON.into(), content);
        }
    }
}
