//! What replicas tell each other about their key pools, and how it travels on Redis: pure
//! encoding, no I/O.
//!
//! A key is named by its fingerprint (the first 16 hex digits of its SHA-256), never by its
//! value, and never by the operator's name for it, which replicas need not share. Deadlines are
//! wall-clock milliseconds since the Unix epoch, the one clock replicas have in common.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::auth::client_key;
use crate::policy::key_pool::Rest;

/// A key's name on Redis.
pub fn fingerprint(secret: &str) -> String {
    client_key::hash(secret)[..16].to_owned()
}

/// A change to one pool's keys: made by a replica's rotator, shared through Redis, and applied
/// by the other replicas' rotators. `K` names the key: its index in the pool inside a replica,
/// its fingerprint on Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange<K> {
    /// The key rests until `until_ms`: cooling down (a 429) or rejected (a 401).
    Rest { key: K, until_ms: u64, rest: Rest },
    /// The sticky key moved to `to`. `from` is where the replica that moved it had it, so that
    /// replicas moving it at once move it once; it is not announced.
    Current { from: Option<K>, to: K },
    /// Every rejection was lifted (SIGHUP on one replica).
    ClearRejections,
    /// An operator ended the key's rest or rejection (`POST /admin/upstream-keys/{name}/reset`).
    Lift { key: K },
    /// A replica reloaded its key list (`CEREBRAS_API_KEYS_FILE`): the others reload theirs.
    Reload,
}

impl<K> KeyChange<K> {
    /// The same change with its keys named by `name`; `None` if a key has no name there (a key
    /// another replica has and this one has not).
    pub fn keyed<J>(self, mut name: impl FnMut(K) -> Option<J>) -> Option<KeyChange<J>> {
        Some(match self {
            Self::Rest { key, until_ms, rest } => KeyChange::Rest { key: name(key)?, until_ms, rest },
            Self::Current { from, to } => KeyChange::Current { from: from.and_then(&mut name), to: name(to)? },
            Self::ClearRejections => KeyChange::ClearRejections,
            Self::Lift { key } => KeyChange::Lift { key: name(key)? },
            Self::Reload => KeyChange::Reload,
        })
    }
}

/// A rest as Redis stores it, in the words older replicas wrote.
pub fn rest_name(rest: Rest) -> &'static str {
    match rest {
        Rest::CoolingDown => "cooling",
        Rest::Rejected => "invalid",
    }
}

pub fn rest_named(name: &str) -> Option<Rest> {
    match name {
        "cooling" => Some(Rest::CoolingDown),
        "invalid" => Some(Rest::Rejected),
        _ => None,
    }
}

/// A change from its origin replica: `origin kind args…`, space-separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub origin: String,
    pub change: KeyChange<String>,
}

impl Message {
    pub fn encode(&self) -> String {
        match &self.change {
            KeyChange::Rest { key, until_ms, rest } => {
                format!("{} rest {key} {until_ms} {}", self.origin, rest_name(*rest))
            }
            KeyChange::Current { to, .. } => format!("{} current {to}", self.origin),
            KeyChange::ClearRejections => format!("{} clear", self.origin),
            KeyChange::Lift { key } => format!("{} lift {key}", self.origin),
            KeyChange::Reload => format!("{} reload", self.origin),
        }
    }

    /// `None` for anything this version does not know (a newer replica's change, or noise).
    pub fn decode(text: &str) -> Option<Self> {
        let mut words = text.split(' ');
        let origin = words.next()?.to_owned();
        let change = match (words.next()?, words.next(), words.next(), words.next()) {
            ("rest", Some(key), Some(until), Some(rest)) => {
                KeyChange::Rest { key: key.to_owned(), until_ms: until.parse().ok()?, rest: rest_named(rest)? }
            }
            ("current", Some(key), None, None) => KeyChange::Current { from: None, to: key.to_owned() },
            ("clear", None, None, None) => KeyChange::ClearRejections,
            ("lift", Some(key), None, None) => KeyChange::Lift { key: key.to_owned() },
            ("reload", None, None, None) => KeyChange::Reload,
            _ => return None,
        };
        Some(Self { origin, change })
    }
}

/// A local deadline as wall-clock milliseconds.
pub fn to_wall_ms(until: Instant, now: Instant, wall_now: SystemTime) -> u64 {
    let wall = wall_now + until.saturating_duration_since(now);
    wall.duration_since(UNIX_EPOCH).map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

/// A wall-clock deadline as a local one; `None` when it has passed (or lies past the clocks'
/// range). The key pool caps how far one may lie.
pub fn from_wall_ms(until_ms: u64, now: Instant, wall_now: SystemTime) -> Option<Instant> {
    let until = UNIX_EPOCH.checked_add(Duration::from_millis(until_ms))?;
    let left = until.duration_since(wall_now).ok().filter(|left| !left.is_zero())?;
    now.checked_add(left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_survive_the_trip() {
        for change in [
            KeyChange::Rest { key: "0123456789abcdef".into(), until_ms: 1_764_000_000_000, rest: Rest::CoolingDown },
            KeyChange::Rest { key: "fedcba9876543210".into(), until_ms: 1, rest: Rest::Rejected },
            KeyChange::Current { from: None, to: "0123456789abcdef".into() },
            KeyChange::ClearRejections,
            KeyChange::Lift { key: "0123456789abcdef".into() },
            KeyChange::Reload,
        ] {
            let message = Message { origin: "a1b2".into(), change };
            assert_eq!(Message::decode(&message.encode()), Some(message));
        }
    }

    #[test]
    fn unknown_or_broken_changes_are_ignored() {
        for text in [
            "",
            "a1b2",
            "a1b2 rest k",
            "a1b2 rest k soon cooling",
            "a1b2 rest k 5 tired",
            "a1b2 jump k",
            "a1b2 lift",
            "a1b2 reload k",
        ] {
            assert_eq!(Message::decode(text), None, "{text:?}");
        }
    }

    #[test]
    fn a_fingerprint_is_short_and_not_the_key() {
        let print = fingerprint("csk-secret-value");
        assert_eq!(print.len(), 16);
        assert!(!print.contains("secret"));
        assert_eq!(print, fingerprint("csk-secret-value"));
    }

    #[test]
    fn deadlines_cross_between_the_two_clocks() {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let until = now + Duration::from_secs(30);
        let ms = to_wall_ms(until, now, wall);
        let back = from_wall_ms(ms, now, wall).unwrap();
        assert!(back.duration_since(now).abs_diff(Duration::from_secs(30)) < Duration::from_millis(2));
        assert_eq!(from_wall_ms(to_wall_ms(now, now, wall) - 1, now, wall), None, "passed");
    }
}
