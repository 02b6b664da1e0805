//! Labelled grey-scale images: MNIST, Fashion-MNIST (IDX files) and scikit-learn's 8×8
//! digits (CSV), all in one [`ImageSet`] shape so a notebook can swap one for another.

use super::files::{DataDir, DataFile, DIGITS, FASHION_IMAGES, FASHION_LABELS};
use super::files::{MNIST_IMAGES, MNIST_LABELS};
use super::tables::{numeric_rows, whole_number};
use crate::Error;
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};

/// Labelled grey-scale images, used from the first image-classification notebook onwards.
///
/// `pixels` is row-major `(len, height, width)` with values in `0..=1`; `labels[i]` indexes
/// `class_names`.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSet {
    pub pixels: Vec<f32>,
    pub labels: Vec<usize>,
    pub height: usize,
    pub width: usize,
    pub class_names: Vec<String>,
}

impl ImageSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `Ok` when the set is non-empty and its images are `side × side`; otherwise an error
    /// naming what a model expected (`datasets`, e.g. "MNIST") and what it got.
    pub fn check_side(&self, side: usize, datasets: &str) -> Result<(), Error> {
        if self.height == side && self.width == side && !self.is_empty() {
            return Ok(());
        }
        Err(Error::ShapeMismatch {
            what: "the images",
            expected: format!("a non-empty set of {side}×{side} images ({datasets})"),
            got: format!("{} images of {}×{}", self.len(), self.height, self.width),
        })
    }

    /// Pixels in one image, `height × width`: the feature width of a flattened image.
    pub fn pixels_per_image(&self) -> usize {
        self.height * self.width
    }

    /// Image `i`, row-major `(height, width)`.
    pub fn image(&self, i: usize) -> &[f32] {
        let size = self.pixels_per_image();
        &self.pixels[i * size..(i + 1) * size]
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        ImageSet {
            pixels: indices
                .iter()
                .flat_map(|&i| self.image(i).iter().copied())
                .collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            height: self.height,
            width: self.width,
            class_names: self.class_names.clone(),
        }
    }

    /// A seeded random split into `(train, test)`, `test` holding `test_fraction` of the
    /// images (rounded). Not stratified: with thousands of images the class shares barely move.
    ///
    pub fn split(&self, test_fraction: f64, seed: u64) -> Result<(ImageSet, ImageSet), Error> {
        if !(0.0..=1.0).contains(&test_fraction) {
            return Err(Error::InvalidArgument {
                what: "the test fraction of a split",
                expected: "between 0 and 1, such as 0.2",
                got: test_fraction.to_string(),
            });
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        let n_test = (self.len() as f64 * test_fraction).round() as usize;
        let (test, train) = order.split_at(n_test);
        Ok((self.subset(train), self.subset(test)))
    }

    /// Every image shrunk by `factor` in height and width, each new pixel the mean of a
    /// `factor × factor` block ([`block_means`]): cheaper experiments on 14×14
    /// Fashion-MNIST (notebook 04).
    pub fn downsample(&self, factor: usize) -> Result<ImageSet, Error> {
        Ok(ImageSet {
            pixels: block_means(&self.pixels, self.height, self.width, factor)?,
            labels: self.labels.clone(),
            height: self.height / factor,
            width: self.width / factor,
            class_names: self.class_names.clone(),
        })
    }
}

/// Every `height × width` image of `pixels` (row-major, one after another) shrunk by
/// `factor` in height and width, each new pixel the mean of a `factor × factor` block:
/// [`ImageSet::downsample`], and notebook `09_diffusion` §5's 14×14 digits.
pub fn block_means(
    pixels: &[f32],
    height: usize,
    width: usize,
    factor: usize,
) -> Result<Vec<f32>, Error> {
    if factor == 0 || !height.is_multiple_of(factor) || !width.is_multiple_of(factor) {
        return Err(Error::ShapeMismatch {
            what: "the downsampling factor",
            expected: format!("a divisor of both {height} and {width}"),
            got: factor.to_string(),
        });
    }
    let (h, w) = (height / factor, width / factor);
    let block = (factor * factor) as f32;
    let mut means = Vec::with_capacity(pixels.len() / (factor * factor));
    for image in pixels.chunks_exact(height * width) {
        for r in 0..h {
            for c in 0..w {
                let sum: f32 = (0..factor * factor)
                    .map(|j| image[(r * factor + j / factor) * width + c * factor + j % factor])
                    .sum();
                means.push(sum / block);
            }
        }
    }
    Ok(means)
}

