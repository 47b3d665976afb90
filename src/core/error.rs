//! Printing an error with its causes, once: `chain(&e)` is `outer: cause: root`, skipping a cause whose text the
//! message before it already shows (many errors print their source in their own message).

/// The error and its causes, `: `-separated, without repeats.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);
    #[derive(Debug, thiserror::Error)]
    #[error("middle: root")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn causes_once() {
        let e = Outer(Middle(std::io::Error::other("root")));
        assert_eq!(chain(&e), "outer: middle: root");
    }
}
