//! The render worker's pipe protocol: frames of a little-endian `u32` length and that many
//! bytes of JSON. The first frame to the worker is the [`TemplateSpec`]; then each
//! [`RenderRequest`] gets one [`Reply`].

use std::io::{self, Read, Write};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::chat_template::ChatMessage;
#[cfg(doc)]
use crate::chat_template::TemplateSpec;

/// Largest frame either side accepts: the output cap and request bodies are far smaller.
const MAX_FRAME_BYTES: usize = 1 << 30;

/// One rendering to do.
#[derive(Debug, Serialize, Deserialize)]
pub struct RenderRequest {
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Append the assistant header.
    pub add_generation_prompt: bool,
}

/// The rendered text, or the template's error message.
pub type Reply = Result<String, String>;

/// Writes `value` as one frame and flushes.
pub fn send<T: Serialize>(out: &mut impl Write, value: &T) -> io::Result<()> {
    let body = serde_json::to_vec(value)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&n| n as usize <= MAX_FRAME_BYTES)
        .ok_or_else(|| io::Error::other(format!("frame of {} bytes", body.len())))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(&body)?;
    out.flush()
}

/// Reads one frame; `None` at a clean end of the stream (the other side closed it).
pub fn receive<T: DeserializeOwned>(input: &mut impl Read) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(io::Error::other(format!("frame of {len} bytes")));
    }
    let mut body = vec![0u8; len];
    input.read_exact(&mut body)?;
    Ok(Some(serde_json::from_slice(&body)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_end_cleanly() {
        let mut buf = Vec::new();
        send(&mut buf, &Reply::Ok("héllo".into())).unwrap();
        send(&mut buf, &Reply::Err("bad".into())).unwrap();
        let mut r = &buf[..];
        assert_eq!(receive::<Reply>(&mut r).unwrap(), Some(Ok("héllo".into())));
        assert_eq!(receive::<Reply>(&mut r).unwrap(), Some(Err("bad".into())));
        assert_eq!(receive::<Reply>(&mut r).unwrap(), None);
    }

    #[test]
    fn an_oversized_or_cut_frame_is_an_error() {
        let mut r = &u32::MAX.to_le_bytes()[..];
        assert!(receive::<Reply>(&mut r).is_err());
        let mut r = &[5u8, 0, 0, 0, b'"'][..];
        assert!(receive::<Reply>(&mut r).is_err());
    }
}
