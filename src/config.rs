//! The configuration file: typed sections, `${VAR}` interpolation, and errors that point at `FILE:LINE:COL`.
//!
//! Loading is pure (the file's text in, a [`Config`] or a list of [`ConfigError`]s out; the environment is
//! passed in as a lookup function) so that tests feed strings and `tend check-config` can report every
//! problem of a file at once instead of the first. Each component owns its section's struct (`StoreConfig` in
//! `store.rs`, `AlertConfig` in `alert/config.rs`, ...); this module holds the machinery they share.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};

/// Serde adapter for human durations like "90s", "5m", "1h 30m": `#[serde(with = "crate::config::human_duration")]`.
pub mod human_duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Parses "90s", "5m", "1h".
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {s:?}: {e} (write e.g. \"90s\", \"5m\", \"1h\")"
            ))
        })
    }

    /// Writes the duration back in the same human form.
    pub fn serialize<S: Serializer>(v: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*v).to_string())
    }

    /// The same for `Option<Duration>`: `#[serde(default, with = "crate::config::human_duration::option")]`.
    pub mod option {
        use serde::{Deserializer, Serializer};
        use std::time::Duration;

        /// Parses "90s", "5m", "1h" into `Some`.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            super::deserialize(d).map(Some)
        }

        /// Writes `Some` in the human form and `None` as nothing.
        pub fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(v) => super::serialize(v, s),
                None => s.serialize_none(),
            }
        }
    }
}

/// A secret from the config (usually `${VAR}` from the environment): Debug and Display print `***`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself: only for the code that must use it (auth, HMAC key), never for printing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Serialising a config never writes the secret itself.
impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The whole configuration file. Every section is optional; a part runs when its section is present.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where tend keeps its state (SQLite).
    #[serde(default)]
    pub store: crate::store::StoreConfig,
    /// The status page, JSON API, `/metrics` and the deploy webhook.
    #[serde(default)]
    pub web: crate::web::WebConfig,
    /// Console logging and which log levels become alerts.
    #[serde(default)]
    pub log: crate::log::LogConfig,
    /// How alerts are grouped and which notifiers deliver them.
    #[serde(default)]
    pub alert: crate::alert::AlertConfig,
    /// Websites and ports to watch; the monitor runs when this section is present.
    pub monitor: Option<crate::monitor::MonitorConfig>,
    /// Rolling deploys over SSH (`tend deploy`, the CI webhook).
    pub deploy: Option<crate::deploy::DeployConfig>,
    /// `[cloud]`: where the fleet's instances come from.
    pub cloud: Option<crate::cloud::CloudConfig>,
    /// `[scale]`: the autoscaler (needs `[cloud]`).
    pub scale: Option<crate::scale::ScaleConfig>,
}

/// One problem in a config file, located as `FILE:LINE:COL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file's name as given by the user.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// What is wrong, naming the key.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

/// Every problem found in a config file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A semantic problem found by a section's `validate()`: the dotted path of the offending key
/// (`scale.high`, `monitor.target[2].timeout`) and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Dotted key path; array elements as `[i]`.
    pub path: String,
    /// What is wrong and, where it helps, what would be right.
    pub message: String,
}

impl Invalid {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl Config {
    /// Reads and parses a config file, taking `${VAR}` from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: name.clone(),
                line: 1,
                col: 1,
                message: format!("cannot read the config file: {e}"),
            }])
        })?;
        Config::parse(&text, &name, &|var| std::env::var(var).ok())
    }

    /// Parses and validates config text. Pure: `env` answers `${VAR}` look-ups, `file` only names the source.
    pub fn parse(
        text: &str,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        let at = |span: Range<usize>, message: String| locate(text, file, span.start, message);
        let mut doc = DeTable::parse(text).map_err(|e| {
            ConfigErrors(vec![at(
                e.span().unwrap_or(0..0),
                e.message().trim().to_string(),
            )])
        })?;
        let mut errors = Vec::new();
        let mut unset = Vec::new();
        interpolate_table(doc.get_mut(), env, "", &mut |span, m| {
            errors.push(at(span.clone(), m));
            unset.push(span);
        });
        let mut removed: Vec<String> = Vec::new();
        for span in unset {
            removed.extend(remove_at(doc.get_mut(), &span));
        }
        for _ in 0..64 {
            let attempt = doc.clone();
            let result = match flattened_policy_error(doc.get_ref()) {
                Some(problem) => Err(problem),
                None => Config::deserialize(toml::de::Deserializer::from(attempt))
                    .map_err(|e| (e.span().unwrap_or(0..0), e.message().to_string())),
            };
            match result {
                Ok(config) => {
                    if errors.is_empty() {
                        let problems = config.validate();
                        if problems.is_empty() {
                            return Ok(config);
                        }
                        for p in problems {
                            let span = span_of(doc.get_ref(), &p.path).unwrap_or(0..0);
                            errors.push(at(span, format!("`{}`: {}", p.path, p.message)));
                        }
                    }
                    break;
                }
                Err((span, message)) => {
                    let message = explain(&message);
                    // A key we removed after reporting it may now be "missing": that is the same problem again.
                    let echo = message.starts_with("missing field")
                        && removed.iter().any(|k| message.contains(&format!("`{k}`")));
                    if !echo {
                        errors.push(at(span.clone(), message));
                    }
                    match remove_at(doc.get_mut(), &span) {
                        Some(key) => removed.push(key),
                        None => break,
                    }
                }
            }
        }
        errors.sort_by_key(|e| (e.line, e.col));
        errors.dedup();
        Err(ConfigErrors(errors))
    }

    /// Semantic checks across every section: the problems, each with its key path.
    pub fn validate(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        out.extend(self.store.validate());
        out.extend(self.web.validate());
        out.extend(self.log.validate());
        out.extend(self.alert.validate());
        if let Some(m) = &self.monitor {
            if let Err(errors) = m.validate() {
                out.extend(errors.into_iter().map(|e| Invalid::new(e.field, e.message)));
            }
        }
        if let Some(d) = &self.deploy {
            if let Err(e) = d.validate() {
                out.push(Invalid::new(e.field, e.message));
            }
        }
        if let Some(cloud) = &self.cloud {
            out.extend(cloud.validate());
        }
        if let Some(scale) = &self.scale {
            out.extend(scale.validate());
            if self.cloud.is_none() {
                out.push(Invalid::new(
                    "scale",
                    "needs a [cloud] section saying where instances come from",
                ));
            }
        }
        out
    }
}

