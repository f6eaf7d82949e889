//! Several replicas, one proxy: two proxy processes sharing a real Redis (key state) and a real
//! PostgreSQL (client keys), in front of one mock upstream.
//!
//! The services' addresses come from `TEST_REDIS_URL` and `TEST_DATABASE_URL`, which `.ci/run`
//! sets (starting the services if they are not running). Without them these tests say so and
//! pass without running: a plain `cargo test` needs no server.

use crate::common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{chat_body, client, command, completion, until, MockUpstream, ProxyProcess, Reply};
use diesel::{Connection, PgConnection, RunQueryDsl};
use serde_json::Value;

const KEYS: &str = r#"{"key1":"sk-1","key2":"sk-2"}"#;

/// The service's URL from `var`; without it, says (once, past the test harness's capture, so
/// that a plain `cargo test` shows it) what these tests need.
fn service(var: &str) -> Option<String> {
    static SAID: std::sync::Once = std::sync::Once::new();
    let url = std::env::var(var).ok().filter(|url| !url.trim().is_empty());
    if url.is_none() {
        SAID.call_once(|| {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "\nreplicas: SKIPPED, these tests need Redis and PostgreSQL at TEST_REDIS_URL and TEST_DATABASE_URL \
                 (e.g. redis://127.0.0.1:6379 and postgres://postgres@127.0.0.1:5432/test). \
                 Run `eval \"$(.ci/services)\"` first: it starts them (installing them if needed) and sets both, as CI does.\n"
            );
        });
    }
    url
}

/// A name of this test's own, for its Redis prefix or its PostgreSQL schema; what the test
/// left there goes when it ends.
struct Namespace {
    name: String,
    redis: Option<String>,
    database: Option<String>,
}

impl Namespace {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("glm_proxy_test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        Self { name, redis: None, database: None }
    }

    /// The Redis key prefix, on `redis`.
    fn on_redis(&mut self, redis: &str) -> String {
        self.redis = Some(redis.to_owned());
        self.name.clone()
    }

    /// A PostgreSQL URL whose tables live in a schema of this test's own.
    fn on_database(&mut self, database: &str) -> String {
        let mut conn = PgConnection::establish(database).expect("TEST_DATABASE_URL answers");
        diesel::sql_query(format!("CREATE SCHEMA {}", self.name)).execute(&mut conn).unwrap();
        self.database = Some(database.to_owned());
        let separator = if database.contains('?') { '&' } else { '?' };
        format!("{database}{separator}options=-csearch_path%3D{}", self.name)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        if let Some(mut conn) = self.database.as_deref().and_then(|url| PgConnection::establish(url).ok()) {
            let _ = diesel::sql_query(format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name)).execute(&mut conn);
        }
        if let Some(mut conn) =
            self.redis.as_deref().and_then(|url| redis::Client::open(url).ok()?.get_connection().ok())
        {
            let keys: Vec<String> =
                redis::cmd("KEYS").arg(format!("{}:*", self.name)).query(&mut conn).unwrap_or_default();
            if !keys.is_empty() {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
            }
        }
    }
}

fn replica(dir: &Path, upstream: &MockUpstream, vars: &[(&str, &str)]) -> ProxyProcess {
    let base = [
        ("CEREBRAS_BASE_URL", upstream.url.as_str()),
        ("CEREBRAS_API_KEYS", KEYS),
        ("LOG_REQUESTS", "false"),
        ("CEREBRAS_COOLDOWN", "30"),
    ];
    ProxyProcess::start(dir, &[&base[..], vars].concat())
}

/// A test's own folder and Redis prefix, and replicas that share key state there.
struct OnRedis {
    dir: tempfile::TempDir,
    /// How the replicas reach Redis.
    url: String,
    prefix: String,
    _namespace: Namespace,
}

impl OnRedis {
    /// The prefix is cleaned up on `redis`; the replicas reach it at `url`.
    fn new(redis: &str, url: &str) -> Self {
        let mut namespace = Namespace::new();
        let prefix = namespace.on_redis(redis);
        Self { dir: tempfile::tempdir().unwrap(), url: url.to_owned(), prefix, _namespace: namespace }
    }

