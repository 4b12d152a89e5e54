//! How requests are read: unknown and mistyped fields, repeated parameters, body size, content
//! type, unknown routes — each answered as problem+json naming what to fix.

use crate::helpers::TestApp;
use crate::paths;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn an_unknown_json_field_is_refused_naming_it() {
    let (app, ent) = TestApp::with_acme().await;
    let before = app.snapshot().await;
    let reply =
        app.post(&paths::members(), &ent.key, json!({"name": "X", "phone": "13900139001", "nickname": "x"})).await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.error_fields(), vec!["nickname"]);
    let reply = app.post(&paths::departments(), &ent.key, json!({"name": "X", "parentId": "y"})).await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.error_fields(), vec!["parentId"]);
    let m = app.add_member(&ent, "Zhang San", "13900139002").await;
    let before_patch = app.snapshot().await;
    let reply = app.patch_member(m["id"].as_str().unwrap(), &ent.key, json!({"status": "active"})).await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.error_fields(), vec!["status"], "status changes only through disable/enable/depart");
    assert_eq!(app.snapshot().await, before_patch);
    assert_ne!(before, before_patch);
}

#[tokio::test]
async fn a_field_of_the_wrong_type_is_refused_naming_it() {
    let (app, ent) = TestApp::with_acme().await;
    let before = app.snapshot().await;
    for (body, field) in [
        (json!({"name": 42, "phone": "13900139001"}), "name"),
        (json!({"name": "X", "phone": 13900139001u64}), "phone"),
        (json!({"name": "X", "phone": "13900139001", "departments": "dep_x"}), "departments"),
        (json!({"name": "X", "phone": "13900139001", "departments": [1]}), "departments[0]"),
        (json!({"name": "X", "phone": "13900139001", "invite": "yes"}), "invite"),
    ] {
        let reply = app.post(&paths::members(), &ent.key, body.clone()).await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(reply.error_fields(), vec![field], "{body}");
    }
    let reply = app.post(&paths::departments(), &ent.key, json!({"name": "X", "order": "first"})).await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.error_fields(), vec!["order"]);
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn a_missing_field_or_malformed_json_is_refused() {
    let (app, ent) = TestApp::with_acme().await;
    let before = app.snapshot().await;
    let reply = app.post(&paths::members(), &ent.key, json!({"name": "X"})).await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.error_fields(), vec!["phone"], "a missing field is named");
    let raw = r#"{"members": [{"name": "X", "name": "Y", "phone": "13900139001"}]}"#;
    let reply = app.post_raw(&paths::members_import(), &ent.key, "application/json", raw.to_string()).await;
    reply.assert_problem(422, "validation_failed");
    for raw in ["{", "", "[]", "null", "{\"name\": \"X\",}"] {
        let reply = app.post_raw(&paths::members(), &ent.key, "application/json", raw.to_string()).await;
        reply.assert_problem(422, "validation_failed");
        assert!(!reply.text.contains("line 1 column"), "no parser internals: {}", reply.text);
    }
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn a_repeated_key_in_a_json_body_is_refused() {
    let (app, ent) = TestApp::with_acme().await;
    let raw = r#"{"name": "X", "phone": "13900139001", "name": "Y"}"#;
    let reply = app.post_raw(&paths::members(), &ent.key, "application/json", raw.to_string()).await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.error_fields(), vec!["name"]);
    assert_eq!(app.count("members").await, 1);
}

#[tokio::test]
async fn a_repeated_query_parameter_is_refused_naming_it() {
    let (app, ent) = TestApp::with_acme().await;
    for (query, field) in [
        (&paths::members_query("limit=5&limit=6"), "limit"),
        (&paths::members_query("status=invited&status=active"), "status"),
        (&format!("{}?phone=13900139001&phone=13900139002", paths::member_lookup()), "phone"),
        (&paths::audit_query("action=member&action=department"), "action"),
    ] {
        let reply = app.get(query, &ent.key).await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(reply.error_fields(), vec![field], "{query}");
    }
}

#[tokio::test]
async fn an_unknown_query_parameter_is_refused_naming_it() {
    let (app, ent) = TestApp::with_acme().await;
    let reply = app.get(&paths::members_query("stauts=invited"), &ent.key).await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.error_fields(), vec!["stauts"]);
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_payload_too_large_and_stores_nothing() {
    let (app, ent) = TestApp::with_acme().await;
    let before = app.snapshot().await;
    let big = json!({"name": "X", "phone": "13900139001", "title": "t".repeat(1024 * 1024)}).to_string();
    assert!(big.len() > 1024 * 1024);
    let reply = app.post_raw(&paths::members(), &ent.key, "application/json", big.clone()).await;
    reply.assert_problem(413, "payload_too_large");
    let reply =
        app.send_raw(Method::PATCH, &paths::member(&ent.owner_id), &ent.key, Some("application/json"), big).await;
    reply.assert_problem(413, "payload_too_large");
    assert_eq!(app.snapshot().await, before);

    // Just under the limit is read (and then refused for the field, not the size).
    let padding = 1024 * 1024 - 200;
    let near = json!({"name": "X", "phone": "13900139001", "title": "t".repeat(padding)}).to_string();
    assert!(near.len() < 1024 * 1024);
    let reply = app.post_raw(&paths::members(), &ent.key, "application/json", near).await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.error_fields(), vec!["title"]);
}

