use flate2::{Compress, Compression, FlushCompress};
use proptest::prelude::*;

use super::*;

/// A client frame: `first` byte (FIN, RSV, opcode), masked with `mask`.
fn client_frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut frame = vec![first];
    match payload.len() {
        n @ 0..=125 => frame.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// `text` as a browser compresses a message: raw DEFLATE, sync flush, `00 00 ff ff` removed.
fn deflate(text: &[u8]) -> Vec<u8> {
    let mut compress = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(text.len() + 1024);
    compress
        .compress_vec(text, &mut out, FlushCompress::Sync)
        .unwrap();
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// What the server-side frame parser (tungstenite's) reads from `bytes`: (opcode, payload).
fn frames(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let header = header_len(rest);
        assert_eq!(rest[0] & 0x70, 0, "RSV bits clear");
        let len = match rest[1] & 0x7F {
            126 => u16::from_be_bytes([rest[2], rest[3]]) as usize,
            127 => u64::from_be_bytes(rest[2..10].try_into().unwrap()) as usize,
            n => n as usize,
        };
        let mask = &rest[header - 4..header];
        let payload = rest[header..header + len]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        frames.push((rest[0] & 0x0F, payload));
        rest = &rest[header + len..];
    }
    frames
}

fn feed_all(inflater: &mut Inflater, input: &[u8]) -> Result<Vec<u8>, InflateError> {
    let mut out = Vec::new();
    inflater.feed(input, &mut out).map(|()| out)
}

#[test]
fn uncompressed_frames_pass_unchanged() {
    let mut input = client_frame(0x81, b"{\"type\":\"ping\"}", [1, 2, 3, 4]);
    input.extend(client_frame(0x89, b"", [5, 6, 7, 8]));
    input.extend(client_frame(0x01, &[b'a'; 300], [9, 9, 9, 9]));
    input.extend(client_frame(0x80, &[b'b'; 70_000], [1, 1, 1, 1]));
    let out = feed_all(&mut Inflater::new(1 << 20, None), &input).unwrap();
    assert_eq!(out, input);
}

#[test]
fn a_compressed_message_becomes_an_ordinary_frame() {
    let text = br#"{"type":"publish","channel":"orders","data":{"items":["aaaaaaaaaa","aaaaaaaaaa","aaaaaaaaaa"]}}"#;
    let input = client_frame(0xC1, &deflate(text), [0x12, 0x34, 0x56, 0x78]);
    let out = feed_all(&mut Inflater::new(1024, None), &input).unwrap();
    assert_eq!(frames(&out), vec![(1, text.to_vec())]);
    assert_eq!(out[0], 0x81, "FIN, text, RSV1 clear");
}

#[test]
fn a_fragmented_compressed_message_with_a_ping_inside() {
    let text = "fragmented ".repeat(500);
    let compressed = deflate(text.as_bytes());
    let (a, rest) = compressed.split_at(10);
    let (b, c) = rest.split_at(rest.len() / 2);
    let mut input = client_frame(0x41, a, [1, 2, 3, 4]);
    input.extend(client_frame(0x89, b"hi", [7, 7, 7, 7]));
    input.extend(client_frame(0x00, b, [4, 3, 2, 1]));
    input.extend(client_frame(0x00, &[], [0, 0, 0, 1]));
    input.extend(client_frame(0x80, c, [9, 8, 7, 6]));
    // Then an uncompressed message and another compressed one.
    input.extend(client_frame(0x81, b"plain", [1, 1, 1, 1]));
    input.extend(client_frame(0xC1, &deflate(b"again"), [2, 2, 2, 2]));
    let out = feed_all(&mut Inflater::new(1 << 16, None), &input).unwrap();
    assert_eq!(
        frames(&out),
        vec![
            (9, b"hi".to_vec()),
            (1, text.into_bytes()),
            (1, b"plain".to_vec()),
            (1, b"again".to_vec())
        ]
    );
}

#[test]
fn a_message_with_a_final_block_and_an_empty_one() {
    // BFINAL=1 (RFC 7692 §7.2.3.4): what follows the final block is ignored.
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
    std::io::Write::write_all(&mut encoder, b"final").unwrap();
    let mut input = client_frame(0xC1, &encoder.finish().unwrap(), [3, 1, 4, 1]);
    input.extend(client_frame(0xC1, &[0x00], [5, 9, 2, 6])); // empty message: "00 00 00 ff ff"
    input.extend(client_frame(0xC2, &deflate(b""), [5, 9, 2, 6]));
    let out = feed_all(&mut Inflater::new(64, None), &input).unwrap();
    assert_eq!(
        frames(&out),
        vec![(1, b"final".to_vec()), (1, vec![]), (2, vec![])]
    );
}

#[test]
fn a_deflate_bomb_stops_at_the_limit() {
    // 50 MB of zeros compress to about 50 KB; the limit is 64 KiB of text.
    let zeros = vec![0u8; 50 << 20];
    let bomb = deflate(&zeros);
    let max = 64 * 1024;
    assert!(bomb.len() < max, "the bomb itself is under the limit");
    let mut inflater = Inflater::new(max, None);
    let mut out = Vec::new();
    let error = inflater
        .feed(&client_frame(0xC1, &bomb, [1, 2, 3, 4]), &mut out)
        .unwrap_err();
    assert_eq!(error, InflateError::TooLarge { max });
    assert!(out.is_empty());
    let held = inflater.message.as_ref().map_or(0, |m| m.data.capacity());
    assert!(
        held <= 2 * (max + 1),
        "inflated no further than the limit: {held}"
    );
    // A compressed payload over the limit is refused from its header.
    let error = Inflater::new(100, None)
        .feed(&client_frame(0xC1, &[0; 101], [0; 4])[..10], &mut out)
        .unwrap_err();
    assert_eq!(error, InflateError::TooLarge { max: 100 });
}

#[test]
fn limit_counts_the_whole_message_across_frames() {
    let text = vec![b'x'; 1000];
    let compressed = deflate(&text);
    let (a, b) = compressed.split_at(compressed.len() / 2);
    let mut input = client_frame(0x41, a, [1, 2, 3, 4]);
    input.extend(client_frame(0x80, b, [1, 2, 3, 4]));
    assert!(feed_all(&mut Inflater::new(1000, None), &input).is_ok());
    assert_eq!(
        feed_all(&mut Inflater::new(999, None), &input),
        Err(InflateError::TooLarge { max: 999 })
    );
}

#[test]
fn broken_compressed_messages_are_refused() {
    let invalid = client_frame(0xC1, &[0xff, 0xff, 0xff, 0xff, 0xff], [1, 2, 3, 4]);
    assert!(matches!(
        feed_all(&mut Inflater::new(1000, None), &invalid),
        Err(InflateError::Invalid(_))
    ));
    let mut unmasked = vec![0xC1, 5];
    unmasked.extend(deflate(b"hello"));
    assert_eq!(
        feed_all(&mut Inflater::new(1000, None), &unmasked),
        Err(InflateError::Protocol("client frames must be masked"))
    );
    let mut interrupted = client_frame(0x41, &deflate(b"hello"), [1, 2, 3, 4]);
    interrupted.extend(client_frame(0x81, b"new", [1, 2, 3, 4]));
    assert!(matches!(
        feed_all(&mut Inflater::new(1000, None), &interrupted),
        Err(InflateError::Protocol(_))
    ));
    let mut rsv1_continuation = client_frame(0x41, &deflate(b"hello"), [1, 2, 3, 4]);
    rsv1_continuation.extend(client_frame(0xC0, &[], [1, 2, 3, 4]));
    assert_eq!(
        feed_all(&mut Inflater::new(1000, None), &rsv1_continuation),
        Err(InflateError::Protocol("RSV1 set on a continuation frame"))
    );
    // RSV1 on a control frame is left to tungstenite, which refuses it.
    let ping = client_frame(0xC9, b"", [1, 2, 3, 4]);
    assert_eq!(feed_all(&mut Inflater::new(1000, None), &ping), Ok(ping));
}

/// A connection that hands out `input` in reads of the given sizes (then end of stream).
struct Pieces {
    input: Vec<u8>,
    sizes: Vec<usize>,
    at: usize,
    read: usize,
}

impl AsyncRead for Pieces {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let size = self.sizes.get(self.read).copied().unwrap_or(usize::MAX);
        let n = size
            .min(buf.remaining())
            .min(self.input.len() - self.at)
            .max(1);
        let n = n.min(self.input.len() - self.at);
        let at = self.at;
        buf.put_slice(&self.input[at..at + n]);
        self.at += n;
        self.read += 1;
        Poll::Ready(Ok(()))
    }
}

