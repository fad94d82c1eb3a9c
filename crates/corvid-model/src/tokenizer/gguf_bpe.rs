//! Byte-level BPE (`tokenizer.ggml.model = gpt2`): regex pre-tokenization, GPT-2 byte
//! alphabet, then merges applied lowest rank first (leftmost on ties), as llama.cpp does.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::byte_level;
use super::pretokenize::PreTokenizer;
use super::vocab::Vocab;
use crate::Result;

/// The BPE model of a GGUF vocabulary.
#[derive(Debug)]
pub struct Bpe {
    pre: PreTokenizer,
    /// `(left, right)` → `(rank, merged)`.
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// The token of each single byte (its byte-level char).
    byte_ids: [Option<u32>; 256],
}

/// One symbol of a word being merged: a token spanning some bytes, in a linked list.
#[derive(Clone, Copy)]
struct Symbol {
    id: Option<u32>,
    prev: Option<usize>,
    next: Option<usize>,
    alive: bool,
}

impl Bpe {
    /// Builds the merge table from `tokenizer.ggml.merges` (`"left right"` strings, rank order).
    pub fn new(vocab: &Vocab, merges: &[&str], pre: PreTokenizer) -> Self {
        let mut table = HashMap::with_capacity(merges.len());
        for (rank, m) in merges.iter().enumerate() {
            // split at the first space after the first char (a merge may start with ' ')
            let skip = m.chars().next().map_or(0, char::len_utf8);
            let Some(pos) = m[skip..].find(' ').map(|p| p + skip) else {
                continue;
            };
            let (l, r) = (&m[..pos], &m[pos + 1..]);
            let ids = (
                vocab.token_to_id.get(l),
                vocab.token_to_id.get(r),
                vocab.token_to_id.get(&format!("{l}{r}")),
            );
            if let (Some(&l), Some(&r), Some(&lr)) = ids {
                table.entry((l, r)).or_insert((rank as u32, lr));
            }
        }
        let byte_ids = std::array::from_fn(|b| {
            let c = byte_level::byte_to_char(b as u8);
            vocab
                .token_to_id
                .get(c.encode_utf8(&mut [0; 4]) as &str)
                .copied()
        });
        Self {
            pre,
            merges: table,
            byte_ids,
        }
    }

    /// Whether a BOS is added by default for this pre-tokenizer type.
    pub fn default_add_bos(&self) -> bool {
        self.pre.default_add_bos
    }

    /// Tokenizes plain text (no special tokens) and appends the ids to `out`.
    pub fn encode(&self, vocab: &Vocab, text: &str, out: &mut Vec<u32>) -> Result<()> {
        for word in self.pre.split(text)? {
            if self.pre.ignore_merges {
                if let Some(&id) = vocab.token_to_id.get(&byte_level::encode(word.as_bytes())) {
                    out.push(id);
                    continue;
                }
            }
            self.encode_word(word.as_bytes(), out);
        }
        Ok(())
    }

    fn encode_word(&self, word: &[u8], out: &mut Vec<u32>) {
        let n = word.len();
        let mut syms: Vec<Symbol> = word
            .iter()
            .enumerate()
            .map(|(i, &b)| Symbol {
                id: self.byte_ids[b as usize],
                prev: i.checked_sub(1),
                next: (i + 1 < n).then_some(i + 1),
                alive: true,
            })
            .collect();
        // (rank, left index, left id, right id)
        let mut heap = BinaryHeap::new();
        let push = |heap: &mut BinaryHeap<_>, syms: &[Symbol], l: usize| {
            let Some(r) = syms[l].next else { return };
            if let (Some(a), Some(b)) = (syms[l].id, syms[r].id) {
                if let Some(&(rank, _)) = self.merges.get(&(a, b)) {
                    heap.push(Reverse((rank, l, a, b)));
                }
            }
        };
        for i in 0..n.saturating_sub(1) {
            push(&mut heap, &syms, i);
        }
        while let Some(Reverse((_, l, a, b))) = heap.pop() {
            let Some(r) = syms[l].next else { continue };
            if !syms[l].alive || syms[l].id != Some(a) || syms[r].id != Some(b) {
                continue; // stale
            }
            let merged = self.merges[&(a, b)].1;
            syms[l].id = Some(merged);
            syms[l].next = syms[r].next;
            syms[r].alive = false;
            if let Some(nn) = syms[r].next {
                syms[nn].prev = Some(l);
            }
            if let Some(p) = syms[l].prev {
                push(&mut heap, &syms, p);
            }
            push(&mut heap, &syms, l);
        }
        out.extend(syms.iter().filter(|s| s.alive).filter_map(|s| s.id));
    }
}