#[tokio::test]
async fn an_import_may_be_larger_than_one_mebibyte() {
    let (app, ent) = TestApp::with_acme().await;
    let mut csv = String::from("userid,name,phone,title\n");
    let filler = "x".repeat(100);
    let mut i = 0;
    while csv.len() <= 1024 * 1024 + 1024 {
        // Titles over 128 characters fail each row, cheaply: this is about the size limit.
        csv.push_str(&format!("u{i},Person {i},1390{i:07},{filler}{filler}\n"));
        i += 1;
    }
    let reply = app.post_raw(&paths::members_import(), &ent.key, "text/csv", csv).await;
    reply.assert_status(200);
    assert_eq!(reply.body["failed"].as_u64(), Some(i as u64));
}

#[tokio::test]
async fn a_body_that_is_not_json_is_unsupported_media_type() {
    let (app, ent) = TestApp::with_acme().await;
    let before = app.snapshot().await;
    let body = json!({"name": "X", "phone": "13900139001"}).to_string();
    for ct in [Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("text/csv"), None] {
        let reply = app.send_raw(Method::POST, &paths::members(), &ent.key, ct, body.clone()).await;
        reply.assert_problem(415, "unsupported_media_type");
    }
    let reply =
        app.send_raw(Method::POST, &paths::members(), &ent.key, Some("application/json; charset=utf-8"), body).await;
    reply.assert_status(201);
    assert_ne!(app.snapshot().await, before);
}

#[tokio::test]
async fn an_unknown_route_is_a_problem_json_404() {
    let (app, ent) = TestApp::with_acme().await;
    for path in ["/api/v1/nothing", "/api/v2/members", "/nothing", "/api/v1/members/x/y/z"] {
        let reply = app.get(path, &ent.key).await;
        reply.assert_problem(404, "not_found");
        let reply = app.anon(Method::GET, path).await;
        reply.assert_problem(404, "not_found");
    }
}

#[tokio::test]
async fn a_wrong_method_is_a_problem_json_405() {
    let (app, ent) = TestApp::with_acme().await;
    let reply = app.delete(&paths::members(), &ent.key).await;
    reply.assert_problem(405, "method_not_allowed");
    let reply = app.request(Method::PUT, &paths::departments(), Some(&ent.key), Some(json!({}))).await;
    reply.assert_problem(405, "method_not_allowed");
}

