//! Schedule expressions, time zones and timestamps of scheduled actions, checked for their
//! shape and ranges as Application Auto Scaling documents them (`autoscaling-semantics.md`
//! §1.4). When an action fires is the autoscaler's business, not checked here.

/// An RFC 3339 timestamp with its offset, e.g. `2026-06-01T00:00:00Z`.
pub(super) fn parse_timestamp(text: &str) -> Result<jiff::Timestamp, String> {
    text.parse::<jiff::Timestamp>().map_err(|error| {
        format!(
            "`{text}` is not an RFC 3339 timestamp ({error}); write one with its offset, e.g. \
             `2026-06-01T00:00:00Z`"
        )
    })
}

/// A time zone name of the IANA database (as bundled with scalegate), spelt as it spells it.
pub(super) fn check_time_zone(name: &str) -> Result<(), String> {
    match jiff::tz::db().get(name) {
        Ok(zone) => match zone.iana_name() {
            Some(canonical) if canonical != name => Err(format!(
                "write the time zone as the database spells it: `{canonical}`"
            )),
            _ => Ok(()),
        },
        Err(_) => Err(format!(
            "`{name}` is not an IANA time zone name; write one such as `UTC`, `Europe/Berlin` or \
             `America/New_York`"
        )),
    }
}

const SCHEDULE_FORMS: &str = "write `at(yyyy-mm-ddThh:mm:ss)`, `rate(value unit)` or \
                              `cron(minutes hours day-of-month month day-of-week year)`";

/// The shape of a schedule expression: `at(...)`, `rate(...)` or `cron(...)` with the syntax
/// and value ranges Application Auto Scaling documents. When it fires is not checked here.
pub(super) fn check_schedule(expression: &str) -> Result<(), String> {
    let (kind, inner) = expression
        .strip_suffix(')')
        .and_then(|rest| rest.split_once('('))
        .ok_or_else(|| format!("`{expression}` is not a schedule expression; {SCHEDULE_FORMS}"))?;
    match kind {
        "at" => check_at(inner),
        "rate" => check_rate(inner),
        "cron" => check_cron(inner),
        _ => Err(format!(
            "`{kind}(...)` is not a schedule expression; {SCHEDULE_FORMS}"
        )),
    }
    .map_err(|reason| format!("`{expression}`: {reason}"))
}

/// `yyyy-mm-ddThh:mm:ss`, a real date and time, read in the action's time zone.
fn check_at(inner: &str) -> Result<(), String> {
    let shaped = inner.len() == 19
        && inner.bytes().enumerate().all(|(index, byte)| match index {
            4 | 7 => byte == b'-',
            10 => byte == b'T',
            13 | 16 => byte == b':',
            _ => byte.is_ascii_digit(),
        });
    if !shaped {
        return Err("an `at` expression is `at(yyyy-mm-ddThh:mm:ss)`, e.g. \
                    `at(2026-06-01T08:00:00)` (in the action's time zone, no offset)"
            .to_string());
    }
    inner
        .parse::<jiff::civil::DateTime>()
        .map(drop)
        .map_err(|error| format!("{inner} is not a date and time: {error}"))
}

/// `value unit`: a positive whole number and minute(s), hour(s) or day(s).
fn check_rate(inner: &str) -> Result<(), String> {
    let parts: Vec<&str> = inner.split_whitespace().collect();
    let [value, unit] = parts.as_slice() else {
        return Err(
            "a `rate` expression is `rate(value unit)`, e.g. `rate(5 minutes)`".to_string(),
        );
    };
    let positive = value.bytes().all(|byte| byte.is_ascii_digit())
        && value.parse::<u32>().is_ok_and(|value| value > 0);
    if !positive {
        return Err(format!(
            "the rate's value `{value}` is not a positive whole number"
        ));
    }
    if !matches!(
        *unit,
        "minute" | "minutes" | "hour" | "hours" | "day" | "days"
    ) {
        return Err(format!(
            "the rate's unit `{unit}` is not minute, minutes, hour, hours, day or days"
        ));
    }
    Ok(())
}

/// One field of AWS's cron: its name, values, and which special characters it takes.
struct CronField {
    name: &'static str,
    values: std::ops::RangeInclusive<u32>,
    /// Names for values from `values.start()` on (`JAN`…, `SUN`…), matched case-insensitively.
    names: &'static [&'static str],
    /// `?`: no specific value (day-of-month and day-of-week).
    any: bool,
    /// `L`, `LW`, `nW` (day-of-month) or `L`, `nL`, `n#k` (day-of-week).
    specials: Specials,
}

