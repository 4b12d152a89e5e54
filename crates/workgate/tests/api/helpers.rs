//! `TestApp`: the one setup of the black-box suite.

#![allow(dead_code)]

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use workgate::config::ServerConfig;
use workgate::server::{RunningServer, start};
use workgate_domain::enterprises::CreateEnterprise;
use workgate_domain::model::Actor;

pub struct TestApp {
    pub server: RunningServer,
    pub base: String,
    pub client: reqwest::Client,
    pub database_url: String,
    _dir: tempfile::TempDir,
}

/// An enterprise created for a test, with its first API key.
#[derive(Debug, Clone)]
pub struct TestEnterprise {
    pub id: String,
    pub key: String,
    pub owner_id: String,
    pub root_department_id: String,
}

/// A response, read whole: status, headers and JSON body (`Value::Null` when not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The problem+json `code`, if any.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn assert_status(&self, expected: u16) -> &Self {
        assert_eq!(self.status.as_u16(), expected, "unexpected status; body: {}", self.text);
        self
    }

    /// Asserts a problem+json answer with this status and code.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) -> &Self {
        self.assert_status(status);
        assert_eq!(self.code(), code, "unexpected code; body: {}", self.text);
        let content_type = self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        assert_eq!(content_type, "application/problem+json", "problem content type");
        assert!(self.body["title"].is_string() && self.body["detail"].is_string(), "title and detail: {}", self.text);
        self
    }

    /// The field names of a `validation_failed` answer.
    pub fn error_fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e["field"].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = format!("sqlite://{}", dir.path().join("workgate.db").display());
        let config = ServerConfig::for_database(&database_url);
        Self::spawn_with(config, dir).await
    }

    pub async fn spawn_with(config: ServerConfig, dir: tempfile::TempDir) -> TestApp {
        let database_url = config.database.clone();
        let server = start(&config).await.expect("server starts");
        let base = server.base_url();
        TestApp { server, base, client: reqwest::Client::new(), database_url, _dir: dir }
    }

    /// Creates an enterprise the way `workgate enterprise create` does.
    pub async fn enterprise(&self, name: &str, owner_phone: &str) -> TestEnterprise {
        let created = self
            .server
            .services
            .create_enterprise(
                CreateEnterprise {
                    name: name.into(),
                    owner_name: format!("{name} Owner"),
                    owner_phone: owner_phone.into(),
                    region: "CN".into(),
                },
                Actor::Cli,
            )
            .await
            .expect("enterprise created");
        TestEnterprise {
            id: created.enterprise.id.to_string(),
            key: created.api_key_secret.expose().to_string(),
            owner_id: created.owner.id.to_string(),
            root_department_id: created.root.id.to_string(),
        }
    }

    pub async fn request(&self, method: Method, path: &str, key: Option<&str>, body: Option<Value>) -> Reply {
        let mut req = self.client.request(method, format!("{}{}", self.base, path));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        Self::read(req.send().await.expect("request sent")).await
    }

    pub async fn read(resp: reqwest::Response) -> Reply {
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body read");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, headers, body, text }
    }

    pub async fn get(&self, path: &str, key: &str) -> Reply {
        self.request(Method::GET, path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> Reply {
        self.request(Method::POST, path, Some(key), Some(body)).await
    }

    pub async fn patch(&self, path: &str, key: &str, body: Value) -> Reply {
        self.request(Method::PATCH, path, Some(key), Some(body)).await
    }

    pub async fn delete(&self, path: &str, key: &str) -> Reply {
        self.request(Method::DELETE, path, Some(key), None).await
    }

    /// Sends a raw body with a content type (CSV imports, malformed JSON).
    pub async fn post_raw(&self, path: &str, key: &str, content_type: &str, body: impl Into<reqwest::Body>) -> Reply {
        let req = self
            .client
            .post(format!("{}{}", self.base, path))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(body);
        Self::read(req.send().await.expect("request sent")).await
    }

    /// Adds a member through the API and returns its JSON.
    pub async fn add_member(&self, ent: &TestEnterprise, name: &str, phone: &str) -> Value {
        let reply = self.post("/api/v1/members", &ent.key, json!({"name": name, "phone": phone})).await;
        reply.assert_status(201);
        reply.body
    }

    /// Adds a department under `parent` (the root when `None`) and returns its id.
    pub async fn add_department(&self, ent: &TestEnterprise, name: &str, parent: Option<&str>) -> String {
        let mut body = json!({"name": name});
        if let Some(p) = parent {
            body["parent_id"] = json!(p);
        }
        let reply = self.post("/api/v1/departments", &ent.key, body).await;
        reply.assert_status(201);
        reply.body["id"].as_str().expect("department id").to_string()
    }

    /// A direct connection to the test's database, for checking state behind the API.
    pub async fn db(&self) -> sqlx::SqlitePool {
        sqlx::SqlitePool::connect(&self.database_url).await.expect("database opens")
    }

    /// Counts rows of `table` (a fixed name from the test, never input).
    pub async fn count(&self, table: &str) -> i64 {
        let pool = self.db().await;
        let n: i64 =
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&pool).await.expect("count");
        pool.close().await;
        n
    }

    /// A snapshot of every row of the directory tables, to show that a refused request changed nothing.
    pub async fn snapshot(&self) -> Vec<String> {
        let pool = self.db().await;
        let mut out = Vec::new();
        for (table, order) in [
            ("enterprises", "id"),
            ("departments", "id"),
            ("members", "id"),
            ("member_departments", "member_id, department_id"),
            ("api_keys", "id"),
            ("audit_log", "id"),
        ] {
            let rows: Vec<String> = sqlx::query_scalar(&format!(
                "SELECT quote(json_array(*)) FROM (SELECT * FROM {table} ORDER BY {order})"
            ))
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
            out.push(format!("{table}: {}", rows.len()));
            out.extend(rows);
        }
        pool.close().await;
        out
    }
}
