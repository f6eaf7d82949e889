//! The limit flags of `keys add` and `keys set`: read, checked and turned into the change to
//! store. `none` clears a limit; anything that does not read is one line naming the flag.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use clap::Args;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::db::keys::LimitChange;
use crate::policy::limits::models::ModelList;

/// The flags, or the admin API's JSON fields of the same names (`max_parallel`, …), where a
/// value may be a number or a string as on the command line, and `null` or `"none"` clears.
#[derive(Args, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitArgs {
    /// Requests per minute (sliding window); `none` clears.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    #[serde(default, deserialize_with = "setting")]
    rpm: Option<String>,
    /// Tokens per minute: admitted on the prompt's estimate, corrected by the usage reported.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    #[serde(default, deserialize_with = "setting")]
    tpm: Option<String>,
    /// Requests in flight at once (a stream counts until it ends).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    #[serde(default, deserialize_with = "setting")]
    max_parallel: Option<String>,
    /// Prompt + completion tokens per UTC day, e.g. 5M.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    #[serde(default, deserialize_with = "setting")]
    daily_tokens: Option<String>,
    /// Prompt + completion tokens per UTC calendar month.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    #[serde(default, deserialize_with = "setting")]
    monthly_tokens: Option<String>,
    /// When the key stops working: a date (YYYY-MM-DD, 00:00 UTC), an RFC 3339 time, or a
    /// duration from now (30d, 12h, 2w, 90m).
    #[arg(long, value_name = "DATE|DURATION")]
    #[serde(default, deserialize_with = "text_setting")]
    expires: Option<String>,
    /// Public model names or * globs the key may use, comma-separated: 'glm,glm-flash'.
    #[arg(long, value_name = "LIST")]
    #[serde(default, deserialize_with = "text_setting")]
    models: Option<String>,
}

impl LimitArgs {
    /// The change these flags ask for, checked at `now`.
    pub fn change(&self, now: DateTime<Utc>) -> Result<LimitChange, String> {
        let count = |flag: &str, raw: &Option<String>| {
            raw.as_deref().map(|raw| cleared(raw, |raw| parse_count(flag, raw))).transpose()
        };
        Ok(LimitChange {
            rpm: count("--rpm", &self.rpm)?,
            tpm: count("--tpm", &self.tpm)?,
            max_parallel: count("--max-parallel", &self.max_parallel)?,
            daily_tokens: count("--daily-tokens", &self.daily_tokens)?,
            monthly_tokens: count("--monthly-tokens", &self.monthly_tokens)?,
            expires_at: self.expires.as_deref().map(|raw| cleared(raw, |raw| parse_expiry(raw, now))).transpose()?,
            models: self
                .models
                .as_deref()
                .map(|raw| {
                    cleared(raw, |raw| {
                        ModelList::parse(raw).map(|list| list.to_string()).map_err(|e| format!("--models: {e}"))
                    })
                })
                .transpose()?,
        })
    }
}

/// A JSON count as the flag would give it: `null` is `none`, a whole number its digits (`5.0`
/// too, as JSON does not tell it from `5`), a string itself.
fn setting<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let text = match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(text) => text,
        serde_json::Value::Null => "none".to_owned(),
        serde_json::Value::Number(number) => match (number.as_i64(), number.as_f64()) {
            (Some(whole), _) => whole.to_string(),
            (None, Some(float)) if float.fract() == 0.0 && float.abs() < i64::MAX as f64 => (float as i64).to_string(),
            _ => return Err(D::Error::custom(format!("{number} is not a whole number of at most {}", i64::MAX))),
        },
        _ => return Err(D::Error::custom("expected a number, a string or null")),
    };
    Ok(Some(text))
}

/// A JSON text setting (`expires`, `models`): a string, or `null` for `none`.
fn text_setting<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        Some(text) => Ok(Some(text)),
        None => Ok(Some("none".to_owned())),
    }
}

