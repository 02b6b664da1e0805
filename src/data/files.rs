//! Finding the data files and checking them before use.
//!
//! Every file in `data/` has its sha256 written down here, so a truncated download or an
//! edited file is caught when it is opened, with the file's name and the fix, instead of
//! showing up later as a strange accuracy. A file is hashed once per process.

use crate::Error;
use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

/// A file of the data folder and the sha256 it must have (`data/README.md` describes each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataFile {
    pub name: &'static str,
    pub sha256: &'static str,
}

pub const AUSTEN: DataFile = DataFile {
    name: "austen-novels.txt.gz",
    sha256: "373bd2019035e2d9ffba36116ee4d06fe318b6d7dbea7ef9c0d68403bef874ea",
};
pub const DIGITS: DataFile = DataFile {
    name: "digits.csv.gz",
    sha256: "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22",
};
pub const FASHION_IMAGES: DataFile = DataFile {
    name: "fashion-t10k-images-idx3-ubyte.gz",
    sha256: "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
};
pub const FASHION_LABELS: DataFile = DataFile {
    name: "fashion-t10k-labels-idx1-ubyte.gz",
    sha256: "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
};
pub const GLOVE: DataFile = DataFile {
    name: "glove.6B.50d.top20000.txt.gz",
    sha256: "4f7cff6f4e95b05e3c508431ecff96a07496366fe73c110692527edc5d7f02df",
};
pub const IRIS: DataFile = DataFile {
    name: "iris.csv",
    sha256: "f13ffa8fdd56fd8e6c8d16d4081a3fbd3114bcd0aae4256c43205169cd9d1449",
};
pub const MNIST_IMAGES: DataFile = DataFile {
    name: "mnist-t10k-images-idx3-ubyte.gz",
    sha256: "16d4b7547ac0bbcd4db35d533238a6793fa8ab778dafcb6eb85f322d68091835",
};
pub const MNIST_LABELS: DataFile = DataFile {
    name: "mnist-t10k-labels-idx1-ubyte.gz",
    sha256: "6a9e7a2e0d6643ce3bc1918d587c6b715ef7552c7f53d9503420716f49175ab7",
};
pub const ANALOGIES: DataFile = DataFile {
    name: "questions-words.txt.gz",
    sha256: "7e8eada166d5d76e401bb7a76395d56a264027009efd826ce52e30e053bd3370",
};
pub const WINE: DataFile = DataFile {
    name: "wine_data.csv",
    sha256: "10e8a802908b34f86e5da8ce962f3c806694bc98450a18f61851af59f324bede",
};

/// Every file of the data folder, in alphabetical order (the order `data verify` prints).
pub const FILES: [DataFile; 10] = [
    AUSTEN,
    DIGITS,
    FASHION_IMAGES,
    FASHION_LABELS,
    GLOVE,
    IRIS,
    MNIST_IMAGES,
    MNIST_LABELS,
    ANALOGIES,
    WINE,
];

/// The folder the datasets are read from; every loader is a method on it.
///
/// The free functions ([`mnist`](super::mnist), [`iris`](super::iris), ...) use
/// [`DataDir::from_env`]; tests and tools point [`DataDir::at`] at another folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// `$MUSTKNOW_DATA` when it is set, else the crate's own `data/` folder.
    ///
    /// The variable is read on every call, so a notebook or test can change it.
    pub fn from_env() -> DataDir {
        match std::env::var_os("MUSTKNOW_DATA") {
            Some(dir) if !dir.is_empty() => DataDir::at(dir),
            _ => DataDir::at(Path::new(env!("CARGO_MANIFEST_DIR")).join("data")),
        }
    }

    /// The data folder at `root`.
    pub fn at(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where `file` lives in this folder.
    pub fn path(&self, file: &DataFile) -> PathBuf {
        self.root.join(file.name)
    }

    /// The file's contents, its checksum verified (once per process, and again if the
    /// file's size or modification time changed since) and gunzipped when its name ends
    /// in `.gz`.
    pub fn read(&self, file: &DataFile) -> Result<Vec<u8>, Error> {
        let path = self.path(file);
        let raw = read_raw(file, &path)?;
        if !verified()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&fingerprint(&path, &raw))
        {
            check_sha256(file, &path, &raw)?;
        }
        if file.name.ends_with(".gz") {
            gunzip(file, &path, &raw)
        } else {
            Ok(raw)
        }
    }

    /// Checks the file's presence and checksum now, even when it was checked before.
    pub fn check(&self, file: &DataFile) -> Result<(), Error> {
        let path = self.path(file);
        check_sha256(file, &path, &read_raw(file, &path)?)
    }

    /// A format error about `file`, for the parsers.
    pub(crate) fn bad_format(&self, file: &DataFile, problem: impl Into<String>) -> Error {
        Error::DataFormat {
            name: file.name.to_owned(),
            path: self.path(file),
            problem: problem.into(),
        }
    }
}

