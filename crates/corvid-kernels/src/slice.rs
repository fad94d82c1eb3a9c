//! Sub-matrices of a weight matrix in its compute format, for tensor parallelism: each
//! shard keeps a band of rows (its heads, its FFN columns of the gate and up
//! projections) or of columns (the matching inputs of the output and down projections).
//!
//! Every storage format lays its elements out as `[row unit][block]`: one row per unit
//! unpacked, eight or sixteen interleaved rows per unit packed, and one element (f32),
//! 32 values (Q4/Q8) or 256 values (K-quants) per block. A slice whose bounds fall on
//! units and blocks is then a copy of whole elements, bit for bit the same weights; one
//! that splits a block or a packed row group cannot be cut without requantizing, and is
//! refused.

use crate::matmul::{QMatrix, WeightData};
use crate::quant::{QK, QK_K};
use std::ops::Range;

impl QMatrix {
    /// The step `(rows, cols)` that slice bounds must be multiples of: the packed row
    /// group (1 unpacked) and the quantization block width (1 for f32).
    pub fn tile(&self) -> (usize, usize) {
        match self.data {
            WeightData::F32(_) => (1, 1),
            WeightData::Q4_0(_) | WeightData::Q4_1(_) | WeightData::Q8_0(_) => (1, QK),
            WeightData::Q4K(_) | WeightData::Q5K(_) | WeightData::Q6K(_) => (1, QK_K),
            WeightData::Q4_1x8(_) | WeightData::Q8_0x8(_) => (8, QK),
            WeightData::Q4_1x16(_) => (16, QK),
            WeightData::Q4Kx8(_) | WeightData::Q5Kx8(_) | WeightData::Q6Kx8(_) => (8, QK_K),
        }
    }

    /// The rows `rows` and columns `cols` of the matrix, in the same format, or why the
    /// bounds cannot be cut exactly (not on [`Self::tile`] multiples, or out of range).
    pub fn slice(&self, rows: Range<usize>, cols: Range<usize>) -> Result<QMatrix, String> {
        let (ru, cu) = self.tile();
        let fits = |r: &Range<usize>, len: usize, unit: usize| {
            r.start < r.end
                && r.end <= len
                && r.start.is_multiple_of(unit)
                && r.end.is_multiple_of(unit)
        };
        if !fits(&rows, self.rows, ru) || !fits(&cols, self.cols, cu) {
            return Err(format!(
                "rows {rows:?} and columns {cols:?} of a {}x{} {} matrix do not fall on its \
                 {ru}-row groups and {cu}-column blocks",
                self.rows,
                self.cols,
                self.format()
            ));
        }
        let nb = self.cols / cu;
        let (units, blocks) = (
            rows.start / ru..rows.end / ru,
            cols.start / cu..cols.end / cu,
        );
        let data = match &self.data {
            WeightData::F32(v) => WeightData::F32(cut(v, nb, &units, &blocks)),
            WeightData::Q4_0(v) => WeightData::Q4_0(cut(v, nb, &units, &blocks)),
            WeightData::Q4_1(v) => WeightData::Q4_1(cut(v, nb, &units, &blocks)),
            WeightData::Q8_0(v) => WeightData::Q8_0(cut(v, nb, &units, &blocks)),
            WeightData::Q4K(v) => WeightData::Q4K(cut(v, nb, &units, &blocks)),
            WeightData::Q5K(v) => WeightData::Q5K(cut(v, nb, &units, &blocks)),
            WeightData::Q6K(v) => WeightData::Q6K(cut(v, nb, &units, &blocks)),
            WeightData::Q4_1x8(v) => WeightData::Q4_1x8(cut(v, nb, &units, &blocks)),
            WeightData::Q4_1x16(v) => WeightData::Q4_1x16(cut(v, nb, &units, &blocks)),
            WeightData::Q8_0x8(v) => WeightData::Q8_0x8(cut(v, nb, &units, &blocks)),
            WeightData::Q4Kx8(v) => WeightData::Q4Kx8(cut(v, nb, &units, &blocks)),
            WeightData::Q5Kx8(v) => WeightData::Q5Kx8(cut(v, nb, &units, &blocks)),
            WeightData::Q6Kx8(v) => WeightData::Q6Kx8(cut(v, nb, &units, &blocks)),
        };
        Ok(QMatrix {
            rows: rows.len(),
            cols: cols.len(),
            data,
        })
    }
}

/// The elements `blocks` of each row unit in `units`, from `[unit][block]` storage of
/// `nb` blocks per unit.
fn cut<T: Clone>(v: &[T], nb: usize, units: &Range<usize>, blocks: &Range<usize>) -> Vec<T> {
    units
        .clone()
        .flat_map(|u| {
            v[u * nb + blocks.start..u * nb + blocks.end]
                .iter()
                .cloned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::matmul::{QMatrix, WeightData};
    use crate::quant::quantize::{
        quantize_weight_q4_1, quantize_weight_q4_k, quantize_weight_q6_k, quantize_weight_q8_0,
    };

    fn matrix(rows: usize, cols: usize, data: fn(&[f32]) -> WeightData) -> QMatrix {
        let x: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 % 1009) as f32 / 1009.0 - 0.5) * 2.0)
            .collect();
        QMatrix {
            rows,
            cols,
            data: data(&x),
        }
        .packed_for_cpu()
    }

    fn row(m: &QMatrix, r: usize) -> Vec<f32> {
        let mut out = vec![0.0; m.cols];
        m.row_f32(r, &mut out);
        out
    }

    /// Every slice on the tile holds exactly the original's elements, in every format
    /// (packed or not, as this machine's kernel tier packs them).
    #[test]
    fn slices_on_the_tile_keep_the_weights_bit_for_bit() {
        let formats: [fn(&[f32]) -> WeightData; 5] = [
            |x| WeightData::F32(x.to_vec()),
            |x| WeightData::Q4_1(quantize_weight_q4_1(x)),
            |x| WeightData::Q8_0(quantize_weight_q8_0(x)),
            |x| WeightData::Q4K(quantize_weight_q4_k(x)),
            |x| WeightData::Q6K(quantize_weight_q6_k(x)),
        ];
        for data in formats {
            let m = matrix(48, 768, data);
            let (ru, cu) = m.tile();
            for (rows, cols) in [
                (0..48, 0..768),
                (16..48, 0..768),
                (0..48, 256..768),
                (16..32, 512..768),
            ] {
                let (rows, cols) = (
                    (rows.start / ru * ru)..rows.end,
                    cols.start / cu * cu..cols.end,
                );
                let s = m.slice(rows.clone(), cols.clone()).unwrap();
                assert_eq!(
                    (s.rows, s.cols, s.format()),
                    (rows.len(), cols.len(), m.format())
                );
                for r in rows.clone() {
                    assert_eq!(
                        row(&s, r - rows.start),
                        row(&m, r)[cols.clone()],
                        "{}",
                        m.format()
                    );
                }
            }
        }
    }

    #[test]
    fn slices_off_the_tile_are_refused() {
        let m = matrix(48, 768, |x| WeightData::Q4K(quantize_weight_q4_k(x)));
        let e = m.slice(0..48, 0..384).unwrap_err();
        assert!(e.contains("256-column blocks"), "{e}");
        assert!(m.slice(0..48, 0..1024).is_err());
        assert!(m.slice(8..8, 0..768).is_err());
    }
}
