//! The headless notebook runner: `cargo test --release --test notebooks [-- FILTER...]`.
//!
//! Executes every notebook in `notebooks/` on the real evcxr kernel, one kernel at a time
//! (they share evcxr's compile cache), through `tests/execute_notebook.py`, which judges
//! each cell. Also runs the fixtures in `tests/fixtures/`: notebooks that must fail, each
//! for the reason its metadata names (`mustknow.expect_failure`), which proves the runner
//! catches every kind of failure. A FILTER keeps the notebooks whose file name contains it.
//!
//! Writes executed copies and HTML pages to `target/notebooks/` (a test report with an
//! `index.html`; `make book` builds the readers' book from the copies), prints one line per
//! notebook and ends with `N passed, N failed`.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const SETUP_HINT: &str =
    "run `make test` (or `make setup`) once to install Jupyter and the Rust kernel";

/// A notebook to run, and whether it is a fixture that must fail (and why).
struct Job {
    path: PathBuf,
    expect_failure: Option<String>,
}

/// What the executor reported for one notebook.
struct Report {
    ok: bool,
    reason: String,
    seconds: f64,
    /// The kernel's peak resident memory (`KernelMemory` in the executor); None where it
    /// could not be read (no /proc).
    peak_rss_mb: Option<f64>,
    cells: Vec<(u64, f64)>,
}

/// How a job ended, judged against what it was expected to do.
struct Verdict {
    name: String,
    passed: bool,
    line: String,
    seconds: f64,
    peak_rss_mb: Option<f64>,
    fixture: bool,
}

fn main() -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let filters = filters(std::env::args().skip(1));
    let jobs: Vec<Job> = discover(root)
        .into_iter()
        .filter(|job| selected(&job.path, &filters))
        .collect();
    if jobs.is_empty() {
        // As libtest does: `cargo test --release some_unit_test` passes its filter to
        // every test binary, and one that matches nothing here is not a failure.
        println!("no notebook matches {filters:?}");
        println!("0 passed, 0 failed");
        return ExitCode::SUCCESS;
    }
    let python = match python(root) {
        Ok(python) => python,
        Err(problem) => {
            println!("notebooks: cannot run: {problem}");
            println!("0 passed, {} failed", jobs.len());
            return ExitCode::FAILURE;
        }
    };
    let out = root.join("target").join("notebooks");
    let verdicts: Vec<Verdict> = jobs
        .iter()
        .map(|job| {
            let verdict = judge(job, execute(&python, root, &job.path, &out));
            println!("{}", verdict.line);
            verdict
        })
        .collect();
    write_index(&out, &verdicts);
    write_times(&out, &verdicts);
    let passed = verdicts.iter().filter(|v| v.passed).count();
    println!(
        "executed copies and the test report: {}",
        out.join("index.html").display()
    );
    println!("{passed} passed, {} failed", verdicts.len() - passed);
    if passed == verdicts.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The name filters among the arguments cargo passes on: libtest's flags, and the values
/// of those that take one (`--test-threads 2`, `--skip NAME`), are not filters.
fn filters(mut args: impl Iterator<Item = String>) -> Vec<String> {
    const TAKES_VALUE: [&str; 6] = [
        "--test-threads",
        "--skip",
        "--color",
        "--format",
        "--logfile",
        "-Z",
    ];
    let mut filters = Vec::new();
    while let Some(arg) = args.next() {
        if TAKES_VALUE.contains(&arg.as_str()) {
            args.next();
        } else if !arg.starts_with('-') {
            filters.push(arg);
        }
    }
    filters
}

/// The course's notebooks, then the fixtures that must fail, each group in name order.
fn discover(root: &Path) -> Vec<Job> {
    let notebooks = ipynb_files(&root.join("notebooks"))
        .into_iter()
        .map(|path| Job {
            path,
            expect_failure: None,
        });
    let fixtures = ipynb_files(&root.join("tests").join("fixtures"))
        .into_iter()
        .map(|path| {
            let expect = read_json(&path)["metadata"]["mustknow"]["expect_failure"]
                .as_str()
                .map(str::to_owned);
            let expect_failure = Some(expect.unwrap_or_else(|| {
                panic!("{} has no metadata.mustknow.expect_failure", path.display())
            }));
            Job {
                path,
                expect_failure,
            }
        });
    notebooks.chain(fixtures).collect()
}

