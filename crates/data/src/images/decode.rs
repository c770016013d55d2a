//! Decoding one image file (PNG or JPEG, EXIF orientation applied) and fitting it to the
//! data set's resolution and channel count as `u8` CHW.

use std::io::Cursor;
use std::path::Path;

use image::imageops::{self, FilterType};
use image::metadata::Orientation;
use image::{ColorType, DynamicImage, ImageBuffer, ImageDecoder, ImageFormat, ImageReader, Pixel};

use crate::DataError;
use crate::images::{Fit, Resolution};

/// What a file's header says, after the EXIF orientation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Probe {
    pub height: u32,
    pub width: u32,
    /// 1 for grey (with or without alpha), 3 for colour.
    pub channels: usize,
}

/// How every image is fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target {
    pub resolution: Resolution,
    pub channels: usize,
    pub fit: Fit,
}

/// One decoded, fitted image.
#[derive(Debug, Clone)]
pub(crate) struct Decoded {
    /// `channels x height x width` values, CHW.
    pub pixels: Vec<u8>,
    /// The image (or its centre crop) was smaller than the resolution.
    pub upscaled: bool,
}

/// A file that is not a usable image: why, in words.
pub(crate) type Bad = String;

/// The whole file; an I/O error (missing, no permission) is fatal and names the file.
fn read(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|error| DataError::Io {
        path: path.to_path_buf(),
        error,
    })
}

fn decoder(bytes: &[u8]) -> Result<impl ImageDecoder + '_, Bad> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    match reader.format() {
        Some(ImageFormat::Png | ImageFormat::Jpeg) => {}
        Some(other) => return Err(format!("a {other:?} image, not PNG or JPEG")),
        None => return Err("not a PNG or JPEG image".into()),
    }
    if reader.format() == Some(ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        return Err("truncated JPEG (no end-of-image marker)".into());
    }
    reader.into_decoder().map_err(|e| e.to_string())
}

/// A whole JPEG has the end-of-image marker `FF D9` after its last start-of-scan `FF DA`
/// (entropy-coded data never holds an unstuffed `FF`, and an EXIF thumbnail's markers come
/// before the main image's scans); writers may pad after it.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    last_scan.is_some_and(|s| bytes[s..].windows(2).any(|w| w == [0xFF, 0xD9]))
}

fn channels_of(color: ColorType) -> usize {
    match color {
        ColorType::L8 | ColorType::La8 | ColorType::L16 | ColorType::La16 => 1,
        _ => 3,
    }
}

fn swaps_axes(o: Orientation) -> bool {
    matches!(
        o,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

/// The size and channel count of the image at `path`, from its header.
pub(crate) fn probe(path: &Path) -> Result<Result<Probe, Bad>, DataError> {
    let bytes = read(path)?;
    Ok(probe_bytes(&bytes))
}

fn probe_bytes(bytes: &[u8]) -> Result<Probe, Bad> {
    let mut decoder = decoder(bytes)?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(format!("{w}x{h} pixels"));
    }
    let channels = channels_of(decoder.color_type());
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let (width, height) = if swaps_axes(orientation) {
        (h, w)
    } else {
        (w, h)
    };
    Ok(Probe {
        height,
        width,
        channels,
    })
}

/// Decodes the image at `path` and fits it to `target`.
pub(crate) fn decode(path: &Path, target: &Target) -> Result<Result<Decoded, Bad>, DataError> {
    let bytes = read(path)?;
    Ok(decode_bytes(&bytes, target))
}

fn decode_bytes(bytes: &[u8], target: &Target) -> Result<Decoded, Bad> {
    let mut decoder = decoder(bytes)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    image.apply_orientation(orientation);
    Ok(match target.channels {
        1 => fit(&image.to_luma8(), target),
        _ => fit(&image.to_rgb8(), target),
    })
}

/// Centre-crops (to the resolution's aspect) or letterboxes (black bars) `image`, resizes it
/// ([`shrink_or_resize`]: a box filter when shrinking 2x or more, else a triangle filter) and
/// lays it out as CHW.
fn fit<P: Pixel<Subpixel = u8> + 'static>(
    image: &ImageBuffer<P, Vec<u8>>,
    target: &Target,
) -> Decoded {
    let (w, h) = image.dimensions();
    let tw = u32::try_from(target.resolution.width).unwrap_or(u32::MAX);
    let th = u32::try_from(target.resolution.height).unwrap_or(u32::MAX);
    let (fitted, upscaled) = match target.fit {
        Fit::Crop => {
            // The largest centred window of the target's aspect ratio.
            let (cw, ch) = if u64::from(w) * u64::from(th) > u64::from(h) * u64::from(tw) {
                (scaled(h, tw, th), h)
            } else {
                (w, scaled(w, th, tw))
            };
            let view = imageops::crop_imm(image, (w - cw) / 2, (h - ch) / 2, cw, ch);
            let out = if (cw, ch) == (tw, th) {
                view.to_image()
            } else {
                shrink_or_resize(&view.to_image(), tw, th)
            };
            (out, cw < tw || ch < th)
        }
        Fit::Letterbox => {
            let s = (f64::from(tw) / f64::from(w)).min(f64::from(th) / f64::from(h));
            let rw = ((f64::from(w) * s).round() as u32).clamp(1, tw);
            let rh = ((f64::from(h) * s).round() as u32).clamp(1, th);
            let resized = shrink_or_resize(image, rw, rh);
            let mut canvas = ImageBuffer::<P, Vec<u8>>::new(tw, th);
            imageops::replace(
                &mut canvas,
                &resized,
                i64::from((tw - rw) / 2),
                i64::from((th - rh) / 2),
            );
            (canvas, s > 1.0)
        }
    };
    Decoded {
        pixels: to_chw(&fitted),
        upscaled,
    }
}

