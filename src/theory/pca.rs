//! §1: the singular value decomposition of a data matrix and what PCA, low-rank
//! reconstruction and a linear autoencoder read from it. The solvers are linfa's:
//! linfa-linalg's full SVD and linfa-reduction's `Pca` (a truncated SVD by LOBPCG).

use crate::data::ImageSet;
use crate::optim::Method;
use crate::train::{fit, Drawn, Measured, TrainConfig};
use crate::Error;
use dfdx::prelude::*;
use linfa::traits::Fit;
use linfa::DatasetBase;
use linfa_linalg::svd::{SvdSort, SVD};
use linfa_linalg::Order;
use linfa_reduction::Pca;
use ndarray::{s, Array1, Array2, Axis};

/// A data matrix centred on its mean and its full SVD, `X − mean = U Σ Vᵀ`, singular values
/// in decreasing order (notebook `11_theory`, §1).
pub struct Spectrum {
    /// The centred data, one row per example (`n × d`).
    pub centred: Array2<f64>,
    pub mean: Array1<f64>,
    /// σ₁ ≥ σ₂ ≥ … (`min(n, d)` of them).
    pub singular_values: Array1<f64>,
    /// The right singular vectors as rows (`min(n, d) × d`): the principal directions.
    pub vt: Array2<f64>,
}

/// The first `n` images of `images` as the rows of an `n × pixels` matrix of `f64`.
pub fn image_matrix(images: &ImageSet, n: usize) -> Array2<f64> {
    let (n, d) = (n.min(images.len()), images.pixels_per_image());
    Array2::from_shape_fn((n, d), |(i, j)| images.pixels[i * d + j] as f64)
}

/// Centres `data` and takes its full SVD with linfa-linalg.
pub fn spectrum(data: &Array2<f64>) -> Result<Spectrum, Error> {
    let mean = data
        .mean_axis(Axis(0))
        .ok_or_else(|| Error::InvalidArgument {
            what: "an SVD of a data matrix",
            expected: "at least one row",
            got: "none".into(),
        })?;
    let centred = data - &mean;
    let (singular_values, vt) = right_singular(&centred)?;
    Ok(Spectrum {
        centred,
        mean,
        singular_values,
        vt,
    })
}

/// The singular values of `a`, largest first, and its right singular vectors as rows, in
/// the same order (linfa-linalg's SVD).
fn right_singular(a: &Array2<f64>) -> Result<(Array1<f64>, Array2<f64>), Error> {
    let (_, singular_values, vt) = a
        .clone()
        .svd(false, true)
        .map_err(|e| svd_failed(e.to_string()))?
        .sort_svd(Order::Largest);
    let vt = vt.ok_or_else(|| svd_failed("no right singular vectors".into()))?;
    Ok((singular_values, vt))
}

fn svd_failed(got: String) -> Error {
    Error::InvalidArgument {
        what: "the SVD of a data matrix",
        expected: "finite values",
        got,
    }
}

impl Spectrum {
    /// The share of the total variance the first `k` directions explain, for `k = 1, 2, …`.
    pub fn explained_variance(&self) -> Vec<f64> {
        let total: f64 = self.singular_values.iter().map(|s| s * s).sum();
        let mut running = 0.0;
        self.singular_values
            .iter()
            .map(|s| {
                running += s * s;
                running / total
            })
            .collect()
    }

    /// The best rank-`k` approximation of the centred data: each row projected onto the
    /// first `k` principal directions, `X V_k V_kᵀ`.
    pub fn reconstruct(&self, k: usize) -> Array2<f64> {
        let v_k = self.vt.slice(s![..k, ..]);
        self.centred.dot(&v_k.t()).dot(&v_k)
    }

    /// `‖X − X_k‖²_F`, measured.
    pub fn reconstruction_error(&self, k: usize) -> f64 {
        (&self.centred - &self.reconstruct(k))
            .iter()
            .map(|e| e * e)
            .sum()
    }

    /// Eckart–Young's value of the same error: the sum of the discarded `σᵢ²`, `i > k`.
    pub fn discarded_energy(&self, k: usize) -> f64 {
        self.singular_values.iter().skip(k).map(|s| s * s).sum()
    }
}