fn ipynb_files(dir: &Path) -> Vec<PathBuf> {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ipynb"))
        .collect();
    files.sort();
    files
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

fn stem(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

fn selected(path: &Path, filters: &[String]) -> bool {
    filters.is_empty() || filters.iter().any(|f| stem(path).contains(f.as_str()))
}

/// The Python that has Jupyter: `MUSTKNOW_PYTHON`, else the repository's `.venv`.
fn python(root: &Path) -> Result<PathBuf, String> {
    let python = std::env::var_os("MUSTKNOW_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/python"));
    let has_jupyter = Command::new(&python)
        .args(["-c", "import nbclient, nbconvert"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_jupyter {
        Ok(python)
    } else {
        Err(format!(
            "{} has no Jupyter (nbclient, nbconvert): {SETUP_HINT}",
            python.display()
        ))
    }
}

/// Runs the executor on one notebook and reads its report.
fn execute(python: &Path, root: &Path, notebook: &Path, out: &Path) -> Report {
    let mut command = Command::new(python);
    // One evcxr build folder for all kernels, which run one at a time: the crate compiled
    // by the previous kernel is reused, not rebuilt (evcxr's cache holds only registry crates).
    command.env("EVCXR_TMPDIR", root.join("target/evcxr"));
    command
        .arg(root.join("tests/execute_notebook.py"))
        .arg(notebook)
        .arg("--out")
        .arg(out);
    for (var, flag) in [
        ("MUSTKNOW_CELL_TIMEOUT", "--cell-timeout"),
        ("MUSTKNOW_DEP_TIMEOUT", "--dep-timeout"),
    ] {
        if let Ok(seconds) = std::env::var(var) {
            command.arg(flag).arg(seconds);
        }
    }
    let output = match command.output() {
        Ok(output) => output,
        Err(e) => return Report::failed(format!("could not start {}: {e}", python.display())),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str::<Value>(line).ok())
    {
        Some(report) => Report::from_json(&report),
        None => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
            Report::failed(format!(
                "the executor crashed ({}): {}",
                output.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ))
        }
    }
}

impl Report {
    fn failed(reason: String) -> Report {
        Report {
            ok: false,
            reason,
            seconds: 0.0,
            peak_rss_mb: None,
            cells: vec![],
        }
    }

    fn from_json(json: &Value) -> Report {
        let cell = |c: &Value| (c[0].as_u64().unwrap_or(0), c[1].as_f64().unwrap_or(0.0));
        Report {
            ok: json["ok"].as_bool().unwrap_or(false),
            reason: json["reason"]
                .as_str()
                .unwrap_or("no reason given")
                .to_owned(),
            seconds: json["seconds"].as_f64().unwrap_or(0.0),
            peak_rss_mb: json["peak_rss_mb"].as_f64(),
            cells: json["cells"]
                .as_array()
                .map(|cells| cells.iter().map(cell).collect())
                .unwrap_or_default(),
        }
    }

    /// "2345 MB peak memory", or that it was not measured.
    fn memory(&self) -> String {
        match self.peak_rss_mb {
            Some(mb) => format!("{mb:.0} MB peak memory"),
            None => "peak memory not measured".to_owned(),
        }
    }

    /// The three slowest code cells, e.g. "cell 2 12.3 s, cell 5 4.1 s".
    fn slowest_cells(&self) -> String {
        let mut cells = self.cells.clone();
        cells.sort_by(|a, b| b.1.total_cmp(&a.1));
        cells
            .iter()
            .take(3)
            .map(|(n, s)| format!("cell {n} {s:.1} s"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A notebook passes when it ran clean; a fixture passes when it failed for its reason.
fn judge(job: &Job, report: Report) -> Verdict {
    let name = stem(&job.path);
    let (passed, line) = match &job.expect_failure {
        None if report.ok => (
            true,
            format!(
                "notebook {name}: ok ({:.1} s, {}; slowest: {})",
                report.seconds,
                report.memory(),
                report.slowest_cells()
            ),
        ),
        None => (
            false,
            format!("notebook {name}: FAILED ({})", report.reason),
        ),
        Some(expected) if !report.ok && report.reason.contains(expected.as_str()) => (
            true,
            format!("fixture {name}: failed as expected ({})", report.reason),
        ),
        Some(expected) if report.ok => (
            false,
            format!("fixture {name}: FAILED (it should fail with \"{expected}\" but passed)"),
        ),
        Some(expected) => (
            false,
            format!(
                "fixture {name}: FAILED (it should fail with \"{expected}\" but failed with: {})",
                report.reason
            ),
        ),
    };
    Verdict {
        name,
        passed,
        line,
        seconds: report.seconds,
        peak_rss_mb: report.peak_rss_mb,
        fixture: job.expect_failure.is_some(),
    }
}

/// `index.html`: the test report, one link per executed notebook with its verdict.
fn write_index(out: &Path, verdicts: &[Verdict]) {
    let items: String = verdicts
        .iter()
        .map(|v| {
            format!(
                "<li><a href=\"{0}.html\">{0}</a>: {1}</li>\n",
                v.name,
                html_escape(&v.line)
            )
        })
        .collect();
    let page = format!("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>mustknow notebooks</title></head>\n<body><h1>mustknow: executed notebooks</h1>\n<ul>\n{items}</ul></body></html>\n");
    std::fs::create_dir_all(out)
        .and_then(|_| std::fs::write(out.join("index.html"), page))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}

/// `times.json`: each notebook's verdict, run time and peak memory (null where not
/// measured), which `make bench` reports.
fn write_times(out: &Path, verdicts: &[Verdict]) {
    let times: Vec<Value> = verdicts
        .iter()
        .filter(|v| !v.fixture)
        .map(|v| {
            serde_json::json!({"notebook": v.name, "passed": v.passed, "seconds": v.seconds,
                               "peak_rss_mb": v.peak_rss_mb})
        })
        .collect();
    std::fs::write(out.join("times.json"), Value::from(times).to_string())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
