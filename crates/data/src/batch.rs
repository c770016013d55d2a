//! Turning `u8` images into normalised `f32` batches, with optional random shifts.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{Normalization, Split};

/// Light augmentation: shift each training image by a random whole number of pixels,
/// up to `max_shift` in each direction, filling uncovered pixels with 0 (black).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Augment {
    /// Largest shift in pixels, up and down and left and right (0 turns shifting off).
    pub max_shift: usize,
}

/// A batch ready for a network.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Normalised images, NCHW `[len, C, H, W]` flattened row-major.
    pub images: Vec<f32>,
    /// The class of each image, in `0..classes`.
    pub labels: Vec<usize>,
}

impl Batch {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the batch has no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

impl Split {
    /// Images `indices` normalised with `norm`; shifted at random when `augment` is given
    /// (the shift is drawn per image, before normalisation; uncovered pixels are raw 0).
    /// Panics on an index that is not below [`Split::len`].
    pub fn batch<R: Rng>(
        &self,
        indices: &[usize],
        norm: &Normalization,
        augment: Option<(&Augment, &mut R)>,
    ) -> Batch {
        let len = self.shape().len();
        let mut images = vec![0f32; indices.len() * len];
        let mut labels = Vec::with_capacity(indices.len());
        let mut shifted = vec![0u8; len];
        let mut augment = augment;
        for (&i, out) in indices.iter().zip(images.chunks_exact_mut(len.max(1))) {
            let src = self.image(i);
            match augment.as_mut() {
                Some((aug, rng)) if aug.max_shift > 0 => {
                    let s = aug.max_shift as i64;
                    let dy = rng.random_range(-s..=s) as isize;
                    let dx = rng.random_range(-s..=s) as isize;
                    shift_image(src, &mut shifted, self.shape(), dy, dx);
                    norm.apply(&shifted, out);
                }
                _ => norm.apply(src, out),
            }
            labels.push(self.label(i));
        }
        Batch { images, labels }
    }
}

/// `dst(c, y, x) = src(c, y - dy, x - dx)`, 0 outside.
fn shift_image(src: &[u8], dst: &mut [u8], shape: crate::ImageShape, dy: isize, dx: isize) {
    let (h, w) = (shape.height as isize, shape.width as isize);
    dst.fill(0);
    for c in 0..shape.channels {
        let plane = c * shape.height * shape.width;
        for y in 0..h {
            let sy = y - dy;
            if !(0..h).contains(&sy) {
                continue;
            }
            for x in 0..w {
                let sx = x - dx;
                if (0..w).contains(&sx) {
                    dst[plane + (y * w + x) as usize] = src[plane + (sy * w + sx) as usize];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ImageShape;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn one_pixel_split() -> Split {
        let shape = ImageShape {
            channels: 1,
            height: 5,
            width: 5,
        };
        let mut img = vec![0u8; 25];
        img[12] = 255; // centre
        Split::new(shape, img, vec![3]).unwrap()
    }

    #[test]
    fn batch_without_augmentation_normalises() {
        let split = one_pixel_split();
        let norm = Normalization {
            scale: 1.0 / 255.0,
            mean: vec![0.5],
            std: vec![0.25],
        };
        let b = split.batch::<ChaCha8Rng>(&[0, 0], &norm, None);
        assert_eq!(b.labels, vec![3, 3]);
        assert_eq!(b.images.len(), 50);
        assert_eq!(b.images[12], 2.0);
        assert_eq!(b.images[0], -2.0);
    }

    #[test]
    fn shift_moves_the_pixel_within_range_and_keeps_it() {
        let split = one_pixel_split();
        let norm = Normalization::unit(1);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let aug = Augment { max_shift: 2 };
        let mut positions = std::collections::HashSet::new();
        for _ in 0..50 {
            let b = split.batch(&[0], &norm, Some((&aug, &mut rng)));
            let lit: Vec<usize> = (0..25).filter(|&i| b.images[i] > 0.5).collect();
            assert_eq!(
                lit.len(),
                1,
                "the centre pixel stays in the 5x5 image for shifts <= 2"
            );
            let (y, x) = (lit[0] / 5, lit[0] % 5);
            positions.insert((y, x));
        }
        assert!(positions.len() > 5, "shifts vary: {positions:?}");
    }

    #[test]
    fn shift_fills_with_zero() {
        let shape = ImageShape {
            channels: 1,
            height: 2,
            width: 2,
        };
        let mut dst = [9u8; 4];
        shift_image(&[1, 2, 3, 4], &mut dst, shape, 1, 0);
        assert_eq!(dst, [0, 0, 1, 2]);
    }
}
