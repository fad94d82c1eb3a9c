//! GPTQ and AWQ linear layers: unpacked from their int32 words into integer codes with a
//! scale and zero point per group, then written into corvid's block formats.
//!
//! A weight is `w = s·(q − z)` with `s` an f16 scale and `z` an integer zero of the group
//! its input column belongs to. Where every 32-column block of a row lies in one group
//! (group sizes that are multiples of 32, one group per row, or act-order `g_idx` that
//! keeps blocks whole) the values map onto blocks without requantization:
//! - 4-bit, every zero 8 (symmetric): Q4_0 with `d = s`, nibbles as stored — exact;
//! - 4-bit otherwise: Q4_1 with `d = s`, `m = −z·s`. `d` is exact (the checkpoint's f16);
//!   `m` is exact when f16 holds `z·s`, otherwise rounded to nearest, an error of at most
//!   2⁻¹¹·|z·s| ≤ 2⁻¹¹·16·s (under 1 % of one quantization step) on each weight of the block;
//! - 8-bit with every `q − z` in int8 (symmetric GPTQ always): Q8_0 with `d = s` — exact.
//!
//! Otherwise (act-order groups that split a block, asymmetric 8-bit zeros) the layer is
//! dequantized to f32 and requantized to Q8_0 with a warning naming the tensor.

use crate::error::{ModelError, Result};
use corvid_kernels::quant::quantize::quantize_weight_q8_0;
use corvid_kernels::quant::{BlockQ4_0, BlockQ4_1, BlockQ8_0, QK};
use corvid_kernels::WeightData;
use half::f16;
use std::path::Path;

/// One stored tensor of a packed layer: its safetensors shape (outermost first) and
/// little-endian bytes, already checked to be of the dtype the layout needs.
pub struct PackedPart<'a> {
    /// Shape as safetensors stores it.
    pub shape: &'a [usize],
    /// Raw bytes.
    pub data: &'a [u8],
}

impl PackedPart<'_> {
    fn i32_at(&self, i: usize) -> u32 {
        u32::from_le_bytes(self.data[4 * i..4 * i + 4].try_into().expect("4 bytes"))
    }

    fn f16_at(&self, i: usize) -> f16 {
        f16::from_le_bytes([self.data[2 * i], self.data[2 * i + 1]])
    }
}

/// A packed layer's stored tensors (`g_idx` only for GPTQ, and optional there).
pub struct PackedLayer<'a> {
    /// Name for messages (the checkpoint's `….qweight` prefix).
    pub name: String,
    /// File it came from, for messages.
    pub file: &'a Path,
    /// `qweight` (int32).
    pub qweight: PackedPart<'a>,
    /// `qzeros` (int32).
    pub qzeros: PackedPart<'a>,
    /// `scales` (f16).
    pub scales: PackedPart<'a>,
    /// `g_idx` (int32), the group of each input column (GPTQ act-order).
    pub g_idx: Option<PackedPart<'a>>,
}

/// The position within an AWQ GEMM word of each of its eight output columns (AutoAWQ packs
/// column `[0, 2, 4, 6, 1, 3, 5, 7][k]` into nibble `k`; this is that order inverted).
const AWQ_NIBBLE_OF_COLUMN: [usize; 8] = [0, 4, 1, 5, 2, 6, 3, 7];

/// A layer unpacked: `rows` output features × `cols` input features of `bits`-bit codes,
/// each input column in one of `groups` groups with a scale and zero per output row.
pub struct GroupQuantized {
    rows: usize,
    cols: usize,
    bits: u32,
    /// `codes[r * cols + c]`.
    codes: Vec<u8>,
    /// The group of each input column.
    group_of: Vec<usize>,
    /// `zeros[g * rows + r]`, the effective zero point.
    zeros: Vec<i32>,
    /// `scales[g * rows + r]`.
    scales: Vec<f16>,
}

