//! `KeySync`: shares the Cerebras keys' state with the other replicas through Redis, when
//! `REDIS_URL` is set.
//!
//! The `KeyRotator` keeps deciding alone, on its local state; a request never waits on Redis.
//! What it learns (a key rests, the sticky key moves, rejections are lifted) it tells this
//! actor, which writes it with one atomic script (the later deadline wins; the sticky key moves
//! by compare-and-swap) and announces it on a channel. What the other replicas announce comes
//! back to the rotator as a [`KeyChange`]. On every (re)connection the running rests and the sticky
//! key are read back, so a restart keeps its cooldowns and a replica cut off catches up. A
//! replica that starts with a key list other than the last one started on Redis lifts every
//! rejection, as a restart with a changed list does for one replica alone.
//!
//! If Redis is unreachable, the replica goes on with its local state: the failure is logged
//! once, counted (`glm_proxy_redis_errors_total`, `glm_proxy_redis_up`) and shown in
//! `/_status`; the rests it made meanwhile are written once Redis answers again.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use futures_util::StreamExt;
use prometheus::{IntCounter, IntGauge};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use serde::Serialize;

use super::keys_file::Reload;
use crate::config::NamedKey;
use crate::policy::key_pool::Rest;
use crate::shared::changes::{fingerprint, rest_name, rest_named, KeyChange, Message as SharedMessage};
use crate::shared::redis_script;

/// A change another replica made, for the rotator to apply to its keys (by index).
impl Message for KeyChange<usize> {
    type Result = ();
}

/// What the rotator tells this actor.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum Share {
    /// A change this replica made.
    Change(KeyChange<usize>),
    /// Read the shared state again (the rotator restarted with fresh state).
    Resync,
    /// Requests each key (by index) served since the last time.
    Served(Vec<(usize, u64)>),
    /// The key list was replaced (a reload): these keys, in the rotator's order.
    Keys(Vec<NamedKey>),
}

/// Where the keys file is (`CEREBRAS_API_KEYS_FILE`), to reload it when another replica did.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttachReloader(pub Recipient<Reload>);

/// Where the rotator is, once both actors exist.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Attach(pub Recipient<KeyChange<usize>>);

#[derive(Message)]
#[rtype(result = "SyncStatus")]
pub struct GetSyncStatus;

/// Redis as `/_status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SyncStatus {
    /// `connected` or `unavailable` (serving from local state).
    pub state: &'static str,
    pub errors: u64,
    pub last_error: Option<String>,
    /// Requests each key served, all replicas together, by key name (as of the last second).
    pub requests_all_replicas: BTreeMap<String, u64>,
}

impl SyncStatus {
    /// Two providers' sync as one: unavailable if either is, with both's errors; the
    /// requests per key stay this one's.
    pub fn and(mut self, other: SyncStatus) -> SyncStatus {
        if other.state != "connected" {
            self.state = other.state;
        }
        self.errors += other.errors;
        self.last_error = self.last_error.or(other.last_error);
        self
    }
}

/// How long one Redis command may take, and the pause between attempts to reach Redis.
const TIMEOUT: Duration = Duration::from_millis(500);
const RETRY: Duration = Duration::from_secs(1);

/// The replica's names on Redis.
#[derive(Clone)]
struct Names {
    channel: String,
    current: String,
    /// Each key's hash, by index.
    keys: Vec<String>,
    /// Each key's fingerprint, by index.
    prints: Vec<String>,
    /// Requests served, all replicas together: a hash of fingerprint → count.
    served: String,
    /// The key list the last replica to start was given, as its sorted fingerprints.
    key_list: String,
    /// This replica's key list, the same way.
    own_key_list: String,
}

impl Names {
    /// The names for a pool of keys whose fingerprints are `prints`, in the rotator's order.
    fn of(prefix: &str, prints: Vec<String>) -> Self {
        let mut sorted = prints.clone();
        sorted.sort_unstable();
        Self {
            key_list: format!("{prefix}:key_list"),
            own_key_list: sorted.join(","),
            channel: format!("{prefix}:events"),
            served: format!("{prefix}:served"),
            current: format!("{prefix}:current"),
            keys: prints.iter().map(|print| format!("{prefix}:key:{print}")).collect(),
            prints,
        }
    }
}

