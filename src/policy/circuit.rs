//! A provider's health, as a circuit: **closed** (requests go), **open** until a deadline
//! (requests go to the next provider, or get a 502 at once), then **half-open**: one request,
//! the probe, goes, and its outcome closes the circuit or opens it again for twice as long
//! (bounded).
//!
//! Pure: the `UpstreamRouter` owns a `Circuit` per provider and publishes its `CircuitView`,
//! which workers read without a message.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::deadline;

/// What an attempt said about the provider as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthFault {
    /// No connection: refused, DNS, TLS, connect timeout. Opens the circuit at once.
    Unreachable,
    /// Sent, then lost: 502/503/504, a reset, a close without an answer, no answer in time.
    /// Opens the circuit only when it repeats across distinct requests.
    Lost,
}

/// The circuit's timings and threshold (`CIRCUIT_*` settings).
#[derive(Debug, Clone, Copy)]
pub struct CircuitPolicy {
    /// Lost requests in a row that open the circuit.
    pub threshold: u32,
    /// The first open period; each failed probe doubles it, up to `max_open`.
    pub open_for: Duration,
    pub max_open: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open {
        until: Instant,
    },
    /// Past the deadline, one request (the probe) is trying the provider.
    HalfOpen,
}

/// What workers read of a circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitView {
    pub state: CircuitState,
    /// Lost requests in a row so far: while above zero, an answer is worth reporting.
    pub strikes: u32,
}

impl CircuitView {
    pub const CLOSED: Self = Self { state: CircuitState::Closed, strikes: 0 };

    /// May a request go to the provider now?
    pub fn admission(&self, now: Instant) -> Admission {
        match self.state {
            CircuitState::Closed => Admission::Go,
            CircuitState::Open { until } if until > now => Admission::Skip { retry_after: until - now },
            CircuitState::Open { .. } => Admission::Probe,
            CircuitState::HalfOpen => Admission::Skip { retry_after: PROBE_WAIT },
        }
    }
}

/// How long others are told to wait while a probe is out.
const PROBE_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Go,
    /// The circuit is open: go elsewhere, or tell the client to come back after `retry_after`.
    Skip {
        retry_after: Duration,
    },
    /// The deadline has passed: ask to be the probe.
    Probe,
}

/// The circuit's state as `/_status` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitLabel {
    #[default]
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug, Clone)]
pub struct Circuit {
    state: CircuitState,
    strikes: u32,
    /// Opens since the circuit was last closed: each doubles the next open period.
    reopened: u32,
    /// Every open, for `/_status`.
    pub opens: u64,
}

impl Default for Circuit {
    fn default() -> Self {
        Self { state: CircuitState::Closed, strikes: 0, reopened: 0, opens: 0 }
    }
}

impl Circuit {
    pub fn view(&self) -> CircuitView {
        CircuitView { state: self.state, strikes: self.strikes }
    }

    pub fn label(&self) -> CircuitLabel {
        match self.state {
            CircuitState::Closed => CircuitLabel::Closed,
            CircuitState::Open { .. } => CircuitLabel::Open,
            CircuitState::HalfOpen => CircuitLabel::HalfOpen,
        }
    }

    /// Seconds until requests go again; 0 when they go now.
    pub fn open_for(&self, now: Instant) -> f64 {
        match self.state {
            CircuitState::Open { until } => until.saturating_duration_since(now).as_secs_f64(),
            _ => 0.0,
        }
    }

    /// The provider answered (whatever the answer): the strikes end, and a probe closes the
    /// circuit. An answer to a request sent before the circuit opened changes nothing.
    pub fn responded(&mut self) {
        match self.state {
            CircuitState::Open { .. } => {}
            CircuitState::Closed | CircuitState::HalfOpen => {
                self.state = CircuitState::Closed;
                self.strikes = 0;
                self.reopened = 0;
            }
        }
    }

    /// The provider failed a request. Returns how long the circuit is now open, if this opened it.
    pub fn failed(&mut self, fault: HealthFault, now: Instant, policy: &CircuitPolicy) -> Option<Duration> {
        let opens = match (self.state, fault) {
            // Requests sent before it opened may still fail; the deadline stands.
            (CircuitState::Open { .. }, _) => false,
            (CircuitState::HalfOpen, _) | (CircuitState::Closed, HealthFault::Unreachable) => true,
            (CircuitState::Closed, HealthFault::Lost) => {
                self.strikes += 1;
                self.strikes >= policy.threshold
            }
        };
        opens.then(|| self.open(now, policy))
    }

