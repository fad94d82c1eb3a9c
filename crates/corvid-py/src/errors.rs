//! The engine's typed errors as the Python exceptions `corvid` documents: a bad value is
//! a `ValueError` naming its field, a missing file a `FileNotFoundError`, an engine that
//! stopped a `RuntimeError`.

use corvid_engine::{EngineError, InvalidParam};
use corvid_model::ModelError;
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::PyErr;

/// `ValueError` for a refused request value; the message starts with the field's name.
pub fn invalid(p: InvalidParam) -> PyErr {
    PyValueError::new_err(p.to_string())
}

/// `ValueError` for a bad `LLM(...)` argument, named.
pub fn bad_argument(arg: &str, problem: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("{arg}: {problem}"))
}

/// The exception an engine error becomes.
pub fn engine_error(e: EngineError) -> PyErr {
    match e {
        EngineError::InvalidRequest(p) => invalid(p),
        EngineError::PromptTooLong { .. } => PyValueError::new_err(format!("`prompt`: {e}")),
        EngineError::InvalidConfig(m) => PyValueError::new_err(m),
        EngineError::QueueFull | EngineError::Shutdown | EngineError::Dead => {
            PyRuntimeError::new_err(e.to_string())
        }
        EngineError::Load(ModelError::Io { ref source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            PyFileNotFoundError::new_err(e.to_string())
        }
        EngineError::Load(ModelError::Io { .. }) => PyOSError::new_err(e.to_string()),
        EngineError::Load(m) => PyValueError::new_err(format!("cannot load the model: {m}")),
    }
}
