//! What replicas tell each other about the Cerebras keys, as it travels on Redis: pure
//! encoding, no I/O.
//!
//! A key is named by its fingerprint (the first 16 hex digits of its SHA-256), never by its
//! value, and never by the operator's name for it, which replicas need not share. Deadlines are
//! wall-clock milliseconds since the Unix epoch, the one clock replicas have in common.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::auth::client_key;
use crate::policy::key_pool::KeyState;

/// A key's name on Redis.
pub fn fingerprint(secret: &str) -> String {
    client_key::hash(secret)[..16].to_owned()
}

/// One change, as published on the replicas' channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The key rests until `until_ms`: cooling down (a 429) or rejected (a 401).
    Rest { key: String, until_ms: u64, invalid: bool },
    /// The sticky key moved to `key`.
    Current { key: String },
    /// Every rejection was lifted (SIGHUP on one replica).
    ClearRejections,
}

/// An event from its origin replica: `origin kind args…`, space-separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub origin: String,
    pub event: Event,
}

impl Message {
    pub fn encode(&self) -> String {
        match &self.event {
            Event::Rest { key, until_ms, invalid } => {
                let state = if *invalid { "invalid" } else { "cooling" };
                format!("{} rest {key} {until_ms} {state}", self.origin)
            }
            Event::Current { key } => format!("{} current {key}", self.origin),
            Event::ClearRejections => format!("{} clear", self.origin),
        }
    }

    /// `None` for anything this version does not know (a newer replica's event, or noise).
    pub fn decode(text: &str) -> Option<Self> {
        let mut words = text.split(' ');
        let origin = words.next()?.to_owned();
        let event = match (words.next()?, words.next(), words.next(), words.next()) {
            ("rest", Some(key), Some(until), Some(state)) => Event::Rest {
                key: key.to_owned(),
                until_ms: until.parse().ok()?,
                invalid: match state {
                    "invalid" => true,
                    "cooling" => false,
                    _ => return None,
                },
            },
            ("current", Some(key), None, None) => Event::Current { key: key.to_owned() },
            ("clear", None, None, None) => Event::ClearRejections,
            _ => return None,
        };
        Some(Self { origin, event })
    }
}

/// The state a rest puts a key in.
pub fn state(invalid: bool) -> KeyState {
    if invalid {
        KeyState::Invalid
    } else {
        KeyState::CoolingDown
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
    fn events_survive_the_trip() {
        for event in [
            Event::Rest { key: "0123456789abcdef".into(), until_ms: 1_764_000_000_000, invalid: false },
            Event::Rest { key: "fedcba9876543210".into(), until_ms: 1, invalid: true },
            Event::Current { key: "0123456789abcdef".into() },
            Event::ClearRejections,
        ] {
            let message = Message { origin: "a1b2".into(), event };
            assert_eq!(Message::decode(&message.encode()), Some(message));
        }
    }

    #[test]
    fn unknown_or_broken_events_are_ignored() {
        for text in ["", "a1b2", "a1b2 rest k", "a1b2 rest k soon cooling", "a1b2 rest k 5 tired", "a1b2 jump k"] {
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
