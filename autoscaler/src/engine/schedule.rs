//! Schedule expressions of scheduled actions: `at(...)`, `rate(...)`, `cron(...)`, in an IANA
//! time zone.
//!
//! Semantics, following Application Auto Scaling and EventBridge Scheduler (whose expression
//! syntax Application Auto Scaling uses):
//! - `at(yyyy-mm-ddThh:mm:ss)` runs once, at that civil time in the action's time zone. A time
//!   in a DST gap runs at the same wall-clock distance after the gap (02:30 on a day that jumps
//!   from 02:00 to 03:00 runs at 03:30); one in a fold runs at its first occurrence. EventBridge
//!   skips recurring times in a gap, but skipping a one-time action would lose it entirely.
//! - `rate(N minute|minutes|hour|hours|day|days)` runs at the start time (or when scalegate first
//!   sees the action, EventBridge's "immediately") and then every N units of elapsed time; a day
//!   is 24 hours, whatever the time zone does.
//! - `cron(...)`: see [`CronExpression`].
//! - Start and end times bound recurring schedules; nothing runs before the start or after the
//!   end.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::Timestamp;

pub use super::cron::{CronError, CronExpression};

/// Why a schedule or its time zone was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The expression is not `at(...)`, `rate(...)` or `cron(...)`, or its inside is wrong.
    #[error("schedule `{expression}`: {reason}")]
    Invalid {
        /// The expression as given.
        expression: String,
        /// What is wrong.
        reason: String,
    },
    /// A cron expression's fields are wrong.
    #[error(transparent)]
    Cron(#[from] CronError),
    /// The time zone is not in the IANA database.
    #[error("time zone `{name}` is not an IANA time zone name: {reason}")]
    UnknownTimeZone {
        /// The name as given.
        name: String,
        /// The database's answer.
        reason: String,
    },
}

/// When a scheduled action runs (`Schedule`), evaluated in the action's time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleExpression {
    /// `at(yyyy-mm-ddThh:mm:ss)`: once, at this civil time.
    At(DateTime),
    /// `rate(value unit)`: every `value` minutes, hours or days of elapsed time.
    Rate(Duration),
    /// `cron(min hour day-of-month month day-of-week year)`: AWS's six-field cron.
    Cron(Box<CronExpression>),
}

impl fmt::Display for ScheduleExpression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleExpression::At(when) => write!(f, "at({})", when.strftime("%Y-%m-%dT%H:%M:%S")),
            ScheduleExpression::Rate(every) => {
                let minutes = every.as_secs() / 60;
                if minutes % (24 * 60) == 0 {
                    write!(f, "rate({} days)", minutes / (24 * 60))
                } else if minutes % 60 == 0 {
                    write!(f, "rate({} hours)", minutes / 60)
                } else {
                    write!(f, "rate({minutes} minutes)")
                }
            }
            ScheduleExpression::Cron(cron) => cron.fmt(f),
        }
    }
}

impl FromStr for ScheduleExpression {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ScheduleExpression::parse(text)
    }
}

impl ScheduleExpression {
    /// Parses `at(...)`, `rate(...)` or `cron(...)` as AWS writes them.
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        let invalid = |reason: &str| ScheduleError::Invalid {
            expression: text.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = text.trim();
        let inner = |prefix: &str| {
            trimmed
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(')'))
                .map(str::trim)
        };
        if let Some(when) = inner("at(") {
            return parse_at(when)
                .map(ScheduleExpression::At)
                .ok_or_else(|| invalid("`at` takes yyyy-mm-ddThh:mm:ss, a valid date and time"));
        }
        if let Some(rate) = inner("rate(") {
            return parse_rate(rate)
                .map(ScheduleExpression::Rate)
                .ok_or_else(|| {
                    invalid("`rate` takes a positive whole number and minute(s), hour(s) or day(s)")
                });
        }
        if let Some(fields) = inner("cron(") {
            return Ok(ScheduleExpression::Cron(Box::new(CronExpression::parse(
                fields,
            )?)));
        }
        Err(invalid("expected at(...), rate(...) or cron(...)"))
    }

    /// The first time at or after `from` when the schedule fires, or `None` if it never fires
    /// again. `anchor` is when a `rate` without a start time starts counting.
    pub fn next_at_or_after(
        &self,
        from: Timestamp,
        zone: &TimeZone,
        anchor: Timestamp,
    ) -> Option<Timestamp> {
        match self {
            ScheduleExpression::At(when) => {
                let instant = zone.to_ambiguous_timestamp(*when).compatible().ok()?;
                (instant >= from).then_some(instant)
            }
            ScheduleExpression::Rate(every) => {
                if from <= anchor {
                    return Some(anchor);
                }
                let every = every.as_nanos() as i128;
                let elapsed = from.as_nanosecond() - anchor.as_nanosecond();
                let periods = (elapsed + every - 1) / every;
                Timestamp::from_nanosecond(anchor.as_nanosecond() + periods * every).ok()
            }
            ScheduleExpression::Cron(cron) => cron.next_at_or_after(from, zone),
        }
    }
}

/// `yyyy-mm-ddThh:mm:ss`, strictly (jiff alone would also take other ISO 8601 shapes).
fn parse_at(text: &str) -> Option<DateTime> {
    let shape = "dddd-dd-ddTdd:dd:dd";
    let fits = text.len() == shape.len()
        && text.bytes().zip(shape.bytes()).all(|(c, s)| match s {
            b'd' => c.is_ascii_digit(),
            other => c == other,
        });
    if !fits {
        return None;
    }
    text.parse().ok()
}

