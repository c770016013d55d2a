//! Helpers shared by subcommands: where the workspace's data lives, and
//! reading the inputs most commands take.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kiln_data::{DEFAULT_SPLIT_SEED, Dataset, Fit, ImageOptions, Resolution, Source, SplitOptions};
use kiln_pipeline::device::DeviceSpec;
use kiln_space::{Genome, InputSpec, Space};

/// The kiln checkout (spaces/, targets/, data/ live here).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A device reached over ssh (`--device USER@ADDR`, `--port`, `--identity`, `--ssh-option`)
/// or adb (`--serial`), for `search`, `worker` and `lut build --source device`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DeviceArgs {
    /// USER@ADDR of an ssh board, or `adb` for the only phone attached (see --serial).
    #[arg(long, value_name = "USER@ADDR | adb", help_heading = "Device")]
    pub device: Option<String>,
    /// ssh port of the device [default: 22].
    #[arg(long, help_heading = "Device")]
    pub port: Option<u16>,
    /// ssh private key file.
    #[arg(long, help_heading = "Device")]
    pub identity: Option<PathBuf>,
    /// Extra ssh/scp option, passed as `-o OPT` (repeatable).
    #[arg(long = "ssh-option", value_name = "OPT", help_heading = "Device")]
    pub ssh_options: Vec<String>,
    /// adb serial of the phone (adb profiles; implies measuring on it).
    #[arg(long, help_heading = "Device")]
    pub serial: Option<String>,
}

impl DeviceArgs {
    pub fn spec(&self) -> DeviceSpec {
        let (host, port, identity) = (self.device.clone(), self.port, self.identity.clone());
        let (ssh_options, serial) = (self.ssh_options.clone(), self.serial.clone());
        DeviceSpec {
            host,
            port,
            identity,
            ssh_options,
            serial,
        }
    }
}

pub fn targets_dir() -> PathBuf {
    workspace_root().join("targets")
}

/// The space file for a space name: `spaces/<name>.toml`.
pub fn space_path(name: &str) -> PathBuf {
    workspace_root().join("spaces").join(format!("{name}.toml"))
}

/// Loads the space from `explicit`, else the default `spaces/mobile.toml`.
pub fn load_space(explicit: Option<&Path>) -> Result<Space> {
    let path = explicit
        .map(Path::to_path_buf)
        .unwrap_or_else(|| space_path("mobile"));
    Ok(Space::load(&path)?)
}

/// Reads a genome from a file or `-` (stdin). Unless `space_file` is given,
/// the space is the one the genome names, from `spaces/<name>.toml`.
pub fn load_genome(path: &Path, space_file: Option<&Path>) -> Result<(Genome, Space)> {
    let (text, origin) = if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the genome from standard input")?;
        (s, "<stdin>".to_string())
    } else {
        let s = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        (s, path.display().to_string())
    };
    let space = match space_file {
        Some(p) => Space::load(p)?,
        None => {
            #[derive(serde::Deserialize)]
            struct SpaceName {
                space: String,
            }
            let name: SpaceName = serde_json::from_str(&text).with_context(|| {
                format!("{origin}: not a genome (a JSON object with a `space` field)")
            })?;
            let p = space_path(&name.space);
            if !p.is_file() {
                bail!(
                    "{origin}: field `space`: no space file {} (give one with --space)",
                    p.display()
                );
            }
            Space::load(&p)?
        }
    };
    let genome = Genome::from_json(&text, &origin, &space)?;
    Ok((genome, space))
}

/// The input shape arguments shared by commands that build a network.
#[derive(clap::Args, Debug, Clone)]
pub struct InputArgs {
    /// Input shape as CxHxW. Defaults to the bundled MNIST subset's.
    #[arg(long, default_value = "1x28x28")]
    pub input: String,
    /// Number of classes.
    #[arg(long, default_value_t = 10)]
    pub classes: usize,
}

