//! The architecture, checked: every module says what its room is for, no file in `src/` is over 500 lines of
//! code (tests aside), and imports point down the layers of `docs/ARCHITECTURE.md` (a component uses the leaf
//! and the parts below it, never one above it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The layers, bottom first: a module may use its own layer and those below it.
const LAYERS: &[&[&str]] = &[
    &["core"],
    &["metrics", "store", "web", "runtime"],
    &["cluster"],
    &["alert"],
    &["log"],
    &["cloud"],
    &["balancer"],
    &["monitor", "scale", "deploy"],
    &["sim"],
    &["config"],
    &["app"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The library's files (the binary's `main.rs` and `cli/` sit above everything).
fn library_files() -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    sources(&src(), &mut files);
    files
        .into_iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(src()).ok()?.to_string_lossy().to_string();
            let top = rel.split('/').next()?.trim_end_matches(".rs").to_string();
            (top != "main" && top != "cli" && top != "lib").then_some((top, p))
        })
        .collect()
}

/// The code of a file without its comments and string contents' line comments.
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim_start)
        .filter(|l| !l.starts_with("//"))
}

#[test]
fn imports_point_down_the_layers() {
    let mut upward: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (top, path) in library_files() {
        let Some(own) = layer_of(&top) else {
            panic!("{top} (in {}) is in no layer of this test", path.display());
        };
        let text = std::fs::read_to_string(&path).expect("readable");
        for line in code_lines(&text) {
            for (i, _) in line.match_indices("crate::") {
                let rest = &line[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                // `crate::notice!` and friends are the logger's exported macros, not a module.
                if rest[name.len()..].starts_with('!') || name.is_empty() {
                    continue;
                }
                let used = layer_of(&name).unwrap_or_else(|| {
                    panic!("crate::{name} in {} is in no layer", path.display())
                });
                if used > own {
                    upward
                        .entry(path.display().to_string())
                        .or_default()
                        .push(format!("{top} uses crate::{name}"));
                }
            }
        }
    }
    assert!(upward.is_empty(), "imports pointing up: {upward:#?}");
}

#[test]
fn every_file_says_what_it_is_for_and_stays_small() {
    let mut problems = Vec::new();
    for (_, path) in library_files() {
        let text = std::fs::read_to_string(&path).expect("readable");
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.ends_with("_tests.rs") && name != "tests.rs" && !text.starts_with("//!") {
            problems.push(format!("{} does not start with a //! line", path.display()));
        }
        let code = text
            .lines()
            .take_while(|l| !l.starts_with("#[cfg(test)]"))
            .count();
        if code > 500 && !name.ends_with("_tests.rs") && name != "tests.rs" {
            problems.push(format!(
                "{} has {code} lines before its tests",
                path.display()
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
