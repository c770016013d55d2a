//! A data set at another resolution: what a search whose space chooses the input
//! resolution trains each candidate on.

use image::imageops::{self, FilterType};
use image::{ImageBuffer, Luma};
use rayon::prelude::*;

use crate::{Dataset, ImageShape, Normalization, Resolution, Split};

impl Dataset {
    /// Every image of every split resized to `to` (each channel plane with a triangle filter:
    /// bilinear, anti-aliased when shrinking, as the image loader fits images), the
    /// normalisation computed again on the resized training split, the name saying
    /// `resized to HxW`. The aspect ratio is not kept: load the data at the aspect it is
    /// searched at. Resizing a `C x H x W` split of `n` images costs `O(n C (HW + h w))`.
    /// A side of 0 is taken as 1. The same data set when `to` is its resolution.
    pub fn resized(&self, to: Resolution) -> Dataset {
        if (to.height, to.width) == (self.shape.height, self.shape.width) {
            return self.clone();
        }
        let shape = ImageShape {
            channels: self.shape.channels,
            height: to.height.max(1),
            width: to.width.max(1),
        };
        let train = resize_split(&self.train, shape);
        Dataset {
            name: format!("{} resized to {}x{}", self.name, shape.height, shape.width),
            shape,
            classes: self.classes,
            class_names: self.class_names.clone(),
            validation: resize_split(&self.validation, shape),
            test: resize_split(&self.test, shape),
            normalization: Normalization::compute(&train),
            train,
        }
    }
}

fn resize_split(split: &Split, to: ImageShape) -> Split {
    let from = split.shape();
    let (fh, fw) = (from.height as u32, from.width as u32);
    let (th, tw) = (to.height as u32, to.width as u32);
    let images: Vec<u8> = (0..split.len())
        .into_par_iter()
        .flat_map_iter(|i| {
            let image = split.image(i);
            let plane = from.height * from.width;
            (0..from.channels).flat_map(move |c| {
                let pixels = image[c * plane..(c + 1) * plane].to_vec();
                // The plane holds exactly fh x fw values: from_raw cannot fail.
                let src = ImageBuffer::<Luma<u8>, Vec<u8>>::from_raw(fw, fh, pixels)
                    .unwrap_or_else(|| ImageBuffer::new(fw, fh));
                imageops::resize(&src, tw, th, FilterType::Triangle).into_raw()
            })
        })
        .collect();
    // Each image gave channels x th x tw values.
    Split::new(to, images, split.labels().to_vec()).unwrap_or_else(|| split.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SplitOptions;

    fn data() -> Dataset {
        let shape = ImageShape {
            channels: 2,
            height: 4,
            width: 6,
        };
        // Image k: channel 0 all 10k, channel 1 a left-to-right ramp.
        let mut images = Vec::new();
        for k in 0..10u8 {
            images.extend(std::iter::repeat_n(10 * k, 24));
            images.extend((0..24).map(|i| (i % 6) as u8 * 40));
        }
        let labels = (0..10).map(|k| k % 2).collect();
        let all = Split::new(shape, images, labels).unwrap();
        let test = all.select(&[0, 1]);
        Dataset::from_splits(
            "t".into(),
            vec!["a".into(), "b".into()],
            all,
            test,
            &SplitOptions::default(),
        )
        .unwrap()
    }

    #[test]
    fn resizing_keeps_labels_and_flat_planes_and_scales_ramps() {
        let d = data();
        let r = d.resized(Resolution {
            height: 8,
            width: 12,
        });
        assert_eq!(
            r.shape,
            ImageShape {
                channels: 2,
                height: 8,
                width: 12
            }
        );
        assert_eq!(r.name, "t resized to 8x12");
        for (a, b) in [
            (&d.train, &r.train),
            (&d.validation, &r.validation),
            (&d.test, &r.test),
        ] {
            assert_eq!(a.labels(), b.labels());
            for i in 0..a.len() {
                let (src, dst) = (a.image(i), b.image(i));
                // A flat plane stays flat; the ramp still rises left to right.
                assert!(dst[..96].iter().all(|&v| v == src[0]), "{dst:?}");
                let row = &dst[96..108];
                assert!(
                    row.windows(2).all(|w| w[0] <= w[1]) && row[0] < row[11],
                    "{row:?}"
                );
            }
        }
        assert_eq!(r.normalization.mean.len(), 2);
        let same = d.resized(Resolution {
            height: 4,
            width: 6,
        });
        assert_eq!(same.train, d.train);
        assert_eq!(same.name, d.name);
    }
}

#[cfg(test)]
mod upscaled {
    use crate::{Source, SplitOptions, load};

    #[test]
    fn the_upscaled_stand_in_says_what_it_is_and_keeps_the_split() {
        let options = SplitOptions::default();
        let plain = load(&Source::Mnist5k, &options).unwrap();
        let source = Source::Mnist5kUpscaled(96);
        let big = load(&source, &options).unwrap();
        assert_eq!(
            (big.shape.height, big.shape.width, big.shape.channels),
            (96, 96, 1)
        );
        assert_eq!(
            big.name,
            "mnist-5k upscaled to 96x96 (stand-in: 28x28 digits)"
        );
        assert_eq!(source.name(), big.name);
        assert_ne!(
            source.identity(&options),
            Source::Mnist5k.identity(&options)
        );
        assert_eq!(big.train.labels(), plain.train.labels());
        assert_eq!(big.test.len(), plain.test.len());
        // The digit is still there: strong ink somewhere, the top row blank.
        let img = big.test.image(0);
        assert!(img.iter().any(|&v| v > 200));
        assert!(img[..96].iter().all(|&v| v < 10));
    }
}