#[tokio::test]
async fn errors_do_not_leak_internals() {
    let (app, ent) = TestApp::with_acme().await;
    app.add_member(&ent, "Zhang San", "13900139001").await;
    let reply = app.post(&paths::members(), &ent.key, json!({"name": "Dup", "phone": "13900139001"})).await;
    reply.assert_problem(409, "conflict");
    let text = reply.text.to_lowercase();
    for leak in ["sqlite", "unique constraint", "members.", "select", "panicked"] {
        assert!(!text.contains(leak), "{leak} in {}", reply.text);
    }
    assert!(reply.body["type"].as_str().unwrap().ends_with("conflict"));
    assert_eq!(reply.body["status"], 409);
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let (app, ent) = TestApp::with_acme().await;
    let reply = app.get(&paths::members(), &ent.key).await;
    assert!(reply.headers.get("x-request-id").is_some());
    let reply = app.get("/api/v1/nothing", &ent.key).await;
    assert!(reply.headers.get("x-request-id").is_some());
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern() {
    let (app, ent) = TestApp::with_acme().await;
    let m = app.add_member(&ent, "Zhang San", "13900139001").await;
    app.get_member(m["id"].as_str().unwrap(), &ent.key).await.assert_status(200);
    app.get_member("mem_00000000000000000000000000000000", &ent.key).await.assert_status(404);
    app.get("/api/v1/nothing", &ent.key).await.assert_status(404);

    let reply = app.client.get(format!("{}/metrics", app.base)).send().await.unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    assert!(reply.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = reply.text().await.unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("workgate_http_requests_total{")).collect();
    let has = |route: &str, status: &str| {
        lines.iter().any(|l| l.contains(&format!("route=\"{route}\"")) && l.contains(&format!("status=\"{status}\"")))
    };
    assert!(has("/api/v1/members/{id}", "200"), "{text}");
    assert!(has("/api/v1/members/{id}", "404"), "{text}");
    assert!(has("/api/v1/members", "201"), "{text}");
    assert!(!text.contains(m["id"].as_str().unwrap()), "ids never become labels");
    assert!(!text.contains("/api/v1/nothing"), "unknown paths never become labels");
    assert!(text.contains("workgate_http_request_duration_seconds"));
}

#[tokio::test]
async fn openapi_json_is_openapi_3_1_and_describes_the_member_endpoints() {
    let app = TestApp::spawn().await;
    let reply = app.anon(Method::GET, "/openapi.json").await;
    reply.assert_status(200);
    assert!(reply.body["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", reply.body["openapi"]);
    let paths = reply.body["paths"].as_object().expect("paths");
    for path in [
        "/api/v1/members",
        "/api/v1/members/{id}",
        "/api/v1/members/{id}/disable",
        "/api/v1/members/{id}/enable",
        "/api/v1/members/{id}/depart",
        "/api/v1/members/lookup",
        "/api/v1/members/import",
        "/api/v1/departments",
        "/api/v1/departments/{id}",
        "/api/v1/api-keys",
        "/api/v1/api-keys/{id}",
        "/api/v1/audit",
    ] {
        assert!(paths.contains_key(path), "{path} missing from {:?}", paths.keys().collect::<Vec<_>>());
    }
    assert!(paths["/api/v1/members"]["get"].is_object() && paths["/api/v1/members"]["post"].is_object());
    assert!(reply.body["components"]["securitySchemes"]["bearer"].is_object());
}

/// The router and the document are built from the same handlers; this checks the half a reader
/// can see from outside: every documented operation is served (none answers "no such endpoint"
/// or "method not allowed"), and the document holds every endpoint family.
#[tokio::test]
async fn every_operation_in_openapi_json_is_served() {
    let app = TestApp::spawn().await;
    let doc = app.anon(Method::GET, "/openapi.json").await.body;
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, item) in paths {
        let concrete =
            path.replace("{id}", "x").replace("{device_id}", "x").replace("{login_id}", "x").replace("{token}", "x");
        for method in ["get", "post", "put", "patch", "delete"] {
            if item[method].is_null() {
                continue;
            }
            operations += 1;
            let reply = app.request(method.to_uppercase().parse().unwrap(), &concrete, None, None).await;
            let unserved = reply.status.as_u16() == 405 || reply.text.contains("There is no such endpoint");
            assert!(!unserved, "{method} {path} is documented but not served: {}", reply.text);
        }
    }
    for family in [
        "/healthz",
        "/api/v1/login/start",
        "/api/v1/me",
        "/api/v1/members/{id}/sessions",
        "/api/v1/apps",
        "/api/v1/policy",
    ] {
        assert!(paths.contains_key(family), "{family} missing from the document");
    }
    assert!(operations >= 51, "{operations} operations documented");
}

/// What every operation may answer besides its own results, as the server answers it (the API
/// contract check, `scripts/api-contract.py`, runs schemathesis against the whole document).
#[tokio::test]
async fn openapi_json_documents_the_errors_as_they_are_sent() {
    let app = TestApp::spawn().await;
    let doc = app.anon(Method::GET, "/openapi.json").await.body;
    let paths = doc["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            let responses = op["responses"].as_object().expect("responses");
            for (status, response) in responses.iter().filter(|(s, _)| !s.starts_with('2')) {
                let content = response["content"].as_object().expect("an error has a body");
                assert!(
                    content.keys().eq(["application/problem+json"]),
                    "{method} {path} {status}: errors are problem+json, not {:?}",
                    content.keys()
                );
            }
            if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
                assert!(responses.contains_key("401"), "{method} {path}: a bearer credential can be missing");
            }
            if op["requestBody"].is_object() {
                for status in ["413", "415", "422"] {
                    assert!(responses.contains_key(status), "{method} {path}: a body can be refused with {status}");
                }
            }
        }
    }
    let add = &paths["/api/v1/members"]["post"]["responses"];
    assert_eq!(add["403"]["content"]["application/problem+json"]["schema"]["$ref"], "#/components/schemas/Problem");
    assert_eq!(add["201"]["links"]["get_member"]["operationId"], "get_member");
    assert_eq!(add["201"]["links"]["get_member"]["parameters"]["id"], "$response.body#/id");
    let policy = &doc["components"]["schemas"]["PolicyView"];
    assert!(policy["properties"]["updated_at"].is_object() && policy["properties"]["max_devices"].is_object());

    // The server sends what the document says.
    let reply = app.anon(Method::GET, &paths::members()).await;
    reply.assert_problem(401, "unauthorized");
    assert_eq!(reply.headers["content-type"], "application/problem+json");
}

#[tokio::test]
async fn health_and_docs_need_no_credentials_but_the_api_does() {
    let app = TestApp::spawn().await;
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        app.anon(Method::GET, path).await.assert_status(200);
    }
    app.anon(Method::GET, &paths::members()).await.assert_problem(401, "unauthorized");
}
