//! Class-folder image data sets: layouts, fitting, the disk cache and every bad input,
//! on small folders of PNG and JPEG files written here.

use std::path::{Path, PathBuf};

use image::{GrayImage, Luma, Rgb, RgbImage};
use kiln_data::{
    DataError, Dataset, Fit, ImageEvent, ImageOptions, Resolution, Source, SplitOptions,
    load_images,
};

/// A colour per class, so a label can be checked from the pixels.
const COLOURS: [[u8; 3]; 3] = [[220, 30, 30], [30, 220, 30], [30, 30, 220]];

fn rgb(path: &Path, w: u32, h: u32, colour: [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    RgbImage::from_pixel(w, h, Rgb(colour)).save(path).unwrap();
}

fn grey(path: &Path, w: u32, h: u32, v: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    GrayImage::from_pixel(w, h, Luma([v])).save(path).unwrap();
}

/// `n` images per class under `dir/<class>/`, PNG and JPEG alternating, 40 wide, 30 high.
fn folder(dir: &Path, classes: &[&str], n: usize) {
    for (c, class) in classes.iter().enumerate() {
        for i in 0..n {
            let ext = if i % 2 == 0 { "png" } else { "jpg" };
            rgb(
                &dir.join(class).join(format!("{i:03}.{ext}")),
                40,
                30,
                COLOURS[c],
            );
        }
    }
}

struct Loaded {
    data: Result<Dataset, DataError>,
    events: Vec<ImageEvent>,
}

impl Loaded {
    fn warnings(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ImageEvent::Warning(w) => Some(w.as_str()),
                _ => None,
            })
            .collect()
    }

    fn decoded(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, ImageEvent::Progress { .. }))
    }

    fn cache_loaded(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, ImageEvent::CacheLoaded(_)))
    }

    fn ok(self) -> Dataset {
        match self.data {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        }
    }

    fn err(self) -> DataError {
        match self.data {
            Ok(_) => panic!("loaded; events {:?}", self.events),
            Err(e) => e,
        }
    }
}

fn load(dir: &Path, options: &ImageOptions) -> Loaded {
    let mut events = Vec::new();
    let data = load_images(dir, options, &SplitOptions::default(), &mut |e| {
        events.push(e)
    });
    Loaded { data, events }
}

fn cache_files(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir.join(".kiln-cache")) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Mean of channel `c` of image `i` of `split`, 0..255.
fn mean(split: &kiln_data::Split, i: usize, c: usize) -> f64 {
    let img = split.image(i);
    let plane = img.len() / split.shape().channels;
    img[c * plane..(c + 1) * plane]
        .iter()
        .map(|&v| f64::from(v))
        .sum::<f64>()
        / plane as f64
}

#[test]
fn class_folders_load_with_sorted_names_default_resolution_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), &["dog", "bird", "cat"], 10);
    std::fs::write(dir.path().join("cat").join("notes.txt"), "not an image").unwrap();
    let data = load(dir.path(), &ImageOptions::default()).ok();
    assert_eq!(data.class_names, ["bird", "cat", "dog"]);
    assert_eq!(data.classes, 3);
    // Median 30 high, 40 wide: multiples of 8 are 32 and 40.
    assert_eq!(data.input_shape(), (3, 32, 40));
    assert_eq!(data.test.len(), 6);
    assert_eq!(data.train.len() + data.validation.len(), 24);
    assert_eq!(data.test.class_counts(3), [2, 2, 2]);
    assert!(data.name.starts_with("images:"), "{}", data.name);
    assert!(data.name.contains("3x32x40, crop"), "{}", data.name);
    // bird, cat, dog were written with COLOURS[1], [2], [0].
    let colour_of = [1, 2, 0];
    for split in [&data.train, &data.validation, &data.test] {
        for i in 0..split.len() {
            let want = COLOURS[colour_of[split.label(i)]];
            for (c, &w) in want.iter().enumerate() {
                let got = mean(split, i, c);
                assert!(
                    (got - f64::from(w)).abs() < 8.0,
                    "class {} channel {c}: {got}",
                    split.label(i)
                );
            }
        }
    }
}

