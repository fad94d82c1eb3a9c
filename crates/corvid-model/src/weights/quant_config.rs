//! The `quantization_config` of a GPTQ or AWQ checkpoint (in `config.json`, or AutoGPTQ's
//! own `quantize_config.json`), checked against the layouts corvid unpacks: anything else
//! is refused with the config field and value named, before any tensor is read.

use crate::error::{ModelError, Result};
use serde_json::Value;
use std::path::Path;

/// How a checkpoint's linear layers are packed, as far as unpacking them needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointQuant {
    /// AutoGPTQ / GPTQModel / optimum: `qweight` int32 `[in / (32 / bits), out]` packed
    /// along the input dimension, `qzeros` int32 `[groups, out / (32 / bits)]` packed along
    /// the output dimension, `scales` f16 `[groups, out]`, optional `g_idx` int32 `[in]`.
    Gptq {
        /// 4 or 8.
        bits: u32,
        /// Input columns per group; `None` for one group per output row (`group_size: -1`).
        group_size: Option<usize>,
        /// `checkpoint_format: "gptq"` (the default, what transformers and optimum write)
        /// stores each zero point minus one; `"gptq_v2"` (GPTQModel's internal form) stores
        /// it as is.
        zeros_minus_one: bool,
    },
    /// AutoAWQ's GEMM packing: `qweight` int32 `[in, out / 8]`, eight output columns per
    /// word in the order `[0, 2, 4, 6, 1, 3, 5, 7]`, `qzeros` int32 `[in / group, out / 8]`
    /// packed the same way, `scales` f16 `[in / group, out]`.
    AwqGemm {
        /// Input rows per group.
        group_size: usize,
    },
}

impl CheckpointQuant {
    /// The quantization of the HF folder `dir`: `config.json`'s `quantization_config`, else
    /// `quantize_config.json` (AutoGPTQ's file, GPTQ unless it says otherwise), else `None`
    /// for an unquantized model.
    pub fn from_hf_dir(dir: &Path) -> Result<Option<Self>> {
        let config = dir.join("config.json");
        let inline = read_json(&config)?
            .and_then(|v| v.get("quantization_config").cloned())
            .filter(|v| !v.is_null());
        let separate = dir.join("quantize_config.json");
        let (file, v) = match inline {
            Some(v) => (config, v),
            None => match read_json(&separate)? {
                Some(v) => (separate, v),
                None => return Ok(None),
            },
        };
        Self::from_json(
            &v,
            file.file_name().map_or("", |f| f.to_str().unwrap_or("")),
        )
        .map(Some)
        .map_err(|msg| ModelError::Format { file, msg })
    }

