//! `glm-proxy keys usage`: tokens in and out per key, per model, per UTC day, from the daily
//! rows the proxy writes (once a second at most).

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{Duration, Utc};
use serde_json::json;

use crate::auth::client_key;
use crate::db::keys::{self, TokenUsage};
use crate::db::KeyDb;

/// The rows of the last `days` days (today included), of the keys `selector` names, or of all.
pub fn show(
    conn: &mut KeyDb,
    selector: Option<&str>,
    days: u32,
    as_json: bool,
    out: &mut String,
) -> Result<(), String> {
    let all = keys::all(conn).map_err(|e| e.to_string())?;
    let names: HashMap<i32, &str> = all.iter().map(|key| (key.id, key.name.as_str())).collect();
    let ids = match selector {
        None => None,
        Some(selector) => {
            let ids: Vec<i32> = keys::matching(conn, selector, &client_key::hash(selector))
                .map_err(|e| e.to_string())?
                .iter()
                .map(|key| key.id)
                .collect();
            if ids.is_empty() {
                return Err(format!("no key matches {selector:?} (give an ID, a full key or a name)"));
            }
            Some(ids)
        }
    };
    let since = Utc::now().date_naive() - Duration::days(i64::from(days) - 1);
    let rows = keys::token_usage_since(conn, since, ids.as_deref()).map_err(|e| e.to_string())?;
    let name = |row: &TokenUsage| names.get(&row.key_id).copied().unwrap_or("?");
    let (requests, prompt, completion) = rows
        .iter()
        .fold((0, 0, 0), |(r, p, c), row| (r + row.requests, p + row.prompt_tokens, c + row.completion_tokens));
    if as_json {
        let listed: Vec<_> = rows
            .iter()
            .map(|row| {
                json!({
                    "day": row.day.to_string(), "key_id": row.key_id, "name": name(row), "model": row.model,
                    "requests": row.requests, "prompt_tokens": row.prompt_tokens, "completion_tokens": row.completion_tokens,
                })
            })
            .collect();
        let total = json!({ "requests": requests, "prompt_tokens": prompt, "completion_tokens": completion });
        let body = json!({ "since": since.to_string(), "days": days, "usage": listed, "total": total });
        let _ = writeln!(out, "{body:#}");
        return Ok(());
    }
    let _ = writeln!(
        out,
        "{:<10}  {:<5} {:<24} {:<28} {:>9} {:>13} {:>13}",
        "DAY", "ID", "NAME", "MODEL", "REQUESTS", "TOKENS IN", "TOKENS OUT"
    );
    for row in &rows {
        let _ = writeln!(
            out,
            "{:<10}  {:<5} {:<24} {:<28} {:>9} {:>13} {:>13}",
            row.day.to_string(),
            row.key_id,
            name(row),
            row.model,
            row.requests,
            row.prompt_tokens,
            row.completion_tokens
        );
    }
    let _ = writeln!(out, "\nSince {since} (UTC): {requests} requests, {prompt} tokens in, {completion} tokens out");
    Ok(())
}