/// `image` at `tw x th`: shrinking by 2x or more on both axes averages the source pixels each
/// output pixel covers (`imageops::thumbnail`, a box filter: anti-aliased, and 5-10x faster
/// than the triangle filter's per-pixel weights at 640x480 -> 96x96); otherwise a triangle
/// (bilinear) filter.
fn shrink_or_resize<P: Pixel<Subpixel = u8> + 'static>(
    image: &ImageBuffer<P, Vec<u8>>,
    tw: u32,
    th: u32,
) -> ImageBuffer<P, Vec<u8>> {
    let (w, h) = image.dimensions();
    if w >= 2 * tw && h >= 2 * th {
        imageops::thumbnail(image, tw, th)
    } else {
        imageops::resize(image, tw, th, FilterType::Triangle)
    }
}

/// `len * num / den`, rounded, clamped to `1..=len`.
fn scaled(len: u32, num: u32, den: u32) -> u32 {
    let v = (u64::from(len) * u64::from(num) + u64::from(den) / 2) / u64::from(den).max(1);
    u32::try_from(v).unwrap_or(len).clamp(1, len)
}

fn to_chw<P: Pixel<Subpixel = u8>>(image: &ImageBuffer<P, Vec<u8>>) -> Vec<u8> {
    let channels = usize::from(P::CHANNEL_COUNT);
    let plane = image.as_raw().len() / channels;
    let mut out = vec![0u8; plane * channels];
    for (i, px) in image.as_raw().chunks_exact(channels).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            out[c * plane + i] = v;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Luma, Rgb};

    fn target(h: usize, w: usize, fit: Fit) -> Target {
        Target {
            resolution: Resolution {
                height: h,
                width: w,
            },
            channels: 3,
            fit,
        }
    }

    #[test]
    fn crop_keeps_the_centre_and_letterbox_pads_black() {
        // 4 wide, 2 high: left half red, right half blue.
        let img = ImageBuffer::from_fn(4, 2, |x, _| {
            if x < 2 {
                Rgb([255, 0, 0])
            } else {
                Rgb([0, 0, 255])
            }
        });
        let c = fit(&img, &target(2, 2, Fit::Crop));
        assert_eq!(c.pixels.len(), 12);
        assert!(!c.upscaled);
        // Centre crop is columns 1..3: red then blue.
        assert_eq!(&c.pixels[0..4], &[255, 0, 255, 0]);
        let l = fit(&img, &target(4, 4, Fit::Letterbox));
        assert!(!l.upscaled);
        // Rows 0 and 3 are bars (black); rows 1 and 2 hold the image.
        assert_eq!(&l.pixels[0..4], &[0, 0, 0, 0]);
        assert_eq!(&l.pixels[4..8], &[255, 255, 0, 0]);
        let up = fit(&img, &target(8, 8, Fit::Crop));
        assert!(up.upscaled);
    }

    #[test]
    fn shrinking_averages_what_each_pixel_covers() {
        // A one-pixel checkerboard shrunk 4x: every output pixel covers as much black as
        // white, so it is mid-grey (point sampling would give all black or all white).
        let board = ImageBuffer::from_fn(16, 12, |x, y| {
            Luma([if (x + y) % 2 == 0 { 255u8 } else { 0 }])
        });
        let small = shrink_or_resize(&board, 4, 3);
        assert_eq!(small.dimensions(), (4, 3));
        assert!(
            small.pixels().all(|p| (120..=135).contains(&p.0[0])),
            "{small:?}"
        );
        // Less than 2x: the triangle filter, which keeps a flat image flat.
        let flat = ImageBuffer::from_pixel(10, 10, Luma([77u8]));
        assert!(shrink_or_resize(&flat, 7, 7).pixels().all(|p| p.0[0] == 77));
    }

    #[test]
    fn chw_puts_planes_one_after_the_other() {
        let img = ImageBuffer::from_fn(2, 1, |x, _| Rgb([x as u8, 10 + x as u8, 20 + x as u8]));
        assert_eq!(to_chw(&img), vec![0, 1, 10, 11, 20, 21]);
        let grey = ImageBuffer::from_fn(2, 1, |x, _| Luma([x as u8 + 5]));
        assert_eq!(to_chw(&grey), vec![5, 6]);
    }

    #[test]
    fn garbage_is_bad_not_fatal() {
        assert!(probe_bytes(b"hello, not an image").is_err());
        assert!(decode_bytes(b"", &target(8, 8, Fit::Crop)).is_err());
    }
}
