//! GPT-2's byte-level alphabet: every byte maps to one printable Unicode char, so that
//! byte-level BPE vocabularies can be stored as text (`Ġ` is the space byte, `Ċ` is `\n`).

use std::sync::OnceLock;

/// Byte → char and char → byte tables.
struct Tables {
    to_char: [char; 256],
    to_byte: std::collections::HashMap<char, u8>,
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let mut to_char = ['\0'; 256];
        let mut n = 0u32;
        for b in 0..=255u8 {
            let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
            to_char[b as usize] = if printable {
                char::from(b)
            } else {
                let c = char::from_u32(256 + n).unwrap_or('\u{FFFD}');
                n += 1;
                c
            };
        }
        let to_byte = to_char
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        Tables { to_char, to_byte }
    })
}

/// The char that stands for `b` in byte-level vocabularies.
pub fn byte_to_char(b: u8) -> char {
    tables().to_char[b as usize]
}

/// Encodes raw bytes as a byte-level string.
pub fn encode(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| byte_to_char(b)).collect()
}

/// Decodes a byte-level token text back to raw bytes; chars outside the alphabet
/// (there should be none in a sane vocabulary) are kept as their UTF-8.
pub fn decode(text: &str) -> Vec<u8> {
    let t = tables();
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match t.to_byte.get(&c) {
            Some(&b) => out.push(b),
            None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_all_bytes() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(super::decode(&super::encode(&all)), all);
        assert_eq!(super::byte_to_char(b' '), 'Ġ');
        assert_eq!(super::byte_to_char(b'\n'), 'Ċ');
    }
}
