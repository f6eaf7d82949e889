//! Wraps a response body to keep a copy of what the client receives, and hands the finished
//! record to the sink when the body ends, or is dropped because the client went away.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use bytes::{Bytes, BytesMut};

use super::record::{BodyCopy, RequestLog};
use super::sink::LogSink;
use crate::transform::answer_tail::Tail;

pub struct TappedBody {
    body: BoxBody,
    /// The start of what the client received, up to the sink's body limit.
    copy: BytesMut,
    length: usize,
    /// Its end, which holds the usage and the finish reason.
    tail: Tail,
    record: Option<RequestLog>,
    sink: Arc<LogSink>,
    ended: bool,
}

impl TappedBody {
    pub fn new(body: BoxBody, record: RequestLog, sink: Arc<LogSink>) -> Self {
        Self { body, copy: BytesMut::new(), length: 0, tail: Tail::default(), record: Some(record), sink, ended: false }
    }
}

impl MessageBody for TappedBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.body).poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => {
                BodyCopy::extend(&mut this.copy, &mut this.length, chunk, this.sink.body_limit());
                this.tail.push(chunk);
            }
            Poll::Ready(None) => this.ended = true,
            _ => {}
        }
        polled
    }
}

impl Drop for TappedBody {
    fn drop(&mut self) {
        if let Some(mut record) = self.record.take() {
            record.response_body = BodyCopy { kept: std::mem::take(&mut self.copy).freeze(), length: self.length };
            record.response_tail = std::mem::take(&mut self.tail);
            record.incomplete = !self.ended;
            self.sink.submit(record);
        }
    }
}
