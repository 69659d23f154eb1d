//! An encoded server frame, held as the complete WebSocket frame so that one encoding serves
//! every session that receives it.

use bytes::Bytes;

/// An encoded server frame, cheap to clone (reference counted), held as the complete WebSocket
/// text frame: server frames are not masked, so these bytes are the same for every session and
/// go to each connection's socket as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    wire: Bytes,
    header: usize,
}

impl Frame {
    /// The JSON text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.wire[self.header..]).expect("built from a String")
    }

    /// Length of the JSON text.
    pub fn len(&self) -> usize {
        self.wire.len() - self.header
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole frame as written to the connection: header (FIN, text opcode, length), then
    /// the text.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }
}

impl From<String> for Frame {
    fn from(text: String) -> Self {
        let len = text.len();
        let mut wire = Vec::with_capacity(len + 10);
        wire.push(0x81); // FIN, opcode 1 (text)
        match len {
            0..=125 => wire.push(len as u8),
            126..=0xFFFF => {
                wire.push(126);
                wire.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                wire.push(127);
                wire.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        let header = wire.len();
        wire.extend_from_slice(text.as_bytes());
        Frame {
            wire: Bytes::from(wire),
            header,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_on_the_wire_is_what_tungstenite_would_write() {
        use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
        for len in [0, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
            let text = "x".repeat(len);
            let frame = Frame::from(text.clone());
            let mut expected = Vec::new();
            tokio_tungstenite::tungstenite::protocol::frame::Frame::message(
                text.clone(),
                OpCode::Data(Data::Text),
                true,
            )
            .format(&mut expected)
            .unwrap();
            assert_eq!(frame.wire(), expected.as_slice(), "length {len}");
            assert_eq!(frame.as_str(), text);
            assert_eq!(frame.len(), len);
        }
    }
}
