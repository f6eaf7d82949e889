//! The admin API's client keys: list, add, change, revoke, enable, and their usage. Each does
//! what its `keys` verb does, through the same code (`db::clients`, `db::keys`, the CLI's
//! limit flags), on the key database's own thread.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{allowed, failure, proxy_error};
use crate::actors::auth::WithDb;
use crate::actors::supervision::ask;
use crate::cli::limits::LimitArgs;
use crate::db::clients::{self, Spent, UsageReport};
use crate::db::keys::{self, ApiKey, LimitChange};
use crate::db::KeyDb;
use crate::state::AppState;

/// What went wrong, as the client is told it.
enum Problem {
    /// 400: the request's own mistake.
    Bad(String),
    /// 404: no key of that id.
    Missing,
    /// 500: the database failed (its words are logged, not sent).
    Failed,
}

type Answer = Result<(StatusCode, Value), Problem>;

/// Runs `work` on the key database (client authentication must be on), and answers with what it
/// returns.
async fn on_db(
    request: &HttpRequest,
    state: &AppState,
    work: impl FnOnce(&mut KeyDb) -> Answer + Send + 'static,
) -> HttpResponse {
    if let Some(refused) = allowed(request, state) {
        return refused;
    }
    let Some(db) = &state.key_db else {
        let message = "client keys are off: set ENABLE_INCOMING_AUTH=true to manage them";
        return failure(StatusCode::NOT_FOUND, "client_keys_off", message);
    };
    match ask(db, WithDb(Box::new(work))).await {
        Ok(Ok((status, body))) => HttpResponse::build(status).json(body),
        Ok(Err(Problem::Bad(message))) => failure(StatusCode::BAD_REQUEST, "invalid_request", &message),
        Ok(Err(Problem::Missing)) => no_such_key(),
        Ok(Err(Problem::Failed)) => {
            failure(StatusCode::INTERNAL_SERVER_ERROR, "key_database_error", "the key database failed; see the log")
        }
        Err(error) => proxy_error(error),
    }
}

fn failed(error: impl std::fmt::Display) -> Problem {
    log::error!("event=admin_key_database_error error={:?}", error.to_string());
    Problem::Failed
}

/// The key of `id` (a path segment), with what it spent.
fn described(conn: &mut KeyDb, id: i32) -> Answer {
    let key = keys::all(conn).map_err(failed)?.into_iter().find(|key| key.id == id).ok_or(Problem::Missing)?;
    let spent = Spent::of(conn).map_err(failed)?;
    Ok((StatusCode::OK, spent.beside(&key)))
}

/// A key id from the path: anything else names no key.
fn id_of(request: &HttpRequest) -> Option<i32> {
    request.match_info().get("id").and_then(|id| id.parse().ok())
}

fn no_such_key() -> HttpResponse {
    failure(StatusCode::NOT_FOUND, "key_not_found", "no client key has this id")
}

/// A JSON body of limits (the `keys add` flags' names), checked as the CLI checks them.
fn limits_of(body: Map<String, Value>) -> Result<LimitChange, Problem> {
    let args: LimitArgs = serde_json::from_value(Value::Object(body)).map_err(|e| Problem::Bad(e.to_string()))?;
    args.change(Utc::now()).map_err(|problem| {
        // The CLI's words name its flags; here they are fields.
        let flags = ["--rpm", "--tpm", "--max-parallel", "--daily-tokens", "--monthly-tokens", "--expires", "--models"];
        let named = flags.iter().fold(problem, |text, flag| text.replace(flag, &flag[2..].replace('-', "_")));
        Problem::Bad(named)
    })
}

/// A body that must be a JSON object.
fn object(body: &web::Bytes) -> Result<Map<String, Value>, Problem> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(Problem::Bad("the body must be a JSON object".to_owned())),
        Err(e) => {
            Err(Problem::Bad(format!("the body is not JSON: {}", crate::config::json_error::problem(&e, "an object"))))
        }
    }
}

/// `GET /admin/keys`: every key, as `keys list --json` shows them.
pub async fn list(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    on_db(&request, &state, |conn| {
        let all = keys::all(conn).map_err(failed)?;
        let spent = Spent::of(conn).map_err(failed)?;
        let listed: Vec<Value> = all.iter().map(|key| spent.beside(key)).collect();
        Ok((StatusCode::OK, json!({ "keys": listed })))
    })
    .await
}

/// `POST /admin/keys`: `{"name": ..., "rpm": ..., ...}`; the key is in the answer, once.
pub async fn add(request: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let parsed = object(&body).and_then(|mut body| {
        let name = match body.remove("name") {
            Some(Value::String(name)) => name,
            Some(_) => return Err(Problem::Bad("name must be a string".to_owned())),
            None => return Err(Problem::Bad("a key needs a name: {\"name\": \"ci\"}".to_owned())),
        };
        Ok((name, limits_of(body)?))
    });
    on_db(&request, &state, move |conn| {
        let (name, limits) = parsed?;
        let (stored, key): (ApiKey, String) = clients::create(conn, &name, &limits).map_err(Problem::Bad)?;
        let (_, mut described) = described(conn, stored.id)?;
        described["key"] = json!(key);
        Ok((StatusCode::CREATED, described))
    })
    .await
}

/// `PATCH /admin/keys/{id}`: the limits to change, as `keys set` takes them.
pub async fn change(request: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let Some(id) = id_of(&request) else { return no_such_key() };
    let parsed = object(&body).and_then(limits_of).and_then(|change| match change.is_empty() {
        true => {
            Err(Problem::Bad("nothing to change: give a limit, such as {\"rpm\": 30} or {\"rpm\": null}".to_owned()))
        }
        false => Ok(change),
    });
    on_db(&request, &state, move |conn| {
        let change = parsed?;
        described(conn, id)?;
        keys::set_limits(conn, &[id], &change).map_err(failed)?;
        described(conn, id)
    })
    .await
}

/// `POST /admin/keys/{id}/revoke`: refused by every proxy within 2 s.
pub async fn revoke(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    set_revoked(request, state, true).await
}

/// `POST /admin/keys/{id}/enable`.
pub async fn enable(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    set_revoked(request, state, false).await
}

async fn set_revoked(request: HttpRequest, state: web::Data<AppState>, revoked: bool) -> HttpResponse {
    let Some(id) = id_of(&request) else { return no_such_key() };
    on_db(&request, &state, move |conn| {
        described(conn, id)?;
        keys::set_revoked(conn, &[id], revoked, Utc::now().naive_utc()).map_err(failed)?;
        described(conn, id)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageQuery {
    days: Option<String>,
}

/// `GET /admin/usage?days=N`: tokens per key, model and UTC day, as `keys usage --json`.
pub async fn usage(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let days = web::Query::<UsageQuery>::from_query(request.query_string())
        .map_err(|e| Problem::Bad(e.to_string()))
        .and_then(|query| match query.days.as_deref().map(str::parse::<u32>) {
            None => Ok(7),
            Some(Ok(days @ 1..=3660)) => Ok(days),
            Some(_) => Err(Problem::Bad("days must be a whole number from 1 to 3660".to_owned())),
        });
    on_db(&request, &state, move |conn| {
        let report = UsageReport::of(conn, None, days?).map_err(failed)?;
        Ok((StatusCode::OK, report.to_json()))
    })
    .await
}