fn parse_rate(text: &str) -> Option<Duration> {
    let (value, unit) = text.split_once(char::is_whitespace)?;
    let value: u64 = value.parse().ok().filter(|value| *value >= 1)?;
    let unit_seconds = match unit.trim() {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 60 * 60,
        "day" | "days" => 24 * 60 * 60,
        _ => return None,
    };
    value.checked_mul(unit_seconds).map(Duration::from_secs)
}

/// Looks up an IANA time zone; `None` is UTC, AWS's default.
pub fn time_zone(name: Option<&str>) -> Result<TimeZone, ScheduleError> {
    match name {
        None => Ok(TimeZone::UTC),
        Some(name) => TimeZone::get(name).map_err(|error| ScheduleError::UnknownTimeZone {
            name: name.to_string(),
            reason: error.to_string(),
        }),
    }
}

/// Converts a [`SystemTime`] for the schedule arithmetic; times outside jiff's range (years
/// beyond ±9999) are clamped to it, which no schedule can tell apart.
pub(crate) fn timestamp(time: SystemTime) -> Timestamp {
    Timestamp::try_from(time).unwrap_or_else(|_| {
        if time < SystemTime::UNIX_EPOCH {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> TimeZone {
        TimeZone::get("Europe/Berlin").unwrap()
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn parses_the_three_forms_and_prints_them_back() {
        for text in [
            "at(2026-03-29T02:30:00)",
            "rate(5 minutes)",
            "rate(2 hours)",
            "rate(1 days)",
            "cron(0 8 ? * MON-FRI *)",
        ] {
            assert_eq!(ScheduleExpression::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            ScheduleExpression::parse("rate(1 minute)").unwrap(),
            ScheduleExpression::Rate(Duration::from_secs(60))
        );
    }

    #[test]
    fn refuses_malformed_expressions() {
        for text in [
            "at(2026-03-29 02:30:00)",
            "at(2026-02-30T00:00:00)",
            "rate(0 minutes)",
            "rate(5 seconds)",
            "rate(five minutes)",
            "every 5 minutes",
            "cron(0 8 * * *)",
        ] {
            assert!(ScheduleExpression::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn unknown_time_zones_are_refused() {
        assert!(time_zone(Some("Europe/Atlantis")).is_err());
        assert_eq!(time_zone(None).unwrap(), TimeZone::UTC);
    }

    #[test]
    fn daily_cron_keeps_local_time_across_both_berlin_changes() {
        // 08:00 Berlin is 07:00 UTC in winter and 06:00 UTC in summer.
        let cron = ScheduleExpression::parse("cron(0 8 * * ? *)").unwrap();
        let next = |from: &str| cron.next_at_or_after(at(from), &berlin(), at(from));
        assert_eq!(
            next("2026-03-28T07:00:01Z"),
            Some(at("2026-03-29T06:00:00Z"))
        );
        assert_eq!(
            next("2026-10-24T06:00:01Z"),
            Some(at("2026-10-25T07:00:00Z"))
        );
    }

    #[test]
    fn cron_in_the_skipped_hour_is_skipped_and_in_the_repeated_hour_runs_once() {
        let zone = berlin();
        // 02:30 does not exist in Berlin on 2026-03-29: the run moves to the next day.
        let cron = ScheduleExpression::parse("cron(30 2 * * ? *)").unwrap();
        let from = at("2026-03-28T02:00:00Z");
        assert_eq!(
            cron.next_at_or_after(from, &zone, from),
            Some(at("2026-03-30T00:30:00Z"))
        );
        // 02:30 happens twice on 2026-10-25 (00:30 and 01:30 UTC): only the first runs.
        let first = cron.next_at_or_after(at("2026-10-24T23:00:00Z"), &zone, from);
        assert_eq!(first, Some(at("2026-10-25T00:30:00Z")));
        let second = cron.next_at_or_after(at("2026-10-25T00:30:01Z"), &zone, from);
        assert_eq!(second, Some(at("2026-10-26T01:30:00Z")));
    }

    #[test]
    fn at_in_a_gap_runs_after_the_gap() {
        let once = ScheduleExpression::parse("at(2026-03-29T02:30:00)").unwrap();
        let from = at("2026-03-28T00:00:00Z");
        // 02:30 CET would be 01:30 UTC; the clocks read 03:30 CEST then.
        assert_eq!(
            once.next_at_or_after(from, &berlin(), from),
            Some(at("2026-03-29T01:30:00Z"))
        );
        assert_eq!(
            once.next_at_or_after(at("2026-03-29T01:30:01Z"), &berlin(), from),
            None
        );
    }

    #[test]
    fn rate_counts_elapsed_time_from_its_anchor() {
        let rate = ScheduleExpression::parse("rate(1 day)").unwrap();
        let anchor = at("2026-03-28T12:00:00Z");
        // 24 hours later, even though Berlin's day of 2026-03-29 has 23 hours.
        assert_eq!(
            rate.next_at_or_after(at("2026-03-28T12:00:01Z"), &berlin(), anchor),
            Some(at("2026-03-29T12:00:00Z"))
        );
        assert_eq!(
            rate.next_at_or_after(anchor, &berlin(), anchor),
            Some(anchor)
        );
    }
}
