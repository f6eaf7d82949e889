//! One client key's limiter: its request and token windows, its requests in flight and its
//! spend this day and month, checked against the key's `Limits` as they are now (a limit
//! changed from the CLI applies to the next request, and keeps what the windows hold).
//!
//! A request is admitted in two steps: `admit` when its key is known (expiry, budgets,
//! `max_parallel`, `rpm`), then `admit_tokens` once its prompt is estimated (`tpm`). It ends
//! with `finish`, when its answer's body is done: the estimate is corrected by the usage the
//! provider reported, and the budgets are charged with it.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

use super::budget::{Calendar, Period, Spent};
use super::shared::{Answer, Counts, Push, Share};
use super::window::{Elapsed, Window};
use super::Limits;

/// The time as a limiter reads it: a monotonic instant for the windows, and for budgets and
/// expiry the calendar's time (Unix milliseconds) with the calendar of its day.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub tick: Elapsed,
    pub utc_ms: i64,
    pub calendar: Calendar,
}

impl Clock {
    /// The clock at `utc`, its calendar worked out.
    pub fn at(tick: Elapsed, utc: DateTime<Utc>) -> Self {
        let utc_ms = utc.timestamp_millis();
        Self { tick, utc_ms, calendar: Calendar::of(utc_ms) }
    }
}

/// Which limit refused a request: the `limit` label of `glm_proxy_client_limited_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Rpm,
    Tpm,
    MaxParallel,
    DailyTokens,
    MonthlyTokens,
    Expired,
    Models,
}

impl Limit {
    pub fn label(self) -> &'static str {
        match self {
            Self::Rpm => "rpm",
            Self::Tpm => "tpm",
            Self::MaxParallel => "max_parallel",
            Self::DailyTokens => "daily_tokens",
            Self::MonthlyTokens => "monthly_tokens",
            Self::Expired => "expires_at",
            Self::Models => "models",
        }
    }
}

/// Why a client's request is refused before anything of it goes upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Over `rpm`, `tpm` or `max_parallel`.
    RateLimited {
        limit: Limit,
        allowed: u64,
        retry_after: Duration,
    },
    /// A token budget is spent until it renews.
    OverBudget {
        period: Period,
        allowed: u64,
        retry_after: Duration,
    },
    Expired {
        at: DateTime<Utc>,
    },
    ModelNotAllowed {
        model: String,
        allowed: String,
    },
}

impl Refusal {
    pub fn limit(&self) -> Limit {
        match self {
            Self::RateLimited { limit, .. } => *limit,
            Self::OverBudget { period: Period::Day, .. } => Limit::DailyTokens,
            Self::OverBudget { period: Period::Month, .. } => Limit::MonthlyTokens,
            Self::Expired { .. } => Limit::Expired,
            Self::ModelNotAllowed { .. } => Limit::Models,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } | Self::OverBudget { retry_after, .. } => Some(*retry_after),
            Self::Expired { .. } | Self::ModelNotAllowed { .. } => None,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RateLimited { limit, allowed, retry_after } => {
                let what = match limit {
                    Limit::Rpm => "requests per minute (rpm)",
                    Limit::Tpm => "tokens per minute (tpm)",
                    _ => "requests in flight at once (max_parallel)",
                };
                let secs = retry_after.as_secs_f64().ceil().max(1.0);
                write!(f, "this API key's limit of {allowed} {what} is reached; retry in {secs:.0}s")
            }
            Self::OverBudget { period, allowed, .. } => {
                let (budget, renews) = match period {
                    Period::Day => ("daily", "at 00:00 UTC"),
                    Period::Month => ("monthly", "on the first of next month, 00:00 UTC"),
                };
                write!(f, "this API key's {budget} budget of {allowed} tokens is spent; it renews {renews}")
            }
            Self::Expired { at } => {
                write!(f, "this API key expired at {}", at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            }
            Self::ModelNotAllowed { model, allowed } => {
                write!(f, "this API key may not use the model {model:?}; it may use: {allowed}")
            }
        }
    }
}

/// A limit as the client's rate-limit headers show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gauge {
    pub limit: u64,
    pub remaining: u64,
    /// Until what is counted now has left the window (or the budget renews).
    pub reset: Duration,
}

/// The headers' requests and tokens; `None` where the key has no such limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateView {
    pub requests: Option<Gauge>,
    pub tokens: Option<Gauge>,
}

#[derive(Debug)]
pub struct Limiter {
    rpm: Option<Window>,
    tpm: Option<Window>,
    in_flight: u64,
    day: Spent,
    month: Spent,
    /// With replicas sharing limits on Redis, this key's share of them.
    share: Option<Share>,
}

