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

/// The library's modules by path (`alert::service`), each with its file.
fn modules() -> BTreeMap<String, PathBuf> {
    let mut files = Vec::new();
    sources(&src(), &mut files);
    files
        .into_iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(src()).ok()?.with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().to_string())
                .collect();
            if parts.last().is_some_and(|l| l == "mod") {
                parts.pop();
            }
            let name = parts.join("::");
            let skip = ["main", "lib", "cli"].contains(&parts[0].as_str())
                || name.ends_with("_tests")
                || parts.last().is_some_and(|l| l == "tests");
            (!skip).then_some((name, p))
        })
        .collect()
}

/// The paths a `use` tree names: `a::{b, c::{d, e}}` is `a::b`, `a::c::d`, `a::c::e`.
fn use_paths(tree: &str) -> Vec<String> {
    let tree = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    let tree: String = tree
        .replace(" as ", "@")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let Some(open) = tree.find('{') else {
        return vec![tree];
    };
    let (prefix, inner) = (&tree[..open], &tree[open + 1..tree.len() - 1]);
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|i| !i.is_empty())
        .flat_map(use_paths)
        .map(|p| format!("{prefix}{p}"))
        .collect()
}

/// What each module imports: the name it binds (`Alert`, or the alias after `as`) and the path it names.
type Imports = BTreeMap<String, Vec<(String, String)>>;

/// The module a path used inside `module` lands in: the longest known module it names (`super::store::due`
/// in `alert::service` is `alert::store`), following what a module re-exports or imports (`super::Alert` is
/// `alert::message` when `alert/mod.rs` says `pub use message::Alert`; an item defined in a `mod.rs` is that
/// module itself).
fn target(
    module: &str,
    path: &str,
    known: &BTreeMap<String, PathBuf>,
    imports: &Imports,
    depth: usize,
) -> Option<String> {
    let path = path.split('@').next().unwrap_or(path);
    let mut segments = path.split("::");
    let mut at: Vec<&str> = module.split("::").collect();
    let mut rest = Vec::new();
    match segments.next()? {
        "crate" => at.clear(),
        "super" => {
            at.pop();
            for s in segments.by_ref() {
                if s != "super" {
                    rest.push(s);
                    break;
                }
                at.pop();
            }
        }
        "self" => {}
        first => {
            // A relative path counts only when it names a child module of this one (`layer::X` in `log/mod.rs`).
            if !known.contains_key(&format!("{module}::{first}")) {
                return None;
            }
            rest.push(first);
        }
    }
    rest.extend(segments);
    let mut found = (!at.is_empty()).then(|| at.join("::"));
    for s in rest {
        at.push(s);
        let name = at.join("::");
        if known.contains_key(&name) {
            found = Some(name);
            continue;
        }
        // Not a module: an item of `found`, or a name `found` imports (re-exports included) from elsewhere.
        let here = found.clone()?;
        let imported = imports
            .get(&here)
            .and_then(|i| i.iter().find(|(bound, _)| bound == s));
        if let Some((_, from)) = imported
            && depth < 8
            && !(here == module && depth == 0 && from == path)
        {
            return target(&here, from, known, imports, depth + 1).or(Some(here));
        }
        break;
    }
    found
}

/// Each module's code (tests aside) and its `use` paths, braces expanded.
fn parsed(known: &BTreeMap<String, PathBuf>) -> BTreeMap<String, (String, Vec<String>)> {
    known
        .iter()
        .map(|(module, path)| {
            let text = std::fs::read_to_string(path).expect("readable");
            let code: Vec<&str> = code_lines(&text)
                .take_while(|l| !l.starts_with("#[cfg(test)]"))
                .collect();
            let code = code.join("\n");
            let mut uses = Vec::new();
            for (i, _) in code.match_indices("use ") {
                let before = code[..i].chars().next_back();
                if before.is_some_and(|c| !c.is_whitespace() && c != ')' && c != ';' && c != '{') {
                    continue;
                }
                let Some(end) = code[i..].find(';') else {
                    continue;
                };
                uses.extend(use_paths(&code[i + 4..i + end]));
            }
            (module.clone(), (code, uses))
        })
        .collect()
}

