//! The source tree keeps the shape the README's Development section
//! describes: no module imports itself through others (no import cycle
//! anywhere), the command line (`src/cli/`) is lowered into the library's
//! plain options, so no path through the module imports leads back to it,
//! and clap is seen only there and in the command shells (`src/commands/`).
//! Read from the source files; no cluster is needed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// Every source file, as its module path relative to `src` (`cli/mod`,
/// `commands/wizard`, `lib`), with its text.
fn sources() -> BTreeMap<String, String> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src is readable") {
            let path = entry.expect("src is readable").path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                found.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(Path::new(SRC), &mut files);
    files
        .into_iter()
        .map(|path| {
            let module = path
                .strip_prefix(SRC)
                .expect("under src")
                .with_extension("")
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&path).expect("source is readable");
            (module, text)
        })
        .collect()
}

/// The file a `crate::a::b::c` path lives in: the longest prefix that is a
/// file module (`a/b.rs` or `a/b/mod.rs`).
fn file_of(path: &[&str], modules: &BTreeSet<String>) -> Option<String> {
    (1..=path.len()).rev().find_map(|len| {
        let joined = path[..len].join("/");
        [joined.clone(), format!("{joined}/mod")]
            .into_iter()
            .find(|candidate| modules.contains(candidate))
    })
}

/// The `crate::` paths a file names, with `use crate::{a, b::{c, d}}`
/// groups expanded to `a`, `b::c` and `b::d`; and the file's own top-level
/// `use super::...` imports, as paths from the crate root (`super` of
/// `checks/evaluate` is `checks`). An indented `use super::` is in an inline
/// module (`mod tests`), whose `super` is the file itself.
fn crate_paths(module: &str, text: &str) -> Vec<Vec<String>> {
    let code: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut paths = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        expand(&code[at + "crate::".len()..], &[], &mut paths);
    }
    let parent = parent_module(module);
    for line in code.lines() {
        if let Some(rest) = line.strip_prefix("use super::") {
            expand(rest, &parent, &mut paths);
        }
    }
    paths
}

/// The module `super` names in a file: `checks/evaluate` -> `checks`,
/// `checks/mod` -> the crate root.
fn parent_module(module: &str) -> Vec<String> {
    let mut parts: Vec<String> = module.split('/').map(str::to_owned).collect();
    if parts.last().is_some_and(|last| last == "mod") {
        parts.pop();
    }
    parts.pop();
    parts
}

/// A cycle in `graph`, as the modules along it with the first repeated at
/// the end, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        route: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = route.iter().position(|m| m == module) {
            let mut cycle = route[at..].to_vec();
            cycle.push(module.to_owned());
            return Some(cycle);
        }
        if done.contains(module) {
            return None;
        }
        route.push(module.to_owned());
        for next in graph.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, route, done) {
                return Some(cycle);
            }
        }
        route.pop();
        done.insert(module.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|module| visit(module, graph, &mut Vec::new(), &mut done))
}

