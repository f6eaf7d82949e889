//! `LoggerActor`: writes request records as JSON Lines, one file per day
//! (`LOG_DIR/YYYY-MM-DD/requests.jsonl`), buffered and flushed every 200 ms, on its own thread,
//! and deletes day folders older than `LOG_RETENTION_DAYS`. Its mailbox is bounded: a sink that
//! finds it full drops the record.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{NaiveDate, Utc};

use super::supervision::{guarded, ActorFault, Named};
use crate::logging::record::RequestLog;

/// How often old day folders are looked for, besides at start and at midnight.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);
/// Records are buffered and written in batches: one write per record cost a syscall each.
const WRITE_BUFFER: usize = 256 * 1024;
/// The longest a record waits in the buffer, so `tail -f` stays close to live.
const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

#[derive(Message)]
#[rtype(result = "()")]
pub struct WriteRecord(pub Box<RequestLog>);

/// Answered once every record queued before it is written: for graceful shutdown.
#[derive(Message)]
#[rtype(result = "Result<(), ActorFault>")]
pub struct Flush;

pub struct LoggerActor {
    dir: PathBuf,
    retention_days: u32,
    queue_capacity: usize,
    today: Option<(NaiveDate, BufWriter<File>)>,
}

impl LoggerActor {
    pub fn new(dir: PathBuf, retention_days: u32, queue_capacity: usize) -> Self {
        Self { dir, retention_days, queue_capacity, today: None }
    }

    /// Today's file, opened (and its folder made) on the first record of each day.
    fn file(&mut self) -> std::io::Result<&mut BufWriter<File>> {
        let date = Utc::now().date_naive();
        if self.today.as_ref().is_none_or(|(open, _)| *open != date) {
            let folder = self.dir.join(date.format("%Y-%m-%d").to_string());
            std::fs::create_dir_all(&folder)?;
            let file = OpenOptions::new().create(true).append(true).open(folder.join("requests.jsonl"))?;
            // A BufWriter writes whole buffers or whole oversized records, so each record is
            // written in one piece and readers never see half a line.
            self.today = Some((date, BufWriter::with_capacity(WRITE_BUFFER, file)));
            self.prune();
        }
        match &mut self.today {
            Some((_, file)) => Ok(file),
            None => Err(std::io::Error::other("no log file open")),
        }
    }

    fn write(&mut self, record: &RequestLog) -> std::io::Result<()> {
        let mut line = Vec::with_capacity(1024 + record.request_body.len() + record.response_body.len());
        record.write_json(Instant::now(), &mut line)?;
        self.file()?.write_all(&line)
    }

    fn flush(&mut self) {
        if let Some((_, file)) = &mut self.today {
            if let Err(error) = file.flush() {
                log::warn!("event=log_flush_failed error={error}");
            }
        }
    }

    fn prune(&self) {
        if self.retention_days == 0 {
            return;
        }
        let oldest_kept = Utc::now().date_naive() - chrono::Days::new(u64::from(self.retention_days) - 1);
        for (date, path) in day_folders(&self.dir) {
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
        ctx.set_mailbox_capacity(self.queue_capacity);
        self.prune();
        ctx.run_interval(PRUNE_INTERVAL, |this, _| this.prune());
        ctx.run_interval(FLUSH_INTERVAL, |this, _| this.flush());
    }
}

/// The file is reopened after a restart; records in the mailbox are kept.
impl Supervised for LoggerActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.today = None;
    }
}

impl Handler<WriteRecord> for LoggerActor {
    type Result = ();

    fn handle(&mut self, msg: WriteRecord, ctx: &mut Context<Self>) {
        let written = guarded(self, ctx, |this, _| this.write(&msg.0));
        if let Ok(Err(error)) = written {
            log::warn!("event=log_write_failed error={error}");
            self.today = None;
        }
    }
}

impl Handler<Flush> for LoggerActor {
    type Result = Result<(), ActorFault>;

    fn handle(&mut self, _: Flush, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, |this, _| this.flush())
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
        LoggerActor::new(dir.path().to_owned(), 2, 16).prune();
        let mut left: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        let mut expected = vec![day(0), day(1), "not-a-date".to_owned()];
        expected.sort();
        assert_eq!(left, expected);
    }
}