#[derive(PartialEq)]
enum Specials {
    None,
    DayOfMonth,
    DayOfWeek,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const CRON_FIELDS: [CronField; 6] = [
    CronField {
        name: "minutes",
        values: 0..=59,
        names: &[],
        any: false,
        specials: Specials::None,
    },
    CronField {
        name: "hours",
        values: 0..=23,
        names: &[],
        any: false,
        specials: Specials::None,
    },
    CronField {
        name: "day-of-month",
        values: 1..=31,
        names: &[],
        any: true,
        specials: Specials::DayOfMonth,
    },
    CronField {
        name: "month",
        values: 1..=12,
        names: &MONTHS,
        any: false,
        specials: Specials::None,
    },
    CronField {
        name: "day-of-week",
        values: 1..=7,
        names: &WEEKDAYS,
        any: true,
        specials: Specials::DayOfWeek,
    },
    CronField {
        name: "year",
        values: 1970..=2199,
        names: &[],
        any: false,
        specials: Specials::None,
    },
];

/// Six fields, each valid, and `?` in exactly one of day-of-month and day-of-week.
fn check_cron(inner: &str) -> Result<(), String> {
    let fields: Vec<&str> = inner.split_whitespace().collect();
    if fields.len() != CRON_FIELDS.len() {
        return Err(format!(
            "a `cron` expression has 6 fields (minutes hours day-of-month month day-of-week \
             year), e.g. `cron(0 8 ? * MON-FRI *)`, not {}",
            fields.len()
        ));
    }
    for (text, field) in fields.iter().zip(&CRON_FIELDS) {
        check_cron_field(text, field)
            .map_err(|reason| format!("{} field `{text}`: {reason}", field.name))?;
    }
    match (fields[2] == "?", fields[4] == "?") {
        (true, false) | (false, true) => Ok(()),
        _ => Err(
            "exactly one of day-of-month and day-of-week must be `?` (as AWS requires): \
             e.g. `cron(0 8 ? * MON-FRI *)` or `cron(0 8 1 * ? *)`"
                .to_string(),
        ),
    }
}

fn check_cron_field(text: &str, field: &CronField) -> Result<(), String> {
    if text == "?" {
        return if field.any {
            Ok(())
        } else {
            Err("`?` is only for day-of-month and day-of-week".to_string())
        };
    }
    for item in text.split(',') {
        check_cron_item(item, field)?;
    }
    Ok(())
}

/// One comma-separated item: `*`, `v`, `a-b`, any of those `/step`, or a special.
fn check_cron_item(item: &str, field: &CronField) -> Result<(), String> {
    if item.is_empty() {
        return Err("has an empty item; separate values with single commas".to_string());
    }
    match field.specials {
        Specials::DayOfMonth => {
            if item == "L" || item == "LW" {
                return Ok(());
            }
            if let Some(day) = item.strip_suffix('W') {
                return cron_value(day, field).map(drop);
            }
        }
        Specials::DayOfWeek => {
            if item == "L" {
                return Ok(());
            }
            if let Some(day) = item.strip_suffix('L') {
                return cron_value(day, field).map(drop);
            }
            if let Some((day, nth)) = item.split_once('#') {
                cron_value(day, field)?;
                return match nth.parse::<u32>() {
                    Ok(1..=5) if nth.bytes().all(|byte| byte.is_ascii_digit()) => Ok(()),
                    _ => Err(format!("`{item}`: the week after `#` must be 1–5")),
                };
            }
        }
        Specials::None => {}
    }
    let (base, step) = match item.split_once('/') {
        Some((base, step)) => (base, Some(step)),
        None => (item, None),
    };
    if let Some(step) = step {
        let valid = step.bytes().all(|byte| byte.is_ascii_digit())
            && step.parse::<u32>().is_ok_and(|step| step > 0);
        if !valid {
            return Err(format!(
                "`{item}`: the step after `/` must be a positive whole number"
            ));
        }
    }
    if base == "*" {
        return Ok(());
    }
    match base.split_once('-') {
        Some((low, high)) => {
            let (low, high) = (cron_value(low, field)?, cron_value(high, field)?);
            // Other fields wrap around (`FRI-MON`, `22-2`), as Quartz reads them; years do not.
            if field.name == "year" && low > high {
                return Err(format!(
                    "`{item}`: a range of years must run upwards ({high}-{low}?)"
                ));
            }
        }
        None => {
            cron_value(base, field)?;
        }
    }
    Ok(())
}

/// A value of the field: a number in range, or one of its names.
fn cron_value(text: &str, field: &CronField) -> Result<u32, String> {
    let (start, end) = (field.values.start(), field.values.end());
    if let Some(position) = field
        .names
        .iter()
        .position(|name| name.eq_ignore_ascii_case(text))
    {
        return Ok(start + position as u32);
    }
    let named = if field.names.is_empty() {
        String::new()
    } else {
        format!(
            " or {}–{}",
            field.names[0],
            field.names[field.names.len() - 1]
        )
    };
    match text.parse::<u32>() {
        Ok(value)
            if text.bytes().all(|byte| byte.is_ascii_digit()) && field.values.contains(&value) =>
        {
            Ok(value)
        }
        Ok(_) if text.bytes().all(|byte| byte.is_ascii_digit()) => {
            Err(format!("{text} is outside {start}–{end}{named}"))
        }
        _ => Err(format!("`{text}` is not a value ({start}–{end}{named})")),
    }
}
