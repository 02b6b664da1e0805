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
