//! Prompts built to an exact token count: seeded word text, counted with the model's
//! tokenizer (through [`TokenCounter`], so tests can use a fake one).

use rand::rngs::StdRng;
use rand::Rng;

/// What the prompt builder needs from a tokenizer.
pub trait TokenCounter {
    /// Token ids of `text`, without special tokens.
    fn encode(&self, text: &str) -> Vec<u32>;
    /// Text of `ids`.
    fn decode(&self, ids: &[u32]) -> String;
}

impl TokenCounter for corvid_model::tokenizer::Tokenizer {
    fn encode(&self, text: &str) -> Vec<u32> {
        corvid_model::tokenizer::Tokenizer::encode(self, text, false, false).unwrap_or_default()
    }
    fn decode(&self, ids: &[u32]) -> String {
        corvid_model::tokenizer::Tokenizer::decode(self, ids, true).unwrap_or_default()
    }
}

/// A prompt: its text and its token ids (exactly the requested count).
#[derive(Clone, Debug, PartialEq)]
pub struct Prompt {
    /// The text sent to servers.
    pub text: String,
    /// Its tokens, as sent to the offline engine.
    pub token_ids: Vec<u32>,
}

/// Common English words the prompts are made of.
pub const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "you",
    "that",
    "it",
    "he",
    "was",
    "for",
    "on",
    "are",
    "as",
    "with",
    "his",
    "they",
    "at",
    "be",
    "this",
    "have",
    "from",
    "or",
    "one",
    "had",
    "by",
    "word",
    "but",
    "not",
    "what",
    "all",
    "were",
    "we",
    "when",
    "your",
    "can",
    "said",
    "there",
    "use",
    "an",
    "each",
    "which",
    "she",
    "do",
    "how",
    "their",
    "if",
    "will",
    "up",
    "other",
    "about",
    "out",
    "many",
    "then",
    "them",
    "these",
    "so",
    "some",
    "her",
    "would",
    "make",
    "like",
    "him",
    "into",
    "time",
    "has",
    "look",
    "two",
    "more",
    "write",
    "go",
    "see",
    "number",
    "no",
    "way",
    "could",
    "people",
    "my",
    "than",
    "first",
    "water",
    "been",
    "call",
    "who",
    "oil",
    "its",
    "now",
    "find",
    "long",
    "down",
    "day",
    "did",
    "get",
    "come",
    "made",
    "may",
    "part",
    "over",
    "new",
    "sound",
    "take",
    "only",
    "little",
    "work",
    "know",
    "place",
    "year",
    "live",
    "me",
    "back",
    "give",
    "most",
    "very",
    "after",
    "thing",
    "our",
    "just",
    "name",
    "good",
    "sentence",
    "man",
    "think",
    "say",
    "great",
    "where",
    "help",
    "through",
    "much",
    "before",
    "line",
    "right",
    "too",
    "mean",
    "old",
    "any",
    "same",
    "tell",
    "boy",
    "follow",
    "came",
    "want",
    "show",
    "also",
    "around",
    "form",
    "three",
    "small",
    "set",
    "put",
    "end",
    "does",
    "another",
    "well",
    "large",
    "must",
    "big",
    "even",
    "such",
    "because",
    "turn",
    "here",
    "why",
    "ask",
    "went",
    "men",
    "read",
    "need",
    "land",
    "different",
    "home",
    "us",
    "move",
    "try",
    "kind",
    "hand",
    "picture",
    "again",
    "change",
    "off",
    "play",
    "spell",
    "air",
    "away",
    "animal",
    "house",
    "point",
    "page",
    "letter",
    "mother",
    "answer",
    "found",
    "study",
    "still",
    "learn",
    "should",
    "America",
    "world",
];

/// Builds prompts of exact token counts, reusing one tokenizer.
pub struct PromptBuilder<'t> {
    tok: &'t dyn TokenCounter,
}

impl<'t> PromptBuilder<'t> {
    /// A builder counting with `tok`.
    pub fn new(tok: &'t dyn TokenCounter) -> Self {
        Self { tok }
    }

    /// A prompt of exactly `target` tokens of random words drawn from `rng`. The text is
    /// the decoded tokens; re-encoding it gives `target` tokens (±1 at most, at a word
    /// boundary the tokenizer may merge differently).
    pub fn build(&mut self, rng: &mut StdRng, target: usize) -> Prompt {
        let mut text = String::new();
        let mut ids = Vec::new();
        while ids.len() < target {
            let missing = target - ids.len();
            for _ in 0..missing + 4 {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(WORDS[rng.gen_range(0..WORDS.len())]);
            }
            ids = self.tok.encode(&text);
        }
        ids.truncate(target);
        Prompt {
            text: self.tok.decode(&ids),
            token_ids: ids,
        }
    }
}
