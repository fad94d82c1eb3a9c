//! `corvid._corvid`, the native half of the `corvid` Python package: the engine behind
//! `corvid.LLM` ([`engine::Engine`]), the check behind `corvid.SamplingParams`
//! ([`sampling`]), and the `corvid` command line behind the package's console script.
//! The Python half (`python/corvid/`) gives these vLLM's names and shapes.

mod collect;
mod engine;
mod errors;
mod sampling;

use pyo3::prelude::*;

/// The same allocator as the `corvid` binary (see its `main.rs`: transparent huge pages
/// under the weights and KV pool, no per-step mapping of large buffers), so the engine
/// runs as fast from Python as from the command line.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs the `corvid` command line (`argv`, program name first) in this process and
/// returns its exit code: the console script is the native binary's own code, not a
/// second copy of the engine. `corvid serve`'s chat-template workers run as
/// `python -m corvid template-worker` with this interpreter.
#[pyfunction]
fn run_cli(py: Python<'_>, argv: Vec<String>) -> PyResult<i32> {
    let python: std::path::PathBuf = py.import("sys")?.getattr("executable")?.extract()?;
    let this = corvid_model::chat_template::isolated::WorkerCommand {
        program: python,
        args: vec!["-m".into(), "corvid".into()],
    };
    Ok(py.detach(|| corvid::run(argv, this)))
}

/// The installed default model's path (what `model="default"` loads).
#[pyfunction]
fn default_model_path() -> std::path::PathBuf {
    corvid_model::default_model::default_model_path()
}

#[pymodule]
fn _corvid(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<engine::Engine>()?;
    m.add_function(wrap_pyfunction!(sampling::check_sampling_params, m)?)?;
    m.add_function(wrap_pyfunction!(engine::engine_defaults, m)?)?;
    m.add_function(wrap_pyfunction!(default_model_path, m)?)?;
    m.add_function(wrap_pyfunction!(run_cli, m)?)?;
    m.add(
        "DEFAULT_MODEL_NAME",
        corvid_model::default_model::DEFAULT_MODEL_NAME,
    )?;
    Ok(())
}
