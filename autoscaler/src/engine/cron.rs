//! AWS's six-field cron: `cron(minutes hours day-of-month month day-of-week year)`.
//!
//! Application Auto Scaling uses EventBridge's cron syntax, which is not Unix cron: it has a
//! year field, numbers days of the week 1–7 from Sunday, requires `?` in one of the two day
//! fields, and knows Quartz's `L`, `W` and `#`. Those differences are why this is a small
//! parser of its own rather than a general cron crate (they number days from 0 = Sunday, put
//! seconds first in six-field form and have no year).
//!
//! Supported, per field:
//!
//! | field        | values                | syntax                                   |
//! |--------------|-----------------------|------------------------------------------|
//! | minutes      | 0–59                  | `,` `-` `*` `/`                          |
//! | hours        | 0–23                  | `,` `-` `*` `/`                          |
//! | day-of-month | 1–31                  | `,` `-` `*` `/` `?` `L` `LW` `nW`         |
//! | month        | 1–12 or `JAN`–`DEC`   | `,` `-` `*` `/`                          |
//! | day-of-week  | 1–7 or `SUN`–`SAT`    | `,` `-` `*` `/` `?` `L` `dL` `d#n`        |
//! | year         | 1970–2199             | `,` `-` `*` `/`                          |
//!
//! `?` stands alone; `L`, `LW`, `nW`, `dL` and `d#n` may also be items of a list (`L,15`: the
//! 15th and the last day), each item adding its days. A range that wraps around runs through
//! the end of the field, as in Quartz: `FRI-MON` is Friday to Monday, `22-2` in hours is 22:00
//! to 02:00, `50-10/5` in minutes is 50, 55, 0, 5 and 10. Years do not wrap: a downward year
//! range is refused. Also refused, with an error that says so: the seven-field form with
//! seconds and `L-n` offsets (config validation refuses both too).
//!
//! Daylight saving time follows EventBridge Scheduler, whose syntax this is: a time that does
//! not exist (the hour skipped when clocks go forward) is skipped, and a time that exists twice
//! (clocks go back) runs once, at its first occurrence.

use std::fmt;

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::Timestamp;

/// First year the year field accepts.
const MIN_YEAR: u32 = 1970;
/// Last year the year field accepts.
const MAX_YEAR: u32 = 2199;

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Why a cron expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cron `{expression}`: {reason}")]
pub struct CronError {
    /// The fields as given.
    pub expression: String,
    /// What is wrong, naming the field.
    pub reason: String,
}

/// A set of small integers `base..base+256`, one bit each: enough for every cron field
/// (years 1970–2199 are 230 values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ValueSet {
    base: u32,
    bits: [u64; 4],
}

impl ValueSet {
    fn empty(base: u32) -> Self {
        ValueSet { base, bits: [0; 4] }
    }

    fn insert(&mut self, value: u32) {
        let index = (value - self.base) as usize;
        self.bits[index / 64] |= 1 << (index % 64);
    }

    fn contains(&self, value: u32) -> bool {
        let Some(index) = value.checked_sub(self.base).map(|i| i as usize) else {
            return false;
        };
        index < 256 && self.bits[index / 64] & (1 << (index % 64)) != 0
    }
}

/// One rule of a day field; a field is a list of them and a day matches if any rule does.
/// AWS allows one of the two day fields, the other is `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DayRule {
    /// Days of the month from values and ranges (`*`, `1,15`, `1-7`, `*/2`, `25-5`).
    MonthDays(ValueSet),
    /// `L`: the last day of the month.
    LastDayOfMonth,
    /// `LW`: the last weekday (Monday–Friday) of the month.
    LastWeekdayOfMonth,
    /// `nW`: the weekday nearest to day `n`, without leaving the month.
    NearestWeekday(u8),
    /// Days of the week from values and ranges, 1 = Sunday … 7 = Saturday (`L` alone is 7).
    WeekDays(ValueSet),
    /// `dL`: the last day `d` of the week in the month (`6L`: the last Friday).
    LastWeekdayOfKind(u8),
    /// `d#n`: the `n`th day `d` of the week in the month (`2#1`: the first Monday).
    NthWeekday {
        /// 1 = Sunday … 7 = Saturday.
        weekday: u8,
        /// 1–5.
        nth: u8,
    },
}

