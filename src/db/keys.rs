//! Queries on the `api_keys` and `key_usage` tables. Every function takes the connection it
//! runs on.

use super::KeyDb;
use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use diesel::prelude::*;
use serde::Serialize;

use super::schema::api_keys::{self, dsl};
use super::schema::key_usage;
use crate::policy::limits::budget::{Period, Spent};
use crate::policy::limits::models::ModelList;
use crate::policy::limits::Limits;

/// A stored client key: never the key itself, only its hash and display prefix.
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = api_keys)]
pub struct ApiKey {
    pub id: i32,
    #[serde(skip)]
    pub key_hash: String,
    pub key_prefix: String,
    pub name: String,
    #[serde(serialize_with = "utc")]
    pub created_at: NaiveDateTime,
    pub revoked: bool,
    #[serde(serialize_with = "maybe_utc")]
    pub revoked_at: Option<NaiveDateTime>,
    #[serde(serialize_with = "maybe_utc")]
    pub last_used_at: Option<NaiveDateTime>,
    pub request_count: i64,
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub max_parallel: Option<i64>,
    pub daily_tokens: Option<i64>,
    pub monthly_tokens: Option<i64>,
    #[serde(serialize_with = "maybe_utc")]
    pub expires_at: Option<NaiveDateTime>,
    pub models: Option<String>,
}

impl ApiKey {
    pub fn has_budget(&self) -> bool {
        self.daily_tokens.is_some() || self.monthly_tokens.is_some()
    }

    /// The key's limits. A model list that no longer parses (the database edited by hand)
    /// allows nothing rather than everything.
    pub fn limits(&self) -> Limits {
        let count = |value: Option<i64>| value.map(|n| n.max(0) as u64);
        let models = self.models.as_deref().map(|list| {
            ModelList::parse(list).unwrap_or_else(|problem| {
                log::error!("event=bad_model_list key_id={} problem={problem:?}", self.id);
                ModelList::none()
            })
        });
        Limits {
            rpm: count(self.rpm),
            tpm: count(self.tpm),
            max_parallel: count(self.max_parallel),
            daily_tokens: count(self.daily_tokens),
            monthly_tokens: count(self.monthly_tokens),
            expires_at: self.expires_at.map(|at| Utc.from_utc_datetime(&at)),
            models,
        }
    }
}

/// Limits to change on keys: `None` leaves a limit as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq, AsChangeset)]
#[diesel(table_name = api_keys)]
pub struct LimitChange {
    pub rpm: Option<Option<i64>>,
    pub tpm: Option<Option<i64>>,
    pub max_parallel: Option<Option<i64>>,
    pub daily_tokens: Option<Option<i64>>,
    pub monthly_tokens: Option<Option<i64>>,
    pub expires_at: Option<Option<NaiveDateTime>>,
    pub models: Option<Option<String>>,
}

impl LimitChange {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Tokens one key spent on one model in one UTC day, as the providers reported them.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = key_usage)]
pub struct TokenUsage {
    pub key_id: i32,
    pub day: NaiveDate,
    pub model: String,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

/// What each key spent in the UTC day and month holding `now`, over `rows`: (day, month).
pub fn spent_by_key<'a>(
    rows: impl Iterator<Item = &'a TokenUsage>,
    now: DateTime<Utc>,
) -> HashMap<i32, (Spent, Spent)> {
    let (today, month) = (Period::Day.start(now), Period::Month.start(now));
    let mut spent: HashMap<i32, (Spent, Spent)> = HashMap::new();
    for row in rows {
        let entry =
            spent.entry(row.key_id).or_insert((Spent { period: today, tokens: 0 }, Spent { period: month, tokens: 0 }));
        let tokens = (row.prompt_tokens + row.completion_tokens).max(0) as u64;
        if row.day >= month {
            entry.1.tokens += tokens;
        }
        if row.day == today {
            entry.0.tokens += tokens;
        }
    }
    spent
}

/// A stored time (always UTC) as RFC 3339 with its zone: `2026-11-26T04:40:55Z`.
pub fn rfc3339(time: &NaiveDateTime) -> String {
    time.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn utc<S: serde::Serializer>(time: &NaiveDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&rfc3339(time))
}

fn maybe_utc<S: serde::Serializer>(time: &Option<NaiveDateTime>, serializer: S) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => utc(time, serializer),
        None => serializer.serialize_none(),
    }
}

