//! Streaming detokenization: one decoder per request turns generated ids into text
//! without ever emitting half a UTF-8 character.

use std::sync::Arc;

use super::Tokenizer;

/// Streaming detokenizer. The concatenation of everything [`push`](Self::push) and
/// [`flush`](Self::flush) return equals `tokenizer.decode(all_ids, skip_special)`.
#[derive(Debug)]
pub struct IncrementalDecoder {
    tokenizer: Arc<Tokenizer>,
    skip_special: bool,
    /// Bytes not yet returned: at most an incomplete UTF-8 sequence.
    pending: Vec<u8>,
    /// No token decoded yet (the SentencePiece leading space is still to be dropped).
    at_start: bool,
}

impl IncrementalDecoder {
    /// A decoder for one stream of generated tokens.
    pub fn new(tokenizer: Arc<Tokenizer>, skip_special: bool) -> Self {
        Self {
            tokenizer,
            skip_special,
            pending: Vec::new(),
            at_start: true,
        }
    }

    /// Feeds one generated token and returns the newly completed text; bytes of a
    /// character split across tokens (byte-fallback, byte-level BPE) are held back.
    /// An out-of-range id contributes nothing.
    pub fn push(&mut self, id: u32) -> String {
        let Ok(Some(piece)) = self
            .tokenizer
            .piece_for_decode(id, self.skip_special, self.at_start)
        else {
            return String::new();
        };
        self.at_start = false;
        self.pending.extend_from_slice(piece);
        self.take_complete()
    }

    /// Returns whatever remains at the end of the stream (invalid bytes become U+FFFD).
    pub fn flush(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }

    /// Takes the longest prefix of `pending` that cannot change with more bytes:
    /// valid chars, and U+FFFD for byte sequences that are already invalid.
    fn take_complete(&mut self) -> String {
        let mut out = String::new();
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(s) => {
                    out.push_str(s);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    let good = &self.pending[start..start + valid];
                    out.push_str(std::str::from_utf8(good).unwrap_or_default());
                    start += valid;
                    match e.error_len() {
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            start += n;
                        }
                        None => break, // incomplete: wait for more bytes
                    }
                }
            }
        }
        self.pending.drain(..start);
        out
    }
}
