//! The budget for request bodies buffered at once (`MAX_BUFFERED_BODY_BYTES`): its limit, its
//! metric and its error, in one place.
//!
//! A body reserves its declared `Content-Length` before its first byte is read, and a body of
//! unknown length reserves its bytes as they arrive. A request that would pass the budget is
//! refused at once (503 `overloaded`); the requests already in flight keep what they hold.
//! The reservation travels with the body and is given back when the request is done with it.

use prometheus::IntGauge;

use crate::error::ProxyError;

/// The budget's count of bytes held is its gauge: one atomic per change on the request path,
/// no lock (a semaphore would take one on every release).
pub struct BodyBudget {
    limit: i64,
    /// `glm_proxy_body_bytes_buffered`: bytes reserved now.
    buffered: IntGauge,
}

/// Bytes of the budget one body holds; given back when dropped.
pub struct BodyPermit {
    bytes: usize,
    buffered: IntGauge,
}

impl BodyBudget {
    pub fn new(limit: usize, buffered: IntGauge) -> Self {
        Self { limit: i64::try_from(limit).unwrap_or(i64::MAX), buffered }
    }

    /// Reserves `bytes` for a new body, or refuses the request.
    pub fn reserve(&self, bytes: usize) -> Result<BodyPermit, ProxyError> {
        let mut permit = BodyPermit { bytes: 0, buffered: self.buffered.clone() };
        self.grow(&mut permit, bytes)?;
        Ok(permit)
    }

    /// Reserves `bytes` more for a body that is longer than it reserved.
    pub fn grow(&self, permit: &mut BodyPermit, bytes: usize) -> Result<(), ProxyError> {
        if bytes == 0 {
            return Ok(());
        }
        let more = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.buffered.add(more);
        // Concurrent reservations may each see the other's bytes and both step back: the
        // budget errs on refusing, never on holding more than its limit.
        if self.buffered.get() > self.limit {
            self.buffered.sub(more);
            return Err(ProxyError::Overloaded("request bodies buffered at once (MAX_BUFFERED_BODY_BYTES)"));
        }
        permit.bytes += bytes;
        Ok(())
    }
}

impl BodyPermit {
    /// The bytes this body holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for BodyPermit {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.buffered.sub(self.bytes as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(limit: usize) -> BodyBudget {
        BodyBudget::new(limit, IntGauge::new("buffered", "test").unwrap())
    }

    #[test]
    fn bodies_share_the_budget_and_give_it_back() {
        let budget = budget(100);
        let first = budget.reserve(60).unwrap();
        assert!(matches!(budget.reserve(41), Err(ProxyError::Overloaded(_))), "past the budget: refused");
        let mut second = budget.reserve(40).unwrap();
        assert_eq!(budget.buffered.get(), 100);
        drop(first);
        budget.grow(&mut second, 60).unwrap();
        assert_eq!((second.bytes(), budget.buffered.get()), (100, 100));
        drop(second);
        assert_eq!(budget.buffered.get(), 0);
        assert_eq!(budget.reserve(100).unwrap().bytes(), 100);
    }

    #[test]
    fn an_empty_body_holds_nothing() {
        let budget = budget(1);
        let _full = budget.reserve(1).unwrap();
        assert_eq!(budget.reserve(0).unwrap().bytes(), 0, "bodyless requests pass even when the budget is spent");
    }
}
