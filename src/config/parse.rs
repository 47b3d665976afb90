//! The TOML machinery under [`super::Config::parse`]: `${VAR}` expansion, `FILE:LINE:COL` locations, removing a
//! bad key to find the next error, spans of dotted key paths, and did-you-mean for unknown keys.

use std::ops::Range;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use super::error::ConfigError;

/// Turns a byte offset into `FILE:LINE:COL`.
pub(super) fn locate(text: &str, file: &str, offset: usize, message: String) -> ConfigError {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    ConfigError {
        file: file.to_string(),
        line,
        col,
        message,
    }
}

/// Replaces `${VAR}` (and `${VAR:-default}`) in every string value; `$${` is a literal `${`.
pub(super) fn interpolate_table(
    table: &mut DeTable<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    path: &str,
    report: &mut dyn FnMut(Range<usize>, String),
) {
    for (key, value) in table.iter_mut() {
        let here = join(path, key.get_ref());
        interpolate_value(value, env, &here, report);
    }
}

fn interpolate_value(
    value: &mut toml::Spanned<DeValue<'_>>,
    env: &dyn Fn(&str) -> Option<String>,
    path: &str,
    report: &mut dyn FnMut(Range<usize>, String),
) {
    let span = value.span();
    match value.get_mut() {
        DeValue::String(s) if s.contains('$') => match expand(s.as_ref(), env) {
            Ok(expanded) => *s = std::borrow::Cow::Owned(expanded),
            Err(message) => report(span, format!("`{path}`: {message}")),
        },
        DeValue::Table(t) => interpolate_table(t, env, path, report),
        DeValue::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_value(item, env, &format!("{path}[{i}]"), report);
            }
        }
        _ => {}
    }
}

/// Why a `${VAR}` could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// `${` without its `}`.
    #[error("unclosed `${{` in {0:?}: write `${{VAR}}`")]
    Unclosed(String),
    /// The name is not an environment variable name.
    #[error("`${{{0}}}` is not a valid environment variable name")]
    BadName(String),
    /// The variable is not set and has no default.
    #[error("environment variable `{0}` is not set (set it, or write `${{{0}:-default}}`)")]
    Unset(String),
}

/// Expands `${VAR}` / `${VAR:-default}` in one string.
pub fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = t;
        } else if let Some(t) = tail.strip_prefix("${") {
            let end = t
                .find('}')
                .ok_or_else(|| ExpandError::Unclosed(s.to_string()))?;
            let inner = &t[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(ExpandError::BadName(inner.to_string()));
            }
            match (env(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(ExpandError::Unset(name.to_string()));
                }
            }
            rest = &t[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Removes the deepest key whose key or value covers `span`; returns its name, or None when nothing matched.
/// Tables are searched whatever their own span (a `[header]` table's span is the header alone).
pub(super) fn remove_at(table: &mut DeTable<'_>, span: &Range<usize>) -> Option<String> {
    let covers = |r: Range<usize>| r.start <= span.start && span.end <= r.end.max(r.start + 1);
    let mut hit = None;
    for (key, value) in table.iter_mut() {
        let (key_span, value_span) = (key.span(), value.span());
        let deeper = match value.get_mut() {
            DeValue::Table(t) => remove_at(t, span),
            DeValue::Array(items) => items.iter_mut().find_map(|item| match item.get_mut() {
                DeValue::Table(t) => remove_at(t, span),
                _ => None,
            }),
            _ => None,
        };
        if deeper.is_some() {
            return deeper;
        }
        if covers(key_span) || covers(value_span) {
            hit = Some(key.get_ref().to_string());
            break;
        }
    }
    let name = hit?;
    table.remove(name.as_str());
    Some(name)
}

/// `[scale]` holds its own keys and the policy's, flattened; serde reports an error inside a flattened table at the
/// table, without the key or the list of known keys. So the policy's keys are first read on their own, where an
/// error names and points at its key (and an unknown key gets a did-you-mean).
pub(super) fn flattened_policy_error(doc: &DeTable<'_>) -> Option<(Range<usize>, String)> {
    let scale = doc.get("scale")?;
    let DeValue::Table(table) = scale.get_ref() else {
        return None;
    };
    let own = crate::scale::config::OWN_KEYS;
    let mut policy = DeTable::new();
    for (key, value) in table.iter() {
        if !own.contains(&key.get_ref().as_ref()) {
            policy.insert(key.clone(), value.clone());
        }
    }
    let de = toml::de::Deserializer::from(toml::Spanned::new(scale.span(), policy));
    let e = crate::scale::config::PolicyConfig::deserialize(de).err()?;
    let mut message = e.message().trim().to_string();
    if message.starts_with("unknown field") {
        // The policy's keys are not all of `[scale]`'s.
        for key in own {
            message += &format!(", `{key}`");
        }
    }
    Some((e.span().unwrap_or(0..0), message))
}

/// Finds the span of a dotted key path (`monitor.target[2].timeout`) in the parsed document.
pub(super) fn span_of(table: &DeTable<'_>, path: &str) -> Option<Range<usize>> {
    let mut current: Option<&toml::Spanned<DeValue<'_>>>;
    let mut tbl = Some(table);
    let mut best = None;
    for part in path.split('.') {
        let (name, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        let value = match tbl?.get(name) {
            Some(v) => v,
            None => return best,
        };
        current = Some(value);
        best = Some(value.span());
        for idx in indexes
            .split(['[', ']'])
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse::<usize>().ok())
        {
            if let Some(DeValue::Array(items)) = current.map(|c| c.get_ref()) {
                if let Some(item) = items.get(idx) {
                    current = Some(item);
                    best = Some(item.span());
                }
            }
        }
        tbl = match current.map(|c| c.get_ref()) {
            Some(DeValue::Table(t)) => Some(t),
            _ => None,
        };
    }
    best
}

/// Adds a did-you-mean to serde's "unknown field" and "unknown variant" messages.
pub(super) fn explain(message: &str) -> String {
    let message = message.trim();
    for kind in ["unknown field", "unknown variant"] {
        let Some(rest) = message.strip_prefix(kind) else {
            continue;
        };
        let mut names = rest.split('`').skip(1).step_by(2);
        let Some(unknown) = names.next() else {
            continue;
        };
        let best = names
            .map(|candidate| (levenshtein(unknown, candidate), candidate))
            .filter(|(d, c)| *d <= (c.len().max(unknown.len()) / 3).max(1))
            .min();
        if let Some((_, suggestion)) = best {
            return format!("{message}; did you mean `{suggestion}`?");
        }
    }
    message.to_string()
}

pub(super) fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}