impl InputArgs {
    pub fn spec(&self) -> Result<InputSpec> {
        InputSpec::from_shape(&self.input, self.classes).context("--input")
    }
}

/// Which data set to use. Shared by `train`, `eval-onnx` and `search`.
#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    /// A bundled data set: `mnist-5k` (5,000 MNIST digits in the repository: 4,000 train,
    /// 1,000 test), or `mnist-5k-96`: the same digits upscaled to 96x96, a stand-in for a
    /// 96x96 data set where the constraints bind. Ignored when --idx, --cifar or --images is given.
    #[arg(long, value_enum, default_value = "mnist-5k")]
    pub data: BuiltinData,
    /// A directory of IDX files (MNIST, Fashion-MNIST): train-images-idx3-ubyte,
    /// train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each may be .gz.
    #[arg(long, value_name = "DIR", conflicts_with = "cifar")]
    pub idx: Option<PathBuf>,
    /// A CIFAR-10 binary directory: data_batch_1.bin .. data_batch_5.bin and test_batch.bin
    /// (or the cifar-10-batches-bin folder the archive unpacks to).
    #[arg(long, value_name = "DIR", conflicts_with = "images")]
    pub cifar: Option<PathBuf>,
    /// PNG/JPEG images, a folder per class: DIR/<class>/*.jpg (20% of each class is held out as
    /// test) or DIR/train/<class>/ and DIR/test/<class>/. Decoded once, cached in DIR/.kiln-cache.
    #[arg(long, value_name = "DIR", conflicts_with = "idx")]
    pub images: Option<PathBuf>,
    /// --images: fit every image to HxW (default: the median size, longer side <= 224, multiples of 8).
    #[arg(long, value_name = "HxW", requires = "images")]
    pub resolution: Option<Resolution>,
    /// --images: 1 (grey) or 3 (RGB) channels (default: 1 when every image is grey).
    #[arg(long, requires = "images")]
    pub channels: Option<usize>,
    /// --images: `crop` (centre) or `letterbox` (black bars) images of another aspect ratio.
    #[arg(long, default_value = "crop")]
    pub fit: Fit,
    /// Share of the training images held out (stratified) as the validation split.
    #[arg(long, default_value_t = 0.1)]
    pub validation: f64,
    /// Seed of the train/validation(/test) split; fixed so every run sees the same test set.
    #[arg(long, default_value_t = DEFAULT_SPLIT_SEED)]
    pub split_seed: u64,
    /// Train on only this many of the training images (quick runs).
    #[arg(long, value_name = "N")]
    pub train_limit: Option<usize>,
}

/// The data sets that ship with kiln.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinData {
    #[value(name = "mnist-5k")]
    Mnist5k,
    #[value(name = "mnist-5k-96")]
    Mnist5k96,
}

impl DataArgs {
    pub fn source(&self) -> Source {
        let options = ImageOptions::new(self.resolution, self.channels, self.fit);
        match (&self.idx, &self.cifar, &self.images) {
            (Some(dir), _, _) => Source::Idx(dir.clone()),
            (None, Some(dir), _) => Source::Cifar10(dir.clone()),
            (None, None, Some(dir)) => Source::Images(dir.clone(), options),
            (None, None, None) => match self.data {
                BuiltinData::Mnist5k => Source::Mnist5k,
                BuiltinData::Mnist5k96 => Source::Mnist5kUpscaled(96),
            },
        }
    }

    fn split(&self) -> SplitOptions {
        let (seed, validation_fraction) = (self.split_seed, self.validation);
        SplitOptions {
            seed,
            validation_fraction,
            train_limit: self.train_limit,
        }
    }

    /// The data's identity in a search journal: resuming with other data is refused.
    pub fn identity(&self) -> String {
        self.source().identity(&self.split())
    }

    pub fn load(&self) -> Result<Dataset> {
        let source = self.source();
        kiln_data::load(&source, &self.split())
            .with_context(|| format!("loading data set {}", source.name()))
    }
}