/// Module-level edges: who uses whom through `use` (re-exports included) and paths in the code, tests aside.
fn module_edges() -> BTreeMap<String, std::collections::BTreeSet<String>> {
    let known = modules();
    let parsed = parsed(&known);
    let imports: Imports = parsed
        .iter()
        .map(|(module, (_, uses))| {
            let bound = uses
                .iter()
                .filter_map(|u| {
                    let (path, alias) = u.split_once('@').unwrap_or((u, ""));
                    let name = if alias.is_empty() {
                        path.rsplit("::").next()?
                    } else {
                        alias
                    };
                    (name != "*" && name != "self").then(|| (name.to_string(), path.to_string()))
                })
                .collect();
            (module.clone(), bound)
        })
        .collect();
    let mut edges: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for (module, (code, uses)) in &parsed {
        let mut paths = uses.clone();
        // Paths in the code: `crate::a::b`, `super::x::y`.
        for anchor in ["crate::", "super::", "self::"] {
            for (i, _) in code.match_indices(anchor) {
                let before = code[..i].chars().next_back();
                if before
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '$')
                {
                    continue;
                }
                let p: String = code[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                // `crate::notice!` and friends are macros, not modules; `super::{a, b}` is a `use` tree, read above.
                if !code[i + p.len()..].starts_with('!') && !p.ends_with(':') {
                    paths.push(p);
                }
            }
        }
        for p in paths {
            if let Some(to) = target(module, &p, &known, &imports, 0)
                && &to != module
            {
                edges.entry(module.clone()).or_default().insert(to);
            }
        }
    }
    edges
}

/// Groups of modules that use each other in a circle (Tarjan's strongly connected components of size > 1).
fn cycles(edges: &BTreeMap<String, std::collections::BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        edges: &'a BTreeMap<String, std::collections::BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            for w in self.edges.get(v).into_iter().flatten() {
                if !self.index.contains_key(w.as_str()) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w.as_str()]);
                    self.low.insert(v, low);
                } else if self.stack.contains(&w.as_str()) {
                    let low = self.low[v].min(self.index[w.as_str()]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut group = Vec::new();
                while let Some(w) = self.stack.pop() {
                    group.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if group.len() > 1 {
                    group.sort();
                    self.found.push(group);
                }
            }
        }
    }
    let mut t = Tarjan {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.found
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let e = |pairs: &[(&str, &str)]| {
        let mut m: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        for (a, b) in pairs {
            m.entry(a.to_string()).or_default().insert(b.to_string());
        }
        m
    };
    assert_eq!(
        cycles(&e(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])),
        vec![vec!["a".to_string(), "b".into(), "c".into()]]
    );
    assert!(cycles(&e(&[("a", "b"), ("b", "c"), ("a", "c")])).is_empty());
    assert_eq!(
        use_paths("super::{a, b::{C, D as E}}"),
        ["super::a", "super::b::C", "super::b::D@E"]
    );
}

#[test]
fn no_module_uses_another_in_a_cycle() {
    let edges = module_edges();
    assert!(
        edges
            .get("alert::service")
            .is_some_and(|e| e.contains("alert::store")),
        "the edge finder sees `use super::{{plan, store}}`: {edges:#?}"
    );
    let found: Vec<Vec<String>> = cycles(&edges)
        .into_iter()
        .map(|group| {
            let mut shown = Vec::new();
            for from in &group {
                for to in edges[from].iter().filter(|to| group.contains(to)) {
                    shown.push(format!("{from} -> {to}"));
                }
            }
            shown
        })
        .collect();
    assert!(
        found.is_empty(),
        "modules that use each other in a circle (a parent's `pub use child::X` counts; move what the \
         children share into a leaf sibling they and the parent import): {found:#?}"
    );
}