/// Reads everything through an [`Inflating`] whose reader takes at most `take` bytes a read.
async fn read_through(
    input: Vec<u8>,
    sizes: Vec<usize>,
    take: usize,
    max: usize,
) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut conn = Inflating::new(
        Pieces {
            input,
            sizes,
            at: 0,
            read: 0,
        },
        Some(Inflater::new(max, None)),
    );
    let mut all = Vec::new();
    let mut buf = vec![0u8; take];
    loop {
        match conn.read(&mut buf).await? {
            0 => return Ok(all),
            n => all.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn errors_come_after_what_preceded_them() {
    let mut input = client_frame(0x81, b"first", [1, 2, 3, 4]);
    let first = input.clone();
    input.extend(client_frame(
        0xC1,
        &deflate(&vec![b'z'; 5000]),
        [1, 2, 3, 4],
    ));
    use tokio::io::AsyncReadExt;
    let mut conn = Inflating::new(
        Pieces {
            input,
            sizes: vec![],
            at: 0,
            read: 0,
        },
        Some(Inflater::new(1000, None)),
    );
    let mut buf = vec![0u8; 4096];
    let n = conn.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], first);
    let error = conn.read(&mut buf).await.unwrap_err();
    assert_eq!(
        InflateError::of(&error),
        Some(&InflateError::TooLarge { max: 1000 })
    );
    assert_eq!(conn.read(&mut buf).await.unwrap(), 0, "then end of stream");
}

