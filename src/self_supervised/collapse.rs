//! §4–5: telling a collapsed representation from a healthy one by its outputs, not by its
//! loss (a collapsed network can reach a low loss).

/// BYOL's monitor (Grill et al., 2020, and SimSiam, Chen & He, 2021): the standard deviation
/// of each output dimension across images, after each output is scaled to unit length,
/// averaged over the `dim` dimensions. Outputs spread over the sphere give about `1/√dim`;
/// a collapsed network, mapping every image to one point, gives 0.
pub fn normalized_std(outputs: &[f32], dim: usize) -> f32 {
    let rows: Vec<Vec<f32>> = outputs
        .chunks(dim)
        .map(|row| {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            row.iter().map(|v| v / norm).collect()
        })
        .collect();
    let n = rows.len().max(1) as f32;
    let per_dimension = (0..dim).map(|j| {
        let mean = rows.iter().map(|r| r[j]).sum::<f32>() / n;
        (rows.iter().map(|r| (r[j] - mean).powi(2)).sum::<f32>() / n).sqrt()
    });
    per_dimension.sum::<f32>() / dim as f32
}

/// DINO's two entropies of a batch of probability rows (`k` wide), in nats: the mean
/// entropy of one row, and the entropy of the mean row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Entropies {
    /// Low when each image gets a confident, near one-hot distribution.
    pub per_image: f32,
    /// Low when every image gets the same distribution (a collapse to one output).
    pub of_mean: f32,
}

/// The [`Entropies`] of `probabilities`, rows of `k` values each summing to 1. Healthy
/// DINO outputs are confident per image and spread across images (low `per_image`, high
/// `of_mean`); one-hot collapse makes both 0, uniform collapse both `ln k`.
pub fn entropies(probabilities: &[f32], k: usize) -> Entropies {
    let entropy = |p: &[f32]| -> f32 { p.iter().filter(|&&q| q > 0.0).map(|&q| -q * q.ln()).sum() };
    let rows = probabilities.len() / k.max(1);
    let per_image = probabilities.chunks(k).map(entropy).sum::<f32>() / rows.max(1) as f32;
    let mut mean = vec![0.0; k];
    probabilities.chunks(k).for_each(|row| {
        mean.iter_mut()
            .zip(row)
            .for_each(|(m, p)| *m += p / rows as f32)
    });
    Entropies {
        per_image,
        of_mean: entropy(&mean),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_std_monitor_tells_spread_from_collapse() {
        let dim = 4;
        let spread: Vec<f32> = (0..400)
            .flat_map(|i| {
                let mut row = vec![0.0; dim];
                row[i % dim] = if i % 8 < 4 { 1.0 } else { -1.0 };
                row
            })
            .collect();
        let collapsed: Vec<f32> = (0..400)
            .flat_map(|i| [3.0, 1.0, 0.5, 2.0 + 1e-5 * i as f32])
            .collect();
        // One-hot rows of ±1, a quarter on each axis: each dimension has std √(1/4) = 0.5.
        assert!((normalized_std(&spread, dim) - 0.5).abs() < 1e-5);
        assert!(normalized_std(&collapsed, dim) < 1e-3);
    }

    #[test]
    fn entropies_tell_one_hot_and_uniform_collapse_apart() {
        let k = 8;
        let one_hot: Vec<f32> = (0..50)
            .flat_map(|_| [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
            .collect();
        let uniform = vec![1.0 / k as f32; 50 * k];
        let healthy: Vec<f32> = (0..48)
            .flat_map(|i| (0..k).map(move |j| if j == i % k { 1.0 } else { 0.0 }))
            .collect();
        let (a, b, c) = (
            entropies(&one_hot, k),
            entropies(&uniform, k),
            entropies(&healthy, k),
        );
        let ln_k = (k as f32).ln();
        assert!(a.per_image < 1e-6 && a.of_mean < 1e-6);
        assert!((b.per_image - ln_k).abs() < 1e-5 && (b.of_mean - ln_k).abs() < 1e-5);
        assert!(c.per_image < 1e-6 && (c.of_mean - ln_k).abs() < 1e-5);
    }
}
