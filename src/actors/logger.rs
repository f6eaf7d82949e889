//! `LoggerActor`: writes request records as JSON Lines, one file per day
//! (`LOG_DIR/YYYY-MM-DD/requests.jsonl`), on its own thread: it drains the sink's bounded queue
//! every 100 ms (or as soon as the queue is half full), writes the records in one batch and
//! flushes. It deletes day folders older than `LOG_RETENTION_DAYS`. Past `LOG_MAX_DAY_BYTES` in a
//! day, records keep their metadata and lose their bodies.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{NaiveDate, Utc};
use prometheus::IntCounter;

use super::supervision::{guarded, ActorFault, Named};
use crate::logging::record::RequestLog;
use crate::logging::sink::LogQueue;

/// How often old day folders are looked for, besides at start and at midnight.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);
/// Records are buffered and written in batches: one write per record cost a syscall each.
const WRITE_BUFFER: usize = 256 * 1024;
/// The longest a record waits in the queue, so `tail -f` stays close to live.
const DRAIN_INTERVAL: Duration = Duration::from_millis(100);

/// Drain the queue now: it is half full.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

/// Answered once every record queued before it is written: for graceful shutdown.
#[derive(Message)]
#[rtype(result = "Result<(), ActorFault>")]
pub struct Flush;

/// Where and how much the logger writes.
#[derive(Debug, Clone)]
pub struct LogFiles {
    pub dir: PathBuf,
    pub retention_days: u32,
    /// Bytes a day's file may hold with bodies (`LOG_MAX_DAY_BYTES`).
    pub max_day_bytes: u64,
    /// Whether records keep their bodies at all (`LOG_BODIES`).
    pub bodies: bool,
}

/// Today's file and how many bytes it holds.
struct Day {
    date: NaiveDate,
    file: BufWriter<File>,
    written: u64,
}

pub struct LoggerActor {
    files: LogFiles,
    queue: Arc<LogQueue>,
    bodies_omitted: IntCounter,
    today: Option<Day>,
}

impl LoggerActor {
    pub fn new(files: LogFiles, queue: Arc<LogQueue>, bodies_omitted: IntCounter) -> Self {
        Self { files, queue, bodies_omitted, today: None }
    }

    /// Writes every queued record, then flushes the file.
    fn drain(&mut self) {
        for record in self.queue.take() {
            if let Err(error) = self.write(&record) {
                log::warn!(
                    "event=log_write_failed dir={:?} error={:?}",
                    self.files.dir.display().to_string(),
                    error.to_string()
                );
                self.today = None;
            }
        }
        self.flush();
    }

    /// Today's file, opened (and its folder made) on the first record of each day.
    fn day(&mut self) -> std::io::Result<&mut Day> {
        let date = Utc::now().date_naive();
        if self.today.as_ref().is_none_or(|day| day.date != date) {
            let folder = self.files.dir.join(date.format("%Y-%m-%d").to_string());
            // Records hold prompts and answers: for the proxy's user alone.
            DirBuilder::new().recursive(true).mode(0o700).create(&folder)?;
            let file = OpenOptions::new().create(true).append(true).mode(0o600).open(folder.join("requests.jsonl"))?;
            // A restart on the same day goes on counting from what the file holds.
            let written = file.metadata()?.len();
            // A BufWriter writes whole buffers or whole oversized records, so each record is
            // written in one piece and readers never see half a line.
            self.today = Some(Day { date, file: BufWriter::with_capacity(WRITE_BUFFER, file), written });
            self.prune();
        }
        self.today.as_mut().ok_or_else(|| std::io::Error::other("no log file open"))
    }

    fn write(&mut self, record: &RequestLog) -> std::io::Result<()> {
        let (max_day_bytes, keep_bodies) = (self.files.max_day_bytes, self.files.bodies);
        let day = self.day()?;
        let bodies = keep_bodies && day.written < max_day_bytes;
        let mut line = Vec::with_capacity(record.weight());
        record.write_json(bodies, &mut line)?;
        day.file.write_all(&line)?;
        day.written += line.len() as u64;
        if keep_bodies && !bodies {
            self.bodies_omitted.inc();
        }
        Ok(())
    }

    fn flush(&mut self) {
        if let Some(Day { file, .. }) = &mut self.today {
            if let Err(error) = file.flush() {
                log::warn!("event=log_flush_failed error={error}");
            }
        }
    }

    fn prune(&self) {
        if self.files.retention_days == 0 {
            return;
        }
        let oldest_kept = Utc::now().date_naive() - chrono::Days::new(u64::from(self.files.retention_days) - 1);
        for (date, path) in day_folders(&self.files.dir) {
            if date < oldest_kept {
                match std::fs::remove_dir_all(&path) {
                    Ok(()) => log::info!("event=log_retention removed={}", path.display()),
                    Err(error) => log::warn!("event=log_retention_failed path={} error={error}", path.display()),
                }
            }
        }
    }
}

/// The `YYYY-MM-DD` folders under the log directory; anything else is left alone.
fn day_folders(dir: &Path) -> Vec<(NaiveDate, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let date = NaiveDate::parse_from_str(e.file_name().to_str()?, "%Y-%m-%d").ok()?;
            Some((date, e.path()))
        })
        .collect()
}

impl Named for LoggerActor {
    const NAME: &'static str = "request logger";
}

impl Actor for LoggerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.prune();
        ctx.run_interval(PRUNE_INTERVAL, |this, _| this.prune());
        ctx.run_interval(DRAIN_INTERVAL, |this, ctx| {
            let _ = guarded(this, ctx, |this, _| this.drain());
        });
    }
}

/// The file is reopened after a restart; queued records are kept.
impl Supervised for LoggerActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.today = None;
    }
}

impl Handler<Drain> for LoggerActor {
    type Result = ();

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) {
        let _ = guarded(self, ctx, |this, _| this.drain());
    }
}

impl Handler<Flush> for LoggerActor {
    type Result = Result<(), ActorFault>;

    fn handle(&mut self, _: Flush, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, |this, _| this.drain())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_removes_only_old_day_folders() {
        let dir = tempfile::tempdir().unwrap();
        let today = Utc::now().date_naive();
        let day = |days_ago: u64| (today - chrono::Days::new(days_ago)).format("%Y-%m-%d").to_string();
        for name in [day(0), day(1), day(2), day(10), "not-a-date".to_owned()] {
            std::fs::create_dir_all(dir.path().join(name)).unwrap();
        }
        let files = LogFiles { dir: dir.path().to_owned(), retention_days: 2, max_day_bytes: 1, bodies: true };
        let gauge = prometheus::IntGauge::new("queued", "test").unwrap();
        let omitted = IntCounter::new("omitted", "test").unwrap();
        LoggerActor::new(files, Arc::new(LogQueue::new(16, 1 << 20, gauge)), omitted).prune();
        let mut left: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        let mut expected = vec![day(0), day(1), "not-a-date".to_owned()];
        expected.sort();
        assert_eq!(left, expected);
    }
}
