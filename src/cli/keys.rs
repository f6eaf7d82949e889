//! `glm-proxy keys ...`: the seed's `manage_keys.py`, on the same database the server reads.
//! Each command names the database it uses (on stderr), opens it (only `add` creates one),
//! does its work and exits.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use chrono::{NaiveDateTime, Utc};
use clap::{Args, Subcommand};
use serde_json::json;

use super::limits::LimitArgs;
use super::usage;
use crate::auth::client_key;
use crate::db::clients::{self, when, Spent};
use crate::db::keys::LimitChange;
use crate::db::{self, keys, keys::ApiKey, DbError, KeyDb, Location};

#[derive(Args)]
pub struct KeysArgs {
    /// The key database: a SQLite path or a postgres:// URL. Default: DATABASE_URL, else
    /// INCOMING_KEY_DB, else ./data/incoming_keys.db.
    #[arg(long, global = true, value_name = "PATH_OR_URL")]
    db: Option<String>,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key for a client (and the database, if it does not exist yet); the key is
    /// printed once and never again.
    Add {
        /// The client's name, shown in logs and metrics.
        name: String,
        /// Print only the key, for scripts.
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Change keys' limits, by ID, full key or name; running proxies apply them within 2 s.
    Set {
        /// An ID, a full key, or a name.
        selector: String,
        /// Allow a name to select several keys.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Tokens in and out per key, per model, per UTC day.
    Usage {
        /// An ID or a name; every key when left out.
        selector: Option<String>,
        /// How many days back, today included.
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=3660))]
        days: u32,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List keys with their usage.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke keys, by ID, full key or name.
    Revoke {
        /// An ID, a full key, or a name.
        selector: String,
        /// Allow a name to select several keys.
        #[arg(long)]
        all: bool,
    },
    /// Re-enable revoked keys, by ID, full key or name.
    Enable {
        /// An ID, a full key, or a name.
        selector: String,
        /// Allow a name to select several keys.
        #[arg(long)]
        all: bool,
    },
    /// Totals and the busiest keys.
    Stats {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// A command's failure, printed as one line; exit code 1.
type Outcome = Result<(), String>;

pub fn run(args: KeysArgs) -> ExitCode {
    let env = |name: &str| std::env::var(name).ok();
    let location = args.db.map_or_else(|| db::location_from_env(env), |db| Location::parse(&db));
    eprintln!("glm-proxy keys: database {location}");
    if let Some(problem) = db::disagreement(env) {
        eprintln!("glm-proxy keys: warning: {problem}");
    }
    // Bad limits change nothing: they are refused before the database is opened.
    let change = match &args.command {
        KeysCommand::Add { limits, .. } | KeysCommand::Set { limits, .. } => match limits.change(Utc::now()) {
            Ok(change) if change.is_empty() && matches!(args.command, KeysCommand::Set { .. }) => {
                eprintln!("glm-proxy keys: nothing to change: give a limit, such as --rpm 30 or --rpm none");
                return ExitCode::from(2);
            }
            Ok(change) => change,
            Err(problem) => {
                eprintln!("glm-proxy keys: {problem}");
                return ExitCode::from(2);
            }
        },
        _ => LimitChange::default(),
    };
    let opened = match args.command {
        KeysCommand::Add { .. } => db::open(&location),
        _ => db::open_existing(&location),
    };
    let mut conn = match opened {
        Ok(conn) => conn,
        Err(problem) => {
            eprintln!("glm-proxy keys: {problem}");
            // A database that is not there is a configuration problem: the wrong folder, or --db.
            return ExitCode::from(if matches!(problem, DbError::Missing(_)) { 2 } else { 1 });
        }
    };
    let mut out = String::new();
    let outcome = match args.command {
        KeysCommand::Add { name, quiet, .. } => add(&mut conn, &name, quiet, &change, &mut out),
        KeysCommand::Set { selector, all, .. } => set_limits(&mut conn, &selector, all, &change, &mut out),
        KeysCommand::Usage { selector, days, json } => {
            usage::show(&mut conn, selector.as_deref(), days, json, &mut out)
        }
        KeysCommand::List { json } => list(&mut conn, json, &mut out),
        KeysCommand::Revoke { selector, all } => set_revoked(&mut conn, &selector, all, true, &mut out),
        KeysCommand::Enable { selector, all } => set_revoked(&mut conn, &selector, all, false, &mut out),
        KeysCommand::Stats { json } => stats(&mut conn, json, &mut out),
    };
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

/// `1 key`, `2 keys`.
fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

fn now() -> NaiveDateTime {
    Utc::now().naive_utc()
}

fn add(conn: &mut KeyDb, name: &str, quiet: bool, limits: &LimitChange, out: &mut String) -> Outcome {
    let name = name.trim();
    let namesakes: Vec<String> = keys::all(conn)
        .map_err(|e| e.to_string())?
        .iter()
        .filter(|k| k.name == name)
        .map(|k| k.id.to_string())
        .collect();
    if !namesakes.is_empty() {
        eprintln!(
            "glm-proxy keys: warning: {} named {name:?} already (ID {}); revoking by name will need --all",
            if namesakes.len() == 1 { "a key is" } else { "keys are" },
            namesakes.join(", ")
        );
    }
    let (stored, key) = clients::create(conn, name, limits)?;
    if quiet {
        let _ = writeln!(out, "{key}");
    } else {
        let _ = writeln!(out, "Created key {} for {:?} ({}):", stored.id, stored.name, limits_of(&stored));
        let _ = writeln!(out, "{key}");
        let _ = writeln!(out, "Give it to the client now: it is stored hashed and will not be shown again.");
    }
    Ok(())
}

fn status(key: &ApiKey) -> &'static str {
    if key.revoked {
        "REVOKED"
    } else if key.expires_at.is_some_and(|at| at <= now()) {
        "EXPIRED"
    } else {
        "ACTIVE"
    }
}

/// `rpm=30 daily_tokens=5000000 models=glm,glm-flash`, or `unlimited`.
fn limits_of(key: &ApiKey) -> String {
    let counts = [
        ("rpm", key.rpm),
        ("tpm", key.tpm),
        ("max_parallel", key.max_parallel),
        ("daily_tokens", key.daily_tokens),
        ("monthly_tokens", key.monthly_tokens),
    ];
    let mut parts: Vec<String> =
        counts.iter().filter_map(|(name, value)| value.map(|value| format!("{name}={value}"))).collect();
    if let Some(models) = &key.models {
        parts.push(format!("models={models}"));
    }
    if parts.is_empty() {
        "unlimited".to_owned()
    } else {
        parts.join(" ")
    }
}

fn list(conn: &mut KeyDb, as_json: bool, out: &mut String) -> Outcome {
    let all = keys::all(conn).map_err(|e| e.to_string())?;
    let totals = Totals::of(&all);
    let spent = Spent::of(conn)?;
    if as_json {
        let listed: Vec<_> = all.iter().map(|key| spent.beside(key)).collect();
        let body = json!({ "keys": listed, "total": all.len(), "active": totals.active, "revoked": totals.revoked, "requests": totals.requests });
        let _ = writeln!(out, "{body:#}");
        return Ok(());
    }
    let row = |id: &dyn std::fmt::Display, rest: [&str; 11]| {
        format!(
            "{id:<5} {:<24} {:<12} {:<8} {:>9} {:>12} {:>12}  {:<20}  {:<20}  {:<20}  {:<20}  {}",
            rest[0], rest[1], rest[2], rest[3], rest[4], rest[5], rest[6], rest[7], rest[8], rest[9], rest[10]
        )
    };
    let header = [
        "NAME",
        "PREFIX",
        "STATUS",
        "REQUESTS",
        "TOKENS TODAY",
        "TOKENS MONTH",
        "LAST USED",
        "CREATED",
        "REVOKED",
        "EXPIRES",
        "LIMITS",
    ];
    let _ = writeln!(out, "{}", row(&"ID", header));
    for key in &all {
        let requests = key.request_count.to_string();
        let (today, month) = spent.of_key(key.id);
        let (used, created, revoked, expires) = (
            when(key.last_used_at, "never"),
            when(Some(key.created_at), ""),
            when(key.revoked_at.filter(|_| key.revoked), "-"),
            when(key.expires_at, "-"),
        );
        let fields = [
            &key.name,
            &key.key_prefix,
            status(key),
            &requests,
            &today.to_string(),
            &month.to_string(),
            &used,
            &created,
            &revoked,
            &expires,
            &limits_of(key),
        ];
        let _ = writeln!(out, "{}", row(&key.id, fields));
    }
    let _ = writeln!(
        out,
        "\n{}: {} active, {} revoked; {}",
        count(all.len(), "key"),
        totals.active,
        totals.revoked,
        count(totals.requests as usize, "request")
    );
    Ok(())
}

/// Counts over every key.
struct Totals {
    active: usize,
    revoked: usize,
    requests: i64,
}

impl Totals {
    fn of(all: &[ApiKey]) -> Self {
        let active = all.iter().filter(|k| !k.revoked).count();
        Self { active, revoked: all.len() - active, requests: all.iter().map(|k| k.request_count).sum() }
    }
}

/// The keys `selector` names: one, or with `all` every key of a name.
fn selected(conn: &mut KeyDb, selector: &str, all: bool) -> Result<Vec<ApiKey>, String> {
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
    Ok(selected)
}

fn set_limits(conn: &mut KeyDb, selector: &str, all: bool, change: &LimitChange, out: &mut String) -> Outcome {
    let selected = selected(conn, selector, all)?;
    let ids: Vec<i32> = selected.iter().map(|k| k.id).collect();
    keys::set_limits(conn, &ids, change).map_err(|e| e.to_string())?;
    for key in keys::all(conn).map_err(|e| e.to_string())?.iter().filter(|k| ids.contains(&k.id)) {
        let _ = writeln!(out, "Key {} ({}, {}): {}", key.id, key.name, key.key_prefix, limits_of(key));
    }
    Ok(())
}

fn set_revoked(conn: &mut KeyDb, selector: &str, all: bool, revoked: bool, out: &mut String) -> Outcome {
    let selected = selected(conn, selector, all)?;
    let (already, changing): (Vec<&ApiKey>, Vec<&ApiKey>) = selected.iter().partition(|k| k.revoked == revoked);
    let ids: Vec<i32> = changing.iter().map(|k| k.id).collect();
    keys::set_revoked(conn, &ids, revoked, now()).map_err(|e| e.to_string())?;
    let (verb, state) = if revoked { ("Revoked", "revoked") } else { ("Enabled", "active") };
    for key in changing {
        let _ = writeln!(out, "{verb} key {} ({}, {})", key.id, key.name, key.key_prefix);
    }
    for key in already {
        let _ = writeln!(out, "Key {} ({}, {}) was already {state}", key.id, key.name, key.key_prefix);
    }
    Ok(())
}

fn stats(conn: &mut KeyDb, as_json: bool, out: &mut String) -> Outcome {
    let mut all = keys::all(conn).map_err(|e| e.to_string())?;
    let totals = Totals::of(&all);
    all.sort_by_key(|k| std::cmp::Reverse(k.request_count));
    let busiest: Vec<&ApiKey> = all.iter().filter(|k| k.request_count > 0).take(5).collect();
    let spent = Spent::of(conn)?;
    if as_json {
        let busiest: Vec<_> = busiest.iter().map(|key| spent.beside(key)).collect();
        let body = json!({
            "total": all.len(), "active": totals.active, "revoked": totals.revoked, "requests": totals.requests,
            "tokens_today": spent.by_key.values().map(|s| s.0).sum::<i64>(),
            "tokens_this_month": spent.by_key.values().map(|s| s.1).sum::<i64>(),
            "busiest": busiest,
        });
        let _ = writeln!(out, "{body:#}");
        return Ok(());
    }
    let _ = writeln!(
        out,
        "Total keys: {}\nActive:     {}\nRevoked:    {}\nRequests:   {}\nTokens:     {} today, {} this month",
        all.len(),
        totals.active,
        totals.revoked,
        totals.requests,
        spent.by_key.values().map(|s| s.0).sum::<i64>(),
        spent.by_key.values().map(|s| s.1).sum::<i64>(),
    );
    if !busiest.is_empty() {
        let _ = writeln!(out, "\nBusiest keys:");
        for key in busiest {
            let requests = count(key.request_count as usize, "request");
            let (today, month) = spent.of_key(key.id);
            let expires = key.expires_at.map_or_else(String::new, |at| format!(", expires {}", keys::rfc3339(&at)));
            let _ = writeln!(
                out,
                "  {:<5} {:<24} {requests:>14}  {today} tokens today, {month} this month  ({}; {}{expires})",
                key.id,
                key.name,
                status(key),
                limits_of(key)
            );
        }
    }
    Ok(())
}