/// The MNIST test split: 10,000 handwritten digits, 28×28 (LeCun, Cortes and Burges, 1998).
pub fn mnist() -> Result<ImageSet, Error> {
    DataDir::from_env().mnist()
}

/// The Fashion-MNIST test split: 10,000 clothes, 28×28, 1,000 per class
/// (Xiao, Rasul and Vollgraf, 2017).
pub fn fashion_mnist() -> Result<ImageSet, Error> {
    DataDir::from_env().fashion_mnist()
}

/// scikit-learn's digits: 1,797 handwritten digits, 8×8 (Alpaydin and Kaynak, UCI).
pub fn digits() -> Result<ImageSet, Error> {
    DataDir::from_env().digits()
}

/// Fashion-MNIST's class names, in label order.
pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

impl DataDir {
    /// [`mnist`] from this folder.
    pub fn mnist(&self) -> Result<ImageSet, Error> {
        let names = (0..10).map(|d| d.to_string()).collect();
        self.idx_set(&MNIST_IMAGES, &MNIST_LABELS, names)
    }

    /// [`fashion_mnist`] from this folder.
    pub fn fashion_mnist(&self) -> Result<ImageSet, Error> {
        let names = FASHION_CLASSES.iter().map(|&c| c.to_owned()).collect();
        self.idx_set(&FASHION_IMAGES, &FASHION_LABELS, names)
    }

    /// [`digits`] from this folder.
    pub fn digits(&self) -> Result<ImageSet, Error> {
        let bytes = self.read(&DIGITS)?;
        let bad = |problem: String| self.bad_format(&DIGITS, problem);
        let rows = numeric_rows(&bytes, 65, 1).map_err(bad)?;
        let mut pixels = Vec::with_capacity(rows.len() * 64);
        let mut labels = Vec::with_capacity(rows.len());
        for (row, values) in rows.iter().enumerate() {
            for (col, &value) in values.iter().enumerate() {
                let (max, what) = if col < 64 {
                    (16, "grey level")
                } else {
                    (9, "label")
                };
                if whole_number(value, max).is_none() {
                    return Err(bad(format!(
                        "line {}, column {}: {what} {value} is not a whole number in 0..={max}",
                        row + 1,
                        col + 1
                    )));
                }
            }
            pixels.extend(values[..64].iter().map(|&v| v as f32 / 16.0));
            labels.push(values[64] as usize);
        }
        Ok(ImageSet {
            pixels,
            labels,
            height: 8,
            width: 8,
            class_names: (0..10).map(|d| d.to_string()).collect(),
        })
    }

    /// An IDX image file on its own: `(count, height, width, pixels in 0..=1)`.
    pub(crate) fn idx_images(&self, file: &DataFile) -> Result<IdxImages, Error> {
        let bytes = self.read(file)?;
        let (n, height, width, raw) =
            parse_idx_images(&bytes).map_err(|p| self.bad_format(file, p))?;
        let pixels = raw.iter().map(|&b| f32::from(b) / 255.0).collect();
        Ok((n, height, width, pixels))
    }

    /// An IDX label file on its own, each label checked against `classes`.
    pub(crate) fn idx_labels(&self, file: &DataFile, classes: usize) -> Result<Vec<usize>, Error> {
        let bytes = self.read(file)?;
        let raw = parse_idx_labels(&bytes).map_err(|p| self.bad_format(file, p))?;
        match raw.iter().position(|&l| usize::from(l) >= classes) {
            Some(i) => Err(self.bad_format(
                file,
                format!("label {i} is {}, but there are {classes} classes", raw[i]),
            )),
            None => Ok(raw.iter().map(|&l| usize::from(l)).collect()),
        }
    }