#[test]
fn grey_images_give_one_channel_and_options_override() {
    let dir = tempfile::tempdir().unwrap();
    for (c, class) in ["a", "b"].iter().enumerate() {
        for i in 0..5 {
            grey(
                &dir.path().join(class).join(format!("{i}.png")),
                300,
                600,
                50 + 100 * c as u8,
            );
        }
    }
    let data = load(dir.path(), &ImageOptions::default()).ok();
    // 600 high, 300 wide, scaled to 224 on the longer side: 224 x 112.
    assert_eq!(data.input_shape(), (1, 224, 112));
    let options = ImageOptions {
        resolution: Some("16x8".parse().unwrap()),
        channels: Some(3),
        ..ImageOptions::default()
    };
    let data = load(dir.path(), &options).ok();
    assert_eq!(data.input_shape(), (3, 16, 8));
    let i = (0..data.test.len())
        .find(|&i| data.test.label(i) == 1)
        .unwrap();
    assert!((mean(&data.test, i, 0) - 150.0).abs() < 1.0);
    assert!((mean(&data.test, i, 2) - 150.0).abs() < 1.0);
}

#[test]
fn letterbox_pads_and_crop_fills() {
    let dir = tempfile::tempdir().unwrap();
    for class in ["a", "b"] {
        for i in 0..5 {
            rgb(
                &dir.path().join(class).join(format!("{i}.png")),
                32,
                16,
                [200, 200, 200],
            );
        }
    }
    let res: Resolution = "16x16".parse().unwrap();
    let crop = ImageOptions {
        resolution: Some(res),
        ..ImageOptions::default()
    };
    let data = load(dir.path(), &crop).ok();
    assert!(data.test.image(0).iter().all(|&v| v == 200));
    let letterbox = ImageOptions {
        fit: Fit::Letterbox,
        ..crop
    };
    let data = load(dir.path(), &letterbox).ok();
    let img = data.test.image(0);
    // 32x16 fits as 16x8: rows 0..4 and 12..16 are black bars.
    assert!(img[..16 * 4].iter().all(|&v| v == 0));
    assert!(img[16 * 4..16 * 12].iter().all(|&v| v == 200));
    assert!(img[16 * 12..16 * 16].iter().all(|&v| v == 0));
}

#[test]
fn train_and_test_folders_give_the_split() {
    let dir = tempfile::tempdir().unwrap();
    folder(&dir.path().join("train"), &["x", "y"], 6);
    folder(&dir.path().join("test"), &["x", "y"], 2);
    let data = load(dir.path(), &ImageOptions::default()).ok();
    assert_eq!(data.class_names, ["x", "y"]);
    assert_eq!(data.test.len(), 4);
    assert_eq!(data.train.len() + data.validation.len(), 12);

    folder(&dir.path().join("test"), &["z"], 1);
    let err = load(dir.path(), &ImageOptions::default()).err();
    assert!(matches!(err, DataError::Layout { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("test") && msg.contains("x, y, z"), "{msg}");
}

#[test]
fn the_cache_is_reused_and_invalidated_when_a_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), &["a", "b"], 4);
    let first = load(dir.path(), &ImageOptions::default());
    assert!(first.decoded());
    assert!(
        first
            .events
            .iter()
            .any(|e| matches!(e, ImageEvent::CacheWritten(_)))
    );
    let first = first.ok();
    assert_eq!(cache_files(dir.path()).len(), 1);

    let second = load(dir.path(), &ImageOptions::default());
    assert!(
        second.cache_loaded() && !second.decoded(),
        "{:?}",
        second.events
    );
    let second = second.ok();
    assert_eq!(second.class_names, first.class_names);
    assert_eq!(second.test, first.test);
    assert_eq!(second.train, first.train);

    // Another file in place of a.png: new size, new pixels, new fingerprint.
    rgb(&dir.path().join("a").join("000.png"), 40, 30, [0, 0, 0]);
    let third = load(dir.path(), &ImageOptions::default());
    assert!(
        third
            .events
            .iter()
            .any(|e| matches!(e, ImageEvent::CacheStale(_)))
    );
    assert!(third.decoded());
    let fourth = load(dir.path(), &ImageOptions::default());
    assert!(fourth.cache_loaded());
    assert_eq!(cache_files(dir.path()).len(), 1);

    // A file added is a change too; other settings get their own cache file.
    rgb(&dir.path().join("b").join("new.png"), 40, 30, [1, 2, 3]);
    assert!(load(dir.path(), &ImageOptions::default()).decoded());
    let other = ImageOptions {
        resolution: Some("8x8".parse().unwrap()),
        ..ImageOptions::default()
    };
    assert!(load(dir.path(), &other).decoded());
    assert_eq!(cache_files(dir.path()).len(), 2);

    // Without the cache nothing is read or written.
    let off = ImageOptions {
        cache: false,
        resolution: Some("24x24".parse().unwrap()),
        ..ImageOptions::default()
    };
    assert!(load(dir.path(), &off).decoded());
    assert_eq!(cache_files(dir.path()).len(), 2);
}