/// linfa-reduction's PCA with `k` components, fitted on the rows of `data`.
pub fn linfa_pca(data: &Array2<f64>, k: usize) -> Result<Pca<f64>, Error> {
    Pca::params(k)
        .fit(&DatasetBase::from(data.clone()))
        .map_err(|e| Error::InvalidArgument {
            what: "a PCA",
            expected: "more examples and features than components",
            got: e.to_string(),
        })
}

/// For each row of `a`, its distance to the same row of `b` up to sign,
/// `min(‖aᵢ − bᵢ‖, ‖aᵢ + bᵢ‖)`: 0 when the two bases agree but for flipped directions.
pub fn distances_up_to_sign(a: &Array2<f64>, b: &Array2<f64>) -> Vec<f64> {
    a.rows()
        .into_iter()
        .zip(b.rows())
        .map(|(a, b)| {
            let minus: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
            let plus: f64 = a.iter().zip(b).map(|(x, y)| (x + y) * (x + y)).sum();
            minus.min(plus).sqrt()
        })
        .collect()
}

/// The principal angles (in degrees, smallest first) between the subspaces spanned by the
/// rows of `a` and of `b`: the arc-cosines of the singular values of `Q_a Q_bᵀ`, where
/// `Q` is an orthonormal basis of each. All near 0 means the same subspace.
pub fn principal_angles(a: &Array2<f64>, b: &Array2<f64>) -> Result<Vec<f64>, Error> {
    let (qa, qb) = (orthonormal_rows(a)?, orthonormal_rows(b)?);
    let (_, cosines, _) = qa
        .dot(&qb.t())
        .svd(false, false)
        .map_err(|e| svd_failed(e.to_string()))?
        .sort_svd(Order::Largest);
    Ok(cosines
        .iter()
        .map(|c| c.clamp(-1.0, 1.0).acos().to_degrees())
        .collect())
}

/// An orthonormal basis of the row space of `a` (its right singular vectors).
fn orthonormal_rows(a: &Array2<f64>) -> Result<Array2<f64>, Error> {
    let (_, vt) = right_singular(a)?;
    Ok(vt.slice(s![..a.nrows().min(a.ncols()), ..]).to_owned())
}

/// The linear autoencoder of Baldi & Hornik (1989): `x ↦ D E x`, with an encoder
/// `E: 64 → K` and a decoder `D: K → 64`, no bias (the data are centred) and no
/// non-linearity, for the 8×8 digits
/// (notebook `11_theory`, §1). Trained on squared error, its decoder's columns span the
/// first `K` principal directions.
pub type LinearAutoencoder<const K: usize> = (
    dfdx::nn::modules::UnbiasedLinear<64, K, f32, Cpu>,
    dfdx::nn::modules::UnbiasedLinear<K, 64, f32, Cpu>,
);

/// The number of codes the linear autoencoder of the notebook keeps.
pub const CODES: usize = 5;

/// A linear autoencoder with [`CODES`] codes and the device's seeded initial weights.
pub fn linear_autoencoder(seed: u64) -> LinearAutoencoder<CODES> {
    Cpu::seed_from_u64(seed)
        .build_module::<(UnbiasedLinear<64, CODES>, UnbiasedLinear<CODES, 64>), f32>()
}

/// The mean squared reconstruction error of the centred rows `x` (per value), on a tape.
pub fn reconstruction_loss<T: Tape<f32, Cpu>>(
    model: &LinearAutoencoder<CODES>,
    x: Tensor<(usize, Const<64>), f32, Cpu, T>,
) -> Tensor<Rank0, f32, Cpu, T> {
    let target = x.retaped::<NoneTape>();
    mse_loss(model.forward(x), target)
}

/// Trains `model` on the centred rows of `data` (`n × 64`) by full-batch Adam for `steps`
/// steps at learning rate `lr`, through the course's loop; returns the loss per step.
pub fn train_linear_autoencoder(
    model: &mut LinearAutoencoder<CODES>,
    centred: &Array2<f64>,
    steps: usize,
    lr: f64,
) -> Result<Vec<f32>, Error> {
    let dev = Cpu::default();
    let rows: Vec<f32> = centred.iter().map(|&v| v as f32).collect();
    let x = dev.tensor_from_vec(rows, (centred.nrows(), Const::<64>));
    let mut adam = Method::Adam.at(lr).build(model);
    let batches = Drawn::new(steps, || x.clone());
    let objective =
        |m: &mut LinearAutoencoder<CODES>, x: Tensor<(usize, Const<64>), f32, Cpu>, grads| {
            Ok::<_, Error>(Measured::loss(reconstruction_loss(m, x.traced(grads))))
        };
    let history = fit(
        model,
        adam.as_mut(),
        batches,
        objective,
        &TrainConfig::new(1).quiet(),
    )?;
    Ok(history.losses())
}

