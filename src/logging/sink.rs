//! Where handlers drop finished records: a bounded queue that the `LoggerActor` drains on its
//! own timer. Handing a record over is one short lock and no wake-up of the logger's thread
//! (a message per record cost a cross-thread wake each, a quarter of the throughput). The queue
//! is bounded in records (`LOG_QUEUE_CAPACITY`) and in bytes (`LOG_QUEUE_MAX_BYTES`); a record
//! that finds it full is dropped and counted, and the request never waits.

use std::sync::Arc;

use actix::Addr;
use parking_lot::Mutex;
use prometheus::{IntCounter, IntGauge};

use super::record::RequestLog;
use crate::actors::logger::{Drain, LoggerActor};

/// Records waiting for the writer.
pub struct LogQueue {
    waiting: Mutex<Waiting>,
    max_records: usize,
    max_bytes: usize,
    /// `glm_proxy_log_queue_bytes`.
    gauge: IntGauge,
}

#[derive(Default)]
struct Waiting {
    records: Vec<RequestLog>,
    bytes: usize,
}

impl LogQueue {
    pub fn new(max_records: usize, max_bytes: usize, gauge: IntGauge) -> Self {
        Self { waiting: Mutex::default(), max_records, max_bytes, gauge }
    }

    /// Queues a record, or drops it (`None`) when the queue is full. `Some(true)` when the queue
    /// is now half full, and worth draining before the timer.
    fn push(&self, record: RequestLog) -> Option<bool> {
        let weight = record.weight();
        let mut waiting = self.waiting.lock();
        if waiting.records.len() >= self.max_records || waiting.bytes + weight > self.max_bytes {
            return None;
        }
        waiting.records.push(record);
        waiting.bytes += weight;
        self.gauge.set(waiting.bytes as i64);
        Some(waiting.records.len() == self.max_records / 2)
    }

    /// Every waiting record, in the order they came.
    pub fn take(&self) -> Vec<RequestLog> {
        let mut waiting = self.waiting.lock();
        self.gauge.set(0);
        std::mem::take(&mut *waiting).records
    }
}

pub struct LogSink {
    logger: Addr<LoggerActor>,
    queue: Arc<LogQueue>,
    dropped: IntCounter,
    body_limit: usize,
}

impl LogSink {
    /// `dropped` counts the records there was no room for; `body_limit` is how much of each
    /// body a record keeps (`LOG_BODY_MAX_BYTES`, 0 with `LOG_BODIES=false`).
    pub fn new(logger: Addr<LoggerActor>, queue: Arc<LogQueue>, dropped: IntCounter, body_limit: usize) -> Self {
        Self { logger, queue, dropped, body_limit }
    }

    pub fn submit(&self, record: RequestLog) {
        match self.queue.push(record) {
            Some(false) => {}
            Some(true) => self.logger.do_send(Drain),
            None => {
                self.dropped.inc();
                let dropped = self.dropped.get();
                if dropped.is_power_of_two() {
                    log::warn!("event=log_records_dropped total={dropped}");
                }
            }
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    pub fn body_limit(&self) -> usize {
        self.body_limit
    }

    /// Whether records keep bodies and headers (`LOG_BODIES`).
    pub fn bodies(&self) -> bool {
        self.body_limit > 0
    }

    pub fn logger(&self) -> &Addr<LoggerActor> {
        &self.logger
    }
}
