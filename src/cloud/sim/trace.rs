//! Loading a load trace: a CSV file with a header row, one numeric column picked by name (default: the first).

use std::path::{Path, PathBuf};

/// Why a trace could not be loaded; every message names the file (and the line for bad rows).
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be read.
    #[error("cannot read trace {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// No header row, or no data rows.
    #[error("trace {path} has no {what}")]
    Empty {
        /// The file.
        path: PathBuf,
        /// "header row" or "data rows".
        what: &'static str,
    },
    /// The requested column is not in the header.
    #[error("trace {path} has no column {column:?} (columns: {available})")]
    NoColumn {
        /// The file.
        path: PathBuf,
        /// The requested column.
        column: String,
        /// The header's columns, comma-separated.
        available: String,
    },
    /// A row whose value is missing, not a number, negative or not finite.
    #[error("{path}:{line}: bad value {value:?} in column {column:?} (expected a number ≥ 0)")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The column.
        column: String,
        /// The text found.
        value: String,
    },
    /// Every value is 0: demand cannot be scaled to the peak.
    #[error("trace {path}: column {column:?} is all zero, nothing to scale")]
    AllZero {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
    },
}

/// Reads the column `column` (or the first) of the CSV file at `path`.
pub fn load_trace(path: &Path, column: Option<&str>) -> Result<Vec<f64>, TraceError> {
    let text = std::fs::read_to_string(path).map_err(|source| TraceError::Io {
        path: path.into(),
        source,
    })?;
    parse_trace(&text, column, path)
}

fn cells(line: &str) -> impl Iterator<Item = &str> {
    line.split(',').map(|c| c.trim().trim_matches('"'))
}

/// Parses CSV text (see [`load_trace`]); `path` only names the source in errors.
pub fn parse_trace(text: &str, column: Option<&str>, path: &Path) -> Result<Vec<f64>, TraceError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or(TraceError::Empty {
        path: path.into(),
        what: "header row",
    })?;
    let names: Vec<&str> = cells(header).collect();
    let index = match column {
        None => 0,
        Some(c) => names
            .iter()
            .position(|n| *n == c)
            .ok_or_else(|| TraceError::NoColumn {
                path: path.into(),
                column: c.into(),
                available: names.join(", "),
            })?,
    };
    let name = names.get(index).copied().unwrap_or("").to_string();
    let mut values = Vec::new();
    for (i, line) in lines {
        let cell = cells(line).nth(index).unwrap_or("");
        match cell.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => values.push(v),
            _ => {
                return Err(TraceError::BadValue {
                    path: path.into(),
                    line: i + 1,
                    column: name,
                    value: cell.into(),
                });
            }
        }
    }
    if values.is_empty() {
        return Err(TraceError::Empty {
            path: path.into(),
            what: "data rows",
        });
    }
    if values.iter().all(|v| *v == 0.0) {
        return Err(TraceError::AllZero {
            path: path.into(),
            column: name,
        });
    }
    Ok(values)
}

/// Demand in servers: value / max(value) × `peak`.
pub fn to_demand(values: &[f64], peak: f64) -> Vec<f64> {
    let max = values.iter().copied().fold(0.0, f64::max);
    values
        .iter()
        .map(|v| if max > 0.0 { v / max * peak } else { 0.0 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, column: Option<&str>) -> Result<Vec<f64>, TraceError> {
        parse_trace(text, column, Path::new("t.csv"))
    }

    #[test]
    fn first_column_by_default_and_by_name() {
        assert_eq!(parse("a,b\n1,10\n2,20\n", None).unwrap(), vec![1.0, 2.0]);
        assert_eq!(
            parse("a,\"b\"\n1,10\n\n2,20\n", Some("b")).unwrap(),
            vec![10.0, 20.0]
        );
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = parse("a,b\n1,10\n2,x\n", Some("b"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "t.csv:3: bad value \"x\" in column \"b\" (expected a number ≥ 0)"
        );
        let e = parse("a,b\n1\n", Some("b")).unwrap_err().to_string();
        assert!(e.contains("t.csv:2"), "{e}");
        let e = parse("a,b\n1,2\n", Some("c")).unwrap_err().to_string();
        assert!(e.contains("no column \"c\" (columns: a, b)"), "{e}");
        assert!(
            parse("", None)
                .unwrap_err()
                .to_string()
                .contains("header row")
        );
        assert!(
            parse("a\n", None)
                .unwrap_err()
                .to_string()
                .contains("data rows")
        );
        assert!(
            parse("a\n0\n0\n", None)
                .unwrap_err()
                .to_string()
                .contains("all zero")
        );
        assert!(parse("a\n-1\n", None).is_err());
    }

    #[test]
    fn scales_to_peak() {
        assert_eq!(to_demand(&[1.0, 2.0, 4.0], 20.0), vec![5.0, 10.0, 20.0]);
    }
}
