//! Where handlers drop finished records: a non-blocking send to the `LoggerActor`. When its
//! queue is full the record is dropped and counted; the request never waits.

use std::sync::atomic::{AtomicU64, Ordering};

use actix::Addr;

use super::record::RequestLog;
use crate::actors::logger::{LoggerActor, WriteRecord};

pub struct LogSink {
    logger: Addr<LoggerActor>,
    dropped: AtomicU64,
}

impl LogSink {
    pub fn new(logger: Addr<LoggerActor>) -> Self {
        Self { logger, dropped: AtomicU64::new(0) }
    }

    pub fn submit(&self, record: RequestLog) {
        if self.logger.try_send(WriteRecord(Box::new(record))).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                log::warn!("event=log_records_dropped total={dropped}");
            }
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn logger(&self) -> &Addr<LoggerActor> {
        &self.logger
    }
}
