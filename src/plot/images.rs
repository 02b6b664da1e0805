//! Small pictures in a grid, a caption under each: dataset samples, generated samples,
//! learned filters.
//!
//! Each picture goes into the SVG as one PNG (`<image href="data:image/png;base64,...">`)
//! drawn with `image-rendering: pixelated`, not as a rectangle per pixel: a 28×28 digit is
//! then a few hundred bytes instead of 784 elements, and its pixels stay sharp when scaled.
//! The figure is a layout, not a chart, so its SVG is written here directly.

use super::{bad_input, Figure, SIZE, TITLE};
use crate::display::escape;
use crate::Error;
use base64::Engine;
use std::fmt::Write;

const MARGIN: usize = 16;
const GAP: usize = 12;
const TITLE_BAND: usize = 44;
const CAPTION_BAND: usize = 20;
/// Pictures are drawn between these sizes (longer side, pixels), whatever the column count.
const TILE: (usize, usize) = (40, 160);

/// How values become pixels.
#[derive(Clone, Copy, Debug)]
enum Tone {
    /// 0 is black, 1 white; values outside are clipped.
    Grey,
    /// Negative blue, zero white, positive red, `±scale` the full colour.
    Diverging { scale: f32 },
}

/// Greyscale pictures, values in `0..=1` (0 black, 1 white; values outside are clipped),
/// each `height × width` in row-major order, in a grid of `columns` with a caption under
/// each (`captions` empty: none).
pub fn image_grid(
    title: &str,
    images: &[&[f32]],
    height: usize,
    width: usize,
    captions: &[String],
    columns: usize,
) -> Result<Figure, Error> {
    check_images(title, images, height, width, captions, columns)?;
    grid(
        title,
        None,
        images,
        (height, width),
        captions,
        columns,
        Tone::Grey,
    )
}

/// [`image_grid`] for values of either sign, such as learned filters: blue negative,
/// white zero, red positive, on one scale shared by all pictures (the largest `|value|`)
/// so that their strengths compare. The scale is written under the title.
pub fn image_grid_diverging(
    title: &str,
    images: &[&[f32]],
    height: usize,
    width: usize,
    captions: &[String],
    columns: usize,
) -> Result<Figure, Error> {
    check_images(title, images, height, width, captions, columns)?;
    let scale = images
        .iter()
        .flat_map(|image| image.iter())
        .fold(0f32, |m, v| m.max(v.abs()));
    let scale = if scale > 0.0 { scale } else { 1.0 };
    let note = format!("blue −{scale:.3} · white 0 · red +{scale:.3}");
    let tone = Tone::Diverging { scale };
    grid(
        title,
        Some(&note),
        images,
        (height, width),
        captions,
        columns,
        tone,
    )
}

/// Refuses input the grid cannot lay out: no pictures, wrong sizes, NaN, caption count.
fn check_images(
    title: &str,
    images: &[&[f32]],
    height: usize,
    width: usize,
    captions: &[String],
    columns: usize,
) -> Result<(), Error> {
    if images.is_empty() {
        return Err(bad_input(title, "no images to draw"));
    }
    if height == 0 || width == 0 || columns == 0 {
        let problem = format!(
            "height ({height}), width ({width}) and columns ({columns}) must be at least 1"
        );
        return Err(bad_input(title, problem));
    }
    if !captions.is_empty() && captions.len() != images.len() {
        let problem = format!(
            "{} images but {} captions; give one caption per image, or none",
            images.len(),
            captions.len()
        );
        return Err(bad_input(title, problem));
    }
    for (i, image) in images.iter().enumerate() {
        if image.len() != height * width {
            let problem = format!(
                "image {i} has {} values, but height × width is {height} × {width} = {}",
                image.len(),
                height * width
            );
            return Err(bad_input(title, problem));
        }
        if let Some(p) = image.iter().position(|v| !v.is_finite()) {
            let problem = format!("image {i} has {} at pixel {p}", image[p]);
            return Err(bad_input(title, problem));
        }
    }
    Ok(())
}

