//! Token budgets by UTC calendar period: a day from midnight, a month from its first day.
//! Which period a moment falls in, and when the period renews (the `Retry-After` of a refusal).
//! A `Calendar` holds both for a whole day, so that a request reads them without a date
//! worked out.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Month,
}

impl Period {
    /// The first day of the period that holds `now`.
    pub fn start(self, now: DateTime<Utc>) -> NaiveDate {
        let today = now.date_naive();
        match self {
            Self::Day => today,
            Self::Month => today.with_day(1).expect("every month has a first day"),
        }
    }

    /// The instant the period holding `now` ends and the next begins.
    pub fn renews_at(self, now: DateTime<Utc>) -> DateTime<Utc> {
        let start = self.start(now);
        let next = match self {
            Self::Day => start.succ_opt(),
            Self::Month if start.month() == 12 => NaiveDate::from_ymd_opt(start.year() + 1, 1, 1),
            Self::Month => NaiveDate::from_ymd_opt(start.year(), start.month() + 1, 1),
        };
        // Past the calendar's end (year 262143) nothing renews: a day past `now` stands in.
        let next = next.and_then(|day| day.and_hms_opt(0, 0, 0));
        next.map_or(now + Duration::days(1), |next| Utc.from_utc_datetime(&next))
    }
}

/// The periods holding every moment of one UTC day, and when each ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calendar {
    pub day: NaiveDate,
    pub month: NaiveDate,
    /// Unix milliseconds: the first of the next day and of the next month.
    day_ends: i64,
    month_ends: i64,
}

impl Calendar {
    /// The calendar of the day holding `now` (Unix milliseconds).
    pub fn of(now: i64) -> Self {
        let at = DateTime::from_timestamp_millis(now).unwrap_or_default();
        let ends = |period: Period| period.renews_at(at).timestamp_millis();
        Self {
            day: Period::Day.start(at),
            month: Period::Month.start(at),
            day_ends: ends(Period::Day),
            month_ends: ends(Period::Month),
        }
    }

    /// Whether `now` falls in this calendar's day (a UTC day has no leap second).
    pub fn holds(&self, now: i64) -> bool {
        const DAY_MS: i64 = 86_400_000;
        (self.day_ends - DAY_MS..self.day_ends).contains(&now)
    }

    /// The first day of `period`.
    pub fn start(&self, period: Period) -> NaiveDate {
        match period {
            Period::Day => self.day,
            Period::Month => self.month,
        }
    }

    /// How long from `now` (in this calendar's day) until `period` renews.
    pub fn renews_in(&self, period: Period, now: i64) -> std::time::Duration {
        let ends = match period {
            Period::Day => self.day_ends,
            Period::Month => self.month_ends,
        };
        std::time::Duration::from_millis(ends.saturating_sub(now).max(0) as u64)
    }
}

/// Tokens spent in one period of one budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spent {
    pub period: NaiveDate,
    pub tokens: u64,
}

impl Spent {
    /// What the budget has spent in the period that began on `start` (nothing, once a new one
    /// began).
    pub fn since(self, start: NaiveDate) -> u64 {
        if self.period == start {
            self.tokens
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_day_renews_at_the_next_utc_midnight() {
        let now = at("2026-12-07T23:59:30Z");
        assert_eq!(Period::Day.start(now), NaiveDate::from_ymd_opt(2026, 12, 7).unwrap());
        assert_eq!(Period::Day.renews_at(now), at("2026-12-08T00:00:00Z"));
        let now_ms = now.timestamp_millis();
        assert_eq!(Calendar::of(now_ms).renews_in(Period::Day, now_ms), std::time::Duration::from_secs(30));
    }

    #[test]
    fn a_month_renews_on_the_first_including_across_a_year() {
        assert_eq!(Period::Month.renews_at(at("2026-02-14T10:00:00Z")), at("2026-03-01T00:00:00Z"));
        assert_eq!(Period::Month.renews_at(at("2026-12-31T23:00:00Z")), at("2027-01-01T00:00:00Z"));
        assert_eq!(Period::Month.start(at("2026-12-31T23:00:00Z")), NaiveDate::from_ymd_opt(2026, 12, 1).unwrap());
    }

    #[test]
    fn spending_belongs_to_its_period_and_a_new_one_starts_empty() {
        let spent = Spent { period: NaiveDate::from_ymd_opt(2026, 12, 7).unwrap(), tokens: 900 };
        let calendar = |text| Calendar::of(at(text).timestamp_millis());
        assert_eq!(spent.since(calendar("2026-12-07T12:00:00Z").day), 900);
        assert_eq!(spent.since(calendar("2026-12-08T00:00:01Z").day), 0);
        assert_eq!(spent.since(calendar("2026-12-31T00:00:00Z").month), 0, "a day's row is no month's");
    }

    #[test]
    fn a_calendar_holds_one_day_and_says_when_its_periods_renew() {
        let ms = |text| at(text).timestamp_millis();
        let (now, calendar) = (ms("2026-12-31T23:59:30Z"), Calendar::of(ms("2026-12-31T23:59:30Z")));
        assert_eq!(calendar.day, NaiveDate::from_ymd_opt(2026, 12, 31).unwrap());
        assert_eq!(calendar.month, NaiveDate::from_ymd_opt(2026, 12, 1).unwrap());
        assert_eq!(calendar.renews_in(Period::Day, now), std::time::Duration::from_secs(30));
        assert_eq!(calendar.renews_in(Period::Month, now), std::time::Duration::from_secs(30), "the year turns too");
        assert!(calendar.holds(ms("2026-12-31T00:00:00Z")));
        assert!(!calendar.holds(ms("2027-01-01T00:00:00Z")));
        assert!(!calendar.holds(ms("2026-12-30T23:59:59Z")), "a clock set back leaves the day");
        let february = Calendar::of(ms("2026-02-14T10:00:00Z"));
        assert_eq!(
            february.renews_in(Period::Month, ms("2026-02-28T00:00:00Z")),
            std::time::Duration::from_secs(86_400)
        );
    }
}