/// The gradients of [`reconstruction_loss`] on the centred rows of `data` with respect to
/// the encoder's weights (`K × 64`) and the decoder's (`64 × K`), by dfdx's autodiff: what
/// the notebook's written-out gradient is checked against.
pub fn reconstruction_gradients(
    model: &LinearAutoencoder<CODES>,
    centred: &Array2<f64>,
) -> (Array2<f64>, Array2<f64>) {
    let dev = Cpu::default();
    let rows: Vec<f32> = centred.iter().map(|&v| v as f32).collect();
    let x = dev.tensor_from_vec(rows, (centred.nrows(), Const::<64>));
    let grads = reconstruction_loss(model, x.traced(model.alloc_grads())).backward();
    (
        matrix(grads.get(&model.0.weight).as_vec(), (CODES, 64)),
        matrix(grads.get(&model.1.weight).as_vec(), (64, CODES)),
    )
}

/// The weights of the encoder (`K × 64`) and of the decoder (`64 × K`).
pub fn weights(model: &LinearAutoencoder<CODES>) -> (Array2<f64>, Array2<f64>) {
    (
        matrix(model.0.weight.as_vec(), (CODES, 64)),
        matrix(model.1.weight.as_vec(), (64, CODES)),
    )
}

/// A weight (or its gradient) as an `f64` matrix of its declared shape.
fn matrix(values: Vec<f32>, shape: (usize, usize)) -> Array2<f64> {
    Array2::from_shape_vec(shape, values.into_iter().map(f64::from).collect())
        .expect("a weight has its declared shape")
}

/// The decoder's columns as the rows of a `K × 64` matrix: the subspace it reconstructs in.
pub fn decoder_directions(model: &LinearAutoencoder<CODES>) -> Array2<f64> {
    weights(model).1.t().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn data() -> Array2<f64> {
        array![
            [2.0, 0.1, -1.0],
            [1.0, 0.3, 0.5],
            [-1.5, 2.0, 0.0],
            [0.2, -1.0, 3.0],
            [-0.7, 0.4, -2.1]
        ]
    }

    #[test]
    fn eckart_young_holds_and_full_rank_reconstructs_exactly() {
        let spectrum = spectrum(&data()).unwrap();
        for k in 0..=3 {
            let (measured, theory) = (
                spectrum.reconstruction_error(k),
                spectrum.discarded_energy(k),
            );
            assert!(
                (measured - theory).abs() < 1e-9,
                "k = {k}: {measured} vs {theory}"
            );
        }
        assert!(spectrum.reconstruction_error(3) < 1e-20);
        let curve = spectrum.explained_variance();
        assert!(curve.windows(2).all(|w| w[0] <= w[1]) && (curve[2] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn linfa_pca_components_are_the_right_singular_vectors() {
        // Six features of decreasing spread, so that the top two directions are well apart.
        let data = Array2::from_shape_fn((60, 6), |(i, j)| {
            let wave = ((i * (j + 3)) as f64 * 0.7).sin() + ((i + 2 * j) as f64).cos() * 0.3;
            wave * (6 - j) as f64
        });
        let spectrum = spectrum(&data).unwrap();
        let pca = linfa_pca(&data, 2).unwrap();
        let top = spectrum.vt.slice(s![..2, ..]).to_owned();
        for d in distances_up_to_sign(pca.components(), &top) {
            assert!(d < 1e-6, "{d}");
        }
    }

    #[test]
    fn principal_angles_of_a_subspace_and_a_rotated_basis_of_it_vanish() {
        let basis = array![[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
        let mixed = array![[1.0, 2.0, 0.0], [3.0, -1.0, 0.0]];
        // acos near 1 loses half the digits: 1e-16 in the cosine is 1e-6 degrees.
        assert!(principal_angles(&basis, &mixed)
            .unwrap()
            .iter()
            .all(|a| *a < 1e-4));
        let other = array![[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]];
        let angles = principal_angles(&basis, &other).unwrap();
        assert!(
            angles[0] < 1e-4 && (angles[1] - 90.0).abs() < 1e-6,
            "{angles:?}"
        );
    }
}