    /// Parses one `quantization_config` object; the error names the field and its value.
    /// `origin` is the file name, for the AutoGPTQ rule that `quantize_config.json` without
    /// `quant_method` is GPTQ.
    fn from_json(v: &Value, origin: &str) -> std::result::Result<Self, String> {
        let field = |k: &str| v.get(k).filter(|x| !x.is_null());
        let unsupported = |k: &str, why: &str| {
            let value = field(k).map_or("absent".to_string(), Value::to_string);
            format!("quantization_config.{k} = {value}: {why}")
        };
        let default_method = (origin == "quantize_config.json").then_some("gptq");
        let method = field("quant_method")
            .and_then(Value::as_str)
            .or(default_method)
            .map(str::to_ascii_lowercase);
        let int = |k: &str| field(k).and_then(Value::as_i64);
        let group_size = || match int("group_size") {
            Some(-1) => Ok(None),
            Some(g) if g > 0 => Ok(Some(g as usize)),
            _ => Err(unsupported(
                "group_size",
                "expected a positive number of columns, or -1 for one group per row",
            )),
        };
        match method.as_deref() {
            Some("gptq") => {
                let bits = match int("bits") {
                    Some(b @ (4 | 8)) => b as u32,
                    _ => return Err(unsupported(
                        "bits",
                        "corvid loads 4- and 8-bit GPTQ (2- and 3-bit layouts are not supported)",
                    )),
                };
                if field("is_marlin_format").and_then(Value::as_bool) == Some(true) {
                    return Err(unsupported(
                        "is_marlin_format",
                        "Marlin-repacked weights are a GPU kernel's layout; load the plain GPTQ checkpoint",
                    ));
                }
                let zeros_minus_one = match field("checkpoint_format").and_then(Value::as_str) {
                    None | Some("gptq") => true,
                    Some("gptq_v2") => false,
                    Some(_) => {
                        return Err(unsupported(
                            "checkpoint_format",
                            "corvid unpacks \"gptq\" and \"gptq_v2\" (not Marlin, BitBLAS or other kernel layouts)",
                        ))
                    }
                };
                Ok(Self::Gptq {
                    bits,
                    group_size: group_size()?,
                    zeros_minus_one,
                })
            }
            Some("awq") => {
                if int("bits") != Some(4) {
                    return Err(unsupported("bits", "AWQ checkpoints are 4-bit"));
                }
                let version = field("version").and_then(Value::as_str).unwrap_or("gemm");
                if !version.eq_ignore_ascii_case("gemm") {
                    return Err(unsupported(
                        "version",
                        "corvid unpacks AutoAWQ's GEMM packing (not GEMV, GEMV_fast, Marlin or IPEX)",
                    ));
                }
                if field("zero_point").and_then(Value::as_bool) == Some(false) {
                    return Err(unsupported(
                        "zero_point",
                        "corvid unpacks AWQ with zero points (the default)",
                    ));
                }
                let group_size = group_size()?.ok_or_else(|| {
                    unsupported(
                        "group_size",
                        "AWQ's GEMM packing needs a positive group size",
                    )
                })?;
                Ok(Self::AwqGemm { group_size })
            }
            _ => Err(unsupported(
                "quant_method",
                "corvid loads \"gptq\" and \"awq\" checkpoints",
            )),
        }
    }
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| ModelError::Format {
            file: path.to_path_buf(),
            msg: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::CheckpointQuant;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<CheckpointQuant, String> {
        CheckpointQuant::from_json(&v, "config.json")
    }

    #[test]
    fn gptq_and_awq_configs_parse() {
        assert_eq!(
            parse(
                json!({"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": true,
                         "sym": false})
            ),
            Ok(CheckpointQuant::Gptq {
                bits: 4,
                group_size: Some(128),
                zeros_minus_one: true
            })
        );
        assert_eq!(
            parse(json!({"quant_method": "gptq", "bits": 8, "group_size": -1,
                         "checkpoint_format": "gptq_v2"})),
            Ok(CheckpointQuant::Gptq {
                bits: 8,
                group_size: None,
                zeros_minus_one: false
            })
        );
        assert_eq!(
            parse(
                json!({"quant_method": "awq", "bits": 4, "group_size": 64, "version": "GEMM",
                         "zero_point": true})
            ),
            Ok(CheckpointQuant::AwqGemm { group_size: 64 })
        );
        assert_eq!(
            CheckpointQuant::from_json(
                &json!({"bits": 4, "group_size": 32}),
                "quantize_config.json"
            ),
            Ok(CheckpointQuant::Gptq {
                bits: 4,
                group_size: Some(32),
                zeros_minus_one: true
            })
        );
    }

    #[test]
    fn unsupported_variants_name_the_field_and_value() {
        let cases = [
            (
                json!({"quant_method": "gptq", "bits": 3, "group_size": 128}),
                "quantization_config.bits = 3",
            ),
            (
                json!({"quant_method": "gptq", "bits": 2, "group_size": 128}),
                "quantization_config.bits = 2",
            ),
            (
                json!({"quant_method": "gptq", "bits": 4, "group_size": 128, "checkpoint_format": "marlin"}),
                "quantization_config.checkpoint_format = \"marlin\"",
            ),
            (
                json!({"quant_method": "gptq", "bits": 4, "group_size": 128, "is_marlin_format": true}),
                "quantization_config.is_marlin_format = true",
            ),
            (
                json!({"quant_method": "gptq", "bits": 4, "group_size": 0}),
                "quantization_config.group_size = 0",
            ),
            (
                json!({"quant_method": "gptq", "bits": 4}),
                "quantization_config.group_size = absent",
            ),
            (
                json!({"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemv"}),
                "quantization_config.version = \"gemv\"",
            ),
            (
                json!({"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": false}),
                "quantization_config.zero_point = false",
            ),
            (
                json!({"quant_method": "awq", "bits": 8, "group_size": 128}),
                "quantization_config.bits = 8",
            ),
            (
                json!({"quant_method": "bitsandbytes", "group_size": 64}),
                "quantization_config.quant_method = \"bitsandbytes\"",
            ),
        ];
        for (config, want) in cases {
            let err = parse(config.clone()).unwrap_err();
            assert!(err.starts_with(want), "{config}: {err}");
        }
    }
}
