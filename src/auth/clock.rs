//! The limiters' clock, read at each step of a limited request: one monotonic read. The
//! calendar's time is that plus an offset taken from the system clock at most once a second
//! (so a system clock that is set is followed within a second), and each worker keeps the
//! calendar of the day it is in, worked out again only when the day changes.

use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use chrono::Utc;

use crate::policy::limits::budget::Calendar;
use crate::policy::limits::limiter::Clock;
use crate::policy::limits::window::millis;

pub struct LimitClock {
    epoch: Instant,
    /// The system clock's Unix milliseconds less the monotonic ones since `epoch`.
    offset_ms: AtomicI64,
    /// When, in monotonic milliseconds, the offset is next taken again.
    next_sync_ms: AtomicU64,
}

thread_local! {
    static CALENDAR: Cell<Option<Calendar>> = const { Cell::new(None) };
}

impl Default for LimitClock {
    fn default() -> Self {
        Self { epoch: Instant::now(), offset_ms: AtomicI64::new(0), next_sync_ms: AtomicU64::new(0) }
    }
}

impl LimitClock {
    pub fn now(&self) -> Clock {
        let tick = self.epoch.elapsed();
        let tick_ms = millis(tick);
        // Two workers syncing at once store the same offset, near enough: no lock needed.
        if tick_ms >= self.next_sync_ms.load(Relaxed) {
            self.offset_ms.store(Utc::now().timestamp_millis() - tick_ms as i64, Relaxed);
            self.next_sync_ms.store(tick_ms + 1000, Relaxed);
        }
        let utc_ms = self.offset_ms.load(Relaxed) + tick_ms as i64;
        let calendar = CALENDAR.with(|cached| match cached.get() {
            Some(calendar) if calendar.holds(utc_ms) => calendar,
            _ => {
                let calendar = Calendar::of(utc_ms);
                cached.set(Some(calendar));
                calendar
            }
        });
        Clock { tick, utc_ms, calendar }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_follows_the_system_clock_and_its_day() {
        let clock = LimitClock::default();
        let (first, system) = (clock.now(), Utc::now());
        assert!((first.utc_ms - system.timestamp_millis()).abs() < 1000, "{} vs {system}", first.utc_ms);
        assert_eq!(first.calendar, Calendar::of(first.utc_ms));
        let second = clock.now();
        assert!(second.tick >= first.tick && second.utc_ms >= first.utc_ms);
    }
}