pub struct KeySync {
    client: redis::Client,
    connection: ConnectionManager,
    prefix: String,
    names: Names,
    /// The keys file's reloader, when there is one.
    reloader: Option<Recipient<Reload>>,
    /// This replica's id in announcements: its own come back, and are skipped.
    origin: String,
    rotator: Option<Recipient<KeyChange<usize>>>,
    /// The rests this replica shared, to share again if Redis lost them (by index).
    shared: HashMap<usize, (u64, Rest)>,
    /// The operator's names for the keys, by index: only `/_status` shows them.
    key_names: Vec<String>,
    /// Requests each key served, all replicas together, by index.
    served_totals: Vec<u64>,
    up: bool,
    /// A resync is due (Redis failed): one at a time.
    retrying: bool,
    /// A resync is running, and another was asked for meanwhile.
    resyncing: bool,
    resync_again: bool,
    /// This replica's key list is not yet compared with the one on Redis.
    key_list_unchecked: bool,
    errors: IntCounter,
    up_gauge: IntGauge,
    last_error: Option<String>,
}

impl KeySync {
    /// `keys` are the configured keys' names and values, in the rotator's order; of the values,
    /// only their fingerprints are kept.
    pub fn new(
        url: &str,
        prefix: &str,
        keys: &[(&str, &str)],
        errors: IntCounter,
        up_gauge: IntGauge,
    ) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT));
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        let names = Names::of(prefix, keys.iter().map(|(_, secret)| fingerprint(secret)).collect());
        let mut origin = [0u8; 4];
        let _ = getrandom::fill(&mut origin);
        let origin = origin.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self {
            client,
            connection,
            prefix: prefix.to_owned(),
            names,
            reloader: None,
            origin,
            rotator: None,
            shared: HashMap::new(),
            key_names: keys.iter().map(|(name, _)| (*name).to_owned()).collect(),
            served_totals: vec![0; keys.len()],
            up: false,
            retrying: false,
            resyncing: false,
            resync_again: false,
            key_list_unchecked: true,
            errors,
            up_gauge,
            last_error: None,
        })
    }

    fn announce(&self, change: KeyChange<String>) -> String {
        SharedMessage { origin: self.origin.clone(), change }.encode()
    }

    /// A rest, as announced.
    fn announce_rest(&self, index: usize, until_ms: u64, rest: Rest) -> String {
        self.announce(KeyChange::Rest { key: self.names.prints[index].clone(), until_ms, rest })
    }

    /// Runs `work` against Redis; its outcome says whether Redis is up.
    fn run<F>(&mut self, ctx: &mut Context<Self>, work: impl FnOnce(ConnectionManager, Names) -> F + 'static)
    where
        F: Future<Output = redis::RedisResult<Vec<KeyChange<usize>>>> + 'static,
    {
        self.run_then(ctx, work, |_, _, _| {});
    }

    /// [`Self::run`], then `then`, told whether `work` succeeded.
    fn run_then<F>(
        &mut self,
        ctx: &mut Context<Self>,
        work: impl FnOnce(ConnectionManager, Names) -> F + 'static,
        then: impl FnOnce(&mut Self, &mut Context<Self>, bool) + 'static,
    ) where
        F: Future<Output = redis::RedisResult<Vec<KeyChange<usize>>>> + 'static,
    {
        let future = work(self.connection.clone(), self.names.clone());
        ctx.spawn(future.into_actor(self).map(|outcome, this, ctx| {
            let succeeded = outcome.is_ok();
            match outcome {
                Ok(changes) => {
                    this.healthy();
                    if let Some(rotator) = &this.rotator {
                        changes.into_iter().for_each(|change| rotator.do_send(change));
                    }
                }
                Err(error) => this.failed(&error.to_string(), ctx),
            }
            then(this, ctx, succeeded);
        }));
    }

    fn healthy(&mut self) {
        if !self.up {
            log::info!("event=redis_connected");
            self.up = true;
            self.up_gauge.set(1);
        }
    }

    /// Logged once per outage; every failure counts. A resync follows a second later, and
    /// again each second until Redis answers.
    fn failed(&mut self, error: &str, ctx: &mut Context<Self>) {
        self.errors.inc();
        self.last_error = Some(error.to_owned());
        if self.up || self.errors.get() == 1 {
            log::warn!("event=redis_unavailable action=local_state error={error:?}");
        }
        self.up = false;
        self.up_gauge.set(0);
        if !self.retrying {
            self.retrying = true;
            ctx.run_later(RETRY, |this, ctx| {
                this.retrying = false;
                this.resync(ctx);
            });
        }
    }

    /// Writes the rests this replica made that still run, then reads every key's rest and the
    /// sticky key back: after a start, or after Redis came back. The first to succeed after a
    /// start lifts every rejection if the key list changed. One runs at a time, so that what
    /// one reads back cannot arrive after what a later one changed.
    fn resync(&mut self, ctx: &mut Context<Self>) {
        if self.resyncing {
            self.resync_again = true;
            return;
        }
        self.resyncing = true;
        let check_key_list = self.key_list_unchecked;
        let lift = self.announce(KeyChange::ClearRejections);
        let now_ms = wall_ms();
        let running: Vec<(usize, u64, Rest)> = self
            .shared
            .iter()
            .filter(|(_, (until, _))| *until > now_ms)
            .map(|(&index, &(until, rest))| (index, until, rest))
            .collect();
        let announcements: Vec<String> =
            running.iter().map(|&(index, until_ms, rest)| self.announce_rest(index, until_ms, rest)).collect();
        let work = move |mut connection: ConnectionManager, names: Names| async move {
            if check_key_list {
                let last: Option<String> = connection.getset(&names.key_list, &names.own_key_list).await?;
                if last.is_some_and(|last| last != names.own_key_list) {
                    clear_rejections(&mut connection, &names, lift).await?;
                }
            }
            for ((index, until, rest), announcement) in running.into_iter().zip(announcements) {
                write_rest(&mut connection, &names, index, until, rest, announcement).await?;
            }
            let mut changes = Vec::new();
            for (index, key) in names.keys.iter().enumerate() {
                let fields: HashMap<String, String> = connection.hgetall(key).await?;
                let until_ms = fields.get("until").and_then(|until| until.parse().ok());
                if let Some(until_ms) = until_ms {
                    let rest = fields.get("state").and_then(|name| rest_named(name)).unwrap_or(Rest::CoolingDown);
                    changes.push(KeyChange::Rest { key: index, until_ms, rest });
                }
            }
            let current: Option<String> = connection.get(&names.current).await?;
            if let Some(index) = current.and_then(|print| names.prints.iter().position(|p| *p == print)) {
                changes.push(KeyChange::Current { from: None, to: index });
            }
            Ok(changes)
        };
        self.run_then(ctx, work, move |this, ctx, succeeded| {
            this.resyncing = false;
            if succeeded && check_key_list {
                this.key_list_unchecked = false;
            }
            // After a failure, the retry a second later is the resync asked for meanwhile.
            if std::mem::take(&mut this.resync_again) && succeeded {
                this.resync(ctx);
            }
        });
    }

    /// Adds this replica's requests to the totals, and reads the totals back.
    fn add_served(&mut self, deltas: Vec<(usize, u64)>, ctx: &mut Context<Self>) {
        let (mut connection, names) = (self.connection.clone(), self.names.clone());
        let adding = async move {
            let mut pipe = redis::pipe();
            for (index, delta) in deltas {
                pipe.hincr(&names.served, &names.prints[index], delta).ignore();
            }
            pipe.hgetall(&names.served);
            let (totals,): (HashMap<String, u64>,) = pipe.query_async(&mut connection).await?;
            Ok::<_, redis::RedisError>(
                names.prints.iter().map(|print| totals.get(print).copied().unwrap_or(0)).collect(),
            )
        };
        ctx.spawn(adding.into_actor(self).map(|outcome, this, ctx| match outcome {
            Ok(totals) => {
                this.healthy();
                this.served_totals = totals;
            }
            Err(error) => this.failed(&error.to_string(), ctx),
        }));
    }

    /// Rejections were lifted everywhere: they are not to be written again at the next resync.
    fn forget_rejections(&mut self) {
        self.shared.retain(|_, (_, rest)| *rest != Rest::Rejected);
    }

    /// The key list is now `keys`: what is kept by index moves with its key, and the list is
    /// recorded on Redis as the last one started (without lifting rejections: a reload keeps
    /// the unchanged keys' state), then every key's rest is read back.
    fn rekey(&mut self, keys: &[NamedKey], ctx: &mut Context<Self>) {
        let names = Names::of(&self.prefix, keys.iter().map(|key| fingerprint(key.secret.expose())).collect());
        let now = |print: &String| names.prints.iter().position(|p| p == print);
        let old = &self.names.prints;
        self.shared = self.shared.drain().filter_map(|(index, rest)| Some((now(&old[index])?, rest))).collect();
        let totals: HashMap<&String, u64> = old.iter().zip(self.served_totals.iter().copied()).collect();
        self.served_totals = names.prints.iter().map(|print| totals.get(print).copied().unwrap_or(0)).collect();
        self.key_names = keys.iter().map(|key| key.name.clone()).collect();
        self.names = names;
        self.run_then(
            ctx,
            |mut connection, names| async move {
                connection.set::<_, _, ()>(&names.key_list, &names.own_key_list).await?;
                Ok(Vec::new())
            },
            |this, ctx, _| this.resync(ctx),
        );
    }

    /// An announcement from the channel, as the rotator's change; this replica's own are skipped.
    fn remote(&self, text: &str) -> Option<KeyChange<usize>> {
        let message = SharedMessage::decode(text)?;
        if message.origin == self.origin {
            return None;
        }
        message.change.keyed(|print| self.names.prints.iter().position(|p| *p == print))
    }
}