#[derive(Insertable)]
#[diesel(table_name = api_keys)]
struct NewApiKey<'a> {
    key_hash: &'a str,
    key_prefix: &'a str,
    name: &'a str,
    created_at: NaiveDateTime,
}

/// Requests counted in memory for one key, to add to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub id: i32,
    pub requests: i64,
    pub last_used_at: NaiveDateTime,
}

/// A new key with its limits, in one transaction.
pub fn insert(
    conn: &mut KeyDb,
    name: &str,
    key_hash: &str,
    key_prefix: &str,
    limits: &LimitChange,
    now: NaiveDateTime,
) -> QueryResult<ApiKey> {
    conn.transaction(|conn| {
        diesel::insert_into(api_keys::table)
            .values(NewApiKey { key_hash, key_prefix, name, created_at: now })
            .execute(conn)?;
        // Read back by its (unique) hash: `RETURNING` is not in what both backends share here.
        let key = find_by_hash(conn, key_hash)?.ok_or(diesel::result::Error::NotFound)?;
        if limits.is_empty() {
            return Ok(key);
        }
        set_limits(conn, &[key.id], limits)?;
        find_by_hash(conn, key_hash)?.ok_or(diesel::result::Error::NotFound)
    })
}

/// Changes the limits of the keys with these ids; returns how many there were.
pub fn set_limits(conn: &mut KeyDb, ids: &[i32], change: &LimitChange) -> QueryResult<usize> {
    if change.is_empty() {
        return Ok(0);
    }
    diesel::update(dsl::api_keys.filter(dsl::id.eq_any(ids))).set(change).execute(conn)
}

/// Adds spent tokens to their daily rows: a row is made the first time a key uses a model on a
/// day.
fn add_token_usage(conn: &mut KeyDb, spent: &[TokenUsage]) -> QueryResult<()> {
    use key_usage::dsl as u;
    {
        for row in spent {
            let stored =
                u::key_usage.filter(u::key_id.eq(row.key_id).and(u::day.eq(row.day)).and(u::model.eq(&row.model)));
            let changed = diesel::update(stored)
                .set((
                    u::requests.eq(u::requests + row.requests),
                    u::prompt_tokens.eq(u::prompt_tokens + row.prompt_tokens),
                    u::completion_tokens.eq(u::completion_tokens + row.completion_tokens),
                ))
                .execute(conn)?;
            if changed == 0 {
                diesel::insert_into(key_usage::table).values(row).execute(conn)?;
            }
        }
        Ok(())
    }
}

/// The daily rows from `since` on, of the keys `ids` (every key when `None`), by day, key
/// and model.
pub fn token_usage_since(conn: &mut KeyDb, since: NaiveDate, ids: Option<&[i32]>) -> QueryResult<Vec<TokenUsage>> {
    use key_usage::dsl as u;
    let mut query = u::key_usage.filter(u::day.ge(since)).into_boxed();
    if let Some(ids) = ids {
        query = query.filter(u::key_id.eq_any(ids.to_vec()));
    }
    query.order((u::day, u::key_id, u::model)).select(TokenUsage::as_select()).load(conn)
}

pub fn all(conn: &mut KeyDb) -> QueryResult<Vec<ApiKey>> {
    dsl::api_keys.order(dsl::id).select(ApiKey::as_select()).load(conn)
}

pub fn find_by_hash(conn: &mut KeyDb, key_hash: &str) -> QueryResult<Option<ApiKey>> {
    dsl::api_keys.filter(dsl::key_hash.eq(key_hash)).select(ApiKey::as_select()).first(conn).optional()
}

/// Keys an operator's selector names: an id, a full key (by its hash), or a name.
pub fn matching(conn: &mut KeyDb, selector: &str, key_hash: &str) -> QueryResult<Vec<ApiKey>> {
    let id: i32 = selector.parse().unwrap_or(-1);
    dsl::api_keys
        .filter(dsl::id.eq(id).or(dsl::key_hash.eq(key_hash)).or(dsl::name.eq(selector)))
        .order(dsl::id)
        .select(ApiKey::as_select())
        .load(conn)
}

/// Revokes (or re-enables) the keys with these ids; returns how many changed.
pub fn set_revoked(conn: &mut KeyDb, ids: &[i32], revoked: bool, now: NaiveDateTime) -> QueryResult<usize> {
    let revoked_at = revoked.then_some(now);
    diesel::update(dsl::api_keys.filter(dsl::id.eq_any(ids)))
        .set((dsl::revoked.eq(revoked), dsl::revoked_at.eq(revoked_at)))
        .execute(conn)
}

