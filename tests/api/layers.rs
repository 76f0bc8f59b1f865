//! The layers of `src/` point one way: `startup` → `web` → use cases → `store` → the bottom
//! (`domain`, `error`, `config`, `telemetry`, `i18n`). This test scans every `crate::` and
//! `super::` path in `src/` and fails on an import that goes up a layer, and on top-level
//! modules that import each other (directly or round a longer cycle). It prints the file
//! and line of each offending import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every top-level module of the crate and its layer (higher may import lower, never the
/// reverse). A new module must be given a layer here.
const LAYERS: &[(&str, u8, &str)] = &[
    ("domain", 0, "bottom"),
    ("error", 0, "bottom"),
    ("config", 0, "bottom"),
    ("telemetry", 0, "bottom"),
    ("i18n", 0, "bottom"),
    ("store", 1, "store"),
    ("context", 2, "use cases"),
    ("views", 2, "use cases"),
    ("email", 2, "use cases"),
    ("webhooks", 2, "use cases"),
    ("followups", 2, "use cases"),
    ("answers", 2, "use cases"),
    ("invitations", 2, "use cases"),
    ("reports", 2, "use cases"),
    ("contacts", 2, "use cases"),
    ("members", 2, "use cases"),
    ("queues", 2, "use cases"),
    ("housekeeping", 2, "use cases"),
    ("web", 3, "web"),
    ("demo", 3, "command"),
    ("startup", 4, "startup"),
];

/// One import: the file and line it is on, from which top-level module to which.
#[derive(Debug, Clone)]
struct Import {
    file: String,
    line: usize,
    from: String,
    to: String,
}

/// The module path of a source file: `src/web/api/mod.rs` → `[web, api]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().to_string())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs").to_string();
        if stem != "mod" && stem != "lib" && stem != "main" {
            parts.push(stem);
        }
    }
    parts
}