    fn idx_set(
        &self,
        images: &DataFile,
        labels: &DataFile,
        class_names: Vec<String>,
    ) -> Result<ImageSet, Error> {
        let (n, height, width, pixels) = self.idx_images(images)?;
        let labels_read = self.idx_labels(labels, class_names.len())?;
        if labels_read.len() != n {
            return Err(self.bad_format(
                labels,
                format!("it has {} labels for {n} images", labels_read.len()),
            ));
        }
        Ok(ImageSet {
            pixels,
            labels: labels_read,
            height,
            width,
            class_names,
        })
    }
}

/// `(count, height, width, pixels)` of an IDX image file.
pub(crate) type IdxImages = (usize, usize, usize, Vec<f32>);

/// The big-endian `u32` header fields of an IDX file: the magic number, then one per dimension.
fn idx_header(bytes: &[u8], magic: u32, dims: usize) -> Result<Vec<usize>, String> {
    let header_len = 4 * (1 + dims);
    if bytes.len() < header_len {
        return Err(format!(
            "truncated: {} bytes is shorter than the {header_len}-byte IDX header",
            bytes.len()
        ));
    }
    let field = |i: usize| {
        u32::from_be_bytes([
            bytes[4 * i],
            bytes[4 * i + 1],
            bytes[4 * i + 2],
            bytes[4 * i + 3],
        ])
    };
    if field(0) != magic {
        return Err(format!(
            "bad IDX magic number {:#010x}, expected {magic:#010x}",
            field(0)
        ));
    }
    Ok((1..=dims).map(|i| field(i) as usize).collect())
}

/// Checks that the body after a `header_len`-byte header holds exactly `expected` bytes.
fn idx_body(bytes: &[u8], header_len: usize, expected: Option<usize>) -> Result<&[u8], String> {
    let body = &bytes[header_len..];
    match expected {
        Some(len) if len == body.len() => Ok(body),
        Some(len) => Err(format!(
            "truncated or padded: the header promises {len} bytes of data, the file has {}",
            body.len()
        )),
        None => Err("the header's dimensions are too large".to_owned()),
    }
}

/// An IDX image file (magic 0x00000803, then count, height, width): its dimensions and bytes.
pub(crate) fn parse_idx_images(bytes: &[u8]) -> Result<(usize, usize, usize, &[u8]), String> {
    let dims = idx_header(bytes, IDX_IMAGES_MAGIC, 3)?;
    let (n, height, width) = (dims[0], dims[1], dims[2]);
    let expected = n.checked_mul(height).and_then(|x| x.checked_mul(width));
    Ok((n, height, width, idx_body(bytes, 16, expected)?))
}