    fn replica(&self, upstream: &MockUpstream, vars: &[(&str, &str)]) -> ProxyProcess {
        let shared = [("REDIS_URL", self.url.as_str()), ("REDIS_KEY_PREFIX", self.prefix.as_str())];
        replica(self.dir.path(), upstream, &[&shared[..], vars].concat())
    }
}

async fn chat(replica: &ProxyProcess, bearer: Option<&str>) -> u16 {
    let mut request = client().post(format!("{}/v1/chat/completions", replica.url));
    if let Some(key) = bearer {
        request = request.insert_header(("authorization", format!("Bearer {key}")));
    }
    request.send_json(&chat_body(false)).await.unwrap().status().as_u16()
}

async fn status(replica: &ProxyProcess) -> Value {
    client().get(format!("{}/_status", replica.url)).send().await.unwrap().json().await.unwrap()
}

/// A Cerebras key's state in a replica's `/_status`.
async fn key_state(replica: &ProxyProcess, key: &str) -> String {
    pool_key_state(replica, "", key).await
}

/// A key's state in the pool at `pool` (a JSON pointer) of a replica's `/_status`.
async fn pool_key_state(replica: &ProxyProcess, pool: &str, key: &str) -> String {
    let status = status(replica).await;
    let keys = status.pointer(&format!("{pool}/keys")).unwrap().as_array().unwrap();
    keys.iter().find(|k| k["name"] == key).unwrap()["state"].as_str().unwrap().to_owned()
}

/// Whether a replica's Redis `state` in `/_status` becomes `state` within the polling time.
async fn redis_becomes(replica: &ProxyProcess, state: &str) -> bool {
    until(async || status(replica).await["redis"]["state"] == state).await.is_some()
}

/// Key 1 is rate limited; key 2 answers.
fn key1_limited(request: &common::Received) -> Reply {
    match request.key() {
        "sk-1" => Reply::rate_limited(Some(60)),
        _ => Reply::ok(completion("ok")),
    }
}

#[actix_web::test]
async fn a_429_on_one_replica_rests_the_key_on_the_other() {
    let Some(redis) = service("TEST_REDIS_URL") else { return };
    let on_redis = OnRedis::new(&redis, &redis);
    let upstream = MockUpstream::start(key1_limited);
    let (a, b) = (on_redis.replica(&upstream, &[]), on_redis.replica(&upstream, &[]));
    assert!(redis_becomes(&b, "connected").await);

    assert_eq!(chat(&a, None).await, 200);
    assert_eq!(upstream.keys_used(), ["sk-1", "sk-2"], "A met the 429 and rotated");
    let honoured = until(async || key_state(&b, "key1").await == "cooling_down").await;
    let honoured = honoured.expect("B never heard of the 429");
    assert!(honoured < Duration::from_secs(1), "B took {honoured:?}");
    assert_eq!(chat(&b, None).await, 200);
    assert_eq!(upstream.keys_used()[2..], ["sk-2"], "B never tried the resting key");
    assert_eq!(status(&b).await["current_key"], "key2");
    // Each replica adds what its keys served to the totals every second.
    let totals = async || status(&a).await["redis"]["requests_all_replicas"]["key2"] == 2;
    assert!(until(totals).await.is_some(), "{}", status(&a).await["redis"]);
}

