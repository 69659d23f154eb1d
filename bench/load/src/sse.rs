//! A minimal Server-Sent Events client (HTTP/1.1 `GET`, `http://` only) for load generation:
//! reads the response body (chunked or not) into one buffer and hands out complete events
//! (the text between blank lines) in place, as ws.rs does with frames. What an event means is
//! decided by `Protocol::Sse` (proto.rs).

use std::io;
use std::net::IpAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::ws::{header_value, tcp_connect, ConnectError, Url};

/// Where the chunked-encoding decoder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// Not chunked: every byte is body.
    Identity,
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk, this many bytes left.
    Data(usize),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// The last (empty) chunk was read.
    Done,
}

pub struct Sse {
    stream: TcpStream,
    /// Bytes as read, not yet decoded (chunk headers).
    raw: Vec<u8>,
    raw_start: usize,
    raw_end: usize,
    /// Decoded body; events are taken from `start`.
    body: Vec<u8>,
    start: usize,
    chunk: Chunk,
}

/// One complete event: where its text is in the body (see [`Sse::event`]).
#[derive(Clone, Copy, Debug)]
pub struct EventAt {
    start: usize,
    end: usize,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

impl Sse {
    /// Connects, sends `GET {url.path}{query}` and reads the answer's head: a 200 answer is the
    /// stream (with whatever body bytes followed it buffered), anything else is refused.
    pub async fn connect(
        url: &Url,
        query: &str,
        bind: Option<IpAddr>,
        bufsize: usize,
    ) -> Result<Sse, ConnectError> {
        let stream = tcp_connect(url, bind).await?;
        let mut sse = Sse {
            stream,
            raw: vec![0; bufsize.max(512)],
            raw_start: 0,
            raw_end: 0,
            body: Vec::with_capacity(bufsize.max(512)),
            start: 0,
            chunk: Chunk::Identity,
        };
        let request = format!(
            "GET {}{query} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\
             Cache-Control: no-cache\r\n\r\n",
            url.path, url.host
        );
        sse.stream.write_all(request.as_bytes()).await?;
        loop {
            if let Some(i) = find(&sse.raw[..sse.raw_end], b"\r\n\r\n") {
                let head = &sse.raw[..i];
                let status = head.split(|&b| b == b'\r').next().unwrap_or(&[]);
                let status = String::from_utf8_lossy(status).into_owned();
                if !status.starts_with("HTTP/1.1 200") {
                    return Err(ConnectError::Refused(status));
                }
                let chunked = header_value(head, b"transfer-encoding")
                    .is_some_and(|v| v.eq_ignore_ascii_case(b"chunked"));
                sse.chunk = if chunked {
                    Chunk::Size
                } else {
                    Chunk::Identity
                };
                sse.raw_start = i + 4;
                sse.decode().map_err(ConnectError::Io)?;
                return Ok(sse);
            }
            if sse.raw_end == sse.raw.len() {
                sse.raw.resize(sse.raw.len() * 2, 0);
            }
            let n = sse.stream.read(&mut sse.raw[sse.raw_end..]).await?;
            if n == 0 {
                return Err(ConnectError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            sse.raw_end += n;
        }
    }

    /// Moves what was read from `raw` to `body`, dropping the chunked encoding's framing.
    fn decode(&mut self) -> io::Result<()> {
        loop {
            let avail = &self.raw[self.raw_start..self.raw_end];
            if avail.is_empty() {
                break;
            }
            match self.chunk {
                Chunk::Identity => {
                    self.body.extend_from_slice(avail);
                    self.raw_start = self.raw_end;
                }
                Chunk::Data(left) => {
                    let n = left.min(avail.len());
                    self.body.extend_from_slice(&avail[..n]);
                    self.raw_start += n;
                    self.chunk = if n == left {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left - n)
                    };
                }
                Chunk::DataEnd => {
                    if avail.len() < 2 {
                        break;
                    }
                    if &avail[..2] != b"\r\n" {
                        return Err(bad("no CRLF after a chunk"));
                    }
                    self.raw_start += 2;
                    self.chunk = Chunk::Size;
                }
                Chunk::Size => {
                    let Some(eol) = find(avail, b"\r\n") else {
                        if avail.len() > 1024 {
                            return Err(bad("chunk-size line over 1 KiB"));
                        }
                        break;
                    };
                    let line = &avail[..eol];
                    let digits = line.split(|&b| b == b';').next().unwrap_or(&[]);
                    let digits = std::str::from_utf8(digits.trim_ascii())
                        .map_err(|_| bad("chunk size is not text"))?;
                    let size = usize::from_str_radix(digits, 16)
                        .map_err(|_| bad("chunk size is not hexadecimal"))?;
                    self.raw_start += eol + 2;
                    self.chunk = if size == 0 {
                        Chunk::Done
                    } else {
                        Chunk::Data(size)
                    };
                }
                Chunk::Done => {
                    self.raw_start = self.raw_end;
                }
            }
        }
        Ok(())
    }

    /// Reads more bytes within `wait` (forever when None): Ok(true) when bytes arrived,
    /// Ok(false) when the wait passed, Err(outcome) when the stream ended (`eof`, `io_<kind>`,
    /// `bad_chunk`).
    pub async fn read_more(&mut self, wait: Option<std::time::Duration>) -> Result<bool, String> {
        if self.chunk == Chunk::Done {
            return Err("eof".into());
        }
        let read = match wait {
            Some(wait) => match tokio::time::timeout(wait, self.fill()).await {
                Ok(read) => read,
                Err(_) => return Ok(false),
            },
            None => self.fill().await,
        };
        match read {
            Ok(0) => Err("eof".into()),
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => Err("bad_chunk".into()),
            Err(e) => Err(format!("io_{:?}", e.kind())),
        }
    }

    /// Reads more bytes and decodes them; Ok(0) at end of stream. Cancel-safe (the read is the
    /// only await).
    async fn fill(&mut self) -> io::Result<usize> {
        // Events already taken are dropped from the body; raw bytes decoded from the buffer.
        if self.start > 0 {
            self.body.drain(..self.start);
            self.start = 0;
        }
        if self.raw_start == self.raw_end {
            self.raw_start = 0;
            self.raw_end = 0;
        } else if self.raw_start > 0 {
            self.raw.copy_within(self.raw_start..self.raw_end, 0);
            self.raw_end -= self.raw_start;
            self.raw_start = 0;
        }
        if self.raw_end == self.raw.len() {
            let len = self.raw.len();
            self.raw.resize(len * 2, 0);
        }
        let n = self.stream.read(&mut self.raw[self.raw_end..]).await?;
        self.raw_end += n;
        self.decode()?;
        Ok(n)
    }

    /// The next complete event already read (its text without the blank line that ends it),
    /// or None when more bytes are needed.
    pub fn next_event(&mut self) -> Option<EventAt> {
        let avail = &self.body[self.start..];
        // Events end with a blank line; warp writes `\n` line ends.
        let end = find(avail, b"\n\n")?;
        let at = EventAt {
            start: self.start,
            end: self.start + end,
        };
        self.start += end + 2;
        Some(at)
    }

    pub fn event(&self, at: &EventAt) -> &[u8] {
        &self.body[at.start..at.end]
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}