/// One cron field's name, values and value names, for parsing and error messages.
struct Field {
    what: &'static str,
    min: u32,
    max: u32,
    /// `names[0]` is the value `min`.
    names: &'static [&'static str],
    /// Whether a downward range wraps around the end of the field (all but the year).
    wraps: bool,
}

const MINUTES: Field = Field {
    what: "minutes",
    min: 0,
    max: 59,
    names: &[],
    wraps: true,
};
const HOURS: Field = Field {
    what: "hours",
    min: 0,
    max: 23,
    names: &[],
    wraps: true,
};
const DAY_OF_MONTH: Field = Field {
    what: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
    wraps: true,
};
const MONTH: Field = Field {
    what: "month",
    min: 1,
    max: 12,
    names: &MONTH_NAMES,
    wraps: true,
};
const DAY_OF_WEEK: Field = Field {
    what: "day-of-week",
    min: 1,
    max: 7,
    names: &WEEKDAY_NAMES,
    wraps: true,
};
const YEAR: Field = Field {
    what: "year",
    min: MIN_YEAR,
    max: MAX_YEAR,
    names: &[],
    wraps: false,
};

/// A parsed AWS cron expression (the part inside `cron(...)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpression {
    text: String,
    minutes: ValueSet,
    hours: ValueSet,
    months: ValueSet,
    days: Vec<DayRule>,
    years: ValueSet,
}

impl fmt::Display for CronExpression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cron({})", self.text)
    }
}

impl CronExpression {
    /// Parses the six space-separated fields (what goes between `cron(` and `)`).
    pub fn parse(fields: &str) -> Result<Self, CronError> {
        let error = |reason: String| CronError {
            expression: fields.to_string(),
            reason,
        };
        let parts: Vec<&str> = fields.split_whitespace().collect();
        match parts.len() {
            6 => {}
            7 => {
                return Err(error(
                    "the seven-field form with seconds is not supported; AWS's cron has six \
                     fields: minutes hours day-of-month month day-of-week year"
                        .into(),
                ))
            }
            n => {
                return Err(error(format!(
                    "expected six fields (minutes hours day-of-month month day-of-week year), \
                     found {n}"
                )))
            }
        }
        let minutes = parse_list(parts[0], &MINUTES).map_err(error)?;
        let hours = parse_list(parts[1], &HOURS).map_err(error)?;
        let months = parse_list(parts[3], &MONTH).map_err(error)?;
        let years = parse_list(parts[5], &YEAR).map_err(error)?;
        let days =
            match (parts[2], parts[4]) {
                ("?", "?") => {
                    return Err(error(
                        "day-of-month and day-of-week cannot both be `?`; give one of them".into(),
                    ))
                }
                (day_of_month, "?") => parse_day_of_month(day_of_month).map_err(error)?,
                ("?", day_of_week) => parse_day_of_week(day_of_week).map_err(error)?,
                _ => return Err(error(
                    "one of day-of-month and day-of-week must be `?` (AWS does not combine them)"
                        .into(),
                )),
            };
        Ok(CronExpression {
            text: parts.join(" "),
            minutes,
            hours,
            months,
            days,
            years,
        })
    }

