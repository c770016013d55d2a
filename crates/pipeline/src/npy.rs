//! `.npy` tensors (NumPy's format), the one owner of it: `run-onnx` reads its input from
//! one and writes its output to one. f32 in C order only; read through `npyz`.

use std::path::Path;

use crate::PipelineError;

/// Reads an f32 `.npy` file: its shape and its values in C order.
///
/// Errors: [`PipelineError::Io`] when it cannot be read; [`PipelineError::Invalid`] naming
/// the file when it is not `.npy`, is in Fortran order, is not f32, or holds more or fewer
/// values than its shape says.
pub fn read(path: &Path) -> Result<(Vec<usize>, Vec<f32>), PipelineError> {
    let bad = |message: String| PipelineError::Invalid(format!("{}: {message}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| PipelineError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| bad(format!("not a .npy file: {e}")))?;
    if npy.order() != npyz::Order::C {
        return Err(bad(
            "Fortran-order arrays are not supported; save it in C order".into(),
        ));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|d| *d as usize).collect();
    let is_f32 = match npy.dtype() {
        npyz::DType::Plain(t) => t.to_string().ends_with("f4"),
        _ => false,
    };
    if !is_f32 {
        let dtype = npy.dtype().descr();
        return Err(bad(format!("expected an f32 array, not {dtype}")));
    }
    // npyz reads the values the shape asks for: more or fewer bytes mean a wrong shape
    let stored = bytes.len().saturating_sub(header_len(&bytes));
    let wanted = (shape.iter()).try_fold(4usize, |n, &d| n.checked_mul(d));
    if wanted != Some(stored) {
        let takes = wanted.map_or("more than this machine can hold".into(), |w| w.to_string());
        return Err(bad(format!(
            "holds {stored} bytes of data, but its shape {shape:?} takes {takes} (f32)"
        )));
    }
    let values = npy
        .into_vec::<f32>()
        .map_err(|e| bad(format!("expected an f32 array: {e}")))?;
    Ok((shape, values))
}

/// Where a `.npy` file's data starts: after the magic string, the version, the header's
/// length (2 bytes in version 1, 4 in versions 2 and 3) and the header (NumPy's format
/// description, `numpy.lib.format`). 0 for bytes too short to say.
fn header_len(bytes: &[u8]) -> usize {
    let le = |b: &[u8]| b.iter().rev().fold(0usize, |n, &x| n << 8 | x as usize);
    match bytes.get(6) {
        Some(1) if bytes.len() >= 10 => 10 + le(&bytes[8..10]),
        Some(2 | 3) if bytes.len() >= 12 => 12 + le(&bytes[8..12]),
        _ => 0,
    }
}

/// Writes an f32 `.npy` file of `shape` in C order.
///
/// Errors: [`PipelineError::Io`] naming the file.
pub fn write(path: &Path, shape: &[usize], values: &[f32]) -> Result<(), PipelineError> {
    use npyz::WriterBuilder;
    let io = |e: std::io::Error| PipelineError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let dims: Vec<u64> = shape.iter().map(|d| *d as u64).collect();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&dims)
        .writer(std::io::BufWriter::new(file))
        .begin_nd()
        .map_err(io)?;
    w.extend(values.iter().copied()).map_err(io)?;
    w.finish().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tensor_round_trips_and_more_or_fewer_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        let values: Vec<f32> = (0..6).map(|v| v as f32 / 2.0).collect();
        write(&path, &[1, 2, 3], &values).unwrap();
        assert_eq!(read(&path).unwrap(), (vec![1, 2, 3], values));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0; 200]);
        std::fs::write(&path, &bytes).unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(
            e.contains("holds 224 bytes of data, but its shape [1, 2, 3] takes 24"),
            "{e}"
        );
        for cut in [1, 4] {
            std::fs::write(&path, &bytes[..bytes.len() - 200 - cut]).unwrap();
            let e = read(&path).unwrap_err().to_string();
            assert!(e.contains(&format!("holds {} bytes", 24 - cut)), "{e}");
        }
        // another type, or a shape whose size overflows, is named as such
        let header = |descr: &str, shape: &str| {
            let h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
            let h = format!("{h:<117}\n");
            let mut b = b"\x93NUMPY\x01\x00".to_vec();
            b.extend_from_slice(&(h.len() as u16).to_le_bytes());
            b.extend_from_slice(h.as_bytes());
            b
        };
        let mut f8 = header("<f8", "(1, 6)");
        f8.extend_from_slice(&[0; 48]);
        std::fs::write(&path, &f8).unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("expected an f32 array, not '<f8'"), "{e}");
        std::fs::write(&path, header("<f4", "(4611686018427387904,)")).unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("takes more than this machine can hold"), "{e}");
        std::fs::write(&path, b"not numpy").unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("x.npy: not a .npy file"), "{e}");
    }
}
