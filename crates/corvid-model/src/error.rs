//! The model runtime's error type.

use std::path::{Path, PathBuf};

/// Everything that can go wrong loading or running a model, with the file and tensor named.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file could not be opened or read.
    #[error("{}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a valid model file (bad magic, truncated header, bad metadata).
    #[error("{}: {msg}", file.display())]
    Format {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// One tensor is malformed (unknown type, wrong shape, data out of bounds).
    #[error("{}: tensor `{tensor}`: {msg}", file.display())]
    BadTensor {
        /// The file.
        file: PathBuf,
        /// The tensor.
        tensor: String,
        /// What is wrong.
        msg: String,
    },
    /// A tensor the architecture needs is not in the file.
    #[error("{}: missing tensor `{tensor}`", file.display())]
    MissingTensor {
        /// The file.
        file: PathBuf,
        /// The tensor.
        tensor: String,
    },
    /// The model uses something corvid does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Tokenizer or chat template failure.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Bad input to the model (token out of range, too long).
    #[error("{0}")]
    Input(String),
}

impl ModelError {
    /// Wraps an I/O error with the file it happened on.
    pub fn io(file: &Path, source: std::io::Error) -> Self {
        Self::Io {
            file: file.to_path_buf(),
            source,
        }
    }
}

/// Result alias for the model runtime.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