    /// The first time at or after `from` when the expression fires in `zone`, or `None` if it
    /// never fires again (the year field has run out, or the expression names a day that never
    /// occurs, such as 30 February).
    pub fn next_at_or_after(&self, from: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        let mut date = from.to_zoned(zone.clone()).date();
        while (date.year() as u32) <= MAX_YEAR {
            let year = date.year() as u32;
            if !self.years.contains(year) {
                date = Date::new(date.year().checked_add(1)?, 1, 1).ok()?;
                continue;
            }
            if !self.months.contains(date.month() as u32) {
                date = date.last_of_month().tomorrow().ok()?;
                continue;
            }
            if self.matches_day(date) {
                if let Some(found) = self.first_time_on(date, from, zone) {
                    return Some(found);
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// The first firing on `date` at or after `from`. Civil times skipped by a DST gap do not
    /// fire; civil times repeated by a DST fold fire at their first occurrence only. Both keep
    /// the instants in the same order as the civil times, so the first match is the earliest.
    fn first_time_on(&self, date: Date, from: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        for hour in 0..24u32 {
            if !self.hours.contains(hour) {
                continue;
            }
            for minute in 0..60u32 {
                if !self.minutes.contains(minute) {
                    continue;
                }
                let civil: DateTime = date.at(hour as i8, minute as i8, 0, 0);
                let ambiguous = zone.to_ambiguous_timestamp(civil);
                if matches!(ambiguous.offset(), AmbiguousOffset::Gap { .. }) {
                    continue;
                }
                match ambiguous.earlier() {
                    Ok(instant) if instant >= from => return Some(instant),
                    _ => {}
                }
            }
        }
        None
    }

    fn matches_day(&self, date: Date) -> bool {
        self.days.iter().any(|rule| rule.matches(date))
    }
}

impl DayRule {
    fn matches(&self, date: Date) -> bool {
        let day = date.day() as u32;
        let days_in_month = date.days_in_month() as u32;
        let weekday = date.weekday().to_sunday_one_offset() as u8;
        match self {
            DayRule::MonthDays(set) => set.contains(day),
            DayRule::LastDayOfMonth => day == days_in_month,
            DayRule::LastWeekdayOfMonth => {
                let last = date.last_of_month();
                let back = match last.weekday().to_sunday_one_offset() {
                    7 => 1, // Saturday → Friday
                    1 => 2, // Sunday → Friday
                    _ => 0,
                };
                day == days_in_month - back
            }
            DayRule::NearestWeekday(target) => {
                let target = u32::from(*target);
                if target > days_in_month {
                    return false;
                }
                let Ok(target_date) = Date::new(date.year(), date.month(), target as i8) else {
                    return false;
                };
                let nearest = match target_date.weekday().to_sunday_one_offset() {
                    7 if target == 1 => target + 2, // Saturday the 1st → Monday the 3rd
                    7 => target - 1,
                    1 if target == days_in_month => target - 2, // Sunday the last → Friday
                    1 => target + 1,
                    _ => target,
                };
                day == nearest
            }
            DayRule::WeekDays(set) => set.contains(u32::from(weekday)),
            DayRule::LastWeekdayOfKind(kind) => weekday == *kind && day + 7 > days_in_month,
            DayRule::NthWeekday { weekday: kind, nth } => {
                weekday == *kind && (day - 1) / 7 + 1 == u32::from(*nth)
            }
        }
    }
}

/// Parses a comma list of `*`, `n`, `a-b`, each optionally `/step`, with the field's names.
fn parse_list(text: &str, field: &Field) -> Result<ValueSet, String> {
    let mut set = ValueSet::empty(field.min);
    for item in text.split(',') {
        add_item(item, field, &mut set)?;
    }
    Ok(set)
}

/// Adds the values of one list item, `*`, `n`, `a-b`, each optionally `/step`, to `set`.
/// `a/step` runs from `a` to the end of the field and a downward range wraps around it, as in
/// Quartz.
fn add_item(item: &str, field: &Field, set: &mut ValueSet) -> Result<(), String> {
    let what = field.what;
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => {
            let step: u32 =
                step.parse().ok().filter(|step| *step >= 1).ok_or_else(|| {
                    format!("{what} field `{item}`: the step must be a number ≥ 1")
                })?;
            (range, step)
        }
        None => (item, 1),
    };
    let (first, last) = if range == "*" {
        (field.min, field.max)
    } else if let Some((first, last)) = range.split_once('-') {
        (parse_value(first, field)?, parse_value(last, field)?)
    } else {
        let first = parse_value(range, field)?;
        (first, if item.contains('/') { field.max } else { first })
    };
    if first > last && !field.wraps {
        return Err(format!(
            "{what} field `{item}`: a range of years must go upwards"
        ));
    }
    // A wrapping range counts on past the end of the field and folds back into it.
    let size = field.max - field.min + 1;
    let end = if first > last { last + size } else { last };
    let mut value = first;
    while value <= end {
        set.insert(field.min + (value - field.min) % size);
        match value.checked_add(step) {
            Some(next) => value = next,
            None => break,
        }
    }
    Ok(())
}

fn parse_value(text: &str, field: &Field) -> Result<u32, String> {
    let Field {
        what,
        min,
        max,
        names,
        ..
    } = *field;
    let upper = text.to_ascii_uppercase();
    if let Some(index) = names.iter().position(|name| *name == upper) {
        return Ok(min + index as u32);
    }
    match text.parse::<u32>() {
        Ok(value) if (min..=max).contains(&value) => Ok(value),
        Ok(value) => Err(format!("{what} field: {value} is outside {min}–{max}")),
        Err(_) if text.contains(['L', 'W', '#', 'l', 'w']) => Err(format!(
            "{what} field `{text}`: `L`, `W` and `#` are items of the day fields (`L`, `LW`, \
             `15W`; `L`, `6L`, `2#1`), not parts of a range or step"
        )),
        Err(_) => Err(format!("{what} field: `{text}` is not a value")),
    }
}

/// The day-of-month field: a list of `L`, `LW`, `nW` and values or ranges.
fn parse_day_of_month(text: &str) -> Result<Vec<DayRule>, String> {
    let mut set = ValueSet::empty(DAY_OF_MONTH.min);
    let mut rules = Vec::new();
    for item in text.split(',') {
        let upper = item.to_ascii_uppercase();
        if upper == "L" {
            rules.push(DayRule::LastDayOfMonth);
        } else if upper == "LW" {
            rules.push(DayRule::LastWeekdayOfMonth);
        } else if let Some(day) = upper.strip_suffix('W') {
            match day.parse::<u8>() {
                Ok(day) if (1..=31).contains(&day) => rules.push(DayRule::NearestWeekday(day)),
                _ => {
                    return Err(format!(
                        "day-of-month field `{item}`: `W` takes one day 1–31 (`15W`)"
                    ))
                }
            }
        } else if upper.starts_with("L-") {
            return Err(format!(
                "day-of-month field `{item}`: `L-n` offsets are not supported"
            ));
        } else {
            add_item(item, &DAY_OF_MONTH, &mut set)?;
        }
    }
    if set != ValueSet::empty(DAY_OF_MONTH.min) {
        rules.push(DayRule::MonthDays(set));
    }
    Ok(rules)
}

/// The day-of-week field: a list of `L` (Saturday), `dL`, `d#n` and values or ranges.
fn parse_day_of_week(text: &str) -> Result<Vec<DayRule>, String> {
    let weekday = |day: &str| parse_value(day, &DAY_OF_WEEK).map(|day| day as u8);
    let mut set = ValueSet::empty(DAY_OF_WEEK.min);
    let mut rules = Vec::new();
    for item in text.split(',') {
        let upper = item.to_ascii_uppercase();
        if upper == "L" {
            // Quartz and EventBridge: `L` alone in the day-of-week field is the last day of
            // the week, Saturday.
            set.insert(7);
        } else if let Some((day, nth)) = upper.split_once('#') {
            let weekday = weekday(day)?;
            match nth.parse::<u8>() {
                Ok(nth) if (1..=5).contains(&nth) => {
                    rules.push(DayRule::NthWeekday { weekday, nth })
                }
                _ => {
                    return Err(format!(
                        "day-of-week field `{item}`: `#` takes an occurrence 1–5 (`2#1`, the \
                         first Monday)"
                    ))
                }
            }
        } else if let Some(day) = upper.strip_suffix('L') {
            rules.push(DayRule::LastWeekdayOfKind(weekday(day)?));
        } else {
            add_item(item, &DAY_OF_WEEK, &mut set)?;
        }
    }
    if set != ValueSet::empty(DAY_OF_WEEK.min) {
        rules.push(DayRule::WeekDays(set));
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn next(expression: &str, from: &str) -> Option<String> {
        let cron = CronExpression::parse(expression).unwrap();
        cron.next_at_or_after(utc(from), &TimeZone::UTC)
            .map(|t| t.to_string())
    }

    #[test]
    fn aws_documentation_examples() {
        // 10:15 UTC every day.
        assert_eq!(
            next("15 10 * * ? *", "2026-01-01T11:00:00Z").as_deref(),
            Some("2026-01-02T10:15:00Z")
        );
        // 18:00 Monday to Friday (2026-01-02 is a Friday).
        assert_eq!(
            next("0 18 ? * MON-FRI *", "2026-01-02T18:00:01Z").as_deref(),
            Some("2026-01-05T18:00:00Z")
        );
        // 08:00 on the first day of every month.
        assert_eq!(
            next("0 8 1 * ? *", "2026-01-01T08:00:00Z").as_deref(),
            Some("2026-01-01T08:00:00Z")
        );
        // Every 10 minutes on weekdays.
        assert_eq!(
            next("0/10 * ? * MON-FRI *", "2026-01-02T23:55:00Z").as_deref(),
            Some("2026-01-05T00:00:00Z")
        );
        // Every 5 minutes between 08:00 and 17:55 on weekdays.
        assert_eq!(
            next("0/5 8-17 ? * MON-FRI *", "2026-01-05T17:56:00Z").as_deref(),
            Some("2026-01-06T08:00:00Z")
        );
        // 09:00 on the first Monday of each month (2026-02-02 is a Monday).
        assert_eq!(
            next("0 9 ? * 2#1 *", "2026-01-06T00:00:00Z").as_deref(),
            Some("2026-02-02T09:00:00Z")
        );
    }

    #[test]
    fn sunday_is_one_and_l_alone_is_saturday() {
        // 2026-01-04 is a Sunday, 2026-01-10 a Saturday.
        assert_eq!(
            next("0 0 ? * 1 *", "2026-01-01T00:00:00Z").as_deref(),
            Some("2026-01-04T00:00:00Z")
        );
        assert_eq!(
            next("0 0 ? * L *", "2026-01-04T00:00:00Z").as_deref(),
            Some("2026-01-10T00:00:00Z")
        );
    }

    #[test]
    fn last_day_weekday_and_nearest_weekday() {
        assert_eq!(
            next("0 0 L * ? *", "2026-02-01T00:00:00Z").as_deref(),
            Some("2026-02-28T00:00:00Z")
        );
        assert_eq!(
            next("0 0 L * ? *", "2028-02-01T00:00:00Z").as_deref(),
            Some("2028-02-29T00:00:00Z")
        );
        // 2026-05-31 is a Sunday: the last weekday of May is Friday the 29th.
        assert_eq!(
            next("0 0 LW * ? *", "2026-05-01T00:00:00Z").as_deref(),
            Some("2026-05-29T00:00:00Z")
        );
        // 2026-08-15 is a Saturday: nearest weekday Friday the 14th.
        assert_eq!(
            next("0 0 15W * ? *", "2026-08-01T00:00:00Z").as_deref(),
            Some("2026-08-14T00:00:00Z")
        );
        // 2026-08-01 is a Saturday: `1W` does not go back into July, it is Monday the 3rd.
        assert_eq!(
            next("0 0 1W * ? *", "2026-07-31T00:00:00Z").as_deref(),
            Some("2026-08-03T00:00:00Z")
        );
        // Last Friday of the month.
        assert_eq!(
            next("0 0 ? * 6L *", "2026-01-01T00:00:00Z").as_deref(),
            Some("2026-01-30T00:00:00Z")
        );
    }

    #[test]
    fn year_field_bounds_the_schedule() {
        assert_eq!(
            next("0 0 1 1 ? 2027", "2026-06-01T00:00:00Z").as_deref(),
            Some("2027-01-01T00:00:00Z")
        );
        assert_eq!(next("0 0 1 1 ? 2027", "2027-01-01T00:00:01Z"), None);
        assert_eq!(next("0 0 30 2 ? *", "2026-01-01T00:00:00Z"), None);
    }

    #[test]
    fn refuses_what_it_does_not_support_and_says_why() {
        let reason = |text: &str| CronExpression::parse(text).unwrap_err().reason;
        assert!(reason("0 0 * * *").contains("six fields"));
        assert!(reason("0 0 0 * * ? *").contains("seconds"));
        assert!(reason("0 0 * * * *").contains("must be `?`"));
        assert!(reason("0 0 ? * ? *").contains("both"));
        assert!(reason("60 0 * * ? *").contains("outside 0–59"));
        assert!(reason("0 0 * * ? 2030-2020").contains("years must go upwards"));
        assert!(reason("0 0 L/2 * ? *").contains("not parts of a range or step"));
        assert!(reason("0 0 ? * 2#6 *").contains("occurrence 1–5"));
        assert!(reason("0/0 0 * * ? *").contains("step"));
        assert!(reason("0 0 L-2 * ? *").contains("offsets"));
    }

    #[test]
    fn downward_ranges_wrap_around_the_field() {
        let cron = CronExpression::parse("50-10/5 22-2 ? NOV-FEB FRI-MON *").unwrap();
        let minutes: Vec<u32> = (0..60).filter(|m| cron.minutes.contains(*m)).collect();
        assert_eq!(minutes, [0, 5, 10, 50, 55]);
        let hours: Vec<u32> = (0..24).filter(|h| cron.hours.contains(*h)).collect();
        assert_eq!(hours, [0, 1, 2, 22, 23]);
        let months: Vec<u32> = (1..=12).filter(|m| cron.months.contains(*m)).collect();
        assert_eq!(months, [1, 2, 11, 12]);
        // 2026-01-02 is a Friday; Tuesday to Thursday are skipped.
        assert_eq!(
            next("0 12 ? * FRI-MON *", "2026-01-05T12:00:01Z").as_deref(),
            Some("2026-01-09T12:00:00Z")
        );
        // Day of month 30-2 in February: 1 and 2 March follow the 28th.
        assert_eq!(
            next("0 0 30-2 * ? *", "2026-02-03T00:00:00Z").as_deref(),
            Some("2026-03-01T00:00:00Z")
        );
    }

    #[test]
    fn special_days_may_be_items_of_a_list() {
        // The 15th and the last day.
        assert_eq!(
            next("0 0 L,15 * ? *", "2026-02-16T00:00:00Z").as_deref(),
            Some("2026-02-28T00:00:00Z")
        );
        assert_eq!(
            next("0 0 L,15 * ? *", "2026-03-01T00:00:00Z").as_deref(),
            Some("2026-03-15T00:00:00Z")
        );
        // The first Monday and the last Friday (2026-01-30) of the month, and Saturdays (`L`).
        let runs = |from: &str, count: usize| {
            let cron = CronExpression::parse("0 0 ? * 2#1,6L,L *").unwrap();
            let mut at = utc(from);
            let mut found = Vec::new();
            for _ in 0..count {
                let run = cron.next_at_or_after(at, &TimeZone::UTC).unwrap();
                found.push(run.to_string());
                at = run + jiff::SignedDuration::from_secs(1);
            }
            found
        };
        assert_eq!(
            runs("2026-01-20T00:00:00Z", 4),
            [
                "2026-01-24T00:00:00Z",
                "2026-01-30T00:00:00Z",
                "2026-01-31T00:00:00Z",
                "2026-02-02T00:00:00Z"
            ]
        );
        // Nearest weekdays to the 1st and 15th of August 2026 (a Saturday each): 3rd and 14th.
        assert_eq!(
            next("0 0 1W,15W * ? *", "2026-08-04T00:00:00Z").as_deref(),
            Some("2026-08-14T00:00:00Z")
        );
    }

    #[test]
    fn huge_steps_take_the_first_value_only() {
        let cron = CronExpression::parse("1/4294967295 0 * * ? 2000/4294967295").unwrap();
        let minutes: Vec<u32> = (0..60).filter(|m| cron.minutes.contains(*m)).collect();
        assert_eq!(minutes, [1]);
        assert!(cron.years.contains(2000) && !cron.years.contains(2001));
    }

    #[test]
    fn names_and_steps() {
        let cron = CronExpression::parse("*/20 1 ? jan,Jul sun *").unwrap();
        assert!(cron.minutes.contains(40) && !cron.minutes.contains(10));
        assert!(cron.months.contains(7) && !cron.months.contains(6));
        assert_eq!(cron.to_string(), "cron(*/20 1 ? jan,Jul sun *)");
    }
}
