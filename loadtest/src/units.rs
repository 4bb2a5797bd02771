//! The few units command lines speak: durations (`500ms`, `30s`, `5m`, `1h`) and ratios
//! (`1/2000`), parsed one way everywhere.

use std::time::Duration;

/// Seconds from `N` plus a unit: `us`/`µs`, `ms`, `s`, `m` or `h`. Non-negative and finite.
pub fn parse_seconds(text: &str) -> Option<f64> {
    let text = text.trim();
    // Longest suffixes first: "ms" and "us" also end in "s".
    for (suffix, scale) in [
        ("ms", 1e-3),
        ("us", 1e-6),
        ("µs", 1e-6),
        ("s", 1.0),
        ("m", 60.0),
        ("h", 3600.0),
    ] {
        if let Some(number) = text.strip_suffix(suffix) {
            return number
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .map(|n| n * scale);
        }
    }
    None
}

/// A [`Duration`] from the same forms as [`parse_seconds`], with a message for clap.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    parse_seconds(text)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            format!("`{text}` is not a duration: use a number and a unit (ms, s, m, h), e.g. 30s")
        })
}

/// A positive multiplier written as a number (`0.0005`) or a fraction (`1/2000`).
pub fn parse_ratio(text: &str) -> Result<f64, String> {
    let value = match text.split_once('/') {
        Some((numerator, denominator)) => {
            let numerator: f64 = numerator.trim().parse().map_err(|_| bad_ratio(text))?;
            let denominator: f64 = denominator.trim().parse().map_err(|_| bad_ratio(text))?;
            numerator / denominator
        }
        None => text.trim().parse().map_err(|_| bad_ratio(text))?,
    };
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(bad_ratio(text))
    }
}

fn bad_ratio(text: &str) -> String {
    format!("`{text}` is not a positive number or fraction such as 0.0005 or 1/2000")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_seconds("500ms"), Some(0.5));
        assert_eq!(parse_seconds("250us"), Some(0.000_25));
        assert_eq!(parse_seconds("30s"), Some(30.0));
        assert_eq!(parse_seconds("1.5m"), Some(90.0));
        assert_eq!(parse_seconds("2h"), Some(7200.0));
        assert_eq!(parse_seconds("30"), None);
        assert_eq!(parse_seconds("-1s"), None);
        assert!(parse_duration("ten seconds")
            .unwrap_err()
            .contains("not a duration"));
    }

    #[test]
    fn ratios_as_numbers_or_fractions() {
        assert_eq!(parse_ratio("1/2000"), Ok(0.0005));
        assert_eq!(parse_ratio("0.5"), Ok(0.5));
        assert!(parse_ratio("0").is_err());
        assert!(parse_ratio("1/0").is_err());
        assert!(parse_ratio("a/b").is_err());
    }
}