#[test]
fn a_corrupt_or_unwritable_cache_is_said_and_loading_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), &["a", "b"], 3);
    load(dir.path(), &ImageOptions::default()).ok();
    let file = cache_files(dir.path()).remove(0);
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 10]).unwrap();
    let again = load(dir.path(), &ImageOptions::default());
    assert!(
        again
            .events
            .iter()
            .any(|e| matches!(e, ImageEvent::CacheFailed(..)))
    );
    assert!(again.decoded());
    again.ok();
    // Rewritten whole.
    assert!(load(dir.path(), &ImageOptions::default()).cache_loaded());

    let other = tempfile::tempdir().unwrap();
    folder(other.path(), &["a", "b"], 3);
    std::fs::write(
        other.path().join(".kiln-cache"),
        "a file where the folder goes",
    )
    .unwrap();
    let loaded = load(other.path(), &ImageOptions::default());
    assert!(
        loaded
            .events
            .iter()
            .any(|e| matches!(e, ImageEvent::CacheFailed(..)))
    );
    loaded.ok();
}

#[test]
fn an_empty_class_folder_is_named() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), &["a", "b"], 3);
    std::fs::create_dir(dir.path().join("c")).unwrap();
    let err = load(dir.path(), &ImageOptions::default()).err();
    assert!(matches!(err, DataError::EmptyClass { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&dir.path().join("c").display().to_string()),
        "{err}"
    );
    std::fs::write(dir.path().join("c").join("readme.md"), "x").unwrap();
    let err = load(dir.path(), &ImageOptions::default()).err();
    assert!(err.to_string().contains("1 other entries ignored"), "{err}");
    assert!(cache_files(dir.path()).is_empty());
}

#[test]
fn one_class_or_no_class_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), &["only"], 3);
    let err = load(dir.path(), &ImageOptions::default()).err();
    assert!(matches!(err, DataError::TooFewClasses { .. }), "{err:?}");
    assert!(
        err.to_string().contains("only") && err.to_string().contains("at least two"),
        "{err}"
    );

    let flat = tempfile::tempdir().unwrap();
    rgb(&flat.path().join("a.png"), 8, 8, [0, 0, 0]);
    let err = load(flat.path(), &ImageOptions::default()).err();
    assert!(matches!(err, DataError::Layout { .. }), "{err:?}");
    assert!(err.to_string().contains("no class folders"), "{err}");

    let missing = flat.path().join("nowhere");
    let err = load(&missing, &ImageOptions::default()).err();
    assert!(
        matches!(err, DataError::Io { .. }) && err.to_string().contains("nowhere"),
        "{err}"
    );
}

#[test]
fn a_few_bad_files_are_skipped_with_a_warning_naming_each() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), &["a", "b"], 100);
    // 2 of 202 files (0.99%): a text file named .jpg and a PNG cut in half.
    let fake = dir.path().join("a").join("fake.jpg");
    std::fs::write(&fake, "this is not a JPEG").unwrap();
    let cut = dir.path().join("b").join("cut.png");
    rgb(&cut, 40, 30, [5, 5, 5]);
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let loaded = load(dir.path(), &ImageOptions::default());
    let warnings = loaded.warnings().join("\n");
    assert!(warnings.contains(&fake.display().to_string()), "{warnings}");
    assert!(warnings.contains(&cut.display().to_string()), "{warnings}");
    assert!(warnings.contains("skipped 2 of 202"), "{warnings}");
    let data = loaded.ok();
    assert_eq!(
        data.train.len() + data.validation.len() + data.test.len(),
        200
    );
    // The cached run says the same again.
    let again = load(dir.path(), &ImageOptions::default());
    assert!(again.cache_loaded());
    assert!(again.warnings().join("\n").contains("skipped 2 of 202"));
}