/// Turns a byte offset into `FILE:LINE:COL`.
fn locate(text: &str, file: &str, offset: usize, message: String) -> ConfigError {
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
fn interpolate_table(
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

/// Expands `${VAR}` / `${VAR:-default}` in one string.
pub fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
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
                .ok_or_else(|| format!("unclosed `${{` in {s:?}: write `${{VAR}}`"))?;
            let inner = &t[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(format!(
                    "`${{{inner}}}` is not a valid environment variable name"
                ));
            }
            match (env(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!(
                        "environment variable `{name}` is not set (set it, or write `${{{name}:-default}}`)"
                    ));
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
fn remove_at(table: &mut DeTable<'_>, span: &Range<usize>) -> Option<String> {
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
fn flattened_policy_error(doc: &DeTable<'_>) -> Option<(Range<usize>, String)> {
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
    let e = crate::scale::policy::PolicyConfig::deserialize(de).err()?;
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
fn span_of(table: &DeTable<'_>, path: &str) -> Option<Range<usize>> {
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
fn explain(message: &str) -> String {
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

fn levenshtein(a: &str, b: &str) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: &str) -> Option<String> {
        match var {
            "SET" => Some("value".into()),
            _ => None,
        }
    }

    fn errors(text: &str) -> Vec<String> {
        match Config::parse(text, "t.toml", &env) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn empty_file_is_a_valid_config() {
        assert!(Config::parse("", "t.toml", &env).is_ok());
    }

    #[test]
    fn expands_variables_with_defaults_and_escapes() {
        assert_eq!(expand("a${SET}b", &env).unwrap(), "avalueb");
        assert_eq!(expand("${NOPE:-x}", &env).unwrap(), "x");
        assert_eq!(expand("$${SET}", &env).unwrap(), "${SET}");
        assert_eq!(expand("cost $5", &env).unwrap(), "cost $5");
        assert!(
            expand("${NOPE}", &env)
                .unwrap_err()
                .contains("`NOPE` is not set")
        );
        assert!(expand("${1A}", &env).is_err());
        assert!(expand("${OPEN", &env).is_err());
    }

    #[test]
    fn unknown_key_is_located_and_gets_a_suggestion() {
        let e = errors("[web]\nlisen = \"127.0.0.1:1\"\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("t.toml:2:1: unknown field `lisen`"),
            "{e:?}"
        );
        assert!(e[0].contains("did you mean `listen`?"), "{e:?}");
    }

    #[test]
    fn reports_every_problem_at_once() {
        let text = "[web]\nlisen = \"x\"\n[log]\ncontext_lines = \"many\"\n[alert]\ndedup_window = \"${NOPE}\"\n";
        let e = errors(text);
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].starts_with("t.toml:2:1:"), "{e:?}");
        assert!(
            e[1].starts_with("t.toml:4:17:") && e[1].contains("invalid type"),
            "{e:?}"
        );
        assert!(
            e[2].starts_with("t.toml:6:16:") && e[2].contains("`NOPE`"),
            "{e:?}"
        );
    }

    #[test]
    fn errors_inside_scale_name_their_keys_and_all_are_reported() {
        let text = "[cloud]\nprovider = \"local\"\nprefix = \"x\"\n[scale]\nsettle = \"soon\"\ndry_runn = true\nmin = 1\n";
        let e = errors(text);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].starts_with("t.toml:5:10: invalid duration \"soon\""),
            "{e:?}"
        );
        assert!(
            e[1].starts_with("t.toml:6:1: unknown field `dry_runn`"),
            "{e:?}"
        );
        assert!(e[1].ends_with("did you mean `dry_run`?"), "{e:?}");
    }

    #[test]
    fn unknown_keys_in_flattened_sections_point_at_the_key() {
        let text = "[cloud]\nprovider = \"local\"\nprefix = \"x\"\n[cloud.local]\ncommand = \"sleep 1\"\n[scale]\nmin = 1\nhihg = 95\n";
        let e = errors(text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("t.toml:8:1: unknown field `hihg`"),
            "{e:?}"
        );
    }

    #[test]
    fn syntax_errors_are_located() {
        let e = errors("[web\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("t.toml:1:"), "{e:?}");
    }

    #[test]
    fn validation_errors_point_at_the_key() {
        let e = errors("[log]\ncontext_lines = 100000\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("t.toml:2:17: `log.context_lines`"),
            "{e:?}"
        );
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn levenshtein_distances() {
        assert_eq!(levenshtein("lisen", "listen"), 1);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("abc", "abc"), 0);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = Config::parse(&text, "fuzz.toml", &env);
        }

        #[test]
        fn arbitrary_toml_like_text_never_panics(text in "(\\[[a-z.]{0,8}\\]\n|[a-z_]{1,8} = (\"[^\"\n]{0,8}\"|[0-9]{1,4}|\\[\\]|true)\n){0,8}") {
            let _ = Config::parse(&text, "fuzz.toml", &env);
        }
    }
}
