//! `GET /v1/models` and `GET /version` (vLLM's shapes).

use serde::{Deserialize, Serialize};

/// One entry of `GET /v1/models`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    /// The served model name.
    pub id: String,
    /// Always `model`.
    pub object: String,
    /// Unix seconds when the server started.
    pub created: u64,
    /// Always `corvid`.
    pub owned_by: String,
    /// The model path the server loaded.
    pub root: String,
    /// Always null (no fine-tune parents).
    pub parent: Option<String>,
    /// Context length.
    pub max_model_len: usize,
}

/// `GET /v1/models`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelList {
    /// Always `list`.
    pub object: String,
    /// The served models (one).
    pub data: Vec<ModelCard>,
}

/// `GET /version`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionResponse {
    /// corvid's version.
    pub version: String,
}