#[actix_web::test]
async fn a_429_on_a_synthetic_key_rests_it_on_the_other_replica() {
    let Some(redis) = service("TEST_REDIS_URL") else { return };
    let on_redis = OnRedis::new(&redis, &redis);
    let cerebras = MockUpstream::start(|_| Reply::ok(completion("cerebras")));
    let synthetic = MockUpstream::start(|request| match request.key() {
        "sk-s1" => Reply::rate_limited(Some(60)),
        _ => Reply::ok(completion("synthetic")),
    });
    // Long requests (over a threshold of 100 tokens) go to Synthetic first.
    let vars = [
        // The same key names as Cerebras': the pools are apart on Redis all the same.
        ("SYNTHETIC_API_KEYS", r#"{"key1":"sk-s1","key2":"sk-s2"}"#),
        ("SYNTHETIC_BASE_URL", synthetic.url.as_str()),
        ("TOKEN_THRESHOLD", "100"),
    ];
    let (a, b) = (on_redis.replica(&cerebras, &vars), on_redis.replica(&cerebras, &vars));
    assert!(redis_becomes(&b, "connected").await);
    let long = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(400)}]});
    let long_chat = async |replica: &ProxyProcess| {
        let url = format!("{}/v1/chat/completions", replica.url);
        client().post(url).send_json(&long).await.unwrap().status().as_u16()
    };

    assert_eq!(long_chat(&a).await, 200);
    assert_eq!(synthetic.keys_used(), ["sk-s1", "sk-s2"], "A met the 429 and rotated within Synthetic");
    let honoured = until(async || pool_key_state(&b, "/providers/synthetic", "key1").await == "cooling_down").await;
    assert!(honoured.expect("B never heard of the 429") < Duration::from_secs(1));
    assert_eq!(long_chat(&b).await, 200);
    assert_eq!(synthetic.keys_used()[2..], ["sk-s2"], "B never tried the resting key");
    assert!(cerebras.received().is_empty());
    assert_eq!(key_state(&b, "key1").await, "available", "Cerebras' key1 is another pool's");
}

#[actix_web::test]
async fn a_restart_keeps_a_running_cooldown() {
    let Some(redis) = service("TEST_REDIS_URL") else { return };
    let on_redis = OnRedis::new(&redis, &redis);
    let upstream = MockUpstream::start(key1_limited);
    let a = on_redis.replica(&upstream, &[]);
    assert!(redis_becomes(&a, "connected").await);
    assert_eq!(chat(&a, None).await, 200);
    // The rest reaches Redis, then the replica goes.
    assert!(until(async || key_state(&a, "key1").await == "cooling_down").await.is_some());
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    assert!(a.terminate().await.success());

    let again = on_redis.replica(&upstream, &[]);
    assert!(until(async || key_state(&again, "key1").await == "cooling_down").await.is_some(), "forgotten");
    let rest = status(&again).await["keys"][0]["rate_limited_for"].as_f64().unwrap();
    assert!(rest > 50.0, "the 60 s rest runs on: {rest}");
    assert_eq!(chat(&again, None).await, 200);
    assert_eq!(upstream.keys_used(), ["sk-1", "sk-2", "sk-2"]);
}