impl Default for Limiter {
    fn default() -> Self {
        let nothing = Spent { period: NaiveDate::MIN, tokens: 0 };
        Self { rpm: None, tpm: None, in_flight: 0, day: nothing, month: nothing, share: None }
    }
}

/// The window for `limit`, made or brought to it; `None` drops a window whose limit was cleared.
fn window(slot: &mut Option<Window>, limit: Option<u64>) -> Option<&mut Window> {
    let Some(limit) = limit else {
        *slot = None;
        return None;
    };
    let window = slot.get_or_insert_with(|| Window::per_minute(limit));
    window.set_limit(limit);
    Some(window)
}

impl Limiter {
    /// A limiter whose `rpm`, `tpm` and `max_parallel` hold over every replica, through `share`.
    pub fn sharing(share: Share) -> Self {
        Self { share: Some(share), ..Self::default() }
    }

    /// The other replicas' counts (nothing for a limiter of one replica's own).
    fn others(&self) -> Counts {
        self.share.as_ref().map(Share::others).unwrap_or_default()
    }

    /// Counts a change in the share the other replicas see.
    fn count(&mut self, requests: i64, tokens: i64) {
        if let Some(share) = &mut self.share {
            share.count(requests, tokens);
        }
    }

    /// Whether one more request would go past this replica's credit between two answers from
    /// Redis: it should wait for the answer asked for.
    pub fn over_credit(&self, limits: &Limits) -> bool {
        let shared = [limits.rpm, limits.max_parallel].into_iter().flatten();
        self.share.as_ref().is_some_and(|share| share.over_credit(shared))
    }

    /// What to push to Redis now, if anything.
    pub fn start_push(&mut self) -> Option<Push> {
        let in_flight = self.in_flight;
        let share = self.share.as_mut().filter(|share| share.wants_push(in_flight))?;
        Some(share.start_push(in_flight))
    }

    /// Redis counted the last push, and said what the others hold.
    pub fn answered(&mut self, answer: Answer) {
        if let Some(share) = &mut self.share {
            share.answered(answer);
        }
    }

    /// The last push failed: it is kept, and the limits hold on this replica's traffic alone.
    pub fn cut(&mut self, push: Push) {
        if let Some(share) = &mut self.share {
            share.cut(push);
        }
    }

    /// The first step: expiry, budgets, requests in flight and per minute. Admitted, the
    /// request is counted, in flight until `finish` (or `withdraw`).
    pub fn admit(&mut self, limits: &Limits, now: Clock) -> Result<(), Refusal> {
        if let Some(at) = limits.expires_at.filter(|at| at.timestamp_millis() <= now.utc_ms) {
            return Err(Refusal::Expired { at });
        }
        for (period, allowed, spent) in
            [(Period::Day, limits.daily_tokens, self.day), (Period::Month, limits.monthly_tokens, self.month)]
        {
            if let Some(allowed) = allowed.filter(|allowed| spent.since(now.calendar.start(period)) >= *allowed) {
                let retry_after = now.calendar.renews_in(period, now.utc_ms);
                return Err(Refusal::OverBudget { period, allowed, retry_after });
            }
        }
        let others = self.others();
        let in_flight = self.in_flight + others.in_flight.max(0) as u64;
        if let Some(allowed) = limits.max_parallel.filter(|max| in_flight >= *max) {
            // A stream ends in its own time: a second is a fair wait to try again.
            return Err(Refusal::RateLimited {
                limit: Limit::MaxParallel,
                allowed,
                retry_after: Duration::from_secs(1),
            });
        }
        if let (Some(window), Some(allowed)) = (window(&mut self.rpm, limits.rpm), limits.rpm) {
            window.admit_beside(1, others.requests.max(0) as u64, now.tick).map_err(|refused| {
                Refusal::RateLimited { limit: Limit::Rpm, allowed, retry_after: refused.retry_after }
            })?;
        }
        self.in_flight += 1;
        self.count(1, 0);
        Ok(())
    }

    /// The second step, once the prompt is estimated: the tokens per minute. A refusal here
    /// leaves the request to be withdrawn.
    pub fn admit_tokens(&mut self, limits: &Limits, estimate: u64, now: Clock) -> Result<(), Refusal> {
        let others = self.others().tokens.max(0) as u64;
        let (Some(window), Some(allowed)) = (window(&mut self.tpm, limits.tpm), limits.tpm) else {
            return Ok(());
        };
        window.admit_beside(estimate, others, now.tick).map_err(|refused| Refusal::RateLimited {
            limit: Limit::Tpm,
            allowed,
            retry_after: refused.retry_after,
        })?;
        self.count(0, estimate as i64);
        Ok(())
    }

