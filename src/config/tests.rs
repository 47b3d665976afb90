//! Unit tests of config parsing: locations, every error at once, did-you-mean, `${VAR}`.

use super::parse::{expand, levenshtein};
use super::*;
use crate::balancer::BalancerConfig;
use std::time::Duration;

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
            .to_string()
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

// `[scale]` holds its own keys and the policy's, flattened: parsed through the aggregate.

fn scale_errors(text: &str) -> Vec<String> {
    match Config::parse(text, "t.toml", &|_| None) {
        Ok(_) => vec![],
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn policy_fields_sit_in_scale_beside_dry_run_and_balancer() {
    let c = Config::parse(
        "[cloud]\nprovider = \"local\"\n[scale]\nhigh = 85\nlow = 70\nmin = 2\ninterval = \"10s\"\ndry_run = true\n[scale.balancer]\nkind = \"command\"\nregister = \"true\"\nderegister = \"true\"\n",
        "t.toml",
        &|_| None,
    )
    .unwrap();
    let s = c.scale.unwrap();
    assert!(s.dry_run);
    assert_eq!(s.policy.high, 85.0);
    assert_eq!(s.policy.min, 2);
    assert_eq!(s.policy.interval, Duration::from_secs(10));
    assert!(matches!(s.balancer, Some(BalancerConfig::Command(_))));
}

#[test]
fn an_unknown_key_in_scale_is_an_error() {
    let e = scale_errors("[cloud]\nprovider = \"local\"\n[scale]\nhihg = 85\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("hihg"), "{e:?}");
}

#[test]
fn bad_band_points_at_scale_low() {
    let e = scale_errors("[cloud]\nprovider = \"local\"\n[scale]\nhigh = 70\nlow = 80\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("t.toml:5:7: `scale.low`"), "{e:?}");
}

#[test]
fn scale_needs_cloud() {
    let e = scale_errors("[scale]\nhigh = 90\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("[cloud]"), "{e:?}");
}

#[test]
fn deploy_balancer_scale_needs_scale_balancer() {
    let deploy = "[deploy]\nhosts = [\"web1\"]\nsteps = [\"true\"]\nbalancer = \"scale\"\n";
    let e = scale_errors(&format!(
        "[cloud]\nprovider = \"local\"\n[scale]\nhigh = 90\n{deploy}"
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("t.toml:8:12: `deploy.balancer`") && e[0].contains("[scale.balancer]"),
        "{e:?}"
    );
    let ok = format!(
        "[cloud]\nprovider = \"local\"\n[scale]\nhigh = 90\n[scale.balancer]\nkind = \"command\"\n\
         register = \"true\"\nderegister = \"true\"\n{deploy}"
    );
    assert_eq!(scale_errors(&ok), Vec::<String>::new());
}
