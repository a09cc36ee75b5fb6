//! The hub's modules are layered: imports point one way, so the module graph has no cycle.
//!
//! Read from the source: every `crate::a::...` path in a file (outside comments and its
//! `#[cfg(test)]` module) is an edge from the file's top-level module to `a`; every
//! `super::b::...` path in a file of a folder module is an edge between two files of that
//! folder. A folder's `mod.rs` and the files below it count as one module at the top level;
//! inside a folder, a file naming its own folder (`super::X` from a child) is not counted,
//! since a folder's `mod.rs` only declares and re-exports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, as paths relative to it.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// The file's code without comments and without its test module.
fn code(path: &Path) -> String {
    strip(&std::fs::read_to_string(path).unwrap())
}

/// `text` without comments and without its test module.
fn strip(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod tests"))
        {
            break;
        }
        let without_comment = match trimmed.find("//") {
            Some(at) => &trimmed[..at],
            None => trimmed,
        };
        out.push_str(without_comment);
        out.push('\n');
    }
    out
}

/// The names that follow `prefix` in `code`, as in `crate::NAME` or `crate::{NAME, ...}`.
fn targets(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices(prefix) {
        let before = code[..at].chars().last();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name = ident(part.trim());
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// A cycle in `graph`, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(found) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(found);
        }
    }
    None
}

/// The top-level module a file belongs to (`dispatch` for `dispatch/pool.rs`).
fn top_module(file: &Path) -> String {
    let first = file
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

fn top_level_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = src();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files(&src) {
        let from = top_module(&file);
        if from == "lib" {
            continue;
        }
        let edges = graph.entry(from.clone()).or_default();
        for to in targets(&code(&src.join(&file)), "crate::") {
            if to != from {
                edges.insert(to);
            }
        }
    }
    graph
}

#[test]
fn the_modules_import_one_way() {
    let graph = top_level_graph();
    // The reader's guarantee that the test looks at the real code.
    assert!(graph["front"].contains("dispatch"), "{graph:#?}");
    assert!(graph["dispatch"].contains("config"), "{graph:#?}");
    assert!(graph.len() >= 15, "{graph:#?}");
    if let Some(found) = cycle(&graph) {
        panic!("import cycle: {}\n{graph:#?}", found.join(" -> "));
    }
}

#[test]
fn the_files_of_each_folder_import_one_way() {
    let src = src();
    let mut folders: BTreeMap<PathBuf, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in files(&src) {
        let Some(folder) = file.parent().filter(|p| !p.as_os_str().is_empty()) else {
            continue;
        };
        let name = file.file_stem().unwrap().to_string_lossy().to_string();
        let siblings: BTreeSet<String> = files(&src.join(folder))
            .iter()
            .map(|f| top_module(f))
            .collect();
        let graph = folders.entry(folder.to_path_buf()).or_default();
        let edges = graph.entry(name.clone()).or_default();
        if name == "mod" {
            continue;
        }
        let code = code(&src.join(&file));
        let named = targets(&code, "super::");
        let crate_path = format!("crate::{}::", folder.to_string_lossy().replace('/', "::"));
        for to in named.into_iter().chain(targets(&code, &crate_path)) {
            if to != name && to != "mod" && siblings.contains(&to) {
                edges.insert(to);
            }
        }
    }
    assert!(folders[Path::new("dispatch")]["attempt"].contains("pool"));
    for (folder, graph) in &folders {
        if let Some(found) = cycle(graph) {
            panic!(
                "import cycle in {}: {}",
                folder.display(),
                found.join(" -> ")
            );
        }
    }
}

#[test]
fn the_checker_finds_a_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.entry("a".into()).or_default().insert("b".into());
    graph.entry("b".into()).or_default().insert("c".into());
    assert_eq!(cycle(&graph), None);
    graph.entry("c".into()).or_default().insert("a".into());
    assert_eq!(cycle(&graph).unwrap(), ["a", "b", "c", "a"]);
    let code = "use crate::{a, b::C};\nlet x = crate::d::E;\n// crate::z\n";
    let found: Vec<_> = targets(&strip(code), "crate::").into_iter().collect();
    assert_eq!(found, ["a", "b", "d"]);
}
