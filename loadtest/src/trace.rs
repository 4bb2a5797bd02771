//! Per-interval request-count traces (CSV), such as `traces/worldcup98/per-minute.csv`
//! (`period,count`, one row per minute).
//!
//! Only what such traces need: a header row naming the columns, comma-separated fields without
//! quoting, blank lines ignored. Every error names its line so a bad row in a 125,300-row file
//! can be found.

/// Which columns hold the interval label and the count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceColumns {
    /// The interval's label (kept for reports, not interpreted). Default `period`.
    pub period: String,
    /// The number of requests in the interval. Default `count`.
    pub count: String,
}

impl Default for TraceColumns {
    fn default() -> Self {
        TraceColumns {
            period: "period".to_string(),
            count: "count".to_string(),
        }
    }
}

/// One interval of a trace.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceRow {
    /// The interval's label, e.g. `1998-06-30 08:00:00`.
    pub period: String,
    /// Requests in the interval; non-negative.
    pub count: f64,
}

/// Why a trace could not be read. Lines count from 1 (the header).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceError {
    /// The file is empty.
    #[error("the trace is empty: expected a header row naming its columns")]
    Empty,
    /// The header lacks a column the options name.
    #[error("line 1: no column `{column}` in the header (columns: {header})")]
    MissingColumn {
        /// The missing column.
        column: String,
        /// The header as found.
        header: String,
    },
    /// A data row is malformed.
    #[error("line {line}: {reason}")]
    BadRow {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Parses a trace CSV, returning its rows in file order.
pub fn parse_trace(text: &str, columns: &TraceColumns) -> Result<Vec<TraceRow>, TraceError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line));
    let (_, header) = lines.next().ok_or(TraceError::Empty)?;
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let find = |column: &str| {
        names
            .iter()
            .position(|name| *name == column)
            .ok_or_else(|| TraceError::MissingColumn {
                column: column.to_string(),
                header: header.trim().to_string(),
            })
    };
    let period_index = find(&columns.period)?;
    let count_index = find(&columns.count)?;

    let mut rows = Vec::new();
    for (line, content) in lines {
        if content.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = content.split(',').map(str::trim).collect();
        if fields.len() != names.len() {
            return Err(TraceError::BadRow {
                line,
                reason: format!("expected {} fields, found {}", names.len(), fields.len()),
            });
        }
        let raw_count = fields[count_index];
        let count = match raw_count.parse::<f64>() {
            Ok(count) if count.is_finite() && count >= 0.0 => count,
            _ => {
                return Err(TraceError::BadRow {
                    line,
                    reason: format!(
                        "`{raw_count}` in column `{}` is not a non-negative number",
                        columns.count
                    ),
                })
            }
        };
        rows.push(TraceRow {
            period: fields[period_index].to_string(),
            count,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORLD_CUP_HEAD: &str = "period,count\n\
        1998-04-30 21:30:00,2\n\
        1998-04-30 21:31:00,11\n\
        1998-04-30 21:32:00,16\n";

    #[test]
    fn parses_the_world_cup_format() {
        let rows = parse_trace(WORLD_CUP_HEAD, &TraceColumns::default()).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].period, "1998-04-30 21:30:00");
        assert_eq!(rows[1].count, 11.0);
    }

    #[test]
    fn columns_are_found_by_name_in_any_order() {
        let text = "requests,minute,host\n5,00:01,a\r\n\n7,00:02,b\n";
        let columns = TraceColumns {
            period: "minute".into(),
            count: "requests".into(),
        };
        let rows = parse_trace(text, &columns).unwrap();
        assert_eq!(
            rows,
            vec![
                TraceRow {
                    period: "00:01".into(),
                    count: 5.0
                },
                TraceRow {
                    period: "00:02".into(),
                    count: 7.0
                },
            ]
        );
    }

    #[test]
    fn bad_rows_name_their_line() {
        let bad_count = "period,count\n1998-04-30 21:30:00,2\n1998-04-30 21:31:00,eleven\n";
        let error = parse_trace(bad_count, &TraceColumns::default()).unwrap_err();
        assert!(
            matches!(error, TraceError::BadRow { line: 3, .. }),
            "{error}"
        );
        assert!(error.to_string().starts_with("line 3: `eleven`"), "{error}");

        let negative = "period,count\n1998-04-30 21:30:00,-2\n";
        let error = parse_trace(negative, &TraceColumns::default()).unwrap_err();
        assert!(
            matches!(error, TraceError::BadRow { line: 2, .. }),
            "{error}"
        );

        let short = "period,count\n\n1998-04-30 21:30:00\n";
        let error = parse_trace(short, &TraceColumns::default()).unwrap_err();
        assert_eq!(error.to_string(), "line 3: expected 2 fields, found 1");
    }

    #[test]
    fn missing_column_and_empty_file() {
        let error = parse_trace("time,n\n", &TraceColumns::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 1: no column `period` in the header (columns: time,n)"
        );
        assert_eq!(
            parse_trace("", &TraceColumns::default()),
            Err(TraceError::Empty)
        );
    }
}
