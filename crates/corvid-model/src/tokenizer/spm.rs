//! SentencePiece-style tokenization (`tokenizer.ggml.model = llama`): spaces become `▁`,
//! adjacent pieces merge best score first, and unknown chars fall back to `<0xNN>` bytes.

use std::collections::BinaryHeap;

use super::special::Fragment;
use super::vocab::Vocab;

/// The SentencePiece word-boundary marker.
pub const SPACE: char = '\u{2581}';

/// The SPM model of a GGUF vocabulary.
#[derive(Debug)]
pub struct Spm {
    add_space_prefix: bool,
    byte_ids: [Option<u32>; 256],
}

/// A candidate merge: highest score first, then leftmost.
#[derive(PartialEq)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl Eq for Bigram {}

impl Ord for Bigram {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.score
            .total_cmp(&o.score)
            .then_with(|| o.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

/// A span of the escaped text (`n == 0` once merged away) in a linked list.
struct Symbol {
    start: usize,
    n: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

impl Spm {
    /// `add_space_prefix`: prepend a space to text at the start or after a special token.
    pub fn new(vocab: &Vocab, add_space_prefix: bool) -> Self {
        Self {
            add_space_prefix,
            byte_ids: vocab.byte_fallback_ids(),
        }
    }

    /// Whether decoding drops the space the encoder prepended.
    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }

    /// Tokenizes fragments (text and special tokens), appending ids to `out`.
    pub fn encode(&self, vocab: &Vocab, frags: &[Fragment<'_>], out: &mut Vec<u32>) {
        let mut prev_special = true;
        for f in frags {
            match *f {
                Fragment::Token(id) => {
                    out.push(id);
                    prev_special = true;
                }
                Fragment::Text(t) => {
                    let mut text = String::with_capacity(t.len() + 3);
                    if self.add_space_prefix && prev_special {
                        text.push(SPACE);
                    }
                    text.extend(t.chars().map(|c| if c == ' ' { SPACE } else { c }));
                    self.encode_escaped(vocab, &text, out);
                    prev_special = false;
                }
            }
        }
    }

    fn encode_escaped(&self, vocab: &Vocab, text: &str, out: &mut Vec<u32>) {
        let mut syms: Vec<Symbol> = text
            .char_indices()
            .map(|(start, c)| Symbol {
                start,
                n: c.len_utf8(),
                prev: None,
                next: None,
            })
            .collect();
        let count = syms.len();
        for (i, s) in syms.iter_mut().enumerate() {
            s.prev = i.checked_sub(1);
            s.next = (i + 1 < count).then_some(i + 1);
        }
        let mut heap = BinaryHeap::new();
        let try_add = |heap: &mut BinaryHeap<Bigram>, syms: &[Symbol], l: Option<usize>| {
            let Some(l) = l else { return };
            let Some(r) = syms[l].next else { return };
            let size = syms[l].n + syms[r].n;
            let piece = &text[syms[l].start..syms[l].start + size];
            if let Some(&id) = vocab.token_to_id.get(piece) {
                let score = vocab.scores[id as usize];
                heap.push(Bigram {
                    score,
                    left: l,
                    right: r,
                    size,
                });
            }
        };
        for i in 0..count.saturating_sub(1) {
            try_add(&mut heap, &syms, Some(i));
        }
        while let Some(b) = heap.pop() {
            let (l, r) = (b.left, b.right);
            if syms[l].n == 0 || syms[r].n == 0 || syms[l].n + syms[r].n != b.size {
                continue;
            }
            syms[l].n = b.size;
            syms[r].n = 0;
            syms[l].next = syms[r].next;
            if let Some(nn) = syms[r].next {
                syms[nn].prev = Some(l);
            }
            try_add(&mut heap, &syms, syms[l].prev);
            try_add(&mut heap, &syms, Some(l));
        }
        for s in syms.iter().filter(|s| s.n > 0) {
            let piece = &text[s.start..s.start + s.n];
            match vocab.token_to_id.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    for &b in piece.as_bytes() {
                        if let Some(id) = self.byte_ids[b as usize].or(vocab.unk) {
                            out.push(id);
                        }
                    }
                }
            }
        }
    }
}
