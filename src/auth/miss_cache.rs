//! Key hashes the database did not know, remembered for a while so a repeated bad key never
//! reaches SQLite twice in that window. Bounded: the oldest entries go first. Pure: every call
//! is given `now`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct MissCache {
    /// Hash to the instant it is forgotten.
    expiry: HashMap<Arc<str>, Instant>,
    /// The same entries in the order they came, which is the order they expire in.
    order: VecDeque<(Arc<str>, Instant)>,
    capacity: usize,
    ttl: Duration,
}

impl MissCache {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self { expiry: HashMap::new(), order: VecDeque::new(), capacity, ttl }
    }

    pub fn contains(&self, key_hash: &str, now: Instant) -> bool {
        self.expiry.get(key_hash).is_some_and(|until| *until > now)
    }

    /// Remembers a miss, making room by forgetting expired entries, then the oldest.
    pub fn insert(&mut self, key_hash: &str, now: Instant) {
        if self.capacity == 0 {
            return;
        }
        while let Some((oldest, until)) = self.order.front() {
            if *until > now && self.order.len() < self.capacity {
                break;
            }
            // A hash remembered again later has a later deadline: that entry stays.
            if self.expiry.get(oldest) == Some(until) {
                self.expiry.remove(oldest);
            }
            self.order.pop_front();
        }
        let key: Arc<str> = key_hash.into();
        let until = now + self.ttl;
        self.expiry.insert(key.clone(), until);
        self.order.push_back((key, until));
    }

    pub fn len(&self) -> usize {
        self.expiry.len()
    }

    pub fn is_empty(&self) -> bool {
        self.expiry.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(10);

    #[test]
    fn a_miss_is_remembered_for_its_ttl() {
        let mut cache = MissCache::new(10, TTL);
        let now = Instant::now();
        cache.insert("a", now);
        assert!(cache.contains("a", now + TTL - Duration::from_millis(1)));
        assert!(!cache.contains("a", now + TTL));
        assert!(!cache.contains("b", now));
    }

    #[test]
    fn it_never_holds_more_than_its_capacity_and_forgets_the_oldest_first() {
        let mut cache = MissCache::new(3, TTL);
        let now = Instant::now();
        for (i, key) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            cache.insert(key, now + Duration::from_millis(i as u64));
        }
        assert_eq!(cache.len(), 3);
        assert!(!cache.contains("a", now) && !cache.contains("b", now));
        assert!(cache.contains("e", now));
    }

    #[test]
    fn expired_entries_make_room_and_a_hash_remembered_twice_keeps_its_later_deadline() {
        let mut cache = MissCache::new(3, TTL);
        let now = Instant::now();
        // Two requests with the same unknown key both missed.
        cache.insert("a", now);
        cache.insert("a", now + Duration::from_secs(1));
        let later = now + TTL + Duration::from_millis(500);
        cache.insert("b", later);
        assert!(cache.contains("a", later), "the first entry's expiry did not forget the second");
        assert_eq!(cache.len(), 2);
        assert!(!MissCache::new(0, TTL).contains("a", now));
    }
}
