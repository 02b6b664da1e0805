//! Trained weights kept between runs, so that a later notebook (or a rerun) loads a model
//! instead of training it again (notebook 09 compares diffusion with the VAE and GAN that
//! notebook 08 trained): safetensors files under `<crate>/target/cache/`, named
//! by a digest of the network's type and its training recipe, so that changing either
//! starts a new file rather than loading weights of another network. The crate's folder
//! is fixed at compile time, so a notebook finds the same file whatever its working
//! directory. Delete the folder to retrain everything. Notebook `08_vae_gan` §5 (the
//! yardstick's classifier) and notebook `09_diffusion` §5 (the VAE and the GAN).

use crate::Error;
use dfdx::prelude::*;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// `<crate>/target/cache/<name>-<digest of recipe>.safetensors`.
pub fn path(name: &str, recipe: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("cache")
        .join(format!(
            "{name}-{}.safetensors",
            short_digest(recipe.as_bytes())
        ))
}

/// A short digest of `values`, to name the data a model was trained on in its recipe.
pub fn fingerprint(values: &[f32]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    short_digest(&bytes)
}

fn short_digest(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// `module` with the weights of the file at `path`, if there is one that reads as this
/// module. Whether the weights are any good is for the caller to check.
pub fn load<M: TensorCollection<f32, Cpu>>(mut module: M, path: &Path) -> Option<M> {
    module.load_safetensors(path).ok()?;
    Some(module)
}

/// Writes `module`'s weights to `path` through a temporary file and a rename, so that a
/// test or notebook loading the file at the same moment never reads half of it. The
/// temporary name is unique to the process and the call, so two writers never share one.
pub fn save<M: TensorCollection<f32, Cpu>>(module: &M, path: &Path) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    std::fs::create_dir_all(path.parent().expect("a cache file is inside a folder")).map_err(io)?;
    static WRITES: AtomicUsize = AtomicUsize::new(0);
    let call = WRITES.fetch_add(1, Ordering::Relaxed);
    let partial = path.with_extension(format!("{}-{call}.partial", std::process::id()));
    module.save_safetensors(&partial).map_err(|e| Error::Io {
        path: partial.clone(),
        source: std::io::Error::other(format!("{e:?}")),
    })?;
    std::fs::rename(&partial, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_model_loads_with_its_weights_and_a_missing_file_gives_none() {
        let dev = Cpu::default();
        let file = path("test-cache", &format!("{:?}", std::time::SystemTime::now()));
        let fresh = || Cpu::default().build_module::<Linear<3, 2>, f32>();
        assert!(load(fresh(), &file).is_none());
        let trained = dev.build_module::<Linear<3, 2>, f32>();
        save(&trained, &file).unwrap();
        let loaded = load(fresh(), &file).unwrap();
        assert_eq!(loaded.weight.as_vec(), trained.weight.as_vec());
        std::fs::remove_file(&file).unwrap();
        assert_ne!(fingerprint(&[1.0]), fingerprint(&[2.0]));
    }
}
