//! Wraps a response body to keep a copy of what the client receives, and hands the finished
//! record to the sink when the body ends, or is dropped because the client went away.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use bytes::{Bytes, BytesMut};

use super::record::RequestLog;
use super::sink::LogSink;

pub struct TappedBody {
    body: BoxBody,
    copy: BytesMut,
    record: Option<RequestLog>,
    sink: Arc<LogSink>,
    ended: bool,
}

impl TappedBody {
    pub fn new(body: BoxBody, record: RequestLog, sink: Arc<LogSink>) -> Self {
        Self { body, copy: BytesMut::new(), record: Some(record), sink, ended: false }
    }
}

impl MessageBody for TappedBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => self.copy.extend_from_slice(chunk),
            Poll::Ready(None) => self.ended = true,
            _ => {}
        }
        polled
    }
}

impl Drop for TappedBody {
    fn drop(&mut self) {
        if let Some(mut record) = self.record.take() {
            record.response_body = std::mem::take(&mut self.copy).freeze();
            record.incomplete = !self.ended;
            self.sink.submit(record);
        }
    }
}
