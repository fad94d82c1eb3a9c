//! An incremental Server-Sent-Events parser: bytes in, complete `data:` payloads out.

/// Accumulates stream bytes and yields each event's data once the event is complete.
#[derive(Default)]
pub struct SseParser {
    buf: Vec<u8>,
}

/// Longest event accepted; a server sending more without a blank line is broken.
pub const MAX_EVENT_BYTES: usize = 16 << 20;

impl SseParser {
    /// A parser with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the data of every event completed by them (multi-line data
    /// joined with `\n`; events without data, comments and other fields are skipped).
    /// Errs when an event grows past [`MAX_EVENT_BYTES`].
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<String>, String> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some((end, sep)) = find_event_end(&self.buf) {
            let raw: Vec<u8> = self.buf.drain(..end + sep).collect();
            let text = String::from_utf8_lossy(&raw[..end]);
            let data: Vec<&str> = text
                .lines()
                .filter_map(|l| l.trim_end_matches('\r').strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                events.push(data.join("\n"));
            }
        }
        if self.buf.len() > MAX_EVENT_BYTES {
            return Err("server-sent event too large".into());
        }
        Ok(events)
    }

    /// Bytes of an unfinished event still buffered.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Position of the first blank line ending an event, and the separator's length.
fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' && buf[i + 1] == b'\n' {
            return Some((i, 2));
        }
        if buf[i] == b'\n' && buf[i + 1] == b'\r' && buf.get(i + 2) == Some(&b'\n') {
            return Some((i, 3));
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_events_across_chunks() {
        let mut p = SseParser::new();
        assert!(p.push(b"data: {\"a\"").unwrap().is_empty());
        assert_eq!(
            p.push(b":1}\n\ndata: [DONE]\n\n").unwrap(),
            vec!["{\"a\":1}", "[DONE]"]
        );
        assert_eq!(p.pending(), 0);
    }

    #[test]
    fn handles_crlf_and_comments() {
        let mut p = SseParser::new();
        let ev = p.push(b": keep-alive\r\n\r\ndata:x\r\n\r\n").unwrap();
        assert_eq!(ev, vec!["x"]);
    }
}
