//! An encoded server frame, held as the complete WebSocket frame so that one encoding serves
//! every session that receives it — and, for sessions with permessage-deflate (RFC 7692), one
//! compressed form, made the first time such a session sends the frame.

use std::sync::{Arc, OnceLock};

use flate2::{Compress, Compression, FlushCompress};

/// An encoded server frame, cheap to clone (reference counted), held as the complete WebSocket
/// text frame: server frames are not masked, so these bytes are the same for every session and
/// go to each connection's socket as they are.
#[derive(Debug, Clone)]
pub struct Frame(Arc<Encoded>);

#[derive(Debug)]
struct Encoded {
    /// Header, then the JSON text.
    wire: Vec<u8>,
    header: usize,
    /// The compressed frame, computed once, by the first deflate session that sends the frame;
    /// `None` when compressing does not make it smaller.
    deflated: OnceLock<Option<Vec<u8>>>,
}

impl PartialEq for Frame {
    fn eq(&self, other: &Self) -> bool {
        self.0.wire == other.0.wire
    }
}

impl Eq for Frame {}

impl Frame {
    /// The JSON text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0.wire[self.0.header..]).expect("built from a String")
    }

    /// Length of the JSON text.
    pub fn len(&self) -> usize {
        self.0.wire.len() - self.0.header
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole frame as written to the connection: header (FIN, text opcode, length), then
    /// the text.
    pub fn wire(&self) -> &[u8] {
        &self.0.wire
    }

    /// The payload length of a whole server frame as written (see [`Frame::wire`] and
    /// [`Frame::wire_deflated`]): its length less its header.
    pub fn payload_len(wire: &[u8]) -> usize {
        let header = match wire.get(1).map(|b| b & 0x7F) {
            Some(126) => 4,
            Some(127) => 10,
            _ => 2,
        };
        wire.len().saturating_sub(header)
    }

    /// The frame as written to a session that negotiated permessage-deflate, when its text is at
    /// least `min_bytes` long: the compressed frame if that is smaller, else [`Frame::wire`].
    pub fn wire_deflated(&self, min_bytes: usize) -> &[u8] {
        let encoded = &*self.0;
        if self.len() < min_bytes {
            return &encoded.wire;
        }
        encoded
            .deflated
            .get_or_init(|| deflate_frame(&encoded.wire[encoded.header..], encoded.wire.len()))
            .as_deref()
            .unwrap_or(&encoded.wire)
    }
}

/// Compression level. Measured on ~860-byte JSON `message` frames (`compress_once_costs`,
/// miniz_oxide optimised): level 1 makes them 315 bytes in 12 µs, level 6 307 bytes in 19 µs;
/// 3% smaller is not worth 60% more CPU on the consumer's path.
const LEVEL: u32 = 1;

thread_local! {
    /// A compressor per thread, reset for every frame (a fresh context, as RFC 7692's
    /// `server_no_context_takeover` requires): creating one allocates and clears its tables,
    /// 138 µs against 12 µs for compressing such a frame with a reused one.
    static COMPRESSOR: std::cell::RefCell<Compress> =
        std::cell::RefCell::new(Compress::new(Compression::new(LEVEL), false));
}

/// A text frame with RSV1 set ("compressed message") carrying `text` as a raw DEFLATE stream
/// from a fresh context, with the empty final block's `00 00 ff ff` removed (RFC 7692 §7.2.1);
/// `None` if it is not shorter than `limit`.
fn deflate_frame(text: &[u8], limit: usize) -> Option<Vec<u8>> {
    // Room for all of it: compressed output longer than the text is not used anyway.
    let mut payload = Vec::with_capacity(text.len() + 64);
    let done = COMPRESSOR.with_borrow_mut(|compress| {
        compress.reset();
        let status = compress.compress_vec(text, &mut payload, FlushCompress::Sync);
        matches!(status, Ok(flate2::Status::Ok)) && compress.total_in() == text.len() as u64
    });
    if !done || !payload.ends_with(&[0, 0, 0xff, 0xff]) {
        return None;
    }
    payload.truncate(payload.len() - 4);
    let mut wire = header(0xC1, payload.len()); // FIN, RSV1, opcode 1 (text)
    if wire.len() + payload.len() >= limit {
        return None;
    }
    wire.extend_from_slice(&payload);
    Some(wire)
}

/// A server frame's header (unmasked) with room for its payload.
fn header(first: u8, len: usize) -> Vec<u8> {
    let mut wire = Vec::with_capacity(len + 10);
    wire.push(first);
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
    wire
}

impl Frame {
    /// A text frame whose payload is `parts` joined (each copied once), for frames made per
    /// session around a shared body (a STOMP MESSAGE).
    pub fn from_parts(parts: &[&str]) -> Frame {
        let len = parts.iter().map(|p| p.len()).sum();
        let mut wire = header(0x81, len); // FIN, opcode 1 (text)
        let header = wire.len();
        for part in parts {
            wire.extend_from_slice(part.as_bytes());
        }
        Frame(Arc::new(Encoded {
            wire,
            header,
            deflated: OnceLock::new(),
        }))
    }
}