    /// A request admitted, then refused by its second step: it spends nothing, so its count
    /// in the minute is given back, and it is no longer in flight.
    pub fn withdraw(&mut self) {
        if let Some(window) = &mut self.rpm {
            window.refund(1);
        }
        self.count(-1, 0);
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// The request's answer is done: no longer in flight, the minute's tokens corrected from
    /// the `estimate` to what the provider reported, and the budgets charged with it.
    pub fn finish(&mut self, estimate: u64, used: Option<u64>, now: Clock) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let Some(used) = used else { return };
        if let Some(window) = &mut self.tpm {
            match used.checked_sub(estimate) {
                Some(more) => window.add(more, now.tick),
                None => window.refund(estimate - used),
            }
            self.count(0, used as i64 - estimate as i64);
        }
        for (spent, period) in [(&mut self.day, Period::Day), (&mut self.month, Period::Month)] {
            let start = now.calendar.start(period);
            if spent.period != start {
                *spent = Spent { period: start, tokens: 0 };
            }
            spent.tokens += used;
        }
    }

    /// What the key has spent this day and this month, as the database (and what is not
    /// flushed to it yet) says. Spend only grows within a period: a database that has not
    /// caught up with what this limiter counted lowers nothing.
    pub fn set_spent(&mut self, day: Spent, month: Spent) {
        for (mine, stored) in [(&mut self.day, day), (&mut self.month, month)] {
            if mine.period != stored.period || mine.tokens < stored.tokens {
                *mine = stored;
            }
        }
    }

    /// What the rate-limit headers say: requests per minute, and tokens per minute, or
    /// without a `tpm` the tighter budget's tokens left until it renews.
    pub fn view(&mut self, limits: &Limits, now: Clock) -> RateView {
        let others = self.others();
        let gauge = |others: i64| {
            move |window: &mut Window| Gauge {
                limit: window.limit(),
                remaining: window.remaining(now.tick).saturating_sub(others.max(0) as u64),
                reset: window.reset_after(now.tick),
            }
        };
        let requests = window(&mut self.rpm, limits.rpm).map(gauge(others.requests));
        let tokens = window(&mut self.tpm, limits.tpm).map(gauge(others.tokens));
        let tokens = tokens.or_else(|| self.budget_left(limits, now));
        RateView { requests, tokens }
    }