#[tokio::test]
async fn without_deflate_reads_go_straight_through() {
    let input = client_frame(0xC1, b"not inflated", [1, 2, 3, 4]);
    use tokio::io::AsyncReadExt;
    let mut conn = Inflating::new(
        Pieces {
            input: input.clone(),
            sizes: vec![],
            at: 0,
            read: 0,
        },
        None,
    );
    assert!(!conn.deflate());
    let mut all = Vec::new();
    conn.read_to_end(&mut all).await.unwrap();
    assert_eq!(all, input);
}

/// One client message for the property test: text, compressed or not, in how many frames.
#[derive(Debug, Clone)]
struct Sent {
    text: Vec<u8>,
    compressed: bool,
    fragments: usize,
    ping_inside: bool,
}

fn sent() -> impl Strategy<Value = Sent> {
    (
        prop_oneof![
            proptest::collection::vec(b'a'..=b'e', 0..3000),
            proptest::collection::vec(any::<u8>(), 0..300),
        ],
        any::<bool>(),
        1usize..4,
        any::<bool>(),
    )
        .prop_map(|(text, compressed, fragments, ping_inside)| Sent {
            text,
            compressed,
            fragments,
            ping_inside,
        })
}

/// What tungstenite makes of frames: messages (reassembled) and pings, in order.
#[derive(Debug, PartialEq)]
enum Event {
    Message(Vec<u8>),
    Ping,
}

fn events(bytes: &[u8]) -> Vec<Event> {
    let mut events = Vec::new();
    let mut message = Vec::new();
    let mut rest = bytes;
    for (opcode, payload) in frames(bytes) {
        let fin = rest[0] & 0x80 != 0;
        rest = &rest[header_len(rest) + payload.len()..];
        if opcode == 9 {
            events.push(Event::Ping);
            continue;
        }
        message.extend(payload);
        if fin {
            events.push(Event::Message(std::mem::take(&mut message)));
        }
    }
    events
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// However the stream is cut into reads (and however little the reader takes at a time),
    /// what comes out is the messages that went in, in order, with the pings where they were.
    #[test]
    fn any_split_of_the_stream_gives_the_same_messages(
        messages in proptest::collection::vec(sent(), 1..6),
        sizes in proptest::collection::vec(1usize..200, 0..400),
        take in prop_oneof![Just(1usize), 2usize..64, Just(1024)],
        mask in any::<[u8; 4]>(),
    ) {
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for m in &messages {
            let payload = if m.compressed { deflate(&m.text) } else { m.text.clone() };
            let step = payload.len().div_ceil(m.fragments).max(1);
            let pieces: Vec<&[u8]> = if payload.is_empty() { vec![&[]] } else { payload.chunks(step).collect() };
            for (i, piece) in pieces.iter().enumerate() {
                let last = i + 1 == pieces.len();
                let fin = if last { 0x80 } else { 0 };
                let first = if i == 0 { 0x02 | if m.compressed { 0x40 } else { 0 } } else { 0 };
                input.extend(client_frame(fin | first, piece, mask));
                if last {
                    expected.push(Event::Message(m.text.clone()));
                }
                if m.ping_inside && i == 0 {
                    input.extend(client_frame(0x89, b"p", mask));
                    expected.push(Event::Ping);
                }
            }
        }
        let out = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(read_through(input.clone(), sizes, take, 4000))
            .unwrap();
        let whole = feed_all(&mut Inflater::new(4000, None), &input).unwrap();
        prop_assert_eq!(&out, &whole, "the split does not matter");
        prop_assert_eq!(events(&out), expected);
    }
}