fn ident_at(text: &str, start: usize) -> String {
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The first segment of each path a `crate::` or `super::` reference names, with its line.
fn references(text: &str, module: &[String]) -> Vec<(usize, String)> {
    // Blank out comments (line and doc comments), keeping the line breaks.
    let code: String = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let line_of = |pos: usize| code[..pos].matches('\n').count() + 1;
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let preceded_by_ident = i > 0
            && (bytes[i - 1].is_ascii_alphanumeric()
                || bytes[i - 1] == b'_'
                || bytes[i - 1] == b':');
        let (depth_up, at) = if rest.starts_with("crate::") && !preceded_by_ident {
            (None, i + "crate::".len())
        } else if rest.starts_with("super::") && !preceded_by_ident {
            let mut up = 0;
            let mut j = i;
            while code[j..].starts_with("super::") {
                up += 1;
                j += "super::".len();
            }
            (Some(up), j)
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        // `super::` inside a nested module resolves below the top level: only a `super`
        // that climbs out of the top-level module names another top-level module.
        if depth_up.is_some_and(|up| up < module.len()) {
            i = at;
            continue;
        }
        if code[at..].starts_with('{') {
            let mut depth = 0;
            let mut part_start = at + 1;
            let mut j = at;
            for (k, c) in code[at..].char_indices() {
                let pos = at + k;
                match c {
                    '{' => depth += 1,
                    '}' | ',' if depth == 1 => {
                        let name = ident_at(&code, part_start + leading_ws(&code[part_start..]));
                        if !name.is_empty() && name != "self" {
                            found.push((line_of(part_start), name));
                        }
                        part_start = pos + 1;
                        if c == '}' {
                            j = pos;
                            break;
                        }
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            i = j + 1;
        } else {
            let name = ident_at(&code, at);
            i = at + name.len().max(1);
            if !name.is_empty() {
                found.push((line_of(at), name));
            }
        }
    }
    found
}

fn leading_ws(s: &str) -> usize {
    s.len() - s.trim_start().len()
}

/// Every import between two different top-level modules.
fn imports(files: &[(String, String)]) -> Vec<Import> {
    let mut out = Vec::new();
    for (path, text) in files {
        let module = module_path(Path::new(path));
        let Some(from) = module.first() else { continue };
        for (line, to) in references(text, &module) {
            if &to != from {
                out.push(Import {
                    file: format!("src/{path}"),
                    line,
                    from: from.clone(),
                    to,
                });
            }
        }
    }
    out
}

/// What breaks the layering, one message per offending import.
fn violations(files: &[(String, String)]) -> Vec<String> {
    let layer: BTreeMap<&str, (u8, &str)> = LAYERS.iter().map(|(m, l, n)| (*m, (*l, *n))).collect();
    let all = imports(files);
    let mut problems = Vec::new();
    let mut modules: BTreeSet<String> = BTreeSet::new();
    for (path, _) in files {
        if let Some(m) = module_path(Path::new(path)).first() {
            modules.insert(m.clone());
        }
    }
    for m in &modules {
        if !layer.contains_key(m.as_str()) {
            problems.push(format!(
                "src/{m}: top-level module `{m}` has no layer; add it to LAYERS in tests/api/layers.rs"
            ));
        }
    }
    for i in &all {
        let (Some(&(lf, nf)), Some(&(lt, nt))) =
            (layer.get(i.from.as_str()), layer.get(i.to.as_str()))
        else {
            continue;
        };
        if lt > lf {
            problems.push(format!(
                "{}:{}: `{}` ({nf}) imports `crate::{}` ({nt}), a layer above it",
                i.file, i.line, i.from, i.to
            ));
        }
    }
    // Cycles between top-level modules: a depth-first search over the module graph.
    let mut edges: BTreeMap<&str, BTreeMap<&str, &Import>> = BTreeMap::new();
    for i in &all {
        if layer.contains_key(i.to.as_str()) {
            edges
                .entry(i.from.as_str())
                .or_default()
                .entry(i.to.as_str())
                .or_insert(i);
        }
    }
    let mut reported: BTreeSet<Vec<&str>> = BTreeSet::new();
    for start in edges.keys() {
        let mut stack: Vec<(&str, Vec<&str>)> = vec![(start, vec![start])];
        while let Some((node, path)) = stack.pop() {
            for next in edges
                .get(node)
                .map(|m| m.keys().copied().collect::<Vec<_>>())
                .unwrap_or_default()
            {
                if next == *start {
                    let mut key = path.clone();
                    key.sort();
                    if reported.insert(key) {
                        let mut msg = format!("modules import each other: {}", path.join(" → "));
                        msg.push_str(&format!(" → {start}"));
                        let mut ring = path.clone();
                        ring.push(start);
                        for pair in ring.windows(2) {
                            let i = edges[pair[0]][pair[1]];
                            msg.push_str(&format!(
                                "\n    {}:{}: `{}` imports `crate::{}`",
                                i.file, i.line, i.from, i.to
                            ));
                        }
                        problems.push(msg);
                    }
                } else if !path.contains(&next) && path.len() < LAYERS.len() {
                    let mut longer = path.clone();
                    longer.push(next);
                    stack.push((next, longer));
                }
            }
        }
    }
    problems
}

fn source_files(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("src/ is readable")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            source_files(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).expect("under src/");
            let text = std::fs::read_to_string(&path).expect("a readable source file");
            out.push((rel.to_string_lossy().replace('\\', "/"), text));
        }
    }
}

#[test]
fn imports_point_down_the_layers_and_no_two_modules_import_each_other() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&root, &root, &mut files);
    // lib.rs and main.rs sit above every layer.
    files.retain(|(p, _)| p != "lib.rs" && p != "main.rs");
    assert!(files.len() > 20, "the scan found the sources");
    let found = imports(&files);
    assert!(
        found.iter().any(|i| i.from == "web" && i.to == "answers"),
        "the scan sees real imports (web → answers)"
    );
    let problems = violations(&files);
    assert!(
        problems.is_empty(),
        "the layers of src/ are broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_layer_check_catches_an_upward_import_and_a_cycle() {
    let files = vec![
        (
            "store/responses.rs".to_string(),
            "use crate::error::AppError;\n// crate::web in a comment is fine\nuse crate::{domain::now, web::api::Page};\n".to_string(),
        ),
        (
            "followups/triage.rs".to_string(),
            "use super::transitions;\n".to_string(),
        ),
        (
            "answers.rs".to_string(),
            "use crate::followups::Rules;\nuse crate::store::responses;\n".to_string(),
        ),
        (
            "followups/mod.rs".to_string(),
            "mod triage;\nuse super::answers::Answer;\n".to_string(),
        ),
        ("web/mod.rs".to_string(), "use crate::answers;\n".to_string()),
        ("brand_new.rs".to_string(), "\n".to_string()),
    ];
    let problems = violations(&files);
    let text = problems.join("\n");
    assert!(
        text.contains("src/store/responses.rs:3: `store` (store) imports `crate::web` (web), a layer above it"),
        "{text}"
    );
    assert!(
        text.contains("modules import each other: answers → followups → answers")
            && text.contains("src/followups/mod.rs:2: `followups` imports `crate::answers`"),
        "{text}"
    );
    assert!(text.contains("`brand_new` has no layer"), "{text}");
    assert!(
        !text.contains("comment"),
        "comments are not imports: {text}"
    );
    assert!(
        text.contains("modules import each other: answers → store → web → answers"),
        "the upward import closes a cycle too: {text}"
    );
    assert_eq!(problems.len(), 4, "{text}");
}
