//! Queries on the `api_keys` table. Every function takes the connection it runs on.

use super::KeyDb;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::schema::api_keys::{self, dsl};

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

pub fn insert(
    conn: &mut KeyDb,
    name: &str,
    key_hash: &str,
    key_prefix: &str,
    now: NaiveDateTime,
) -> QueryResult<ApiKey> {
    // Read back by its (unique) hash: `RETURNING` is not in what both backends share here.
    diesel::insert_into(api_keys::table)
        .values(NewApiKey { key_hash, key_prefix, name, created_at: now })
        .execute(conn)?;
    find_by_hash(conn, key_hash)?.ok_or(diesel::result::Error::NotFound)
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

/// Adds counted requests in one transaction; `last_used_at` only ever moves forward.
pub fn add_usage(conn: &mut KeyDb, usage: &[Usage]) -> QueryResult<()> {
    conn.transaction(|conn| {
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
        let a = insert(&mut conn, "ci", "hash-a", "sk-aaaa", now).unwrap();
        insert(&mut conn, "ci", "hash-b", "sk-bbbb", now).unwrap();
        insert(&mut conn, "laptop", "hash-c", "sk-cccc", now).unwrap();

        assert_eq!(matching(&mut conn, &a.id.to_string(), "x").unwrap().len(), 1);
        assert_eq!(matching(&mut conn, "sk-full", "hash-c").unwrap()[0].name, "laptop");
        assert_eq!(matching(&mut conn, "ci", "x").unwrap().len(), 2);
        assert!(matching(&mut conn, "nobody", "x").unwrap().is_empty());

        let later = now + Duration::seconds(5);
        add_usage(&mut conn, &[Usage { id: a.id, requests: 3, last_used_at: later }]).unwrap();
        add_usage(&mut conn, &[Usage { id: a.id, requests: 2, last_used_at: now }]).unwrap();
        let stored = find_by_hash(&mut conn, "hash-a").unwrap().unwrap();
        assert_eq!(stored.request_count, 5);
        assert_eq!(stored.last_used_at, Some(later), "last use never moves back");

        assert_eq!(set_revoked(&mut conn, &[a.id], true, now).unwrap(), 1);
        assert!(find_by_hash(&mut conn, "hash-a").unwrap().unwrap().revoked);
    }
}
