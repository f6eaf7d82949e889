//! Where handlers drop finished records: a non-blocking send to the `LoggerActor`. When its
//! queue is full the record is dropped and counted; the request never waits.

use actix::Addr;
use prometheus::IntCounter;

use super::record::RequestLog;
use crate::actors::logger::{LoggerActor, WriteRecord};

pub struct LogSink {
    logger: Addr<LoggerActor>,
    dropped: IntCounter,
}

impl LogSink {
    /// `dropped` is the metric that counts records the logger had no room for.
    pub fn new(logger: Addr<LoggerActor>, dropped: IntCounter) -> Self {
        Self { logger, dropped }
    }

    pub fn submit(&self, record: RequestLog) {
        if self.logger.try_send(WriteRecord(Box::new(record))).is_err() {
            self.dropped.inc();
            let dropped = self.dropped.get();
            if dropped.is_power_of_two() {
                log::warn!("event=log_records_dropped total={dropped}");
            }
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    pub fn logger(&self) -> &Addr<LoggerActor> {
        &self.logger
    }
}
