//! Numbers and durations as causes print them: short, and the same on every machine.

use std::time::Duration;

/// `value` with at most two decimals and no trailing zeros: 93.5, 50, 3.74.
pub fn number(value: f64) -> String {
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

/// A duration in seconds: "60 s", "1.5 s".
pub fn seconds(duration: Duration) -> String {
    format!("{} s", number(duration.as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short() {
        assert_eq!(number(93.5), "93.5");
        assert_eq!(number(50.0), "50");
        assert_eq!(number(3.740_000_1), "3.74");
        assert_eq!(number(-0.001), "0");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5 s");
    }
}
