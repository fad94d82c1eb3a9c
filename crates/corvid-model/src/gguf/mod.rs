//! Reader for GGUF v2/v3 files: header, metadata, tensor infos and memory-mapped data.
//!
//! Every length and offset read from the file is checked against the file size before
//! use, so a truncated or corrupted file is an error naming the file (and tensor), never
//! a panic or an out-of-bounds read. A model file is untrusted input: every count is
//! checked against the bytes that remain *before* anything is allocated for it (a
//! claimed 2^28-entry array in a small file is an error, not an out-of-memory), and the
//! tensors' data ranges must be aligned, inside the file and disjoint.

#[cfg(test)]
mod tests;
mod value;

pub use value::MetaValue;

use crate::error::{ModelError, Result};
use corvid_kernels::GgmlType;
use memmap2::Mmap;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const GGUF_MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// Upper bound on counts read from a header, so a corrupted count cannot make us allocate
/// terabytes before noticing the file is too short.
const MAX_COUNT: u64 = 1 << 28;
/// Most array elements the whole metadata may hold (the largest real vocabularies hold
/// ~260k tokens plus as many merges). Each parsed element takes tens of bytes of memory,
/// so without this budget a file of plain bytes would cost far more memory than its size.
const MAX_ARRAY_ELEMENTS: u64 = 1 << 23;

/// Where one tensor lives in a GGUF file and what it holds.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    /// Tensor name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions in ggml order: `dims[0]` is the contiguous (row) length.
    pub dims: Vec<usize>,
    /// Element type.
    pub ty: GgmlType,
    /// Absolute byte offset of the data in the file.
    pub offset: usize,
    /// Byte length of the data.
    pub size: usize,
}

impl TensorInfo {
    /// Total number of elements.
    pub fn elements(&self) -> usize {
        self.dims.iter().product()
    }
}

/// An opened GGUF file: parsed header plus the memory map that tensor data is read from.
pub struct GgufFile {
    path: PathBuf,
    mmap: Arc<Mmap>,
    /// Format version (2 or 3).
    pub version: u32,
    /// All metadata key/value pairs.
    pub metadata: BTreeMap<String, MetaValue>,
    /// All tensors by name.
    pub tensors: BTreeMap<String, TensorInfo>,
}

