//! `{placeholder}` templates for shell commands (deploy steps, the local provider, the command balancer) and URLs, with safe shell quoting.
//!
//! A value substituted into a shell command is quoted by tend (single quotes, `'` written as `'\''`),
//! so a branch name like `x;rm -rf /` stays one word. That only holds when the placeholder is *not*
//! already inside quotes in the template (`"{commit}"` would put our single quotes inside double
//! quotes, where `$(...)` still runs), so parsing refuses a known placeholder written inside quotes.

use std::borrow::Cow;

/// A parsed template: text with `{name}` holes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
    shell: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    Var(String),
}

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{name}` is not one of the known placeholders.
    #[error("unknown placeholder {{{name}}}; known: {known}")]
    Unknown {
        /// The placeholder as written, without braces.
        name: String,
        /// The allowed ones, formatted `{a}, {b}`.
        known: String,
    },
    /// A placeholder inside quotes would defeat tend's quoting.
    #[error("{{{name}}} is inside quotes: write it bare, tend shell-quotes the value itself")]
    Quoted {
        /// The placeholder.
        name: String,
    },
    /// A placeholder has no value for this rollout.
    #[error("{{{name}}} has no value (pass --{name} or leave it out of the steps)")]
    Missing {
        /// The placeholder.
        name: String,
    },
}

#[derive(Clone, Copy, PartialEq)]
enum Quote {
    None,
    Single,
    Double,
}

impl Template {
    /// Parses `text`; `allowed` lists the placeholder names; `shell` enables quote tracking (steps).
    pub fn parse(text: &str, allowed: &[&str], shell: bool) -> Result<Self, TemplateError> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut quote = Quote::None;
        let mut chars = text.char_indices().peekable();
        let mut prev: Option<char> = None;
        while let Some((i, c)) = chars.next() {
            if c == '{' && prev != Some('$') {
                if let Some(name) = placeholder_at(&text[i..]) {
                    let known = allowed.contains(&name);
                    if quote != Quote::None {
                        if known {
                            return Err(TemplateError::Quoted {
                                name: name.to_owned(),
                            });
                        }
                    } else if !known {
                        let known = allowed
                            .iter()
                            .map(|a| format!("{{{a}}}"))
                            .collect::<Vec<_>>()
                            .join(", ");
                        return Err(TemplateError::Unknown {
                            name: name.to_owned(),
                            known,
                        });
                    } else {
                        segments.push(Segment::Text(std::mem::take(&mut literal)));
                        segments.push(Segment::Var(name.to_owned()));
                        for _ in 0..name.len() + 1 {
                            chars.next();
                        }
                        prev = Some('}');
                        continue;
                    }
                }
            }
            literal.push(c);
            if shell {
                match (quote, c) {
                    (Quote::None, '\\') | (Quote::Double, '\\') => {
                        if let Some((_, next)) = chars.next() {
                            literal.push(next);
                        }
                        prev = None;
                        continue;
                    }
                    (Quote::None, '\'') => quote = Quote::Single,
                    (Quote::Single, '\'') => quote = Quote::None,
                    (Quote::None, '"') => quote = Quote::Double,
                    (Quote::Double, '"') => quote = Quote::None,
                    _ => {}
                }
            }
            prev = Some(c);
        }
        segments.push(Segment::Text(literal));
        segments.retain(|s| !matches!(s, Segment::Text(t) if t.is_empty()));
        Ok(Template { segments, shell })
    }

    /// Placeholder names used, in order (with repeats).
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Var(v) => Some(v.as_str()),
            Segment::Text(_) => None,
        })
    }

    /// Fills the holes from `value`; shell templates get each value shell-quoted.
    pub fn render<'v>(
        &self,
        value: impl Fn(&str) -> Option<&'v str>,
    ) -> Result<String, TemplateError> {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Text(t) => out.push_str(t),
                Segment::Var(name) => {
                    let v =
                        value(name).ok_or_else(|| TemplateError::Missing { name: name.clone() })?;
                    if self.shell {
                        out.push_str(&shell_quote(v));
                    } else {
                        out.push_str(v);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Renders a shell command: `text` with `{key}` holes filled from `values`, each value shell-quoted. Refuses an
/// unknown placeholder and one written inside quotes (see [`Template::parse`]).
pub fn render_shell(text: &str, values: &[(&str, &str)]) -> Result<String, TemplateError> {
    let keys: Vec<&str> = values.iter().map(|(k, _)| *k).collect();
    Template::parse(text, &keys, true)?
        .render(|name| values.iter().find(|(k, _)| *k == name).map(|(_, v)| *v))
}

/// `{name}` at the start of `s` (name = lowercase letters and `_`), if any.
fn placeholder_at(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('{')?;
    let end = rest.find('}')?;
    let name = &rest[..end];
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')).then_some(name)
}

/// Characters that never need quoting in a POSIX shell word (and are safe in host and user names).
pub fn is_safe_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '_' | '-' | '.' | '/' | ':' | '@' | '%' | '+' | ',' | '=')
}

/// Quotes `value` as one POSIX shell word; plain words are returned as they are.
pub fn shell_quote(value: &str) -> Cow<'_, str> {
    if !value.is_empty() && value.chars().all(is_safe_char) {
        return Cow::Borrowed(value);
    }
    Cow::Owned(format!("'{}'", value.replace('\'', "'\\''")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: &[&str] = &["host", "name", "commit", "branch"];

    fn render(text: &str, commit: &str) -> String {
        let t = Template::parse(text, STEP, true).unwrap();
        t.render(|n| match n {
            "commit" => Some(commit),
            "host" => Some("127.0.0.1:2201"),
            "branch" => Some("main"),
            _ => None,
        })
        .unwrap()
    }

    #[test]
    fn substitutes_and_quotes() {
        assert_eq!(
            render("git checkout {commit}", "abc123"),
            "git checkout abc123"
        );
        assert_eq!(
            render("echo {commit} > /tmp/{host}", "a b"),
            "echo 'a b' > /tmp/127.0.0.1:2201"
        );
        assert_eq!(render("echo {commit}", "it's"), "echo 'it'\\''s'");
        assert_eq!(render("echo {commit}", ""), "echo ''");
        assert_eq!(
            render("echo {commit}", "$(reboot);`x`"),
            "echo '$(reboot);`x`'"
        );
        assert_eq!(render("{branch}{branch}", "x"), "mainmain");
    }

    #[test]
    fn quoted_values_round_trip_through_sh() {
        for value in [
            "plain",
            "a b",
            "it's",
            "$(echo pwned)",
            "`id`",
            "x;y|z&",
            "\"dq\"",
            "\\",
            "",
            "~root",
            "*",
        ] {
            let cmd = render("printf %s {commit}", value);
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&cmd)
                .output()
                .unwrap();
            assert_eq!(
                String::from_utf8(out.stdout).unwrap(),
                value,
                "command {cmd}"
            );
        }
    }

    #[test]
    fn shell_syntax_that_is_not_a_placeholder_is_kept() {
        assert_eq!(
            render("echo ${HOME} {} {a,b}", "c"),
            "echo ${HOME} {} {a,b}"
        );
        assert_eq!(render("awk '{print}' f", "c"), "awk '{print}' f");
        assert_eq!(render("echo \\'{commit}", "c"), "echo \\'c");
        assert_eq!(render("echo 'a'{commit}\"b\"", "c d"), "echo 'a''c d'\"b\"");
    }

    #[test]
    fn refuses_placeholders_inside_quotes_and_unknown_ones() {
        for bad in [
            "echo '{commit}'",
            "echo \"{commit}\"",
            "echo \"x {host} y\"",
        ] {
            assert!(
                matches!(
                    Template::parse(bad, STEP, true),
                    Err(TemplateError::Quoted { .. })
                ),
                "{bad}"
            );
        }
        let e = Template::parse("echo {comit}", STEP, true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown placeholder {comit}; known: {host}, {name}, {commit}, {branch}"
        );
    }

    #[test]
    fn url_templates_are_not_shell_quoted() {
        let t = Template::parse(
            "http://{address}:8080/h?x='{host}'",
            &["address", "host"],
            false,
        )
        .unwrap();
        let out = t
            .render(|n| Some(if n == "address" { "10.0.0.1" } else { "a b" }))
            .unwrap();
        assert_eq!(out, "http://10.0.0.1:8080/h?x='a b'");
        assert_eq!(t.placeholders().collect::<Vec<_>>(), ["address", "host"]);
    }

    #[test]
    fn missing_values_are_named() {
        let t = Template::parse("git checkout {commit}", STEP, true).unwrap();
        let e = t.render(|_| None).unwrap_err();
        assert_eq!(
            e,
            TemplateError::Missing {
                name: "commit".into()
            }
        );
    }
}
