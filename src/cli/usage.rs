//! `glm-proxy keys usage`: tokens in and out per key, per model, per UTC day, from the daily
//! rows the proxy writes (once a second at most).

use std::fmt::Write as _;

use crate::db::clients::{selected_ids, UsageReport};
use crate::db::KeyDb;

/// The rows of the last `days` days (today included), of the keys `selector` names, or of all.
pub fn show(
    conn: &mut KeyDb,
    selector: Option<&str>,
    days: u32,
    as_json: bool,
    out: &mut String,
) -> Result<(), String> {
    let ids = selected_ids(conn, selector)?;
    let report = UsageReport::of(conn, ids.as_deref(), days)?;
    if as_json {
        let _ = writeln!(out, "{:#}", report.to_json());
        return Ok(());
    }
    let line = |fields: [&str; 7]| {
        format!(
            "{:<10}  {:<5} {:<24} {:<28} {:>9} {:>13} {:>13}",
            fields[0], fields[1], fields[2], fields[3], fields[4], fields[5], fields[6]
        )
    };
    let _ = writeln!(out, "{}", line(["DAY", "ID", "NAME", "MODEL", "REQUESTS", "TOKENS IN", "TOKENS OUT"]));
    for (row, name) in &report.rows {
        let numbers = [row.key_id.to_string(), row.requests.to_string()];
        let tokens = [row.prompt_tokens, row.completion_tokens].map(|n| n.to_string());
        let day = row.day.to_string();
        let _ = writeln!(out, "{}", line([&day, &numbers[0], name, &row.model, &numbers[1], &tokens[0], &tokens[1]]));
    }
    let (requests, prompt, completion) = report.total();
    let since = report.since;
    let _ = writeln!(out, "\nSince {since} (UTC): {requests} requests, {prompt} tokens in, {completion} tokens out");
    Ok(())
}