impl GgufFile {
    /// Opens and parses a GGUF file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| ModelError::io(&path, e))?;
        // SAFETY: the file is opened read-only; corvid never writes model files while serving.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::io(&path, e))?;
        Self::parse(path, Arc::new(mmap))
    }

    fn parse(path: PathBuf, mmap: Arc<Mmap>) -> Result<Self> {
        let mut cur = Cursor {
            buf: &mmap[..],
            pos: 0,
            path: &path,
            elements_left: MAX_ARRAY_ELEMENTS,
        };
        let magic = cur.bytes(4)?;
        if magic != GGUF_MAGIC {
            return Err(cur.bad("not a GGUF file (bad magic)"));
        }
        let version = cur.u32()?;
        if !(2..=3).contains(&version) {
            return Err(cur.bad(&format!("unsupported GGUF version {version}")));
        }
        let n_tensors = cur.count()?;
        let n_kv = cur.count()?;
        cur.ensure_room(n_kv, MIN_KV_BYTES, "metadata entries")?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = cur.string()?;
            let ty = cur.u32()?;
            let value = cur.value(ty, 0)?;
            metadata.insert(key, value);
        }
        let alignment = match metadata.get("general.alignment") {
            Some(v) => v
                .as_u64()
                .filter(|a| a.is_power_of_two())
                .ok_or_else(|| cur.bad("general.alignment is not a power of two"))?,
            None => DEFAULT_ALIGNMENT,
        };
        cur.ensure_room(n_tensors, MIN_TENSOR_INFO_BYTES, "tensor infos")?;
        let mut infos = Vec::with_capacity(n_tensors as usize);
        for _ in 0..n_tensors {
            let name = cur.string()?;
            let n_dims = cur.u32()?;
            if n_dims == 0 || n_dims > 4 {
                return Err(cur.bad_tensor(&name, &format!("{n_dims} dimensions")));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                let d = cur.u64()?;
                dims.push(
                    usize::try_from(d).map_err(|_| cur.bad_tensor(&name, "dimension overflows"))?,
                );
            }
            let code = cur.u32()?;
            let ty = GgmlType::from_code(code)
                .ok_or_else(|| cur.bad_tensor(&name, &format!("unknown tensor type {code}")))?;
            let rel = cur.u64()?;
            if rel % alignment != 0 {
                return Err(cur.bad_tensor(
                    &name,
                    &format!("data offset {rel} is not aligned to {alignment} bytes"),
                ));
            }
            infos.push((name, dims, ty, rel));
        }
        let data_start = align_up(cur.pos as u64, alignment);
        let file_len = mmap.len() as u64;
        let mut tensors = BTreeMap::new();
        for (name, dims, ty, rel) in infos {
            let elements = dims
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| cur.bad_tensor(&name, "element count overflows"))?;
            if dims[0] % ty.block_size() != 0 {
                return Err(cur.bad_tensor(
                    &name,
                    &format!(
                        "row length {} is not a multiple of the {ty} block size",
                        dims[0]
                    ),
                ));
            }
            let size = ty
                .bytes_for(elements)
                .ok_or_else(|| cur.bad_tensor(&name, "size overflows"))?;
            let offset = data_start
                .checked_add(rel)
                .filter(|o| {
                    o.checked_add(size as u64)
                        .is_some_and(|end| end <= file_len)
                })
                .ok_or_else(|| {
                    cur.bad_tensor(&name, "data lies beyond the end of the file (truncated?)")
                })?;
            let info = TensorInfo {
                name: name.clone(),
                dims,
                ty,
                offset: offset as usize,
                size,
            };
            if tensors.insert(name.clone(), info).is_some() {
                return Err(cur.bad_tensor(&name, "duplicate tensor name"));
            }
        }
        check_disjoint(&tensors, &cur)?;
        Ok(Self {
            path,
            mmap,
            version,
            metadata,
            tensors,
        })
    }

    /// Path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The raw bytes of a tensor (bounds were checked when the file was opened).
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        &self.mmap[info.offset..info.offset + info.size]
    }

    /// Looks a tensor up by name; a missing tensor is an error naming file and tensor.
    pub fn tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.tensors
            .get(name)
            .ok_or_else(|| ModelError::MissingTensor {
                file: self.path.clone(),
                tensor: name.to_string(),
            })
    }

    /// A metadata value, if present.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }

    /// A required unsigned integer metadata value.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.get(key)
            .and_then(MetaValue::as_u64)
            .ok_or_else(|| self.missing_key(key))
    }

    /// A required float metadata value.
    pub fn get_f64(&self, key: &str) -> Result<f64> {
        self.get(key)
            .and_then(MetaValue::as_f64)
            .ok_or_else(|| self.missing_key(key))
    }

    /// A required string metadata value.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        self.get(key)
            .and_then(MetaValue::as_str)
            .ok_or_else(|| self.missing_key(key))
    }

    /// A required array of strings (e.g. `tokenizer.ggml.tokens`).
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>> {
        let arr = self
            .get(key)
            .and_then(MetaValue::as_array)
            .ok_or_else(|| self.missing_key(key))?;
        arr.iter()
            .map(|v| v.as_str().ok_or_else(|| self.missing_key(key)))
            .collect()
    }

    fn missing_key(&self, key: &str) -> ModelError {
        ModelError::Format {
            file: self.path.clone(),
            msg: format!("metadata key `{key}` is missing or has the wrong type"),
        }
    }
}

/// Fails if two tensors' data ranges overlap: a hostile file could otherwise alias one
/// tensor's bytes as another's (quantized blocks read as floats, ...).
fn check_disjoint(tensors: &BTreeMap<String, TensorInfo>, cur: &Cursor<'_>) -> Result<()> {
    let mut ranges: Vec<&TensorInfo> = tensors.values().filter(|t| t.size > 0).collect();
    ranges.sort_by_key(|t| t.offset);
    for pair in ranges.windows(2) {
        if pair[0].offset + pair[0].size > pair[1].offset {
            return Err(cur.bad_tensor(
                &pair[1].name,
                &format!("data overlaps tensor `{}`", pair[0].name),
            ));
        }
    }
    Ok(())
}

