//! Plain-text tables for the command line: columns padded to their widest cell, two spaces apart, one line per
//! row, an `empty` line when there are no rows.

/// The table of `rows` under `header`; `empty` (a whole line) stands for no rows.
pub fn render<const N: usize>(header: [&str; N], rows: &[[String; N]], empty: &str) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let header = header.map(String::from);
    for r in std::iter::once(&header).chain(rows) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if rows.is_empty() {
        out.push_str(empty);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up_and_an_empty_table_says_so() {
        let rows = [
            ["1".to_string(), "web-a".to_string(), "ok".to_string()],
            ["12".to_string(), "b".to_string(), String::new()],
        ];
        assert_eq!(
            super::render(["ID", "NAME", "STATE"], &rows, "(none)"),
            "ID  NAME   STATE\n1   web-a  ok\n12  b\n"
        );
        assert_eq!(super::render(["ID"], &[], "(none)"), "ID\n(none)\n");
    }
}
