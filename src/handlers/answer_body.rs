//! The answer's body on its way to the client, watched once for both the metrics and the log:
//! one wrapper, one copy of the answer's end, one search of it for the usage.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use bytes::Bytes;

use crate::logging::tap::Tap;
use crate::metrics::Meter;
use crate::transform::answer_tail::Tail;

pub struct AnswerBody {
    body: BoxBody,
    meter: Meter,
    tap: Option<Tap>,
    /// The end of the answer, kept when its usage counts for the metrics or the log.
    tail: Option<Tail>,
    ended: bool,
}

impl AnswerBody {
    pub fn new(body: BoxBody, meter: Meter, mut tap: Option<Tap>) -> Self {
        if let (Some(tap), BodySize::Sized(length)) = (&mut tap, body.size()) {
            tap.expect(length);
        }
        let tail = (meter.counts_tokens() || tap.is_some()).then(Tail::default);
        Self { body, meter, tap, tail, ended: false }
    }
}

impl MessageBody for AnswerBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.body).poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(tail) = &mut this.tail {
                    tail.push(chunk);
                }
                if let Some(tap) = &mut this.tap {
                    tap.push(chunk);
                }
            }
            Poll::Ready(None) => this.ended = true,
            _ => {}
        }
        polled
    }
}

/// Done, or dropped because the client went away: the metrics and the log learn it now.
impl Drop for AnswerBody {
    fn drop(&mut self) {
        let usage = self.tail.as_ref().and_then(Tail::usage);
        if let Some(usage) = usage {
            self.meter.tokens(usage);
        }
        if let Some(tap) = self.tap.take() {
            let finish_reason = self.tail.as_ref().and_then(Tail::finish_reason);
            tap.finish(usage, finish_reason, self.ended);
        }
    }
}
