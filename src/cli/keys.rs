//! `glm-proxy keys ...`: the seed's `manage_keys.py`, on the same database the server reads.
//! Each command opens the database (creating and migrating it), does its work and exits.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{NaiveDateTime, Utc};
use clap::{Args, Subcommand};
use diesel::SqliteConnection;
use serde_json::json;

use crate::auth::client_key;
use crate::db::{self, keys, keys::ApiKey};

#[derive(Args)]
pub struct KeysArgs {
    /// The key database; default: INCOMING_KEY_DB, else DATABASE_URL, else ./data/incoming_keys.db.
    #[arg(long, global = true, value_name = "PATH")]
    db: Option<PathBuf>,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key for a client; the key is printed once and never again.
    Add {
        name: String,
        /// Print only the key, for scripts.
        #[arg(long, short)]
        quiet: bool,
    },
    /// List keys with their usage.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke keys, by ID, full key or name.
    Revoke {
        selector: String,
        /// Allow a name to select several keys.
        #[arg(long)]
        all: bool,
    },
    /// Re-enable revoked keys, by ID, full key or name.
    Enable {
        selector: String,
        #[arg(long)]
        all: bool,
    },
    /// Totals and the busiest keys.
    Stats,
}

/// A command's failure, printed as one line; exit code 1.
type Outcome = Result<(), String>;

pub fn run(args: KeysArgs) -> ExitCode {
    let path = args.db.unwrap_or_else(|| db::path_from_env(|name| std::env::var(name).ok()));
    let mut out = String::new();
    let outcome = db::open(&path).map_err(|e| e.to_string()).and_then(|mut conn| match args.command {
        KeysCommand::Add { name, quiet } => add(&mut conn, &name, quiet, &mut out),
        KeysCommand::List { json } => list(&mut conn, json, &mut out),
        KeysCommand::Revoke { selector, all } => set_revoked(&mut conn, &selector, all, true, &mut out),
        KeysCommand::Enable { selector, all } => set_revoked(&mut conn, &selector, all, false, &mut out),
        KeysCommand::Stats => stats(&mut conn, &mut out),
    });
    // A reader that went away (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(problem) => {
            eprintln!("glm-proxy keys: {problem}");
            ExitCode::FAILURE
        }
    }
}

fn now() -> NaiveDateTime {
    Utc::now().naive_utc()
}

fn add(conn: &mut SqliteConnection, name: &str, quiet: bool, out: &mut String) -> Outcome {
    let name = name.trim();
    if name.is_empty() {
        return Err("a key needs a non-empty name".to_owned());
    }
    let key = client_key::generate().map_err(|e| format!("the OS random generator failed: {e}"))?;
    let stored = keys::insert(conn, name, &client_key::hash(&key), &client_key::prefix(&key), now())
        .map_err(|e| e.to_string())?;
    if quiet {
        let _ = writeln!(out, "{key}");
    } else {
        let _ = writeln!(out, "Created key {} for {:?}:", stored.id, stored.name);
        let _ = writeln!(out, "{key}");
        let _ = writeln!(out, "Give it to the client now: it is stored hashed and will not be shown again.");
    }
    Ok(())
}

fn when(time: Option<NaiveDateTime>) -> String {
    time.map_or_else(|| "never".to_owned(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

fn status(key: &ApiKey) -> &'static str {
    if key.revoked {
        "REVOKED"
    } else {
        "ACTIVE"
    }
}

fn list(conn: &mut SqliteConnection, as_json: bool, out: &mut String) -> Outcome {
    let all = keys::all(conn).map_err(|e| e.to_string())?;
    let active = all.iter().filter(|k| !k.revoked).count();
    let requests: i64 = all.iter().map(|k| k.request_count).sum();
    if as_json {
        let body = json!({ "keys": all, "total": all.len(), "active": active, "revoked": all.len() - active, "requests": requests });
        let _ = writeln!(out, "{body:#}");
        return Ok(());
    }
    let _ = writeln!(
        out,
        "{:<5} {:<24} {:<12} {:<8} {:>9}  {:<19}  {:<19}",
        "ID", "NAME", "PREFIX", "STATUS", "REQUESTS", "LAST USED", "CREATED"
    );
    for key in &all {
        let _ = writeln!(
            out,
            "{:<5} {:<24} {:<12} {:<8} {:>9}  {:<19}  {:<19}",
            key.id,
            key.name,
            key.key_prefix,
            status(key),
            key.request_count,
            when(key.last_used_at),
            when(Some(key.created_at))
        );
    }
    let _ = writeln!(out, "\n{} keys: {active} active, {} revoked; {requests} requests", all.len(), all.len() - active);
    Ok(())
}

fn set_revoked(conn: &mut SqliteConnection, selector: &str, all: bool, revoked: bool, out: &mut String) -> Outcome {
    let selected = keys::matching(conn, selector, &client_key::hash(selector)).map_err(|e| e.to_string())?;
    if selected.is_empty() {
        return Err(format!("no key matches {selector:?} (give an ID, a full key or a name)"));
    }
    if selected.len() > 1 && !all {
        let ids: Vec<String> = selected.iter().map(|k| k.id.to_string()).collect();
        return Err(format!(
            "{selector:?} matches {} keys (IDs {}); pass --all to change them all",
            selected.len(),
            ids.join(", ")
        ));
    }
    let ids: Vec<i32> = selected.iter().map(|k| k.id).collect();
    keys::set_revoked(conn, &ids, revoked, now()).map_err(|e| e.to_string())?;
    let verb = if revoked { "Revoked" } else { "Enabled" };
    for key in &selected {
        let _ = writeln!(out, "{verb} key {} ({}, {})", key.id, key.name, key.key_prefix);
    }
    Ok(())
}

fn stats(conn: &mut SqliteConnection, out: &mut String) -> Outcome {
    let mut all = keys::all(conn).map_err(|e| e.to_string())?;
    let active = all.iter().filter(|k| !k.revoked).count();
    let requests: i64 = all.iter().map(|k| k.request_count).sum();
    let _ = writeln!(
        out,
        "Total keys: {}\nActive:     {active}\nRevoked:    {}\nRequests:   {requests}",
        all.len(),
        all.len() - active
    );
    all.sort_by_key(|k| std::cmp::Reverse(k.request_count));
    let busiest: Vec<&ApiKey> = all.iter().filter(|k| k.request_count > 0).take(5).collect();
    if !busiest.is_empty() {
        let _ = writeln!(out, "\nBusiest keys:");
        for key in busiest {
            let _ =
                writeln!(out, "  {:<5} {:<24} {:>9} requests  ({})", key.id, key.name, key.request_count, status(key));
        }
    }
    Ok(())
}
