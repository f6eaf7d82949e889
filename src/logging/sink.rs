//! Where handlers drop finished records: a non-blocking send to the `LoggerActor`. The queue is
//! bounded in records (`LOG_QUEUE_CAPACITY`) and in bytes (`LOG_QUEUE_MAX_BYTES`); a record
//! that finds it full is dropped and counted, and the request never waits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::Addr;
use prometheus::{IntCounter, IntGauge};

use super::record::RequestLog;
use crate::actors::logger::{LoggerActor, WriteRecord};

pub struct LogSink {
    logger: Addr<LoggerActor>,
    dropped: IntCounter,
    /// Bytes of the records queued for the writer, which takes them off as it writes.
    queued: Arc<QueuedBytes>,
    max_queued: usize,
    body_limit: usize,
}

/// Bytes of records waiting for the writer, shared by the sink and the writer.
#[derive(Debug)]
pub struct QueuedBytes {
    bytes: AtomicUsize,
    gauge: IntGauge,
}

impl QueuedBytes {
    pub fn new(gauge: IntGauge) -> Self {
        Self { bytes: AtomicUsize::new(0), gauge }
    }

    /// A record of `weight` bytes left the queue.
    pub fn release(&self, weight: usize) {
        let left = self.bytes.fetch_sub(weight, Ordering::Relaxed) - weight;
        self.gauge.set(left as i64);
    }
}

impl LogSink {
    /// `dropped` counts the records there was no room for; `body_limit` is how much of each
    /// body a record keeps (`LOG_BODY_MAX_BYTES`, 0 with `LOG_BODIES=false`).
    pub fn new(
        logger: Addr<LoggerActor>,
        dropped: IntCounter,
        queued: Arc<QueuedBytes>,
        max_queued: usize,
        body_limit: usize,
    ) -> Self {
        Self { logger, dropped, queued, max_queued, body_limit }
    }

    pub fn submit(&self, record: RequestLog) {
        let weight = record.weight();
        let reserved = self.queued.bytes.fetch_add(weight, Ordering::Relaxed) + weight;
        let sent = reserved <= self.max_queued
            && self.logger.try_send(WriteRecord { record: Box::new(record), weight }).is_ok();
        if sent {
            self.queued.gauge.set(reserved as i64);
            return;
        }
        self.queued.release(weight);
        self.dropped.inc();
        let dropped = self.dropped.get();
        if dropped.is_power_of_two() {
            log::warn!("event=log_records_dropped total={dropped}");
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    pub fn body_limit(&self) -> usize {
        self.body_limit
    }

    pub fn logger(&self) -> &Addr<LoggerActor> {
        &self.logger
    }
}