/// Adds the paths `text` starts with to `paths`, each under `prefix`.
fn expand(text: &str, prefix: &[String], paths: &mut Vec<Vec<String>>) {
    let mut path = prefix.to_vec();
    let mut rest = text;
    loop {
        if let Some(group) = rest.strip_prefix('{') {
            for item in top_level_items(group) {
                expand(item, &path, paths);
            }
            return;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        path.push(rest[..end].to_owned());
        match rest[end..].strip_prefix("::") {
            Some(next) => rest = next,
            None => break,
        }
    }
    paths.push(path);
}

/// The comma-separated items of a `{...}` group whose opening brace is
/// already consumed, up to its closing brace.
fn top_level_items(group: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth > 0 => depth -= 1,
            '}' | ',' if depth == 0 => {
                items.push(group[start..i].trim());
                if c == '}' {
                    break;
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    items.into_iter().filter(|item| !item.is_empty()).collect()
}

/// Which files each file imports from.
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let sources = sources();
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    sources
        .iter()
        .map(|(module, text)| {
            let targets = crate_paths(module, text)
                .iter()
                .filter_map(|path| {
                    let path: Vec<&str> = path.iter().map(String::as_str).collect();
                    file_of(&path, &modules)
                })
                .filter(|target| target != module)
                .collect();
            (module.clone(), targets)
        })
        .collect()
}

fn is_command_line(module: &str) -> bool {
    module.starts_with("cli/") || module.starts_with("commands/")
}

#[test]
fn no_module_imports_itself_through_others() {
    let graph = import_graph();
    assert!(
        graph["checks/fleet"].contains("checks/snapshot"),
        "the reader sees a file's `use super::` imports: {graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("an import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_cycle_finder_finds_a_ring_and_nothing_in_a_tree() {
    let graph = |edges: &[(&str, &str)]| {
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in edges {
            graph
                .entry((*from).into())
                .or_default()
                .insert((*to).into());
            graph.entry((*to).into()).or_default();
        }
        graph
    };
    let tree = graph(&[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]);
    assert_eq!(find_cycle(&tree), None);
    let ring = graph(&[("a", "b"), ("b", "c"), ("c", "d"), ("d", "b")]);
    assert_eq!(
        find_cycle(&ring),
        Some(["b", "c", "d", "b"].map(str::to_owned).to_vec())
    );
    assert_eq!(parent_module("checks/evaluate"), ["checks"]);
    assert!(parent_module("checks/mod").is_empty());
}

#[test]
fn no_import_path_leads_back_to_the_command_line() {
    let graph = import_graph();
    assert!(
        graph["commands/mod"].contains("cli/mod"),
        "the reader sees the dispatch's import of the command line: {graph:?}"
    );
    for start in graph.keys().filter(|m| m.starts_with("cli/")) {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(String, Vec<String>)> = graph[start]
            .iter()
            .filter(|next| !next.starts_with("cli/"))
            .map(|next| (next.clone(), vec![start.clone(), next.clone()]))
            .collect();
        while let Some((module, route)) = stack.pop() {
            assert!(
                !module.starts_with("cli/"),
                "an import cycle through the command line: {}",
                route.join(" -> ")
            );
            if !seen.insert(module.clone()) {
                continue;
            }
            for next in graph.get(&module).into_iter().flatten() {
                let mut route = route.clone();
                route.push(next.clone());
                stack.push((next.clone(), route));
            }
        }
    }
}

#[test]
fn library_modules_import_neither_clap_nor_the_commands() {
    let sources = sources();
    let graph = import_graph();
    let library: Vec<&String> = sources
        .keys()
        .filter(|m| !is_command_line(m) && *m != "lib" && *m != "main")
        .collect();
    assert!(
        library.len() >= 20,
        "the library modules are found: {library:?}"
    );
    for module in library {
        let text = &sources[module];
        assert!(
            !text.contains("clap::") && !text.contains("use clap"),
            "src/{module}.rs uses clap; only src/cli/ and src/commands/ may"
        );
        let command_line: Vec<&String> = graph[module]
            .iter()
            .filter(|target| is_command_line(target))
            .collect();
        assert!(
            command_line.is_empty(),
            "src/{module}.rs imports {command_line:?}; library modules take plain options"
        );
    }
}

#[test]
fn the_graph_reader_resolves_grouped_and_nested_imports() {
    let modules: BTreeSet<String> = ["cli/mod", "cli/complete", "commands/expose", "apply"]
        .map(str::to_owned)
        .into();
    let text =
        "use crate::{apply::{self, Desired}, cli};\nfn f() { crate::commands::expose::run() }";
    let files: BTreeSet<String> = crate_paths("commands/expose", text)
        .iter()
        .filter_map(|p| file_of(&p.iter().map(String::as_str).collect::<Vec<_>>(), &modules))
        .collect();
    assert_eq!(
        files,
        ["apply", "cli/mod", "commands/expose"]
            .map(str::to_owned)
            .into()
    );
}

/// The folders are floors: the value types and the terminal helpers at the
/// bottom, the object schemas and the owned-object table above them, the
/// manifests and the checks (pure) above those; none of them reaches the
/// cluster plumbing, the steps or the commands.
#[test]
fn each_pure_floor_imports_only_the_floors_below_it() {
    let graph = import_graph();
    let floor = |module: &str| module.split('/').next().unwrap_or(module).to_owned();
    let below: [(&str, &[&str]); 5] = [
        ("values", &["values", "error"]),
        ("terminal", &["terminal", "error"]),
        ("objects", &["objects", "values", "terminal", "error"]),
        (
            "manifests",
            &["manifests", "objects", "values", "terminal", "error"],
        ),
        (
            "checks",
            &[
                "checks",
                "manifests",
                "objects",
                "values",
                "terminal",
                "error",
            ],
        ),
    ];
    for (name, allowed) in below {
        let modules: Vec<&String> = graph.keys().filter(|m| floor(m) == name).collect();
        assert!(!modules.is_empty(), "src/{name}/ has modules: {graph:?}");
        for module in modules {
            for target in &graph[module] {
                assert!(
                    allowed.contains(&floor(target).as_str()),
                    "src/{module}.rs imports {target}, above its floor ({allowed:?})"
                );
            }
        }
    }
}
