//! GGUF files: the header, metadata and tensor table parser, then what a load reads from
//! the metadata (the tokenizer and its chat template).

use corvid_model::gguf::GgufFile;

/// Parses `data` as a GGUF file; when it parses, builds its tokenizer as a load would.
pub fn run(data: &[u8]) {
    let path = super::input::write("model.gguf", data);
    if let Ok(file) = GgufFile::open(&path) {
        for info in file.tensors.values() {
            assert_eq!(file.tensor_data(info).len(), info.size, "{}", info.name);
        }
        let _ = corvid_model::load_tokenizer(&path);
    }
}
