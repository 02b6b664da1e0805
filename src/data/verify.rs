//! Checking the whole data folder at once: `mustknow data verify` prints this.

use super::files::{DataDir, DataFile, FILES};
use super::files::{ANALOGIES, AUSTEN, DIGITS, FASHION_IMAGES, FASHION_LABELS, GLOVE};
use super::files::{IRIS, MNIST_IMAGES, MNIST_LABELS, WINE};
use super::text::words;
use crate::Error;

/// What checking one file found: a one-line description of its contents, or its error.
#[derive(Debug)]
pub struct Check {
    pub file: DataFile,
    pub outcome: Result<String, Error>,
}

impl DataDir {
    /// Checks every known file: present, matching its sha256, and parsing in full.
    pub fn verify_all(&self) -> Vec<Check> {
        FILES
            .iter()
            .map(|file| Check {
                file: *file,
                outcome: self.check(file).and_then(|()| self.describe(file)),
            })
            .collect()
    }

    /// Loads `file` in full and says what is in it, such as `10000 images 28x28`.
    fn describe(&self, file: &DataFile) -> Result<String, Error> {
        Ok(match *file {
            AUSTEN => {
                let text = self.austen()?;
                format!(
                    "{} characters, {} words",
                    text.chars().count(),
                    words(&text).len()
                )
            }
            DIGITS => {
                let set = self.digits()?;
                format!("{} images {}x{}", set.len(), set.height, set.width)
            }
            FASHION_IMAGES | MNIST_IMAGES => {
                let (n, height, width, _) = self.idx_images(file)?;
                format!("{n} images {height}x{width}")
            }
            FASHION_LABELS | MNIST_LABELS => {
                format!("{} labels in 0..10", self.idx_labels(file, 10)?.len())
            }
            GLOVE => {
                let glove = self.glove()?;
                format!("{} words x {} dims", glove.len(), glove.dim())
            }
            ANALOGIES => {
                let questions = self.analogies()?;
                let mut sections: Vec<&str> =
                    questions.iter().map(|q| q.section.as_str()).collect();
                sections.dedup();
                format!(
                    "{} questions in {} sections",
                    questions.len(),
                    sections.len()
                )
            }
            IRIS => table_shape(&self.iris()?),
            WINE => table_shape(&self.wine()?),
            _ => format!("{} bytes", self.read(file)?.len()),
        })
    }
}

fn table_shape(table: &polars::prelude::DataFrame) -> String {
    format!("{} rows x {} columns", table.height(), table.width())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_folder_verifies() {
        for check in DataDir::from_env().verify_all() {
            assert!(
                check.outcome.is_ok(),
                "{}: {:?}",
                check.file.name,
                check.outcome
            );
        }
    }

    #[test]
    fn a_folder_with_one_file_fails_on_the_others() {
        let data = super::super::files::scratch_copy("verify", &IRIS);
        let checks = data.verify_all();
        assert_eq!(checks.len(), FILES.len());
        for check in checks {
            assert_eq!(
                check.outcome.is_ok(),
                check.file == IRIS,
                "{}",
                check.file.name
            );
        }
        std::fs::remove_dir_all(data.root()).unwrap();
    }
}
