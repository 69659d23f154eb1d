//! The read side of permessage-deflate (RFC 7692), under tungstenite, which has none: client
//! frames are parsed as they arrive, a message whose first frame has RSV1 set is unmasked,
//! inflated (fresh context per message: the client was asked for `client_no_context_takeover`)
//! and handed on as one ordinary frame with RSV1 clear; everything else passes unchanged, and
//! tungstenite checks it as before. The inflated message is bounded by `server.max_frame_bytes`
//! (and so is its compressed input): a deflate bomb ends in an error, never in memory growth.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use flate2::{Decompress, FlushDecompress, Status};
use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Why a compressed message was refused; it reaches the session as an `io::Error` of kind
/// `InvalidData` wrapping this (see [`InflateError::of`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum InflateError {
    /// The message inflates (or its compressed form is) beyond `server.max_frame_bytes`.
    #[error("compressed message inflates to more than the limit of {max} bytes")]
    TooLarge { max: usize },
    /// Not a valid DEFLATE stream.
    #[error("invalid compressed data: {0}")]
    Invalid(String),
    /// Frames that break RFC 7692's rules for compressed messages.
    #[error("{0}")]
    Protocol(&'static str),
}

impl InflateError {
    /// The refusal carried by an error read from the connection, if it is one.
    pub(super) fn of(error: &std::io::Error) -> Option<&InflateError> {
        error.get_ref()?.downcast_ref()
    }
}

/// A connection whose client frames go through an [`Inflater`] when the session negotiated
/// permessage-deflate, and straight through otherwise. Writes always go straight through.
pub(super) struct Inflating<S> {
    inner: S,
    /// `None`: permessage-deflate was not negotiated.
    inflater: Option<Inflater>,
    /// Frames ready for tungstenite; `out[at..]` is still to be read. Empty (unallocated)
    /// between client messages.
    out: Vec<u8>,
    at: usize,
    /// Set once the inflater failed: reported after what came before it, then end of stream.
    failed: Option<Option<InflateError>>,
}

/// Bytes read from the connection at a time while inflating.
const READ_CHUNK: usize = 1024;

impl<S> Inflating<S> {
    /// `inflater`: `Some` when the session negotiated permessage-deflate.
    pub(super) fn new(inner: S, inflater: Option<Inflater>) -> Self {
        Inflating {
            inner,
            inflater,
            out: Vec::new(),
            at: 0,
            failed: None,
        }
    }