#[test]
fn more_than_one_percent_bad_files_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), &["a", "b"], 50);
    for i in 0..2 {
        std::fs::write(dir.path().join("b").join(format!("bad{i}.png")), [0u8; 10]).unwrap();
    }
    let err = load(dir.path(), &ImageOptions::default()).err();
    assert!(
        matches!(
            err,
            DataError::TooManyBadFiles {
                bad: 2,
                total: 102,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("bad0.png"), "{err}");
    assert!(cache_files(dir.path()).is_empty());
}

#[test]
fn a_truncated_jpeg_is_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), &["a", "b"], 2);
    let cut = dir.path().join("a").join("001.jpg");
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let err = load(dir.path(), &ImageOptions::default()).err();
    assert!(
        matches!(err, DataError::TooManyBadFiles { bad: 1, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("001.jpg") && err.to_string().contains("truncated"),
        "{err}"
    );
}

#[test]
fn mixed_channels_and_small_images_are_said_once() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), &["a", "b"], 4);
    grey(&dir.path().join("a").join("g1.png"), 40, 30, 100);
    grey(&dir.path().join("b").join("g2.jpg"), 40, 30, 100);
    let options = ImageOptions {
        resolution: Some("64x64".parse().unwrap()),
        ..ImageOptions::default()
    };
    let loaded = load(dir.path(), &options);
    let warnings = loaded.warnings();
    assert_eq!(
        warnings
            .iter()
            .filter(|w| w.contains("mixed channel"))
            .count(),
        1,
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("2 grey and 8 colour") && w.contains("RGB"))
    );
    assert_eq!(
        warnings.iter().filter(|w| w.contains("upscaled")).count(),
        1,
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("10 of 10 images are smaller than 64x64"))
    );
    assert_eq!(loaded.ok().input_shape(), (3, 64, 64));
}

#[test]
fn an_unreadable_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), &["a", "b"], 3);
    let link = dir.path().join("b").join("gone.png");
    std::os::unix::fs::symlink(dir.path().join("nowhere.png"), &link).unwrap();
    let err = load(dir.path(), &ImageOptions::default()).err();
    assert!(matches!(err, DataError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("gone.png"), "{err}");
    std::fs::remove_file(&link).unwrap();

    use std::os::unix::fs::PermissionsExt;
    let locked = dir.path().join("a").join("000.png");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read(&locked).is_ok() {
        eprintln!("running as root: file permissions do not stop reads; mode 000 not checked");
        return;
    }
    let err = load(dir.path(), &ImageOptions::default()).err();
    assert!(matches!(err, DataError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("000.png"), "{err}");
    assert!(cache_files(dir.path()).is_empty());
}

#[test]
fn options_are_checked_and_named_in_the_source() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), &["a", "b"], 2);
    let options = ImageOptions {
        channels: Some(2),
        ..ImageOptions::default()
    };
    let err = load(dir.path(), &options).err();
    assert!(err.to_string().contains("2 channels"), "{err}");
    assert_eq!(
        "96x128".parse::<Resolution>().unwrap().to_string(),
        "96x128"
    );
    assert_eq!("64".parse::<Resolution>().unwrap().to_string(), "64x64");
    for bad in ["0x5", "axb", "1x2x3", ""] {
        assert!(bad.parse::<Resolution>().is_err(), "{bad}");
    }
    assert_eq!("letterbox".parse::<Fit>().unwrap(), Fit::Letterbox);
    assert!("stretch".parse::<Fit>().is_err());
    let source = Source::Images(dir.path().to_path_buf(), ImageOptions::default());
    // The journal identity keeps the format searches were journalled with.
    assert_eq!(
        Source::Mnist5k.identity(&SplitOptions::default()),
        "mnist-5k (validation 0.1, split seed 1802071150, train limit none)"
    );
    assert_eq!(
        ImageOptions::new(None, None, Fit::Crop),
        ImageOptions::default()
    );
    assert!(
        source
            .name()
            .ends_with("(resolution auto, channels auto, crop)"),
        "{}",
        source.name()
    );
}
