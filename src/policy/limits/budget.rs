//! Token budgets by UTC calendar period: a day from midnight, a month from its first day.
//! Which period a moment falls in, and when the period renews (the `Retry-After` of a refusal).

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

    /// How long from `now` until the period renews.
    pub fn renews_in(self, now: DateTime<Utc>) -> std::time::Duration {
        (self.renews_at(now) - now).to_std().unwrap_or_default()
    }
}

/// Tokens spent in one period of one budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spent {
    pub period: NaiveDate,
    pub tokens: u64,
}

impl Spent {
    /// What the budget has spent in the period holding `now` (nothing, once a new one began).
    pub fn in_period(self, period: Period, now: DateTime<Utc>) -> u64 {
        if self.period == period.start(now) {
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
        assert_eq!(Period::Day.renews_in(now), std::time::Duration::from_secs(30));
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
        assert_eq!(spent.in_period(Period::Day, at("2026-12-07T12:00:00Z")), 900);
        assert_eq!(spent.in_period(Period::Day, at("2026-12-08T00:00:01Z")), 0);
        assert_eq!(spent.in_period(Period::Month, at("2026-12-31T00:00:00Z")), 0, "a day's row is no month's");
    }
}
