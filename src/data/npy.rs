//! Minimal NumPy `.npy` writer (format version 1.0, little-endian, C order), so that
//! preprocessed tensors and predictions can be compared from Python with `np.load`.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

/// The complete `.npy` v1.0 header for `descr` (e.g. `<f4`) and `shape`: magic, version,
/// header length, the dict literal padded with spaces and ended by `\n` so that the data
/// starts at a multiple of 64 bytes (as NumPy writes it).
pub fn header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let shape_txt = match shape {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // magic(6) + version(2) + header length(2) + dict + '\n' ≡ 0 (mod 64)
    let unpadded = MAGIC.len() + 2 + 2 + dict.len() + 1;
    dict.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    dict.push('\n');
    let mut out = Vec::with_capacity(10 + dict.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    // A header this small (one short tuple) always fits the 16-bit length field.
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

fn write_npy<T: Copy, const N: usize>(
    path: &Path,
    descr: &str,
    shape: &[usize],
    data: &[T],
    to_le: impl Fn(T) -> [u8; N],
) -> io::Result<()> {
    let expected: usize = shape.iter().product();
    if expected != data.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "cannot write {}: shape {shape:?} holds {expected} values but {} were given",
                path.display(),
                data.len()
            ),
        ));
    }
    let with_path =
        |e: io::Error| io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()));
    let file = File::create(path).map_err(with_path)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    w.write_all(&header(descr, shape)).map_err(with_path)?;
    let mut chunk = Vec::with_capacity(64 * 1024 * N);
    for block in data.chunks(64 * 1024) {
        chunk.clear();
        for &v in block {
            chunk.extend_from_slice(&to_le(v));
        }
        w.write_all(&chunk).map_err(with_path)?;
    }
    w.flush().map_err(with_path)
}

/// Writes `data` (C order, `shape.iter().product()` values) as a float32 `.npy` file.
pub fn write_npy_f32(path: impl AsRef<Path>, shape: &[usize], data: &[f32]) -> io::Result<()> {
    write_npy(path.as_ref(), "<f4", shape, data, f32::to_le_bytes)
}

/// Writes `data` (C order, `shape.iter().product()` values) as an int64 `.npy` file.
pub fn write_npy_i64(path: impl AsRef<Path>, shape: &[usize], data: &[i64]) -> io::Result<()> {
    write_npy(path.as_ref(), "<i8", shape, data, i64::to_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_npy_v1_and_aligned() {
        let h = header("<f4", &[2, 3, 224, 224]);
        assert_eq!(&h[..8], b"\x93NUMPY\x01\x00");
        let len = u16::from_le_bytes([h[8], h[9]]) as usize;
        assert_eq!(h.len(), 10 + len);
        assert_eq!(h.len() % 64, 0);
        let text = std::str::from_utf8(&h[10..]).unwrap();
        assert!(text
            .starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 224, 224), }"));
        assert!(text.ends_with(" \n"));
    }

    #[test]
    fn header_shapes() {
        let s = |shape: &[usize]| {
            let h = header("<i8", shape);
            String::from_utf8(h[10..].to_vec())
                .unwrap()
                .trim_end()
                .to_string()
        };
        assert_eq!(
            s(&[5]),
            "{'descr': '<i8', 'fortran_order': False, 'shape': (5,), }"
        );
        assert_eq!(
            s(&[]),
            "{'descr': '<i8', 'fortran_order': False, 'shape': (), }"
        );
        assert_eq!(
            s(&[0, 3]),
            "{'descr': '<i8', 'fortran_order': False, 'shape': (0, 3), }"
        );
    }

    #[test]
    fn writes_data_after_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        write_npy_f32(&p, &[2, 2], &[1.0, -2.5, 0.0, 3.25]).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let hl = header("<f4", &[2, 2]).len();
        // np.save(f, np.zeros((2, 2), np.float32)) writes the same 128-byte header.
        assert_eq!(hl, 128);
        assert_eq!(&bytes[..10], b"\x93NUMPY\x01\x00v\x00");
        assert_eq!(bytes.len(), hl + 16);
        assert_eq!(&bytes[hl..hl + 4], &1.0f32.to_le_bytes());
        assert_eq!(&bytes[hl + 4..hl + 8], &(-2.5f32).to_le_bytes());
        let q = dir.path().join("b.npy");
        write_npy_i64(&q, &[3], &[7, -1, 1 << 40]).unwrap();
        let bytes = std::fs::read(&q).unwrap();
        assert_eq!(bytes.len(), 128 + 24);
        assert_eq!(&bytes[128 + 16..], &(1i64 << 40).to_le_bytes());
        let err = write_npy_i64(&q, &[4], &[1, 2]).unwrap_err();
        assert!(err.to_string().contains("holds 4 values but 2"));
        let err = write_npy_f32(dir.path().join("no/such/dir.npy"), &[0], &[]).unwrap_err();
        assert!(err.to_string().contains("no/such/dir.npy"));
    }
}