/// Lays out checked pictures: title (and `note`) on top, then rows of pictures and captions.
fn grid(
    title: &str,
    note: Option<&str>,
    images: &[&[f32]],
    (height, width): (usize, usize),
    captions: &[String],
    columns: usize,
    tone: Tone,
) -> Result<Figure, Error> {
    let columns = columns.min(images.len());
    let rows = images.len().div_ceil(columns);
    // Fill the standard width when the column count allows, keeping pictures readable.
    let room = (SIZE.0 as usize).saturating_sub(2 * MARGIN + (columns - 1) * GAP);
    let fit = room / columns;
    let long = fit.clamp(TILE.0, TILE.1);
    let (tile_w, tile_h) = if width >= height {
        (long, (long * height / width).max(1))
    } else {
        ((long * width / height).max(1), long)
    };
    // Pixels are repeated `zoom` times in the PNG itself, so that viewers which ignore
    // `image-rendering: pixelated` (and smooth the picture) still show sharp pixels.
    let zoom = (tile_w.div_ceil(width))
        .max(tile_h.div_ceil(height))
        .clamp(1, 4);
    let caption_band = if captions.is_empty() { 0 } else { CAPTION_BAND };
    let top = TITLE_BAND + if note.is_some() { 18 } else { 0 };
    let total_w = (2 * MARGIN + columns * tile_w + (columns - 1) * GAP).max(SIZE.0 as usize);
    let left = (total_w - (columns * tile_w + (columns - 1) * GAP)) / 2;
    let total_h = top + rows * (tile_h + caption_band + GAP) + MARGIN - GAP;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg width="{total_w}" height="{total_h}" viewBox="0 0 {total_w} {total_h}" xmlns="http://www.w3.org/2000/svg">
<rect x="0" y="0" width="{total_w}" height="{total_h}" fill="#FFFFFF"/>
<text x="{}" y="30" text-anchor="middle" font-family="{}" font-size="{:.1}">{}</text>
"##,
        total_w / 2,
        TITLE.0,
        TITLE.1 as f32 / 1.24,
        escape(title)
    );
    if let Some(note) = note {
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="52" text-anchor="middle" font-family="sans-serif" font-size="12" fill="#555555">{}</text>"##,
            total_w / 2,
            escape(note)
        );
    }
    for (i, image) in images.iter().enumerate() {
        let x = left + (i % columns) * (tile_w + GAP);
        let y = top + (i / columns) * (tile_h + caption_band + GAP);
        let url = png_data_url(&pixels(image, tone), height, width, zoom)?;
        let _ = writeln!(
            svg,
            r##"{}
<rect x="{x}" y="{y}" width="{tile_w}" height="{tile_h}" fill="none" stroke="#BBBBBB" stroke-width="1"/>"##,
            image_element(x, y, tile_w, tile_h, &url)
        );
        if let Some(caption) = captions.get(i) {
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="middle" font-family="sans-serif" font-size="13">{}</text>"#,
                x + tile_w / 2,
                y + tile_h + 15,
                escape(caption)
            );
        }
    }
    svg.push_str("</svg>\n");
    Ok(Figure {
        title: title.to_owned(),
        svg,
    })
}

/// One picture as 8-bit pixels: grey (1 byte a pixel), or RGB for [`Tone::Diverging`].
fn pixels(image: &[f32], tone: Tone) -> Pixels {
    match tone {
        Tone::Grey => Pixels::Grey(image.iter().map(|&v| to_byte(v)).collect()),
        Tone::Diverging { scale } => {
            Pixels::Rgb(image.iter().flat_map(|&v| diverging(v / scale)).collect())
        }
    }
}

/// 8-bit pixels in row-major order, one byte (grey) or three (RGB) each.
pub(super) enum Pixels {
    Grey(Vec<u8>),
    Rgb(Vec<u8>),
}

/// Encodes `height × width` pixels as a PNG in a `data:` URL, each pixel a `zoom × zoom`
/// square.
pub(super) fn png_data_url(
    pixels: &Pixels,
    height: usize,
    width: usize,
    zoom: usize,
) -> Result<String, Error> {
    let (color, bytes, channels) = match pixels {
        Pixels::Grey(bytes) => (png::ColorType::Grayscale, bytes, 1),
        Pixels::Rgb(bytes) => (png::ColorType::Rgb, bytes, 3),
    };
    let row_bytes = width * channels;
    let zoomed: Vec<u8> = (0..height * zoom)
        .flat_map(|r| bytes[r / zoom * row_bytes..][..row_bytes].chunks(channels))
        .flat_map(|pixel| std::iter::repeat_n(pixel, zoom).flatten().copied())
        .collect();
    let png_error = |e: png::EncodingError| Error::Plot(format!("could not encode a PNG: {e}"));
    let mut png = Vec::new();
    {
        let size = ((width * zoom) as u32, (height * zoom) as u32);
        let mut encoder = png::Encoder::new(&mut png, size.0, size.1);
        encoder.set_color(color);
        encoder.set_depth(png::BitDepth::Eight);
        // Per-row filters turn the zoom's repeated rows into zeros, which compress to little.
        encoder.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
        encoder.set_compression(png::Compression::Best);
        let mut writer = encoder.write_header().map_err(png_error)?;
        writer.write_image_data(&zoomed).map_err(png_error)?;
        writer.finish().map_err(png_error)?;
    }
    let base64 = base64::engine::general_purpose::STANDARD.encode(&png);
    Ok(format!("data:image/png;base64,{base64}"))
}