impl PackedLayer<'_> {
    fn error(&self, msg: impl Into<String>) -> ModelError {
        ModelError::BadTensor {
            file: self.file.to_path_buf(),
            tensor: self.name.clone(),
            msg: msg.into(),
        }
    }

    fn expect_shape(&self, part: &str, got: &PackedPart<'_>, want: [usize; 2]) -> Result<()> {
        if got.shape != want {
            return Err(self.error(format!(
                "{part} has shape {:?}, expected {want:?} for a {}x{} layer",
                got.shape, want[0], want[1]
            )));
        }
        Ok(())
    }

    /// The scales' group count, checked against the config's group size.
    fn groups(&self, cols: usize, group_size: Option<usize>) -> Result<usize> {
        let groups = group_size.map_or(1, |g| cols.div_ceil(g));
        match self.scales.shape {
            [g, _] if *g == groups => Ok(groups),
            shape => Err(self.error(format!(
                "scales has shape {shape:?}: {cols} input columns in groups of {} make {groups} groups",
                group_size.map_or("all".to_string(), |g| g.to_string())
            ))),
        }
    }

    /// Unpacks a GPTQ layer of `rows` outputs × `cols` inputs (layout in
    /// [`super::quant_config::CheckpointQuant::Gptq`]).
    pub fn unpack_gptq(
        &self,
        rows: usize,
        cols: usize,
        bits: u32,
        group_size: Option<usize>,
        zeros_minus_one: bool,
    ) -> Result<GroupQuantized> {
        let per_word = (32 / bits) as usize;
        let mask = (1u32 << bits) - 1;
        if !cols.is_multiple_of(per_word) || !rows.is_multiple_of(per_word) {
            return Err(self.error(format!(
                "a {rows}x{cols} layer cannot be packed {per_word} values to a word"
            )));
        }
        self.expect_shape("qweight", &self.qweight, [cols / per_word, rows])?;
        let groups = self.groups(cols, group_size)?;
        self.expect_shape("scales", &self.scales, [groups, rows])?;
        self.expect_shape("qzeros", &self.qzeros, [groups, rows / per_word])?;
        let mut codes = vec![0u8; rows * cols];
        for i in 0..cols / per_word {
            for r in 0..rows {
                let word = self.qweight.i32_at(i * rows + r);
                for k in 0..per_word {
                    codes[r * cols + i * per_word + k] =
                        ((word >> (bits as usize * k)) & mask) as u8;
                }
            }
        }
        let offset = i32::from(zeros_minus_one);
        let zeros = (0..groups * rows)
            .map(|i| {
                let word = self.qzeros.i32_at(i / per_word);
                ((word >> (bits as usize * (i % per_word))) & mask) as i32 + offset
            })
            .collect();
        let group_of = match &self.g_idx {
            Some(g_idx) => {
                if g_idx.shape != [cols] {
                    return Err(self.error(format!(
                        "g_idx has shape {:?}, expected [{cols}]",
                        g_idx.shape
                    )));
                }
                (0..cols)
                    .map(|c| match g_idx.i32_at(c) as usize {
                        g if g < groups => Ok(g),
                        g => Err(self.error(format!(
                            "g_idx[{c}] = {g} names no group (there are {groups})"
                        ))),
                    })
                    .collect::<Result<_>>()?
            }
            None => (0..cols).map(|c| group_size.map_or(0, |g| c / g)).collect(),
        };
        Ok(GroupQuantized {
            rows,
            cols,
            bits,
            codes,
            group_of,
            zeros,
            scales: self.scales_vec(),
        })
    }

    /// Unpacks an AWQ GEMM layer of `rows` outputs × `cols` inputs (layout in
    /// [`super::quant_config::CheckpointQuant::AwqGemm`]).
    pub fn unpack_awq_gemm(
        &self,
        rows: usize,
        cols: usize,
        group_size: usize,
    ) -> Result<GroupQuantized> {
        if self.g_idx.is_some() {
            return Err(self.error("AWQ layers have no g_idx; this one has"));
        }
        if !rows.is_multiple_of(8) {
            return Err(self.error(format!("{rows} output features are not whole words of 8")));
        }
        self.expect_shape("qweight", &self.qweight, [cols, rows / 8])?;
        let groups = self.groups(cols, Some(group_size))?;
        self.expect_shape("scales", &self.scales, [groups, rows])?;
        self.expect_shape("qzeros", &self.qzeros, [groups, rows / 8])?;
        // Element `(i, o)` of an `[n, rows]` matrix packed eight output columns to a word.
        let nibble = |part: &PackedPart<'_>, i: usize, o: usize| {
            let word = part.i32_at(i * (rows / 8) + o / 8);
            (word >> (4 * AWQ_NIBBLE_OF_COLUMN[o % 8])) & 0xF
        };
        let mut codes = vec![0u8; rows * cols];
        for c in 0..cols {
            for r in 0..rows {
                codes[r * cols + c] = nibble(&self.qweight, c, r) as u8;
            }
        }
        let zeros = (0..groups * rows)
            .map(|i| nibble(&self.qzeros, i / rows, i % rows) as i32)
            .collect();
        Ok(GroupQuantized {
            rows,
            cols,
            bits: 4,
            codes,
            group_of: (0..cols).map(|c| c / group_size).collect(),
            zeros,
            scales: self.scales_vec(),
        })
    }

    fn scales_vec(&self) -> Vec<f16> {
        (0..self.scales.data.len() / 2)
            .map(|i| self.scales.f16_at(i))
            .collect()
    }
}

