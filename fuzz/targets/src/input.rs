//! Fuzz input as a file: the model-file parsers take paths (they memory-map), so each
//! input is written to a scratch file of this process before it is opened.

use std::path::PathBuf;

/// A scratch folder of this process (one per fuzzer instance: AFL runs one per core).
pub fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("corvid-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    dir
}

/// Writes `data` to `name` in [`scratch_dir`] and returns its path.
pub fn write(name: &str, data: &[u8]) -> PathBuf {
    let path = scratch_dir().join(name);
    std::fs::write(&path, data).expect("temp dir is writable");
    path
}