/// Rests key `index` until `until_ms` on Redis, unless it rests longer there, and announces it.
async fn write_rest(
    connection: &mut ConnectionManager,
    names: &Names,
    index: usize,
    until_ms: u64,
    rest: Rest,
    announcement: String,
) -> redis::RedisResult<()> {
    Script::new(redis_script::REST)
        .key(&names.keys[index])
        .key(&names.channel)
        .arg(until_ms)
        .arg(rest_name(rest))
        .arg(announcement)
        .invoke_async::<i64>(connection)
        .await
        .map(drop)
}

/// Lifts every rejection of this replica's keys on Redis, and announces it.
async fn clear_rejections(
    connection: &mut ConnectionManager,
    names: &Names,
    announcement: String,
) -> redis::RedisResult<()> {
    let script = Script::new(redis_script::CLEAR_REJECTIONS);
    let mut invocation = script.key(&names.channel);
    for key in &names.keys {
        invocation.key(key);
    }
    invocation.arg(announcement).invoke_async::<i64>(connection).await.map(drop)
}

/// Now, as wall-clock milliseconds.
fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(0))
}

/// Listens to the replicas' channel for as long as the actor lives, connecting again after
/// every loss; each new subscription first asks for a resync.
async fn listen(client: redis::Client, channel: String, sync: Addr<KeySync>) {
    loop {
        if let Ok(mut pubsub) = client.get_async_pubsub().await {
            if pubsub.subscribe(&channel).await.is_ok() {
                sync.do_send(Subscribed);
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    if let Ok(text) = message.get_payload::<String>() {
                        sync.do_send(Heard(text));
                    }
                }
            }
        }
        if !sync.connected() {
            return;
        }
        sync.do_send(Lost);
        tokio::time::sleep(RETRY).await;
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Subscribed;

#[derive(Message)]
#[rtype(result = "()")]
struct Heard(String);

#[derive(Message)]
#[rtype(result = "()")]
struct Lost;

impl Actor for KeySync {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let listening = listen(self.client.clone(), self.names.channel.clone(), ctx.address());
        ctx.spawn(listening.into_actor(self));
    }
}