/// A file as this process last verified it: where, how long, when last modified. A file
/// replaced or truncated later (in a long-lived notebook kernel) no longer matches.
type Fingerprint = (PathBuf, usize, Option<SystemTime>);

fn fingerprint(path: &Path, bytes: &[u8]) -> Fingerprint {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    (path.to_owned(), bytes.len(), modified)
}

/// The files whose checksum this process has already verified.
fn verified() -> &'static Mutex<HashSet<Fingerprint>> {
    static VERIFIED: OnceLock<Mutex<HashSet<Fingerprint>>> = OnceLock::new();
    VERIFIED.get_or_init(Default::default)
}

fn read_raw(file: &DataFile, path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => Error::DataMissing {
            name: file.name.to_owned(),
            path: path.to_owned(),
        },
        _ => Error::DataRead {
            path: path.to_owned(),
            source,
        },
    })
}

/// The sha256 of `bytes` as lower-case hex, the form `sha256sum` prints.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compares the file's checksum with the table's, remembering the file when they match.
fn check_sha256(file: &DataFile, path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let got = sha256_hex(bytes);
    if got == file.sha256 {
        let mut verified = verified().lock().unwrap_or_else(|e| e.into_inner());
        verified.insert(fingerprint(path, bytes));
        Ok(())
    } else {
        Err(Error::DataChecksum {
            name: file.name.to_owned(),
            path: path.to_owned(),
            expected: file.sha256.to_owned(),
            got,
        })
    }
}

fn gunzip(file: &DataFile, path: &Path, bytes: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(bytes.len() * 4);
    GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| Error::DataFormat {
            name: file.name.to_owned(),
            path: path.to_owned(),
            problem: format!("not a complete gzip stream ({e})"),
        })?;
    Ok(out)
}

/// A fresh, empty folder under the system's temporary folder, for tests that corrupt files.
#[cfg(test)]
pub(crate) fn scratch_dir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("mustknow-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A scratch folder holding a copy of one real data file.
#[cfg(test)]
pub(crate) fn scratch_copy(tag: &str, file: &DataFile) -> DataDir {
    let dir = scratch_dir(tag);
    std::fs::copy(DataDir::from_env().path(file), dir.join(file.name)).unwrap();
    DataDir::at(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_matches_its_checksum() {
        let data = DataDir::from_env();
        for file in &FILES {
            data.check(file).unwrap();
        }
    }

    #[test]
    fn the_table_lists_each_file_once_with_a_full_checksum() {
        let names: HashSet<_> = FILES.iter().map(|f| f.name).collect();
        assert_eq!(names.len(), FILES.len());
        for file in &FILES {
            assert_eq!(file.sha256.len(), 64, "{}", file.name);
            assert!(file.sha256.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }

    #[test]
    fn a_flipped_byte_is_a_checksum_mismatch_naming_the_file() {
        let data = scratch_copy("flip", &IRIS);
        let path = data.path(&IRIS);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[100] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let err = data.read(&IRIS).unwrap_err();
        assert!(matches!(err, Error::DataChecksum { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("iris.csv"), "{message}");
        assert!(message.contains(IRIS.sha256), "{message}");
        assert!(
            message.contains("git checkout -- data/iris.csv"),
            "{message}"
        );
        assert!(data.check(&IRIS).is_err());
        std::fs::remove_dir_all(data.root()).unwrap();
    }

    #[test]
    fn a_missing_file_is_named_with_the_fix() {
        let data = DataDir::at(scratch_dir("missing"));
        let err = data.read(&MNIST_LABELS).unwrap_err();
        assert!(matches!(err, Error::DataMissing { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("missing"), "{message}");
        assert!(
            message.contains("git checkout -- data/mnist-t10k-labels-idx1-ubyte.gz"),
            "{message}"
        );
        std::fs::remove_dir_all(data.root()).unwrap();
    }

    #[test]
    fn gzip_files_are_unpacked_and_plain_files_are_not() {
        let data = DataDir::from_env();
        let labels = data.read(&MNIST_LABELS).unwrap();
        assert_eq!(labels.len(), 8 + 10_000);
        assert!(data.read(&IRIS).unwrap().starts_with(b"150,4,setosa"));
    }

    #[test]
    fn a_cut_gzip_stream_is_a_format_error() {
        let err = gunzip(&DIGITS, Path::new("x"), &[0x1f, 0x8b, 8, 0, 0]).unwrap_err();
        assert!(matches!(err, Error::DataFormat { .. }), "{err:?}");
    }
}
