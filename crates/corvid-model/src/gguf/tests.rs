//! Hostile GGUF files, made byte by byte at test time: each must be a clear error naming
//! the problem — never an allocation sized by the attacker, a panic or a read outside
//! the file.

use super::*;

/// Builds a GGUF v3 file in memory.
#[derive(Default)]
struct Builder {
    kv: Vec<u8>,
    n_kv: u64,
    tensors: Vec<u8>,
    n_tensors: u64,
    /// Overrides the tensor count written in the header.
    claimed_tensors: Option<u64>,
    data: Vec<u8>,
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl Builder {
    /// A metadata entry whose value bytes (after the type) are `value`.
    fn kv(mut self, key: &str, ty: u32, value: &[u8]) -> Self {
        string(&mut self.kv, key);
        self.kv.extend_from_slice(&ty.to_le_bytes());
        self.kv.extend_from_slice(value);
        self.n_kv += 1;
        self
    }

    /// An f32 tensor info with these dims at data offset `rel`.
    fn tensor(mut self, name: &str, dims: &[u64], rel: u64) -> Self {
        string(&mut self.tensors, name);
        self.tensors
            .extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            self.tensors.extend_from_slice(&d.to_le_bytes());
        }
        self.tensors.extend_from_slice(&0u32.to_le_bytes());
        self.tensors.extend_from_slice(&rel.to_le_bytes());
        self.n_tensors += 1;
        self
    }

    fn data(mut self, bytes: usize) -> Self {
        self.data = vec![0; bytes];
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&3u32.to_le_bytes());
        let n_tensors = self.claimed_tensors.unwrap_or(self.n_tensors);
        out.extend_from_slice(&n_tensors.to_le_bytes());
        out.extend_from_slice(&self.n_kv.to_le_bytes());
        out.extend_from_slice(&self.kv);
        out.extend_from_slice(&self.tensors);
        out.resize(out.len().div_ceil(32) * 32, 0);
        out.extend_from_slice(&self.data);
        out
    }

    /// Writes the file and opens it.
    fn open(&self, name: &str) -> Result<GgufFile> {
        let path =
            std::env::temp_dir().join(format!("corvid-hostile-{}-{name}.gguf", std::process::id()));
        std::fs::write(&path, self.bytes()).unwrap();
        let r = GgufFile::open(&path);
        std::fs::remove_file(&path).unwrap();
        r
    }
}

fn error_of(r: Result<GgufFile>) -> String {
    match r {
        Ok(_) => panic!("a hostile file was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_well_formed_file_opens() {
    let f = Builder::default()
        .kv("general.architecture", 8, &{
            let mut v = Vec::new();
            string(&mut v, "llama");
            v
        })
        .tensor("a", &[4, 2], 0)
        .tensor("b", &[8], 32)
        .data(64)
        .open("good")
        .unwrap();
    assert_eq!(f.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(f.tensor("b").unwrap().size, 32);
}

/// An array header claiming 2^27 u64 elements (1 GiB) in a file of a few bytes.
#[test]
fn a_huge_claimed_array_is_an_error_before_any_allocation() {
    let mut v = 10u32.to_le_bytes().to_vec();
    v.extend_from_slice(&(1u64 << 27).to_le_bytes());
    let e = error_of(Builder::default().kv("huge", 9, &v).open("huge-array"));
    assert!(e.contains("cannot fit"), "{e}");
}

/// A string array whose count would pass a one-byte-per-element check.
#[test]
fn an_array_of_strings_is_sized_by_its_smallest_element() {
    let mut v = 8u32.to_le_bytes().to_vec();
    v.extend_from_slice(&1000u64.to_le_bytes());
    v.extend_from_slice(&[0; 2000]);
    let e = error_of(Builder::default().kv("strings", 9, &v).open("string-array"));
    assert!(e.contains("cannot fit"), "{e}");
}

/// Arrays that fit the file but together exceed the element budget.
#[test]
fn the_metadata_arrays_have_an_element_budget() {
    let n = MAX_ARRAY_ELEMENTS / 2 + 1;
    let mut v = 0u32.to_le_bytes().to_vec();
    v.extend_from_slice(&n.to_le_bytes());
    v.resize(v.len() + n as usize, 0);
    let e = error_of(
        Builder::default()
            .kv("a", 9, &v)
            .kv("b", 9, &v)
            .open("budget"),
    );
    assert!(e.contains("elements in all"), "{e}");
}

#[test]
fn a_huge_claimed_tensor_count_is_an_error_before_any_allocation() {
    let mut b = Builder::default().tensor("a", &[8], 0).data(32);
    b.claimed_tensors = Some(1 << 27);
    let e = error_of(b.open("tensor-count"));
    assert!(e.contains("cannot fit"), "{e}");
}

#[test]
fn absurd_tensor_dims_are_errors() {
    for (i, dims) in [
        &[1u64 << 40, 1 << 40][..],
        &[u64::MAX],
        &[1 << 62, 4],
        &[1 << 30, 1 << 10],
    ]
    .into_iter()
    .enumerate()
    {
        let e = error_of(
            Builder::default()
                .tensor("w", dims, 0)
                .data(64)
                .open(&format!("dims-{i}")),
        );
        assert!(e.contains('w'), "{dims:?}: {e}");
    }
}

/// Tensor data ranges that overlap, lie beyond the file or are misaligned.
#[test]
fn bad_tensor_ranges_are_errors() {
    let cases = [
        (
            "overlaps",
            Builder::default()
                .tensor("a", &[16], 0)
                .tensor("b", &[16], 32),
        ),
        (
            "beyond the end",
            Builder::default().tensor("a", &[16], 1 << 40),
        ),
        ("aligned", Builder::default().tensor("a", &[4], 4)),
    ];
    for (i, (want, b)) in cases.into_iter().enumerate() {
        let e = error_of(b.data(128).open(&format!("range-{i}")));
        assert!(e.contains(want), "{want}: {e}");
    }
}

/// Every prefix of a valid file (a truncated download) is an error, never a panic.
#[test]
fn every_truncation_is_an_error() {
    let bytes = Builder::default()
        .kv("k", 4, &7u32.to_le_bytes())
        .tensor("a", &[8], 0)
        .data(32)
        .bytes();
    let path = std::env::temp_dir().join(format!("corvid-truncated-{}.gguf", std::process::id()));
    for len in 0..bytes.len() {
        std::fs::write(&path, &bytes[..len]).unwrap();
        assert!(GgufFile::open(&path).is_err(), "prefix of {len} bytes");
    }
    std::fs::remove_file(&path).unwrap();
}