impl Handler<Attach> for KeySync {
    type Result = ();

    fn handle(&mut self, msg: Attach, ctx: &mut Context<Self>) {
        self.rotator = Some(msg.0);
        self.resync(ctx);
    }
}

impl Handler<AttachReloader> for KeySync {
    type Result = ();

    fn handle(&mut self, msg: AttachReloader, _: &mut Context<Self>) {
        self.reloader = Some(msg.0);
    }
}

impl Handler<Subscribed> for KeySync {
    type Result = ();

    fn handle(&mut self, _: Subscribed, ctx: &mut Context<Self>) {
        self.resync(ctx);
    }
}

impl Handler<Heard> for KeySync {
    type Result = ();

    fn handle(&mut self, msg: Heard, _: &mut Context<Self>) {
        let Some(change) = self.remote(&msg.0) else {
            return;
        };
        match change {
            KeyChange::ClearRejections => self.forget_rejections(),
            KeyChange::Lift { key } => drop(self.shared.remove(&key)),
            KeyChange::Reload => {
                if let Some(reloader) = &self.reloader {
                    reloader.do_send(Reload { announce: false });
                }
                return;
            }
            KeyChange::Rest { .. } | KeyChange::Current { .. } => {}
        }
        if let Some(rotator) = &self.rotator {
            rotator.do_send(change);
        }
    }
}