    /// Whether this session negotiated permessage-deflate.
    pub(super) fn deflate(&self) -> bool {
        self.inflater.is_some()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Inflating<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let Some(inflater) = this.inflater.as_mut() else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        loop {
            if this.at < this.out.len() {
                let n = buf.remaining().min(this.out.len() - this.at);
                buf.put_slice(&this.out[this.at..this.at + n]);
                this.at += n;
                if this.at == this.out.len() {
                    // Drained: freed, not kept for the next message, so an idle session holds
                    // no buffer (kept, it cost 1–1.6 KiB of RSS per idle session, measured with
                    // bench/compression.mjs; clients send rarely, one allocation per message).
                    this.at = 0;
                    this.out = Vec::new();
                }
                return Poll::Ready(Ok(()));
            }
            if let Some(failed) = this.failed.as_mut() {
                return Poll::Ready(match failed.take() {
                    Some(error) => Err(std::io::Error::new(std::io::ErrorKind::InvalidData, error)),
                    None => Ok(()), // end of stream
                });
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                return Poll::Ready(Ok(()));
            }
            if let Err(error) = inflater.feed(read.filled(), &mut this.out) {
                this.failed = Some(Some(error));
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Inflating<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The client-frame rewriter, fed the connection's bytes in pieces of any size.
#[derive(Debug)]
pub(super) struct Inflater {
    max: usize,
    /// The frame header being read (2 to 14 bytes).
    header: [u8; 14],
    header_len: usize,
    state: State,
    /// The compressed message being read, from its first frame to the one with FIN.
    message: Option<Box<Message>>,
    /// `inflated_messages_total`.
    inflated: Option<IntCounter>,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Reading a frame header.
    Header,
    /// Copying this many payload bytes of a frame passed on as it is.
    Pass(u64),
    /// Inflating this many payload bytes of a compressed message's frame.
    Inflate { remaining: u64, fin: bool },
}

struct Message {
    opcode: u8,
    inflate: Decompress,
    /// The inflated text so far, at most `max` bytes.
    data: Vec<u8>,
    /// Compressed bytes announced by the message's frames so far.
    input: u64,
    /// The current frame's masking key and how far into the payload it is.
    mask: [u8; 4],
    masked: usize,
    /// The DEFLATE stream had a final block: what follows is ignored.
    ended: bool,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("opcode", &self.opcode)
            .field("inflated", &self.data.len())
            .finish()
    }
}

impl Inflater {
    /// Inflates messages up to `max` bytes, counting them in `inflated`.
    pub(super) fn new(max: usize, inflated: Option<IntCounter>) -> Self {
        Inflater {
            max,
            header: [0; 14],
            header_len: 0,
            state: State::Header,
            message: None,
            inflated,
        }
    }

    /// Takes the next bytes from the connection, appends what tungstenite should read to `out`.
    /// After an error nothing more may be fed.
    pub(super) fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), InflateError> {
        while !input.is_empty() {
            match self.state {
                State::Header => {
                    let need = header_len(&self.header[..self.header_len]);
                    let n = (need - self.header_len).min(input.len());
                    self.header[self.header_len..self.header_len + n].copy_from_slice(&input[..n]);
                    self.header_len += n;
                    input = &input[n..];
                    if self.header_len == header_len(&self.header[..self.header_len]) {
                        self.on_header(out)?;
                    }
                }
                State::Pass(remaining) => {
                    let n = (remaining.min(input.len() as u64)) as usize;
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    self.state = if remaining == n as u64 {
                        State::Header
                    } else {
                        State::Pass(remaining - n as u64)
                    };
                }
                State::Inflate { remaining, fin } => {
                    let n = (remaining.min(input.len() as u64)) as usize;
                    self.inflate(&input[..n])?;
                    input = &input[n..];
                    self.state = State::Inflate {
                        remaining: remaining - n as u64,
                        fin,
                    };
                    self.end_of_payload(out)?;
                }
            }
        }
        Ok(())
    }

    /// A complete header: pass its frame on, or start (or continue) a compressed message.
    fn on_header(&mut self, out: &mut Vec<u8>) -> Result<(), InflateError> {
        let header = &self.header[..self.header_len];
        self.header_len = 0;
        let (first, masked) = (header[0], header[1] & 0x80 != 0);
        let (fin, rsv1, opcode) = (first & 0x80 != 0, first & 0x40 != 0, first & 0x0F);
        let len = match header[1] & 0x7F {
            126 => u64::from(u16::from_be_bytes([header[2], header[3]])),
            127 => u64::from_be_bytes(header[2..10].try_into().expect("8 bytes")),
            n => u64::from(n),
        };
        let control = opcode & 0x08 != 0;
        let starts_compressed = self.message.is_none() && rsv1 && (opcode == 1 || opcode == 2);
        let continues_compressed = self.message.is_some() && !control;
        if !starts_compressed && !continues_compressed {
            // tungstenite checks it (and refuses RSV1 where it does not belong).
            out.extend_from_slice(header);
            self.state = if len == 0 {
                State::Header
            } else {
                State::Pass(len)
            };
            return Ok(());
        }
        if !masked {
            return Err(InflateError::Protocol("client frames must be masked"));
        }
        if first & 0x30 != 0 {
            return Err(InflateError::Protocol("reserved bits RSV2/RSV3 set"));
        }
        if continues_compressed && opcode != 0 {
            return Err(InflateError::Protocol(
                "a new message began before the compressed one ended",
            ));
        }
        if continues_compressed && rsv1 {
            return Err(InflateError::Protocol("RSV1 set on a continuation frame"));
        }
        let mask = header[header.len() - 4..].try_into().expect("4 bytes");
        let message = self.message.get_or_insert_with(|| {
            Box::new(Message {
                opcode,
                inflate: Decompress::new(false),
                data: Vec::new(),
                input: 0,
                mask,
                masked: 0,
                ended: false,
            })
        });
        message.mask = mask;
        message.masked = 0;
        message.input = message.input.saturating_add(len);
        if message.input > self.max as u64 {
            return Err(InflateError::TooLarge { max: self.max });
        }
        self.state = State::Inflate {
            remaining: len,
            fin,
        };
        self.end_of_payload(out)
    }

    /// At the end of a compressed frame's payload: on to the next header, and after the last
    /// frame, the whole message as one frame.
    fn end_of_payload(&mut self, out: &mut Vec<u8>) -> Result<(), InflateError> {
        let State::Inflate { remaining: 0, fin } = self.state else {
            return Ok(());
        };
        self.state = State::Header;
        if !fin {
            return Ok(());
        }
        let mut message = self.message.take().expect("a compressed message");
        if !message.ended {
            inflate(&mut message, &[0, 0, 0xff, 0xff], self.max)?;
        }
        let len = message.data.len();
        out.reserve(len + 14);
        out.push(0x80 | message.opcode);
        // Masked with the key 0 (tungstenite requires client frames masked; XOR with 0 is a
        // no-op, so the text is copied once).
        match len {
            0..=125 => out.push(0x80 | len as u8),
            126..=0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&message.data);
        if let Some(inflated) = &self.inflated {
            inflated.inc();
        }
        Ok(())
    }

    /// Unmasks and inflates a piece of the current compressed frame's payload.
    fn inflate(&mut self, payload: &[u8]) -> Result<(), InflateError> {
        let message = self.message.as_mut().expect("a compressed message");
        let mut chunk = [0u8; 256];
        for piece in payload.chunks(chunk.len()) {
            for (i, byte) in piece.iter().enumerate() {
                chunk[i] = byte ^ message.mask[(message.masked + i) % 4];
            }
            message.masked = (message.masked + piece.len()) % 4;
            if !message.ended {
                inflate(message, &chunk[..piece.len()], self.max)?;
            }
        }
        Ok(())
    }
}

/// Length of the header that starts with `start` (as far as `start` tells: 2 until the
/// second byte is known).
fn header_len(start: &[u8]) -> usize {
    let Some(&second) = start.get(1) else {
        return 2;
    };
    let length = match second & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + length + if second & 0x80 != 0 { 4 } else { 0 }
}

/// Inflates `input` into the message's text, failing once the text would exceed `max`.
fn inflate(message: &mut Message, mut input: &[u8], max: usize) -> Result<(), InflateError> {
    loop {
        let start = message.data.len();
        // Room up to one byte past the limit: filling it proves the text too large.
        let room = (max + 1 - start).min(16 * 1024);
        message.data.resize(start + room, 0);
        let (before_in, before_out) = (message.inflate.total_in(), message.inflate.total_out());
        let status = message
            .inflate
            .decompress(input, &mut message.data[start..], FlushDecompress::None)
            .map_err(|e| InflateError::Invalid(e.to_string()));
        let consumed = (message.inflate.total_in() - before_in) as usize;
        let produced = (message.inflate.total_out() - before_out) as usize;
        message.data.truncate(start + produced);
        let status = status?;
        if message.data.len() > max {
            return Err(InflateError::TooLarge { max });
        }
        input = &input[consumed..];
        if status == Status::StreamEnd {
            message.ended = true;
            return Ok(());
        }
        if produced < room && (input.is_empty() || (consumed == 0 && produced == 0)) {
            // All taken (or nothing more can be made of it until more input comes).
            if !input.is_empty() {
                return Err(InflateError::Invalid("the decompressor stalled".into()));
            }
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests;
