//! The budget for request bodies buffered at once (`MAX_BUFFERED_BODY_BYTES`): its limit, its
//! metric and its error, in one place.
//!
//! A body reserves its declared `Content-Length` before its first byte is read, and a body of
//! unknown length reserves its bytes as they arrive. A request that would pass the budget is
//! refused at once (503 `overloaded`); the requests already in flight keep what they hold.
//! The reservation travels with the body and is given back when the request is done with it.

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
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

/// Why a chunk could not be added to a body being buffered.
#[derive(Debug)]
pub enum Refused {
    /// The body would pass its own limit.
    TooLarge,
    /// The budget is spent (503 `overloaded`).
    Overloaded(ProxyError),
}

/// A body being read whole, within its own limit and, for what the proxy may hold many of at
/// once, the shared budget: what the client sends, an upstream answer a door translates, an
/// upstream's error. Its memory grows as bytes arrive, never from a declared length.
pub struct Buffered<'a> {
    budget: Option<(&'a BodyBudget, BodyPermit)>,
    bytes: BytesMut,
    limit: usize,
}

/// What a body is first given to grow into: a declared length is believed only as bytes come.
const FIRST_ALLOCATION: usize = 64 * 1024;

impl<'a> Buffered<'a> {
    /// Reserves `declared` bytes (a `Content-Length`, or 0) of the budget up front.
    pub fn new(budget: &'a BodyBudget, limit: usize, declared: usize) -> Result<Self, ProxyError> {
        let permit = budget.reserve(declared)?;
        let bytes = BytesMut::with_capacity(declared.min(FIRST_ALLOCATION));
        Ok(Self { budget: Some((budget, permit)), bytes, limit })
    }

    /// A small body held within its limit alone.
    pub fn within(limit: usize) -> Self {
        Self { budget: None, bytes: BytesMut::new(), limit }
    }

    /// Adds `chunk`, or as much of it as the limit leaves room for before it refuses.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), Refused> {
        let room = self.limit - self.bytes.len();
        let taken = &chunk[..chunk.len().min(room)];
        let length = self.bytes.len() + taken.len();
        if let Some((budget, permit)) = &mut self.budget {
            let held = permit.bytes();
            if length > held {
                budget.grow(permit, length - held).map_err(Refused::Overloaded)?;
            }
        }
        self.bytes.extend_from_slice(taken);
        match taken.len() < chunk.len() {
            true => Err(Refused::TooLarge),
            false => Ok(()),
        }
    }

    /// The bytes read so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The whole body, and the budget it holds until the caller is done with it.
    pub fn finish(self) -> (Bytes, Option<BodyPermit>) {
        (self.bytes.freeze(), self.budget.map(|(_, permit)| permit))
    }
}

/// Why a body's reading stopped before its end.
#[derive(Debug)]
pub enum Stopped<E> {
    Refused(Refused),
    /// The deadline passed.
    TimedOut,
    /// The stream failed.
    Failed(E),
}

/// Reads `stream` into `body` until it ends, its deadline passes, or `body` refuses a chunk:
/// the one reader of every body the proxy holds whole.
pub async fn read_into<S, E>(
    stream: &mut S,
    body: &mut Buffered<'_>,
    deadline: Option<tokio::time::Instant>,
) -> Result<(), Stopped<E>>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    loop {
        let next = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, stream.next()).await.map_err(|_| Stopped::TimedOut)?,
            None => stream.next().await,
        };
        match next {
            None => return Ok(()),
            Some(chunk) => body.push(&chunk.map_err(Stopped::Failed)?).map_err(Stopped::Refused)?,
        }
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
    fn a_buffered_body_holds_what_it_reads_within_its_limit() {
        let budget = budget(10);
        let mut body = Buffered::new(&budget, 8, 2).unwrap();
        body.push(b"abc").unwrap();
        assert_eq!(budget.buffered.get(), 3, "past the declared length, the budget grows with the bytes");
        assert!(matches!(body.push(b"123456"), Err(Refused::TooLarge)));
        assert_eq!(body.len(), 8, "what fits is kept");
        body = Buffered::new(&budget, 8, 0).unwrap();
        body.push(b"abc").unwrap();
        let mut other = Buffered::new(&budget, 8, 0).unwrap();
        other.push(b"1234567").unwrap();
        assert!(matches!(body.push(b"x"), Err(Refused::Overloaded(_))), "the budget is spent");
        let (bytes, permit) = body.finish();
        assert_eq!((&bytes[..], permit.unwrap().bytes()), (&b"abc"[..], 3));
    }

    #[test]
    fn an_empty_body_holds_nothing() {
        let budget = budget(1);
        let _full = budget.reserve(1).unwrap();
        assert_eq!(budget.reserve(0).unwrap().bytes(), 0, "bodyless requests pass even when the budget is spent");
    }
}