impl Handler<Lost> for KeySync {
    type Result = ();

    fn handle(&mut self, _: Lost, ctx: &mut Context<Self>) {
        self.failed("the subscription to the replicas' channel was lost", ctx);
    }
}

impl Handler<Share> for KeySync {
    type Result = ();

    fn handle(&mut self, msg: Share, ctx: &mut Context<Self>) {
        match msg {
            Share::Change(KeyChange::Rest { key: index, until_ms, rest }) => {
                self.shared.insert(index, (until_ms, rest));
                let announcement = self.announce_rest(index, until_ms, rest);
                self.run(ctx, move |mut connection, names| async move {
                    write_rest(&mut connection, &names, index, until_ms, rest, announcement).await?;
                    Ok(Vec::new())
                });
            }
            Share::Change(KeyChange::Current { from, to }) => {
                let announcement = self.announce(KeyChange::Current { from: None, to: self.names.prints[to].clone() });
                // Without a known origin, the move happens only where no replica set one.
                let from = from.map_or_else(String::new, |from| self.names.prints[from].clone());
                self.run(ctx, move |mut connection, names| async move {
                    let now: String = Script::new(redis_script::MOVE_CURRENT)
                        .key(&names.current)
                        .key(&names.channel)
                        .arg(from)
                        .arg(&names.prints[to])
                        .arg(announcement)
                        .invoke_async(&mut connection)
                        .await?;
                    // Another replica moved it first: follow it.
                    let index = names.prints.iter().position(|print| *print == now);
                    let followed = index.filter(|&index| index != to).map(|to| KeyChange::Current { from: None, to });
                    Ok(followed.into_iter().collect())
                });
            }
            Share::Change(KeyChange::ClearRejections) => {
                self.forget_rejections();
                let announcement = self.announce(KeyChange::ClearRejections);
                self.run(ctx, move |mut connection, names| async move {
                    clear_rejections(&mut connection, &names, announcement).await?;
                    Ok(Vec::new())
                });
            }
            Share::Change(KeyChange::Lift { key }) => {
                self.shared.remove(&key);
                let announcement = self.announce(KeyChange::Lift { key: self.names.prints[key].clone() });
                self.run(ctx, move |mut connection, names| async move {
                    let mut pipe = redis::pipe();
                    pipe.atomic().del(&names.keys[key]).ignore().publish(&names.channel, announcement).ignore();
                    pipe.query_async::<()>(&mut connection).await?;
                    Ok(Vec::new())
                });
            }
            Share::Change(KeyChange::Reload) => {
                let announcement = self.announce(KeyChange::Reload);
                self.run(ctx, move |mut connection, names| async move {
                    connection.publish::<_, _, ()>(&names.channel, announcement).await?;
                    Ok(Vec::new())
                });
            }
            Share::Resync => self.resync(ctx),
            Share::Served(deltas) => self.add_served(deltas, ctx),
            Share::Keys(keys) => self.rekey(&keys, ctx),
        }
    }
}

impl Handler<GetSyncStatus> for KeySync {
    type Result = MessageResult<GetSyncStatus>;

    fn handle(&mut self, _: GetSyncStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(SyncStatus {
            state: if self.up { "connected" } else { "unavailable" },
            errors: self.errors.get(),
            last_error: self.last_error.clone(),
            requests_all_replicas: self.key_names.iter().cloned().zip(self.served_totals.iter().copied()).collect(),
        })
    }
}