impl GroupQuantized {
    /// `(scale, zero)` of row `r` for the group `g`.
    fn group(&self, g: usize, r: usize) -> (f16, i32) {
        (
            self.scales[g * self.rows + r],
            self.zeros[g * self.rows + r],
        )
    }

    /// The weights as f32, row-major `[rows][cols]` (exact: an f16 times a small integer).
    pub fn dequantize(&self) -> Vec<f32> {
        (0..self.rows * self.cols)
            .map(|i| {
                let (r, c) = (i / self.cols, i % self.cols);
                let (s, z) = self.group(self.group_of[c], r);
                s.to_f32() * (i32::from(self.codes[i]) - z) as f32
            })
            .collect()
    }

    /// The group of each 32-column block, if every block lies in one group.
    fn block_groups(&self) -> Option<Vec<usize>> {
        self.group_of
            .chunks_exact(QK)
            .map(|b| b.iter().all(|&g| g == b[0]).then_some(b[0]))
            .collect()
    }

    /// Row `r`'s blocks: `(scale, zero, codes)` of each 32 columns.
    fn row_blocks<'s>(
        &'s self,
        r: usize,
        block_groups: &'s [usize],
    ) -> impl Iterator<Item = (f16, i32, &'s [u8])> + 's {
        let row = &self.codes[r * self.cols..(r + 1) * self.cols];
        row.chunks_exact(QK)
            .zip(block_groups)
            .map(move |(codes, &g)| {
                let (s, z) = self.group(g, r);
                (s, z, codes)
            })
    }

    /// The layer in the most compact of corvid's block formats that holds it (see the
    /// module docs), or requantized to Q8_0 with a warning naming `name`.
    pub fn into_weight_data(self, name: &str) -> Result<WeightData> {
        if !self.cols.is_multiple_of(QK) {
            return Err(ModelError::Unsupported(format!(
                "{name}: {} input features are not whole blocks of {QK}",
                self.cols
            )));
        }
        let Some(block_groups) = self.block_groups() else {
            tracing::warn!(
                "{name}: its act-order groups (g_idx) split blocks of {QK} input columns, which \
                 corvid's block formats cannot hold; dequantized and requantized to Q8_0"
            );
            return Ok(WeightData::Q8_0(quantize_weight_q8_0(&self.dequantize())));
        };
        let blocks = (0..self.rows).flat_map(|r| self.row_blocks(r, &block_groups));
        Ok(match self.bits {
            4 if self.zeros.iter().all(|&z| z == 8) => WeightData::Q4_0(
                blocks
                    .map(|(d, _, codes)| BlockQ4_0 {
                        d,
                        qs: nibbles(codes),
                    })
                    .collect(),
            ),
            4 => {
                let mut rounded = 0usize;
                let q: Vec<BlockQ4_1> = blocks
                    .map(|(d, z, codes)| {
                        let m = -(z as f32) * d.to_f32();
                        let m16 = f16::from_f32(m);
                        rounded += usize::from(m16.to_f32() != m);
                        BlockQ4_1 {
                            d,
                            m: m16,
                            qs: nibbles(codes),
                        }
                    })
                    .collect();
                tracing::debug!(
                    "{name}: GPTQ/AWQ 4-bit as Q4_1; {rounded} of {} block minimums rounded to f16",
                    q.len()
                );
                WeightData::Q4_1(q)
            }
            _ => {
                let exact = blocks
                    .map(|(d, z, codes)| {
                        let mut b = BlockQ8_0 {
                            d,
                            ..Default::default()
                        };
                        for (q, &c) in b.qs.iter_mut().zip(codes) {
                            *q = i8::try_from(i32::from(c) - z).ok()?;
                        }
                        Some(b)
                    })
                    .collect::<Option<Vec<_>>>();
                match exact {
                    Some(q) => WeightData::Q8_0(q),
                    None => {
                        tracing::warn!(
                            "{name}: 8-bit zero points put some q - zero outside int8, which Q8_0 \
                             cannot hold; dequantized and requantized to Q8_0"
                        );
                        WeightData::Q8_0(quantize_weight_q8_0(&self.dequantize()))
                    }
                }
            }
        })
    }
}

/// 32 4-bit codes in ggml's nibble order (value `j` low nibble of byte `j`, value `j + 16`
/// its high nibble).
fn nibbles(codes: &[u8]) -> [u8; 16] {
    std::array::from_fn(|j| codes[j] | (codes[j + QK / 2] << 4))
}
