//! Client keys as people change and see them: one code for the `keys` CLI and the admin API,
//! so that both make keys, list them and count their usage alike.

use std::collections::HashMap;

use chrono::{Duration, NaiveDateTime, Utc};
use serde_json::{json, Value};

use super::keys::{self, ApiKey, LimitChange, TokenUsage};
use super::KeyDb;
use crate::auth::client_key;
use crate::policy::limits::budget::Period;

/// Makes a key named `name` with `limits`: the stored key, and the key itself, which is shown
/// once and never again.
pub fn create(conn: &mut KeyDb, name: &str, limits: &LimitChange) -> Result<(ApiKey, String), String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("a key needs a non-empty name".to_owned());
    }
    let key = client_key::generate().map_err(|e| format!("the OS random generator failed: {e}"))?;
    let now = Utc::now().naive_utc();
    let stored = keys::insert(conn, name, &client_key::hash(&key), &client_key::prefix(&key), limits, now)
        .map_err(|e| e.to_string())?;
    Ok((stored, key))
}

/// Tokens each key spent today and this month (UTC), from the daily rows.
pub struct Spent {
    pub by_key: HashMap<i32, (i64, i64)>,
}

impl Spent {
    pub fn of(conn: &mut KeyDb) -> Result<Self, String> {
        let now = Utc::now();
        let rows = keys::token_usage_since(conn, Period::Month.start(now), None).map_err(|e| e.to_string())?;
        let by_key = keys::spent_by_key(rows.iter(), now)
            .into_iter()
            .map(|(id, (day, month))| (id, (day.tokens as i64, month.tokens as i64)))
            .collect();
        Ok(Self { by_key })
    }

    /// (today, this month)
    pub fn of_key(&self, id: i32) -> (i64, i64) {
        self.by_key.get(&id).copied().unwrap_or_default()
    }

    /// The key as JSON, with what it spent.
    pub fn beside(&self, key: &ApiKey) -> Value {
        let mut value = serde_json::to_value(key).unwrap_or_default();
        let (today, month) = self.of_key(key.id);
        value["tokens_today"] = json!(today);
        value["tokens_this_month"] = json!(month);
        value
    }
}

/// The keys `selector` names (an ID, a full key or a name), or `None` for every key.
pub fn selected_ids(conn: &mut KeyDb, selector: Option<&str>) -> Result<Option<Vec<i32>>, String> {
    let Some(selector) = selector else { return Ok(None) };
    let ids: Vec<i32> = keys::matching(conn, selector, &client_key::hash(selector))
        .map_err(|e| e.to_string())?
        .iter()
        .map(|key| key.id)
        .collect();
    if ids.is_empty() {
        return Err(format!("no key matches {selector:?} (give an ID, a full key or a name)"));
    }
    Ok(Some(ids))
}

/// Usage over the last `days` days (today included): each key's rows per model and day, named.
pub struct UsageReport {
    pub since: chrono::NaiveDate,
    pub days: u32,
    pub rows: Vec<(TokenUsage, String)>,
}

impl UsageReport {
    pub fn of(conn: &mut KeyDb, ids: Option<&[i32]>, days: u32) -> Result<Self, String> {
        let names: HashMap<i32, String> =
            keys::all(conn).map_err(|e| e.to_string())?.into_iter().map(|key| (key.id, key.name)).collect();
        let since = Utc::now().date_naive() - Duration::days(i64::from(days) - 1);
        let rows = keys::token_usage_since(conn, since, ids).map_err(|e| e.to_string())?;
        let rows = rows
            .into_iter()
            .map(|row| {
                let name = names.get(&row.key_id).cloned().unwrap_or_else(|| "?".to_owned());
                (row, name)
            })
            .collect();
        Ok(Self { since, days, rows })
    }

    /// (requests, tokens in, tokens out) over every row.
    pub fn total(&self) -> (i64, i64, i64) {
        self.rows
            .iter()
            .fold((0, 0, 0), |(r, p, c), (row, _)| (r + row.requests, p + row.prompt_tokens, c + row.completion_tokens))
    }

    pub fn to_json(&self) -> Value {
        let listed: Vec<_> = self
            .rows
            .iter()
            .map(|(row, name)| {
                json!({
                    "day": row.day.to_string(), "key_id": row.key_id, "name": name, "model": row.model,
                    "requests": row.requests, "prompt_tokens": row.prompt_tokens, "completion_tokens": row.completion_tokens,
                })
            })
            .collect();
        let (requests, prompt, completion) = self.total();
        let total = json!({ "requests": requests, "prompt_tokens": prompt, "completion_tokens": completion });
        json!({ "since": self.since.to_string(), "days": self.days, "usage": listed, "total": total })
    }
}

/// When a key is, was or will be: RFC 3339, or `otherwise`.
pub fn when(time: Option<NaiveDateTime>, otherwise: &str) -> String {
    time.map_or_else(|| otherwise.to_owned(), |t| keys::rfc3339(&t))
}