#[actix_web::test]
async fn a_replica_started_with_a_changed_key_list_lifts_every_rejection() {
    let Some(redis) = service("TEST_REDIS_URL") else { return };
    let on_redis = OnRedis::new(&redis, &redis);
    let upstream = MockUpstream::start(|request| match request.key() {
        "sk-1" => Reply::status(401, serde_json::json!({"message": "Wrong API Key"})),
        _ => Reply::ok(completion("ok")),
    });
    let (a, b) = (on_redis.replica(&upstream, &[]), on_redis.replica(&upstream, &[]));
    assert!(redis_becomes(&b, "connected").await);
    assert_eq!(chat(&a, None).await, 200);
    assert!(until(async || key_state(&b, "key1").await == "invalid").await.is_some(), "B heard of the 401");

    // The same list again: the rejection stands.
    assert!(b.terminate().await.success());
    let b = on_redis.replica(&upstream, &[]);
    assert!(until(async || key_state(&b, "key1").await == "invalid").await.is_some(), "read back");
    assert!(b.terminate().await.success());

    // A key added: every key starts afresh, on the replica still running too.
    let three_keys = [("CEREBRAS_API_KEYS", r#"{"key1":"sk-1","key2":"sk-2","key3":"sk-3"}"#)];
    let b = on_redis.replica(&upstream, &three_keys);
    assert!(redis_becomes(&b, "connected").await);
    assert!(until(async || key_state(&a, "key1").await == "available").await.is_some(), "A still rejects key1");
    assert_eq!(key_state(&b, "key1").await, "available");
}

#[actix_web::test]
async fn without_redis_replicas_serve_alone_then_catch_up() {
    let Some(redis) = service("TEST_REDIS_URL") else { return };
    let relay = common::TcpRelay::start(redis.trim_start_matches("redis://").trim_end_matches('/'));
    // Key 1 is rate limited once: B's request while Redis is away gets through with it.
    let limited_once = std::sync::atomic::AtomicBool::new(false);
    let upstream = MockUpstream::start(move |request| match request.key() {
        "sk-1" if !limited_once.swap(true, Ordering::SeqCst) => Reply::rate_limited(Some(60)),
        _ => Reply::ok(completion("ok")),
    });
    let on_redis = OnRedis::new(&redis, &format!("redis://{}", relay.address()));
    let (a, b) = (on_redis.replica(&upstream, &[]), on_redis.replica(&upstream, &[]));
    for replica in [&a, &b] {
        assert!(redis_becomes(replica, "connected").await);
    }

    relay.cut();
    assert!(redis_becomes(&a, "unavailable").await);
    // Both serve on their own; A's rest stays A's for now.
    assert_eq!(chat(&a, None).await, 200);
    assert_eq!(key_state(&a, "key1").await, "cooling_down");
    assert_eq!(chat(&b, None).await, 200);
    assert_eq!(upstream.keys_used(), ["sk-1", "sk-2", "sk-1"], "B did not hear of A's rest");
    assert_eq!(key_state(&b, "key1").await, "available");
    let logs = a.log_lines().join("\n");
    assert_eq!(logs.matches("event=redis_unavailable").count(), 1, "said once: {logs}");

    relay.restore();
    let caught_up = until(async || key_state(&b, "key1").await == "cooling_down").await;
    assert!(caught_up.is_some(), "B never learned of A's rest after Redis came back");
    assert!(redis_becomes(&a, "connected").await);
}

/// The `keys` CLI against a database URL: stdout.
fn keys(dir: &Path, database: &str, args: &[&str]) -> String {
    let output = command(dir, &[]).args(["keys", "--db", database]).args(args).output().unwrap();
    assert!(output.status.success(), "keys {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// Two replicas checking client keys in a PostgreSQL schema of the test's own, which holds one
/// key, `agent`.
struct KeysOnPostgres {
    dir: tempfile::TempDir,
    database: String,
    key: String,
    a: ProxyProcess,
    b: ProxyProcess,
    _upstream: MockUpstream,
    _namespace: Namespace,
}

impl KeysOnPostgres {
    fn start() -> Option<Self> {
        let database = service("TEST_DATABASE_URL")?;
        let dir = tempfile::tempdir().unwrap();
        let mut namespace = Namespace::new();
        let database = namespace.on_database(&database);
        let key = keys(dir.path(), &database, &["add", "agent", "--quiet"]).trim().to_owned();
        let upstream = MockUpstream::start(|_| Reply::ok(completion("ok")));
        let auth = [("ENABLE_INCOMING_AUTH", "true"), ("DATABASE_URL", database.as_str())];
        let (a, b) = (replica(dir.path(), &upstream, &auth), replica(dir.path(), &upstream, &auth));
        Some(Self { dir, database, key, a, b, _upstream: upstream, _namespace: namespace })
    }
}

#[actix_web::test]
async fn a_key_revoked_on_postgres_is_refused_by_every_replica_within_2_s() {
    // Every field bound: the mock and the schema live to the end of the test.
    let Some(KeysOnPostgres { dir, database, key, a, b, _upstream, _namespace }) = KeysOnPostgres::start() else {
        return;
    };
    assert_eq!((chat(&a, Some(&key)).await, chat(&b, Some(&key)).await), (200, 200));

    keys(dir.path(), &database, &["revoke", "agent"]);
    let revoked = Instant::now();
    for replica in [&a, &b] {
        assert!(until(async || chat(replica, Some(&key)).await == 401).await.is_some());
    }
    assert!(revoked.elapsed() < Duration::from_secs(3), "took {:?}", revoked.elapsed());
}

#[actix_web::test]
async fn usage_counts_from_every_replica_add_up() {
    // Every field bound: the mock and the schema live to the end of the test.
    let Some(KeysOnPostgres { dir, database, key, a, b, _upstream, _namespace }) = KeysOnPostgres::start() else {
        return;
    };
    for (replica, requests) in [(&a, 7), (&b, 5)] {
        for _ in 0..requests {
            assert_eq!(chat(replica, Some(&key)).await, 200);
        }
    }
    // A graceful stop flushes what each replica counted.
    assert!(a.terminate().await.success() && b.terminate().await.success());
    let list: Value = serde_json::from_str(&keys(dir.path(), &database, &["list", "--json"])).unwrap();
    assert_eq!(list["keys"][0]["request_count"], 12);
}

#[actix_web::test]
async fn a_database_that_goes_away_is_used_again_when_it_comes_back() {
    let Some(database) = service("TEST_DATABASE_URL") else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut namespace = Namespace::new();
    let direct = namespace.on_database(&database);
    // The replica reaches PostgreSQL through a relay the test can cut.
    let (authority, _) = direct.split_once("://").unwrap().1.split_once('/').unwrap();
    let relay = common::TcpRelay::start(authority.rsplit_once('@').map_or(authority, |(_, host)| host));
    let relayed = direct.replacen(authority, &format!("postgres@{}", relay.address()), 1);
    let key = keys(dir.path(), &direct, &["add", "agent", "--quiet"]).trim().to_owned();
    let upstream = MockUpstream::start(|_| Reply::ok(completion("ok")));
    let auth = [("ENABLE_INCOMING_AUTH", "true"), ("DATABASE_URL", relayed.as_str()), ("AUTH_CACHE_MAX_AGE", "30")];
    let a = replica(dir.path(), &upstream, &auth);
    assert_eq!(chat(&a, Some(&key)).await, 200);

    relay.cut();
    // The cached keys answer while the database is away (within AUTH_CACHE_MAX_AGE). A reload
    // fails after the pool's 2 s connection timeout, behind the usage flush's own: 4 s and more
    // on a loaded machine.
    let failing = async || metric(&a, "glm_proxy_auth_reload_failures_total").await >= 1.0;
    assert!(common::until_within(Duration::from_secs(25), failing).await.is_some(), "the reloads never failed");
    assert_eq!(chat(&a, Some(&key)).await, 200);

    relay.restore();
    keys(dir.path(), &direct, &["revoke", "agent"]);
    assert!(until(async || chat(&a, Some(&key)).await == 401).await.is_some(), "the database was not used again");
}

async fn metric(replica: &ProxyProcess, name: &str) -> f64 {
    common::metric(&replica.url, name).await
}

/// Two replicas sharing client keys on PostgreSQL and their limits on Redis, with one key,
/// `agent`, made with `limits`; every answer reports 50 tokens of usage.
struct LimitsShared {
    dir: tempfile::TempDir,
    database: String,
    key: String,
    a: ProxyProcess,
    b: ProxyProcess,
    upstream: MockUpstream,
    relay: common::TcpRelay,
    _namespace: Namespace,
}

impl LimitsShared {
    /// Both replicas reach Redis through a relay the test can cut; `None` without the services.
    async fn start(limits: &[&str]) -> Option<Self> {
        let (redis, database) = (service("TEST_REDIS_URL")?, service("TEST_DATABASE_URL")?);
        let dir = tempfile::tempdir().unwrap();
        let mut namespace = Namespace::new();
        let (prefix, database) = (namespace.on_redis(&redis), namespace.on_database(&database));
        let key = keys(dir.path(), &database, &[&["add", "agent", "--quiet"], limits].concat()).trim().to_owned();
        let upstream = MockUpstream::start(|_| {
            let mut answer = completion("ok");
            answer["usage"] = serde_json::json!({"prompt_tokens": 30, "completion_tokens": 20, "total_tokens": 50});
            Reply::ok(answer)
        });
        let relay = common::TcpRelay::start(redis.trim_start_matches("redis://").trim_end_matches('/'));
        let redis = format!("redis://{}", relay.address());
        let vars = [
            ("ENABLE_INCOMING_AUTH", "true"),
            ("DATABASE_URL", database.as_str()),
            ("REDIS_URL", redis.as_str()),
            ("REDIS_KEY_PREFIX", prefix.as_str()),
        ];
        let (a, b) = (replica(dir.path(), &upstream, &vars), replica(dir.path(), &upstream, &vars));
        // Each counts the other before the test begins: the credit is split between two.
        for replica in [&a, &b] {
            let both = async || status(replica).await["client_limits"]["replicas"] == 2;
            assert!(until(both).await.is_some(), "{}", status(replica).await);
        }
        Some(Self { dir, database, key, a, b, upstream, relay, _namespace: namespace })
    }
}

/// A client-key request to `path` on a replica: its status and its error's code, if any.
async fn limited(replica: &ProxyProcess, key: &str, path: &str) -> (u16, Value) {
    let url = format!("{}{path}", replica.url);
    let request = client().request(
        if path.ends_with("models") { actix_web::http::Method::GET } else { actix_web::http::Method::POST },
        url,
    );
    let mut response =
        request.insert_header(("authorization", format!("Bearer {key}"))).send_json(&chat_body(false)).await.unwrap();
    let body: Value = response.json().await.unwrap_or_default();
    (response.status().as_u16(), body["error"]["code"].clone())
}

#[actix_web::test]
async fn an_rpm_holds_over_both_replicas_within_its_bound() {
    let Some(shared) = LimitsShared::start(&["--rpm", "30"]).await else { return };
    // 60 at once, half to each: 30 let through, and at most max(N, R/10) = 3 more.
    let requests = (0..60).map(|i| {
        let replica = if i % 2 == 0 { &shared.a } else { &shared.b };
        limited(replica, &shared.key, "/v1/chat/completions")
    });
    let answers = futures_util::future::join_all(requests).await;
    let through = answers.iter().filter(|(status, _)| *status == 200).count();
    assert!((30..=33).contains(&through), "{through} let through: {answers:?}");
    let refused = answers.iter().filter(|answer| **answer == (429, Value::from("client_rate_limited"))).count();
    assert_eq!(through + refused, 60, "{answers:?}");
    assert_eq!(shared.upstream.received().len(), through, "nothing refused went upstream");
    for replica in [&shared.a, &shared.b] {
        assert_eq!(status(replica).await["client_limits"]["scope"], "all_replicas");
    }
}

#[actix_web::test]
async fn a_budget_spent_on_one_replica_is_refused_on_the_other() {
    let Some(shared) = LimitsShared::start(&["--daily-tokens", "40"]).await else { return };
    assert_eq!(limited(&shared.a, &shared.key, "/v1/chat/completions").await.0, 200);
    // A flushes the 50 tokens within a second, B reads them back within the next; asking
    // for the model list spends nothing.
    let on_b = async || limited(&shared.b, &shared.key, "/v1/models").await == (429, "client_budget_exceeded".into());
    let refused = until(on_b).await.expect("B never learned of the spent budget");
    assert!(refused < Duration::from_secs(3), "took {refused:?}");
    let sent = shared.upstream.received().len();
    assert_eq!(limited(&shared.b, &shared.key, "/v1/chat/completions").await.1, "client_budget_exceeded");
    assert_eq!(shared.upstream.received().len(), sent, "the refused chat never went upstream");
}

#[actix_web::test]
async fn a_limit_set_from_the_cli_holds_on_every_replica_within_2_s() {
    let Some(shared) = LimitsShared::start(&[]).await else { return };
    let chat_path = "/v1/chat/completions";
    for replica in [&shared.a, &shared.b] {
        assert_eq!(limited(replica, &shared.key, chat_path).await.0, 200);
    }
    keys(shared.dir.path(), &shared.database, &["set", "agent", "--models", "glm-only"]);
    let set = Instant::now();
    for replica in [&shared.a, &shared.b] {
        let refused = async || limited(replica, &shared.key, chat_path).await == (403, "model_not_allowed".into());
        assert!(until(refused).await.is_some(), "the model list never held");
    }
    assert!(set.elapsed() < Duration::from_secs(3), "took {:?}", set.elapsed());
}

#[actix_web::test]
async fn with_redis_cut_each_replica_limits_its_own_traffic_then_shares_again() {
    let Some(shared) = LimitsShared::start(&["--rpm", "4"]).await else { return };
    let (a, b, key) = (&shared.a, &shared.b, shared.key.as_str());
    let chat_path = "/v1/chat/completions";
    assert_eq!(limited(a, key, chat_path).await.0, 200);

    shared.relay.cut();
    for replica in [a, b] {
        let alone = async || status(replica).await["client_limits"]["scope"] == "this_replica";
        assert!(until(alone).await.is_some(), "{}", status(replica).await);
    }
    // B counts its own traffic alone: four in its minute, then refused.
    for _ in 0..4 {
        assert_eq!(limited(b, key, chat_path).await.0, 200);
    }
    assert_eq!(limited(b, key, chat_path).await, (429, "client_rate_limited".into()));
    let logs = b.log_lines().join("\n");
    assert_eq!(logs.matches("event=redis_unavailable scope=client_limits").count(), 1, "said once: {logs}");

    shared.relay.restore();
    for replica in [a, b] {
        let shared_again = async || status(replica).await["client_limits"]["scope"] == "all_replicas";
        assert!(until(shared_again).await.is_some(), "{}", status(replica).await);
    }
    // B's four reached Redis when it came back: A, with one of its own, lets through at most
    // its credit of one more before it hears of them.
    let mut through = 0;
    for _ in 0..3 {
        through += usize::from(limited(a, key, chat_path).await.0 == 200);
    }
    assert!(through <= 1, "A let {through} more through");
    assert_eq!(limited(a, key, chat_path).await, (429, "client_rate_limited".into()));
}

#[actix_web::test]
async fn a_reload_or_a_reset_on_one_replica_reaches_the_other() {
    let Some(redis) = service("TEST_REDIS_URL") else { return };
    let on_redis = OnRedis::new(&redis, &redis);
    let upstream = MockUpstream::start(key1_limited);
    // Each replica has its own file, as each container would.
    let files = ["a.json", "b.json"].map(|name| on_redis.dir.path().join(name));
    for file in &files {
        std::fs::write(file, KEYS).unwrap();
    }
    let token = "admin-token-0123456789abcdef0123456789";
    let start = |file: &Path| {
        let file = file.display().to_string();
        let vars = [("CEREBRAS_API_KEYS", ""), ("CEREBRAS_API_KEYS_FILE", file.as_str()), ("ADMIN_TOKEN", token)];
        on_redis.replica(&upstream, &vars)
    };
    let (a, b) = (start(&files[0]), start(&files[1]));
    assert!(redis_becomes(&b, "connected").await);
    let admin = async |replica: &ProxyProcess, path: &str| {
        let request = client().post(format!("{}{path}", replica.url));
        request.insert_header(("authorization", format!("Bearer {token}"))).send().await.unwrap().status().as_u16()
    };

    assert_eq!(chat(&a, None).await, 200);
    assert!(until(async || key_state(&b, "key1").await == "cooling_down").await.is_some(), "B heard of the 429");
    assert_eq!(admin(&a, "/admin/upstream-keys/key1/reset").await, 200);
    assert!(until(async || key_state(&b, "key1").await == "available").await.is_some(), "B heard of the reset");

    let names = async |replica: &ProxyProcess| {
        let keys = status(replica).await["keys"].as_array().unwrap().clone();
        keys.iter().map(|key| key["name"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    for file in &files {
        std::fs::write(file, r#"{"key2":"sk-2","key3":"sk-3"}"#).unwrap();
    }
    assert_eq!(admin(&a, "/admin/upstream-keys/reload").await, 200);
    assert_eq!(names(&a).await, ["key2", "key3"]);
    let heard = until(async || names(&b).await == ["key2", "key3"]).await;
    assert!(heard.expect("B never reloaded") < Duration::from_secs(2));
    assert_eq!(chat(&b, None).await, 200);
    assert_eq!(upstream.keys_used().last().map(String::as_str), Some("sk-2"));
}
