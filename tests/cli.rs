//! The `mustknow` binary, run for real on a copy of `data/`, good and damaged.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh copy of `data/` in the temporary folder, removed when dropped.
struct DataCopy(PathBuf);

impl DataCopy {
    fn new(tag: &str) -> DataCopy {
        let dir = std::env::temp_dir().join(format!("mustknow-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
        for entry in std::fs::read_dir(data).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
        DataCopy(dir)
    }

    fn verify(&self) -> Output {
        Command::new(env!("CARGO_BIN_EXE_mustknow"))
            .args(["data", "verify"])
            .env("MUSTKNOW_DATA", &self.0)
            .output()
            .unwrap()
    }
}

impl Drop for DataCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn verify_passes_on_good_data() {
    let output = DataCopy::new("good").verify();
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    let mnist = text
        .lines()
        .find(|l| l.contains("mnist-t10k-images-idx3-ubyte.gz"))
        .unwrap();
    assert!(
        mnist.starts_with("ok ") && mnist.ends_with("  10000 images 28x28"),
        "{mnist}"
    );
    assert!(text.contains("20000 words x 50 dims"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("ok ")).count(),
        10,
        "{text}"
    );
}

#[test]
fn verify_fails_on_a_corrupted_file_and_names_it() {
    let copy = DataCopy::new("corrupt");
    let path = copy.0.join("wine_data.csv");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[50] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let output = copy.verify();
    let text = stdout(&output);
    assert!(!output.status.success(), "{text}");
    let line = text.lines().find(|l| l.starts_with("FAILED")).unwrap();
    assert!(
        line.contains("wine_data.csv is corrupt: its sha256 is"),
        "{line}"
    );
    assert!(
        line.contains("git checkout -- data/wine_data.csv"),
        "{line}"
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("ok ")).count(),
        9,
        "{text}"
    );
}

#[test]
fn verify_fails_on_a_missing_file_and_names_it() {
    let copy = DataCopy::new("missing");
    std::fs::remove_file(copy.0.join("glove.6B.50d.top20000.txt.gz")).unwrap();
    let output = copy.verify();
    let text = stdout(&output);
    assert!(!output.status.success(), "{text}");
    let line = text.lines().find(|l| l.starts_with("FAILED")).unwrap();
    assert!(
        line.contains("glove.6B.50d.top20000.txt.gz is missing"),
        "{line}"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("1 of 10 data files"));
}
