//! Splitting text on special tokens before the BPE/SentencePiece model sees it
//! (llama.cpp's `tokenizer_st_partition`).

/// A piece of input: plain text for the model, or an already-known token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fragment<'t> {
    /// Text still to be tokenized.
    Text(&'t str),
    /// A special token found in the text.
    Token(u32),
}

/// The special tokens of a vocabulary, longest first.
#[derive(Debug, Default)]
pub struct SpecialMatcher {
    /// `(text, id, only_with_parse_special)`.
    tokens: Vec<(String, u32, bool)>,
}

impl SpecialMatcher {
    /// `tokens` as `(text, id, only_with_parse_special)`, sorted longest first.
    pub fn new(tokens: Vec<(String, u32, bool)>) -> Self {
        Self { tokens }
    }

    /// Cuts `text` at every occurrence of a special token, trying longer tokens first.
    /// Control tokens are only matched when `parse_special`; user-defined ones always.
    pub fn partition<'t>(&self, text: &'t str, parse_special: bool) -> Vec<Fragment<'t>> {
        let mut frags = vec![Fragment::Text(text)];
        for (tok, id, parse_only) in &self.tokens {
            if (*parse_only && !parse_special) || tok.is_empty() || !text.contains(tok.as_str()) {
                continue;
            }
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                let Fragment::Text(mut rest) = f else {
                    next.push(f);
                    continue;
                };
                while let Some(pos) = rest.find(tok.as_str()) {
                    if pos > 0 {
                        next.push(Fragment::Text(&rest[..pos]));
                    }
                    next.push(Fragment::Token(*id));
                    rest = &rest[pos + tok.len()..];
                }
                if !rest.is_empty() {
                    next.push(Fragment::Text(rest));
                }
            }
            frags = next;
        }
        frags
    }
}

#[cfg(test)]
mod tests {
    use super::{Fragment, SpecialMatcher};

    #[test]
    fn splits_longest_first_and_respects_parse_special() {
        let m = SpecialMatcher::new(vec![
            ("<|im_start|>".into(), 1, true),
            ("<tool>".into(), 7, false),
            ("<|".into(), 2, true),
        ]);
        assert_eq!(
            m.partition("a<|im_start|>b<tool>", true),
            [
                Fragment::Text("a"),
                Fragment::Token(1),
                Fragment::Text("b"),
                Fragment::Token(7)
            ]
        );
        assert_eq!(
            m.partition("a<|im_start|>b<tool>", false),
            [Fragment::Text("a<|im_start|>b"), Fragment::Token(7)]
        );
    }
}