/// An IDX label file (magic 0x00000801, then count): its label bytes.
pub(crate) fn parse_idx_labels(bytes: &[u8]) -> Result<&[u8], String> {
    let dims = idx_header(bytes, IDX_LABELS_MAGIC, 1)?;
    idx_body(bytes, 8, Some(dims[0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsampling_averages_blocks() {
        let set = ImageSet {
            pixels: (0..16).map(|v| v as f32).collect(),
            labels: vec![3],
            height: 4,
            width: 4,
            class_names: vec!["a".into(); 4],
        };
        let small = set.downsample(2).unwrap();
        assert_eq!((small.height, small.width), (2, 2));
        assert_eq!(small.pixels, [2.5, 4.5, 10.5, 12.5]);
        assert!(set.downsample(3).is_err());
    }

    fn class_counts(set: &ImageSet) -> Vec<usize> {
        let mut counts = vec![0; set.class_names.len()];
        for &l in &set.labels {
            counts[l] += 1;
        }
        counts
    }

    fn in_unit_range(set: &ImageSet) -> bool {
        set.pixels.iter().all(|p| (0.0..=1.0).contains(p))
    }

    #[test]
    fn mnist_has_10000_images_of_every_digit() {
        let set = mnist().unwrap();
        assert_eq!((set.len(), set.height, set.width), (10_000, 28, 28));
        assert_eq!(set.pixels.len(), 10_000 * 784);
        assert!(class_counts(&set).iter().all(|&c| c > 800));
        assert!(in_unit_range(&set));
        assert_eq!(set.image(3).len(), 784);
    }

    #[test]
    fn fashion_mnist_has_1000_images_per_class() {
        let set = fashion_mnist().unwrap();
        assert_eq!((set.len(), set.height, set.width), (10_000, 28, 28));
        assert_eq!(class_counts(&set), vec![1000; 10]);
        assert_eq!(set.class_names[9], "Ankle boot");
        assert!(in_unit_range(&set));
    }

    #[test]
    fn digits_are_1797_images_of_8x8() {
        let set = digits().unwrap();
        assert_eq!((set.len(), set.pixels.len()), (1797, 1797 * 64));
        assert_eq!(set.labels[..3], [0, 1, 2]);
        assert!(class_counts(&set).iter().all(|&c| c > 150));
        assert!(in_unit_range(&set));
        // The first row of digits.csv starts 0,0,5,13,9,1: grey levels out of 16.
        assert_eq!(set.image(0)[2..4], [5.0 / 16.0, 13.0 / 16.0]);
    }

    #[test]
    fn a_split_is_sized_seeded_and_disjoint() {
        let set = digits().unwrap();
        let (train, test) = set.split(0.2, 7).unwrap();
        assert_eq!((train.len(), test.len()), (1438, 359));
        assert_eq!(set.split(0.2, 7).unwrap(), (train.clone(), test.clone()));
        assert_ne!(set.split(0.2, 8).unwrap().1, test);
        assert!(set.split(1.5, 8).is_err());
        let mut all: Vec<_> = train
            .pixels
            .chunks(64)
            .chain(test.pixels.chunks(64))
            .collect();
        let mut original: Vec<_> = set.pixels.chunks(64).collect();
        let key = |a: &&[f32], b: &&[f32]| a.partial_cmp(b).unwrap();
        all.sort_by(key);
        original.sort_by(key);
        assert_eq!(all, original);
    }

    fn idx(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
        let mut bytes = magic.to_be_bytes().to_vec();
        dims.iter().for_each(|d| bytes.extend(d.to_be_bytes()));
        bytes.extend(body);
        bytes
    }

    #[test]
    fn a_well_formed_idx_file_parses() {
        let bytes = idx(0x803, &[2, 2, 3], &[0; 12]);
        let (n, h, w, body) = parse_idx_images(&bytes).unwrap();
        assert_eq!((n, h, w, body.len()), (2, 2, 3, 12));
        assert_eq!(
            parse_idx_labels(&idx(0x801, &[3], &[1, 2, 3])).unwrap(),
            [1, 2, 3]
        );
    }

    #[test]
    fn a_bad_magic_number_is_reported() {
        let problem = parse_idx_images(&idx(0x801, &[2, 2, 3], &[0; 12])).unwrap_err();
        assert!(
            problem.contains("bad IDX magic number 0x00000801"),
            "{problem}"
        );
        assert!(problem.contains("expected 0x00000803"), "{problem}");
        assert!(parse_idx_labels(&idx(0x803, &[1], &[0])).is_err());
    }

    #[test]
    fn a_truncated_idx_file_gives_both_lengths() {
        let problem = parse_idx_images(&idx(0x803, &[2, 2, 3], &[0; 10])).unwrap_err();
        assert!(
            problem.contains("12 bytes") && problem.contains("has 10"),
            "{problem}"
        );
        let problem = parse_idx_labels(&[0, 0, 8]).unwrap_err();
        assert!(problem.contains("truncated"), "{problem}");
        let huge = idx(0x803, &[u32::MAX, u32::MAX, u32::MAX], &[]);
        assert!(parse_idx_images(&huge).is_err());
    }

    #[test]
    fn a_corrupt_copy_fails_with_the_file_name() {
        let data = super::super::files::scratch_copy("images", &MNIST_IMAGES);
        let path = data.path(&MNIST_IMAGES);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() / 2);
        std::fs::write(&path, bytes).unwrap();
        let message = data.mnist().unwrap_err().to_string();
        assert!(
            message.contains("mnist-t10k-images-idx3-ubyte.gz"),
            "{message}"
        );
        let message = data.fashion_mnist().unwrap_err().to_string();
        assert!(message.contains("is missing"), "{message}");
        std::fs::remove_dir_all(data.root()).unwrap();
    }
}
