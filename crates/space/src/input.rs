//! The input a network is built for: image shape and class count, from the data set.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::SpaceError;

/// Input shape and class count; they come from the data set, not the space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Image channels (C of NCHW): 1 for MNIST, 3 for RGB.
    pub channels: usize,
    /// Image height (H), in pixels.
    pub height: usize,
    /// Image width (W), in pixels.
    pub width: usize,
    /// Number of classes: the classifier's output width (at least 2).
    pub classes: usize,
}

impl InputSpec {
    /// The bundled MNIST subset: 1x28x28, 10 classes.
    pub const MNIST: InputSpec = InputSpec {
        channels: 1,
        height: 28,
        width: 28,
        classes: 10,
    };

    /// The input of `CxHxW` images (e.g. `1x28x28`) in `classes` classes.
    ///
    /// Errors: [`SpaceError::Parse`] (origin `input`) when `shape` is not three numbers.
    pub fn from_shape(shape: &str, classes: usize) -> Result<InputSpec, SpaceError> {
        let dims: Result<Vec<usize>, _> = shape.split('x').map(|d| d.trim().parse()).collect();
        let (channels, height, width) = match dims.as_deref() {
            Ok(&[c, h, w]) => (c, h, w),
            _ => {
                let message = format!("`{shape}`: expected CxHxW, e.g. 1x28x28");
                let origin = "input".into();
                return Err(SpaceError::Parse { origin, message });
            }
        };
        Ok(InputSpec {
            channels,
            height,
            width,
            classes,
        })
    }
}

impl fmt::Display for InputSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}x{}x{} ({} classes)",
            self.channels, self.height, self.width, self.classes
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_shape_is_three_numbers() {
        let spec = InputSpec::from_shape("3x32x24", 10).unwrap();
        assert_eq!(
            (spec.channels, spec.height, spec.width, spec.classes),
            (3, 32, 24, 10)
        );
        for bad in ["1x28", "1x28x28x1", "1xax28", ""] {
            let e = InputSpec::from_shape(bad, 10).unwrap_err().to_string();
            assert!(e.contains("expected CxHxW"), "{bad}: {e}");
        }
    }
}
