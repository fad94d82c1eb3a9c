//! Quantized block formats: layouts, dequantization and quantization.

pub mod blocks;
pub mod dequant;
pub mod quantize;

pub use blocks::{read_blocks, BlockQ4_0, BlockQ4_1, BlockQ8_0, BlockQ8_1, RawBlock, QK};
pub use dequant::dequantize;