/// Adds counted requests and spent tokens in one transaction; `last_used_at` only ever moves
/// forward.
pub fn add_usage(conn: &mut KeyDb, usage: &[Usage], tokens: &[TokenUsage]) -> QueryResult<()> {
    conn.transaction(|conn| {
        add_token_usage(conn, tokens)?;
        for u in usage {
            let key = dsl::api_keys.filter(dsl::id.eq(u.id));
            diesel::update(key).set(dsl::request_count.eq(dsl::request_count + u.requests)).execute(conn)?;
            let older = dsl::last_used_at.is_null().or(dsl::last_used_at.lt(u.last_used_at));
            diesel::update(key.filter(older)).set(dsl::last_used_at.eq(u.last_used_at)).execute(conn)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, Utc};

    fn db() -> (tempfile::TempDir, KeyDb) {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::open(&crate::db::Location::Sqlite(dir.path().join("nested/keys.db"))).unwrap();
        (dir, conn)
    }

    #[test]
    fn keys_are_found_by_id_hash_or_name_and_usage_adds_up() {
        let (_dir, mut conn) = db();
        let now = Utc::now().naive_utc();
        let none = LimitChange::default();
        let a = insert(&mut conn, "ci", "hash-a", "sk-aaaa", &none, now).unwrap();
        insert(&mut conn, "ci", "hash-b", "sk-bbbb", &none, now).unwrap();
        insert(&mut conn, "laptop", "hash-c", "sk-cccc", &none, now).unwrap();

        assert_eq!(matching(&mut conn, &a.id.to_string(), "x").unwrap().len(), 1);
        assert_eq!(matching(&mut conn, "sk-full", "hash-c").unwrap()[0].name, "laptop");
        assert_eq!(matching(&mut conn, "ci", "x").unwrap().len(), 2);
        assert!(matching(&mut conn, "nobody", "x").unwrap().is_empty());

        let later = now + Duration::seconds(5);
        add_usage(&mut conn, &[Usage { id: a.id, requests: 3, last_used_at: later }], &[]).unwrap();
        add_usage(&mut conn, &[Usage { id: a.id, requests: 2, last_used_at: now }], &[]).unwrap();
        let stored = find_by_hash(&mut conn, "hash-a").unwrap().unwrap();
        assert_eq!(stored.request_count, 5);
        assert_eq!(stored.last_used_at, Some(later), "last use never moves back");

        assert_eq!(set_revoked(&mut conn, &[a.id], true, now).unwrap(), 1);
        assert!(find_by_hash(&mut conn, "hash-a").unwrap().unwrap().revoked);
    }

    #[test]
    fn limits_are_set_and_cleared_and_token_rows_add_up_by_day_and_model() {
        let (_dir, mut conn) = db();
        let now = Utc::now().naive_utc();
        let change =
            LimitChange { rpm: Some(Some(30)), models: Some(Some("glm,qwen-*".into())), ..LimitChange::default() };
        let key = insert(&mut conn, "agent", "hash-a", "sk-aaaa", &change, now).unwrap();
        let limits = key.limits();
        assert_eq!(limits.rpm, Some(30));
        assert!(limits.models.as_ref().unwrap().allows("qwen-3"));
        assert_eq!(limits.tpm, None);

        let clear = LimitChange { rpm: Some(None), tpm: Some(Some(1000)), ..LimitChange::default() };
        assert_eq!(set_limits(&mut conn, &[key.id], &clear).unwrap(), 1);
        let limits = find_by_hash(&mut conn, "hash-a").unwrap().unwrap().limits();
        assert_eq!((limits.rpm, limits.tpm), (None, Some(1000)));
        assert!(limits.models.is_some(), "an unchanged limit stays");

        let day = now.date();
        let row = |model: &str, prompt| TokenUsage {
            key_id: key.id,
            day,
            model: model.into(),
            requests: 1,
            prompt_tokens: prompt,
            completion_tokens: 2,
        };
        add_usage(&mut conn, &[], &[row("glm", 10), row("qwen-3", 5)]).unwrap();
        add_usage(&mut conn, &[], &[row("glm", 7)]).unwrap();
        let rows = token_usage_since(&mut conn, day, Some(&[key.id])).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].model.as_str(), rows[0].requests, rows[0].prompt_tokens, rows[0].completion_tokens),
            ("glm", 2, 17, 4)
        );
        assert!(token_usage_since(&mut conn, day.succ_opt().unwrap(), None).unwrap().is_empty());
    }
}