    fn budget_left(&self, limits: &Limits, now: Clock) -> Option<Gauge> {
        [(Period::Day, limits.daily_tokens, self.day), (Period::Month, limits.monthly_tokens, self.month)]
            .into_iter()
            .filter_map(|(period, allowed, spent)| {
                let allowed = allowed?;
                let remaining = allowed.saturating_sub(spent.since(now.calendar.start(period)));
                Some(Gauge { limit: allowed, remaining, reset: now.calendar.renews_in(period, now.utc_ms) })
            })
            .min_by_key(|gauge| gauge.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(secs: u64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 23, 59, 0).unwrap() + chrono::Duration::seconds(secs as i64)
    }

    fn at(secs: u64) -> Clock {
        Clock::at(Duration::from_secs(secs), utc(secs))
    }

    #[test]
    fn rpm_refuses_past_the_limit_and_says_when_to_retry() {
        let limits = Limits { rpm: Some(2), ..Limits::default() };
        let mut limiter = Limiter::default();
        limiter.admit(&limits, at(0)).unwrap();
        limiter.admit(&limits, at(1)).unwrap();
        let refusal = limiter.admit(&limits, at(2)).unwrap_err();
        assert_eq!(refusal.limit(), Limit::Rpm);
        let wait = refusal.retry_after().unwrap();
        assert!(wait > Duration::from_secs(55) && wait <= Duration::from_secs(61), "{wait:?}");
        assert!(refusal.to_string().contains("2 requests per minute (rpm)"), "{refusal}");
        let view = limiter.view(&limits, at(2));
        assert_eq!(view.requests.map(|g| (g.limit, g.remaining)), Some((2, 0)));
        assert!(limiter.admit(&limits, at(62)).is_ok(), "the minute passed");
    }

    #[test]
    fn max_parallel_counts_until_finish_and_a_withdrawn_request_spends_nothing() {
        let limits = Limits { max_parallel: Some(1), rpm: Some(10), ..Limits::default() };
        let mut limiter = Limiter::default();
        limiter.admit(&limits, at(0)).unwrap();
        assert_eq!(limiter.admit(&limits, at(0)).unwrap_err().limit(), Limit::MaxParallel);
        limiter.withdraw();
        assert_eq!(limiter.view(&limits, at(0)).requests.unwrap().remaining, 10);
        limiter.admit(&limits, at(0)).unwrap();
        limiter.finish(0, None, at(1));
        limiter.admit(&limits, at(1)).unwrap();
    }

    #[test]
    fn tpm_is_admitted_on_the_estimate_and_corrected_by_the_usage() {
        let limits = Limits { tpm: Some(100), ..Limits::default() };
        let mut limiter = Limiter::default();
        limiter.admit(&limits, at(0)).unwrap();
        limiter.admit_tokens(&limits, 30, at(0)).unwrap();
        limiter.finish(30, Some(90), at(0));
        assert_eq!(limiter.view(&limits, at(0)).tokens.unwrap().remaining, 10);
        limiter.admit(&limits, at(1)).unwrap();
        let refusal = limiter.admit_tokens(&limits, 20, at(1)).unwrap_err();
        assert_eq!(refusal.limit(), Limit::Tpm);
        limiter.withdraw();
        limiter.admit(&limits, at(1)).unwrap();
        limiter.admit_tokens(&limits, 50, at(1)).unwrap_err();
    }

    #[test]
    fn a_budget_refuses_once_spent_and_renews_with_its_period() {
        let limits = Limits { daily_tokens: Some(100), monthly_tokens: Some(1000), ..Limits::default() };
        let mut limiter = Limiter::default();
        limiter.admit(&limits, at(0)).unwrap();
        limiter.admit(&limits, at(0)).unwrap();
        // Both were in flight when the budget ran out: both finish, the next is refused.
        limiter.finish(0, Some(80), at(1));
        limiter.finish(0, Some(30), at(1));
        let refusal = limiter.admit(&limits, at(2)).unwrap_err();
        assert_eq!(refusal.limit(), Limit::DailyTokens);
        assert_eq!(refusal.retry_after(), Some(Duration::from_secs(58)), "until midnight UTC");
        assert_eq!(limiter.view(&limits, at(2)).tokens.map(|g| g.remaining), Some(0));
        // A new day: the daily budget renews, the monthly keeps its count.
        limiter.admit(&limits, at(61)).unwrap();
        limiter.set_spent(
            Spent { period: at(61).calendar.day, tokens: 0 },
            Spent { period: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(), tokens: 1000 },
        );
        assert_eq!(limiter.admit(&limits, at(62)).unwrap_err().limit(), Limit::MonthlyTokens);
    }

    #[test]
    fn what_the_other_replicas_hold_counts_against_every_shared_limit() {
        let limits = Limits { rpm: Some(5), tpm: Some(100), max_parallel: Some(2), ..Limits::default() };
        let mut limiter = Limiter::sharing(Share::new(2, true));
        limiter.admit(&limits, at(0)).unwrap();
        assert!(limiter.over_credit(&limits), "credit(2, 2) = 1, and no answer yet");
        assert_eq!(limiter.start_push(), Some(Counts { requests: 1, tokens: 0, in_flight: 1 }));
        let others = Counts { requests: 3, tokens: 90, in_flight: 1 };
        limiter.answered(Answer { others, replicas: 2 });
        assert!(!limiter.over_credit(&limits));
        assert_eq!(limiter.view(&limits, at(0)).requests.map(|g| g.remaining), Some(1));
        assert_eq!(limiter.admit_tokens(&limits, 20, at(0)).unwrap_err().limit(), Limit::Tpm, "90 + 20 > 100");
        limiter.withdraw();
        limiter.admit(&limits, at(0)).unwrap();
        assert_eq!(limiter.admit(&limits, at(0)).unwrap_err().limit(), Limit::MaxParallel, "1 + 1 here, 1 there");
        limiter.finish(0, None, at(1));
        limiter.admit(&limits, at(1)).unwrap();
        limiter.finish(0, None, at(1));
        assert_eq!(limiter.admit(&limits, at(1)).unwrap_err().limit(), Limit::Rpm, "2 here, 3 there");
    }

    #[test]
    fn an_expired_key_is_refused_and_a_cleared_limit_drops_its_window() {
        let expired = Limits { expires_at: Some(utc(10)), ..Limits::default() };
        let mut limiter = Limiter::default();
        assert!(limiter.admit(&expired, at(9)).is_ok());
        assert_eq!(limiter.admit(&expired, at(10)).unwrap_err().limit(), Limit::Expired);
        let limited = Limits { rpm: Some(1), ..Limits::default() };
        limiter.admit(&limited, at(11)).unwrap();
        assert!(limiter.admit(&limited, at(11)).is_err());
        assert!(limiter.admit(&Limits::default(), at(11)).is_ok(), "unlimited now");
        assert_eq!(limiter.view(&Limits::default(), at(11)), RateView::default());
    }
}