/// `none` as a cleared setting, anything else as `parse` reads it.
fn cleared<T>(raw: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<Option<T>, String> {
    if raw.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    parse(raw.trim()).map(Some)
}

/// A positive whole number, with an optional `k`, `M` or `G` (thousands, millions, billions).
fn parse_count(flag: &str, raw: &str) -> Result<i64, String> {
    let bad = || format!("{flag} {raw:?}: expected a positive whole number (such as 30, 500k or 5M), or none");
    let (digits, scale) = match raw.char_indices().last() {
        Some((at, 'k' | 'K')) => (&raw[..at], 1_000),
        Some((at, 'm' | 'M')) => (&raw[..at], 1_000_000),
        Some((at, 'g' | 'G')) => (&raw[..at], 1_000_000_000),
        _ => (raw, 1),
    };
    let n: i64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(scale).filter(|n| *n > 0).ok_or_else(bad)
}

/// A date, an RFC 3339 time or a duration from `now`; it must lie in the future.
fn parse_expiry(raw: &str, now: DateTime<Utc>) -> Result<NaiveDateTime, String> {
    let bad = || {
        format!("--expires {raw:?}: expected a date (2027-01-31), an RFC 3339 time, or a duration such as 30d, 12h, 2w, or none")
    };
    let at = if let Ok(day) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        day.and_hms_opt(0, 0, 0).ok_or_else(bad)?
    } else if let Ok(time) = DateTime::parse_from_rfc3339(raw) {
        time.naive_utc()
    } else {
        now.naive_utc() + parse_duration(raw).ok_or_else(bad)?
    };
    if at <= now.naive_utc() {
        return Err(format!("--expires {raw:?} is not in the future"));
    }
    Ok(at)
}

/// `30d`, `12h`, `2w`, `90m`, `45s`.
fn parse_duration(raw: &str) -> Option<Duration> {
    let (at, unit) = raw.char_indices().last()?;
    let n: i64 = raw[..at].parse().ok().filter(|n| *n > 0)?;
    match unit {
        's' => Duration::try_seconds(n),
        'm' => Duration::try_minutes(n),
        'h' => Duration::try_hours(n),
        'd' => Duration::try_days(n),
        'w' => Duration::try_weeks(n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap()
    }

    fn args(set: impl FnOnce(&mut LimitArgs)) -> Result<LimitChange, String> {
        let mut args = LimitArgs::default();
        set(&mut args);
        args.change(now())
    }

    #[test]
    fn counts_take_suffixes_and_none_clears() {
        let change = args(|a| {
            a.rpm = Some("30".into());
            a.daily_tokens = Some("5M".into());
            a.tpm = Some("500k".into());
            a.max_parallel = Some("none".into());
        })
        .unwrap();
        assert_eq!(change.rpm, Some(Some(30)));
        assert_eq!(change.daily_tokens, Some(Some(5_000_000)));
        assert_eq!(change.tpm, Some(Some(500_000)));
        assert_eq!(change.max_parallel, Some(None));
        assert_eq!(change.monthly_tokens, None, "a flag not given changes nothing");
    }

    #[test]
    fn bad_values_are_one_line_naming_the_flag() {
        for (rpm, _) in [("-1", ()), ("0", ()), ("many", ()), ("5X", ()), ("99999999999G", ())] {
            let problem = args(|a| a.rpm = Some(rpm.into())).unwrap_err();
            assert!(problem.starts_with("--rpm ") && !problem.contains('\n'), "{problem}");
        }
        let problem = args(|a| a.models = Some("glm,qwen?".into())).unwrap_err();
        assert!(problem.contains("--models") && problem.contains("qwen?"), "{problem}");
        let problem = args(|a| a.expires = Some("2020-01-01".into())).unwrap_err();
        assert!(problem.contains("not in the future"), "{problem}");
        assert!(args(|a| a.expires = Some("soon".into())).unwrap_err().starts_with("--expires"));
    }

    #[test]
    fn expiry_is_a_date_a_time_or_a_duration_from_now() {
        let at = |raw: &str| args(|a| a.expires = Some(raw.into())).unwrap().expires_at.unwrap().unwrap();
        assert_eq!(at("30d"), now().naive_utc() + Duration::days(30));
        assert_eq!(at("12h"), now().naive_utc() + Duration::hours(12));
        assert_eq!(at("2027-01-31").to_string(), "2027-01-31 00:00:00");
        assert_eq!(at("2026-12-08T10:00:00+02:00").to_string(), "2026-12-08 08:00:00");
    }
}
