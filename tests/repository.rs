//! Rules the repository keeps: clean notebooks that open the same way, and one set of
//! pinned Python packages for pip and conda users.

use serde_json::Value;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn notebooks_in(dir: &str) -> Vec<(PathBuf, Value)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ipynb"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            (
                p.clone(),
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap(),
            )
        })
        .collect()
}

fn code_cells(notebook: &Value) -> impl Iterator<Item = &Value> {
    notebook["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["cell_type"] == "code")
}

fn source(cell: &Value) -> String {
    match &cell["source"] {
        Value::Array(lines) => lines.iter().map(|l| l.as_str().unwrap()).collect(),
        other => other.as_str().unwrap().to_owned(),
    }
}

#[test]
fn notebooks_are_stored_without_outputs() {
    let all = notebooks_in("notebooks")
        .into_iter()
        .chain(notebooks_in("tests/fixtures"));
    for (path, notebook) in all {
        for cell in code_cells(&notebook) {
            let clean = cell["outputs"].as_array().is_some_and(|o| o.is_empty())
                && cell["execution_count"].is_null();
            assert!(clean, "{} is stored with outputs: run `make clear-outputs` (the runner keeps executed copies in target/notebooks/)", path.display());
        }
    }
}

#[test]
fn every_notebook_opens_with_the_same_setup_cell_on_the_rust_kernel() {
    let setup = ":cache 4096\n:dep mustknow = { path = \"..\" }\nuse mustknow::prelude::*;";
    let notebooks = notebooks_in("notebooks");
    assert!(!notebooks.is_empty());
    for (path, notebook) in notebooks {
        assert_eq!(
            notebook["metadata"]["kernelspec"]["name"],
            "rust",
            "{}",
            path.display()
        );
        let first = code_cells(&notebook).next().map(source);
        assert_eq!(
            first.as_deref(),
            Some(setup),
            "{} should open with the standard set-up cell",
            path.display()
        );
    }
}

/// `name==version` pins from requirements.txt or from environment.yml's pip section.
fn pins(text: &str) -> Vec<String> {
    let mut pins: Vec<String> = text
        .lines()
        .map(|l| l.trim().trim_start_matches("- ").trim())
        .filter(|l| !l.starts_with('#') && l.contains("=="))
        .map(str::to_owned)
        .collect();
    pins.sort();
    pins
}

#[test]
fn pip_and_conda_environments_pin_the_same_packages() {
    let requirements = std::fs::read_to_string(root().join("requirements.txt")).unwrap();
    let environment = std::fs::read_to_string(root().join("environment.yml")).unwrap();
    assert!(!pins(&requirements).is_empty());
    assert_eq!(
        pins(&requirements),
        pins(&environment),
        "requirements.txt and environment.yml disagree"
    );
}

#[test]
fn conda_installs_the_pinned_rust_toolchain() {
    let toolchain = std::fs::read_to_string(root().join("rust-toolchain.toml")).unwrap();
    let channel = toolchain
        .lines()
        .find_map(|l| l.strip_prefix("channel = "))
        .unwrap()
        .trim_matches('"');
    let environment = std::fs::read_to_string(root().join("environment.yml")).unwrap();
    assert!(
        environment.contains(&format!("- rust={channel}")),
        "environment.yml should install Rust {channel}"
    );
}

/// The sections: one per notebook, the module named as the notebook without its number
/// (`03_generalization.ipynb` is `src/generalization/` or `src/generalization.rs`).
fn sections() -> Vec<String> {
    let sections: Vec<String> = notebooks_in("notebooks")
        .iter()
        .map(|(path, _)| {
            let stem = path.file_stem().unwrap().to_str().unwrap();
            let (_, name) = stem
                .split_once('_')
                .expect("notebooks are named NN_section");
            name.to_owned()
        })
        .collect();
    for section in &sections {
        let module = root().join("src").join(section);
        assert!(
            module.is_dir() || module.with_extension("rs").is_file(),
            "notebook section {section} has no module src/{section}/ or src/{section}.rs"
        );
    }
    sections
}

/// Every `.rs` file at or under `path`.
fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flat_map(|e| rust_files(&e.unwrap().path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    files
}

/// The top-level modules a line of Rust names through `crate::` (also in a grouped
/// `use crate::{a, b::c}`), ignoring what follows `//`.
fn crate_modules(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut named = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let paths = match rest.strip_prefix('{') {
            Some(group) => group.split('}').next().unwrap_or("").to_owned(),
            None => rest.to_owned(),
        };
        for path in paths.split(',') {
            let first: String = path
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !first.is_empty() {
                named.push(first);
            }
        }
    }
    named
}

#[test]
fn no_section_imports_another_section() {
    let sections = sections();
    assert!(sections.len() >= 6, "{sections:?}");
    let mut offences = Vec::new();
    for section in &sections {
        let module = root().join("src").join(section);
        let files = [
            rust_files(&module),
            rust_files(&module.with_extension("rs")),
        ]
        .concat();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                let others = crate_modules(line)
                    .into_iter()
                    .filter(|m| m != section && sections.contains(m));
                for other in others {
                    let at = file.strip_prefix(root()).unwrap().display();
                    offences.push(format!("{at}:{}: names section `{other}`", n + 1));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "sections depend on shared modules, never on each other; move what two sections share to a shared module:\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_import_check_reads_grouped_and_plain_paths() {
    assert_eq!(
        crate_modules("use crate::{optim::Method, train::fit};"),
        ["optim", "train"]
    );
    assert_eq!(
        crate_modules("let d = crate::runtime::device(0); // crate::tour"),
        ["runtime"]
    );
    assert!(crate_modules("/// see crate::tour").is_empty());
}

/// The ```` ```rust ```` blocks of a markdown cell.
fn rust_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut rest = markdown;
    while let Some(start) = rest.find("```rust\n") {
        let body = &rest[start + "```rust\n".len()..];
        let end = body.find("```").expect("a ```rust block is closed");
        blocks.push(body[..end].to_owned());
        rest = &body[end + 3..];
    }
    blocks
}

#[test]
fn model_types_shown_in_notebooks_are_the_crates() {
    let crate_source: String = rust_files(&root().join("src"))
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    for (path, notebook) in notebooks_in("notebooks") {
        let cells = notebook["cells"].as_array().unwrap();
        let markdown = cells.iter().filter(|c| c["cell_type"] == "markdown");
        for block in markdown.flat_map(|c| rust_blocks(&source(c))) {
            assert!(
                crate_source.contains(&block),
                "{} shows a type that is not in src/ as written (copy it again):\n{block}",
                path.display()
            );
        }
    }
}

#[test]
fn rust_blocks_are_read_from_markdown() {
    let text = "a\n```rust\ntype A = B;\n```\nb\n```rust\nstruct C;\n```\n";
    assert_eq!(rust_blocks(text), ["type A = B;\n", "struct C;\n"]);
}