    fn open(&mut self, now: Instant, policy: &CircuitPolicy) -> Duration {
        let doubling = 2u32.saturating_pow(self.reopened);
        let period = policy.open_for.saturating_mul(doubling).min(policy.max_open);
        self.state = CircuitState::Open { until: deadline(now, period) };
        self.strikes = 0;
        self.reopened = self.reopened.saturating_add(1);
        self.opens += 1;
        period
    }

    /// A request past the deadline asks to be the probe. `Ok` lets it go (as the probe, or
    /// because the circuit has closed meanwhile); `Err` says how long to stay away.
    pub fn claim_probe(&mut self, now: Instant) -> Result<(), Duration> {
        match self.view().admission(now) {
            Admission::Go => Ok(()),
            Admission::Skip { retry_after } => Err(retry_after),
            Admission::Probe => {
                self.state = CircuitState::HalfOpen;
                Ok(())
            }
        }
    }

    /// The probe ended without an outcome (its client left): the next request may probe.
    pub fn abandon_probe(&mut self, now: Instant) {
        if self.state == CircuitState::HalfOpen {
            self.state = CircuitState::Open { until: now };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: CircuitPolicy =
        CircuitPolicy { threshold: 3, open_for: Duration::from_secs(5), max_open: Duration::from_secs(60) };

    fn lost(circuit: &mut Circuit, now: Instant) -> Option<Duration> {
        circuit.failed(HealthFault::Lost, now, &POLICY)
    }

    #[test]
    fn an_unreachable_provider_opens_the_circuit_at_once() {
        let mut circuit = Circuit::default();
        let now = Instant::now();
        assert_eq!(circuit.failed(HealthFault::Unreachable, now, &POLICY), Some(POLICY.open_for));
        assert_eq!(circuit.view().admission(now), Admission::Skip { retry_after: POLICY.open_for });
        assert_eq!(circuit.label(), CircuitLabel::Open);
    }

    #[test]
    fn lost_requests_open_it_only_three_in_a_row() {
        let mut circuit = Circuit::default();
        let now = Instant::now();
        assert_eq!(lost(&mut circuit, now), None);
        assert_eq!(lost(&mut circuit, now), None);
        assert_eq!(circuit.view().strikes, 2);
        circuit.responded();
        assert_eq!((lost(&mut circuit, now), lost(&mut circuit, now)), (None, None), "an answer resets the count");
        assert_eq!(lost(&mut circuit, now), Some(POLICY.open_for));
        assert_eq!(circuit.opens, 1);
    }

    #[test]
    fn past_the_deadline_one_probe_goes_and_its_answer_closes_the_circuit() {
        let mut circuit = Circuit::default();
        let now = Instant::now();
        circuit.failed(HealthFault::Unreachable, now, &POLICY);
        let later = now + POLICY.open_for;
        assert_eq!(circuit.view().admission(later), Admission::Probe);
        assert_eq!(circuit.claim_probe(later), Ok(()));
        assert_eq!(circuit.claim_probe(later), Err(PROBE_WAIT), "one probe at a time");
        assert_eq!(circuit.label(), CircuitLabel::HalfOpen);
        circuit.responded();
        assert_eq!(circuit.view(), CircuitView::CLOSED);
    }

    #[test]
    fn a_failed_probe_opens_it_again_for_twice_as_long_up_to_the_maximum() {
        let mut circuit = Circuit::default();
        let mut now = Instant::now();
        let mut periods = vec![circuit.failed(HealthFault::Unreachable, now, &POLICY).unwrap()];
        for _ in 0..5 {
            now += *periods.last().unwrap();
            circuit.claim_probe(now).unwrap();
            periods.push(lost(&mut circuit, now).expect("a failed probe opens the circuit"));
        }
        let secs: Vec<u64> = periods.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [5, 10, 20, 40, 60, 60]);
        // Once closed, the next open starts short again.
        now += Duration::from_secs(60);
        circuit.claim_probe(now).unwrap();
        circuit.responded();
        assert_eq!(circuit.failed(HealthFault::Unreachable, now, &POLICY), Some(POLICY.open_for));
    }

    #[test]
    fn failures_and_answers_of_requests_sent_before_the_open_change_nothing() {
        let mut circuit = Circuit::default();
        let now = Instant::now();
        circuit.failed(HealthFault::Unreachable, now, &POLICY);
        assert_eq!(lost(&mut circuit, now + Duration::from_secs(1)), None);
        circuit.responded();
        assert_eq!(circuit.view().admission(now), Admission::Skip { retry_after: POLICY.open_for });
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_request_probe() {
        let mut circuit = Circuit::default();
        let now = Instant::now();
        circuit.failed(HealthFault::Unreachable, now, &POLICY);
        let later = now + POLICY.open_for;
        circuit.claim_probe(later).unwrap();
        circuit.abandon_probe(later);
        assert_eq!(circuit.claim_probe(later), Ok(()));
    }
}