/// Fewest bytes one metadata entry takes (key length, an empty key, type, a 1-byte value).
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// Fewest bytes one tensor info takes (name length, n_dims, one dim, type, offset).
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 8 + 4 + 8;

/// Fewest bytes one value of GGUF type `ty` takes in the file (0 for an unknown type,
/// which fails when read).
fn min_value_bytes(ty: u32) -> u64 {
    match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 => 8,
        9 => 4 + 8,
        10..=12 => 8,
        _ => 0,
    }
}

fn align_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// Bounds-checked little-endian reader over the header bytes.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
    /// What remains of [`MAX_ARRAY_ELEMENTS`].
    elements_left: u64,
}

impl Cursor<'_> {
    fn bad(&self, msg: &str) -> ModelError {
        ModelError::Format {
            file: self.path.to_path_buf(),
            msg: format!("{msg} (at byte {})", self.pos),
        }
    }

    fn bad_tensor(&self, tensor: &str, msg: &str) -> ModelError {
        ModelError::BadTensor {
            file: self.path.to_path_buf(),
            tensor: tensor.to_string(),
            msg: msg.to_string(),
        }
    }

    fn bytes(&mut self, n: usize) -> Result<&[u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.bad("unexpected end of file (truncated header)"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.bytes(N)?.try_into().expect("length checked"))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Fails unless `n` items of at least `min_bytes` each fit in the bytes left, so
    /// nothing is allocated for a count the file cannot hold.
    fn ensure_room(&self, n: u64, min_bytes: u64, what: &str) -> Result<()> {
        let left = (self.buf.len() - self.pos) as u64;
        if n.checked_mul(min_bytes.max(1))
            .is_none_or(|need| need > left)
        {
            return Err(self.bad(&format!(
                "{n} {what} cannot fit in the {left} bytes left (corrupt or truncated file)"
            )));
        }
        Ok(())
    }

    fn count(&mut self) -> Result<u64> {
        let n = self.u64()?;
        if n > MAX_COUNT {
            return Err(self.bad(&format!("implausible count {n}")));
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String> {
        let n = self.u64()?;
        let n = usize::try_from(n).map_err(|_| self.bad("string length overflows"))?;
        Ok(String::from_utf8_lossy(self.bytes(n)?).into_owned())
    }

    fn value(&mut self, ty: u32, depth: u32) -> Result<MetaValue> {
        Ok(match ty {
            0 => MetaValue::UInt(self.array::<1>()?[0] as u64),
            1 => MetaValue::Int(self.array::<1>()?[0] as i8 as i64),
            2 => MetaValue::UInt(u16::from_le_bytes(self.array()?) as u64),
            3 => MetaValue::Int(i16::from_le_bytes(self.array()?) as i64),
            4 => MetaValue::UInt(self.u32()? as u64),
            5 => MetaValue::Int(i32::from_le_bytes(self.array()?) as i64),
            6 => MetaValue::Float(f32::from_le_bytes(self.array()?) as f64),
            7 => MetaValue::Bool(self.array::<1>()?[0] != 0),
            8 => MetaValue::Str(self.string()?),
            9 => {
                if depth > 2 {
                    return Err(self.bad("metadata arrays nested too deeply"));
                }
                let ety = self.u32()?;
                let n = self.count()?;
                self.ensure_room(n, min_value_bytes(ety), "array elements")?;
                self.elements_left = self.elements_left.checked_sub(n).ok_or_else(|| {
                    self.bad(&format!(
                        "metadata arrays hold more than {MAX_ARRAY_ELEMENTS} elements in all"
                    ))
                })?;
                let mut v = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    v.push(self.value(ety, depth + 1)?);
                }
                MetaValue::Array(v)
            }
            10 => MetaValue::UInt(self.u64()?),
            11 => MetaValue::Int(i64::from_le_bytes(self.array()?)),
            12 => MetaValue::Float(f64::from_le_bytes(self.array()?)),
            other => return Err(self.bad(&format!("unknown metadata value type {other}"))),
        })
    }
}
