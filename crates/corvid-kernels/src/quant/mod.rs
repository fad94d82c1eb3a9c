//! Quantized block formats: layouts, dequantization and quantization.

pub mod blocks;
pub mod dequant;
pub mod quantize;

pub use blocks::{
    pack_scale_min_k4, read_blocks, scale_min_k4, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K,
    BlockQ6K, BlockQ8K, BlockQ8_0, BlockQ8_1, RawBlock, QK, QK_K,
};
pub use dequant::{dequantize, dequantize_q4k, dequantize_q5k, dequantize_q6k, q5_0_as_q8_0};