impl From<String> for Frame {
    fn from(text: String) -> Self {
        let mut wire = header(0x81, text.len()); // FIN, opcode 1 (text)
        let header = wire.len();
        wire.extend_from_slice(text.as_bytes());
        Frame(Arc::new(Encoded {
            wire,
            header,
            deflated: OnceLock::new(),
        }))
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

    /// The payload of a compressed frame, inflated as a permessage-deflate receiver does.
    fn inflate(wire: &[u8]) -> (u8, Vec<u8>) {
        let (first, len, at) = match wire[1] {
            126 => (wire[0], u16::from_be_bytes([wire[2], wire[3]]) as usize, 4),
            127 => (
                wire[0],
                u64::from_be_bytes(wire[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (wire[0], n as usize, 2),
        };
        assert_eq!(wire.len(), at + len, "one whole frame");
        let mut input = wire[at..].to_vec();
        input.extend_from_slice(&[0, 0, 0xff, 0xff]);
        let mut out = Vec::with_capacity(1 << 20);
        flate2::Decompress::new(false)
            .decompress_vec(&input, &mut out, flate2::FlushDecompress::Sync)
            .unwrap();
        (first, out)
    }

    #[test]
    fn a_compressed_frame_inflates_to_the_text_and_is_computed_once() {
        let text = serde_json::json!({"type": "message", "data": {"items": vec!["quite repetitive"; 200]}}).to_string();
        let frame = Frame::from(text.clone());
        let clone = frame.clone();
        let deflated = frame.wire_deflated(256);
        assert!(
            deflated.len() * 5 < frame.wire().len(),
            "JSON compresses well"
        );
        let (first, inflated) = inflate(deflated);
        assert_eq!(first, 0xC1, "FIN, RSV1, text");
        assert_eq!(inflated, text.as_bytes());
        assert!(
            std::ptr::eq(clone.wire_deflated(256), deflated),
            "every clone shares the one compressed form"
        );
    }

    /// What compressing a ~1 KiB JSON record costs at each level, with a fresh compressor per
    /// frame and with the reused one. Not part of the normal run:
    /// `cargo test --lib compress_once_costs -- --ignored --nocapture` (add
    /// `--config 'profile.dev.package.miniz_oxide.opt-level=3'` for optimised timings).
    #[test]
    #[ignore]
    fn compress_once_costs() {
        let texts: Vec<String> = (0..2000)
            .map(|n| {
                serde_json::json!({"type": "message", "channel": "orders", "partition": 0, "offset": n, "data": {
                    "n": n, "order": format!("ORD-{n:08}"),
                    "customer": {"id": format!("C-{:06}", n * 7919 % 1_000_000), "tier": "gold", "region": "eu-west"},
                    "lines": (0..8).map(|i| serde_json::json!({"sku": format!("SKU-{:05}", (n + i) * 31 % 100_000), "qty": i + 1, "price": 12.5 + i as f64, "currency": "EUR", "warehouse": "AMS-2"})).collect::<Vec<_>>(),
                    "status": "confirmed", "created_at": "2026-12-02T04:05:06.789Z"}})
                .to_string()
            })
            .collect();
        let plain: usize = texts.iter().map(String::len).sum();
        for level in [1, 6] {
            for reuse in [false, true] {
                let mut shared = Compress::new(Compression::new(level), false);
                let started = std::time::Instant::now();
                let mut sent = 0;
                for text in &texts {
                    let mut fresh;
                    let compress = if reuse {
                        shared.reset();
                        &mut shared
                    } else {
                        fresh = Compress::new(Compression::new(level), false);
                        &mut fresh
                    };
                    let mut out = Vec::with_capacity(text.len() + 64);
                    compress
                        .compress_vec(text.as_bytes(), &mut out, FlushCompress::Sync)
                        .unwrap();
                    sent += out.len() - 4;
                }
                println!(
                    "level {level}, {}: {:.0} -> {:.0} bytes a frame ({:.2}x), {:.1} µs a frame",
                    if reuse {
                        "reused compressor"
                    } else {
                        "fresh compressor"
                    },
                    plain as f64 / texts.len() as f64,
                    sent as f64 / texts.len() as f64,
                    plain as f64 / sent as f64,
                    started.elapsed().as_secs_f64() * 1e6 / texts.len() as f64
                );
            }
        }
    }

    #[test]
    fn small_or_incompressible_frames_stay_as_they_are() {
        let small = Frame::from("x".repeat(255));
        assert_eq!(small.wire_deflated(256), small.wire());
        assert_eq!(small.wire_deflated(0), small.wire_deflated(0));
        // Random printable text: deflate cannot make it smaller.
        let noise: String = (0..2000u32)
            .map(|i| char::from(b'!' + (i.wrapping_mul(2_654_435_761) >> 7) as u8 % 90))
            .collect();
        let frame = Frame::from(noise);
        let wire = frame.wire_deflated(1);
        assert!(wire.len() <= frame.wire().len());
        if wire != frame.wire() {
            assert_eq!(inflate(wire).1, frame.as_str().as_bytes());
        }
        for len in [0, 1, 125, 126, 65_535, 65_536, 200_000] {
            let frame = Frame::from("ab".repeat(len / 2));
            let wire = frame.wire_deflated(0);
            if wire[0] & 0x40 != 0 {
                assert_eq!(inflate(wire).1, frame.as_str().as_bytes(), "length {len}");
            } else {
                assert_eq!(wire, frame.wire(), "length {len}");
                assert!(len < 126, "length {len} compresses");
            }
        }
    }
}