/// An SVG `<image>` of a PNG `data:` URL, its pixels drawn as sharp squares.
pub(super) fn image_element(x: usize, y: usize, width: usize, height: usize, url: &str) -> String {
    format!(
        r#"<image x="{x}" y="{y}" width="{width}" height="{height}" preserveAspectRatio="none" style="image-rendering:pixelated" href="{url}"/>"#
    )
}

/// `0..=1` to `0..=255`, clipping values outside.
fn to_byte(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// `-1..=1` to blue, white, red (the ends of ColorBrewer's RdBu), clipping values outside.
fn diverging(v: f32) -> [u8; 3] {
    const BLUE: [f32; 3] = [33.0, 102.0, 172.0];
    const RED: [f32; 3] = [178.0, 24.0, 43.0];
    let (end, t) = if v < 0.0 { (BLUE, -v) } else { (RED, v) };
    let t = t.min(1.0);
    end.map(|c| (255.0 + (c - 255.0) * t).round() as u8)
}

#[cfg(test)]
mod tests {
    use super::super::assert_well_formed;
    use super::*;
    use base64::Engine;

    fn ramp(n: usize, offset: f32) -> Vec<f32> {
        (0..n)
            .map(|i| (i as f32 / n as f32 + offset).fract())
            .collect()
    }

    #[test]
    fn an_image_grid_has_an_image_and_a_caption_per_picture() {
        let pictures: Vec<Vec<f32>> = (0..6).map(|i| ramp(28 * 28, i as f32 * 0.1)).collect();
        let images: Vec<&[f32]> = pictures.iter().map(|p| p.as_slice()).collect();
        let captions: Vec<String> = (0..6).map(|i| format!("digit {i}")).collect();
        let fig = image_grid("Samples & more", &images, 28, 28, &captions, 4).unwrap();
        assert_eq!(fig.svg.matches("<image").count(), 6);
        assert_eq!(fig.svg.matches("data:image/png;base64,").count(), 6);
        assert_eq!(fig.svg.matches("image-rendering:pixelated").count(), 6);
        for caption in &captions {
            assert!(
                fig.svg.contains(&format!(">{caption}</text>")),
                "no {caption}"
            );
        }
        assert!(fig.svg.contains(">Samples &amp; more</text>"));
        assert_well_formed(&fig.svg);
    }

    #[test]
    fn the_png_holds_the_pixels_zoomed() {
        let grey = pixels(&[0.0, 0.5, 1.0, 2.0], Tone::Grey);
        let url = png_data_url(&grey, 2, 2, 2).unwrap();
        let data = url.strip_prefix("data:image/png;base64,").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        let mut reader = png::Decoder::new(bytes.as_slice()).read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!((info.width, info.height), (4, 4));
        let rows = [[0, 0, 128, 128], [0, 0, 128, 128], [255; 4], [255; 4]].concat();
        assert_eq!(&pixels[..info.buffer_size()], rows.as_slice());
    }

    #[test]
    fn diverging_maps_sign_to_colour() {
        assert_eq!(diverging(0.0), [255, 255, 255]);
        assert_eq!(diverging(-1.0), [33, 102, 172]);
        assert_eq!(diverging(2.0), [178, 24, 43]);
    }

    #[test]
    fn a_diverging_grid_states_its_scale() {
        let filters = [vec![-0.5f32, 0.0, 0.25, 0.5], vec![0.1, -0.1, 0.0, 0.0]];
        let images: Vec<&[f32]> = filters.iter().map(|f| f.as_slice()).collect();
        let fig = image_grid_diverging("Filters", &images, 2, 2, &[], 2).unwrap();
        assert_eq!(fig.svg.matches("<image").count(), 2);
        assert!(fig.svg.contains("+0.500"));
        assert_well_formed(&fig.svg);
    }

    /// Images, captions, columns, and what the error says.
    type Case<'a> = (&'a [&'a [f32]], &'a [String], usize, &'a str);

    #[test]
    fn an_image_grid_refuses_mismatched_input() {
        let (good, short, nan) = (vec![0.5f32; 4], vec![0.5f32; 3], vec![f32::NAN; 4]);
        let two = vec!["a".to_string(), "b".to_string()];
        let cases: [Case; 5] = [
            (&[], &[], 2, "no images"),
            (&[&good], &two, 2, "1 images but 2 captions"),
            (&[&short], &[], 2, "image 0 has 3 values"),
            (&[&nan], &[], 2, "image 0 has NaN"),
            (&[&good], &[], 0, "columns (0)"),
        ];
        for (images, captions, columns, says) in cases {
            let err = image_grid("G", images, 2, 2, captions, columns).unwrap_err();
            assert!(err.to_string().contains(says), "{err}");
        }
    }
}
