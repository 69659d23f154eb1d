//! A minimal WebSocket client (RFC 6455, `ws://` only) built for load generation: one buffer
//! per connection, frames parsed in place without copying or allocating, many frames per
//! `read` call. It answers what a server needs answered (ping → pong, close → close) and
//! nothing else: no extensions; one subprotocol may be asked for (STOMP's `v12.stomp`).

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

#[derive(Clone, Debug)]
pub struct Url {
    pub host: String,
    pub path: String,
    pub addr: SocketAddr,
}

impl Url {
    /// A `ws://` URL, or an `http://` one (Server-Sent Events, see sse.rs).
    pub fn parse(s: &str) -> Result<Url, String> {
        let rest = s
            .strip_prefix("ws://")
            .or_else(|| s.strip_prefix("http://"))
            .ok_or_else(|| format!("{s}: only ws:// and http:// URLs are supported"))?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let with_port = if hostport.contains(':') {
            hostport.to_owned()
        } else {
            format!("{hostport}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("{s}: {e}"))?
            .find(|a| a.is_ipv4())
            .ok_or_else(|| format!("{s}: no IPv4 address"))?;
        Ok(Url {
            host: hostport.to_owned(),
            path: path.to_owned(),
            addr,
        })
    }
}

/// A parsed frame: opcode and where its payload is (see [`Ws::payload`]).
#[derive(Clone, Copy, Debug)]
pub struct Frame {
    pub op: u8,
    start: usize,
    end: usize,
    /// The payload is the reassembled message in `Ws::msg`, not in the read buffer.
    assembled: bool,
}

pub struct Ws {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// A fragmented message being reassembled: its opcode and bytes so far.
    msg_op: u8,
    msg: Vec<u8>,
    wbuf: Vec<u8>,
    rng: u32,
}

#[derive(Debug)]
pub enum ConnectError {
    Io(io::Error),
    /// The server answered the upgrade with something else than 101 (status line).
    Refused(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Io(e) => write!(f, "{e}"),
            ConnectError::Refused(s) => write!(f, "refused: {s}"),
        }
    }
}

impl From<io::Error> for ConnectError {
    fn from(e: io::Error) -> Self {
        ConnectError::Io(e)
    }
}

impl ConnectError {
    /// Short label for counting failures by kind.
    pub fn kind(&self) -> String {
        match self {
            ConnectError::Io(e) => match e.raw_os_error() {
                Some(code) => format!("os_error_{code}"),
                None => format!("{:?}", e.kind()),
            },
            ConnectError::Refused(s) => {
                let status = s.split_whitespace().nth(1).unwrap_or("?");
                format!("http_{status}")
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// A TCP connection to `url` (from `bind`, when given), Nagle off.
pub async fn tcp_connect(url: &Url, bind: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(ip) = bind {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(url.addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The value of the header `lower_name` (lower case) in an HTTP head, trimmed.
pub fn header_value<'a>(head: &'a [u8], lower_name: &[u8]) -> Option<&'a [u8]> {
    head.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        let name = &line[..colon];
        if !name.eq_ignore_ascii_case(lower_name) {
            return None;
        }
        Some(line[colon + 1..].trim_ascii())
    })
}

impl Ws {
    /// Connects (from `bind`, when given), performs the upgrade, returns the session with any
    /// bytes that followed the 101 answer already buffered.
    pub async fn connect(
        url: &Url,
        bind: Option<IpAddr>,
        bufsize: usize,
    ) -> Result<Ws, ConnectError> {
        Self::connect_with(url, bind, bufsize, None).await
    }

    /// [`Ws::connect`] asking for `subprotocol` (`Sec-WebSocket-Protocol`); an answer that does
    /// not name it is refused.
    pub async fn connect_with(
        url: &Url,
        bind: Option<IpAddr>,
        bufsize: usize,
        subprotocol: Option<&str>,
    ) -> Result<Ws, ConnectError> {
        let stream = tcp_connect(url, bind).await?;
        let mut ws = Ws {
            stream,
            buf: vec![0; bufsize.max(512)],
            start: 0,
            end: 0,
            msg_op: 0,
            msg: Vec::new(),
            wbuf: Vec::with_capacity(256),
            rng: 0x9E37_79B9 ^ (bufsize as u32).wrapping_mul(2_654_435_761),
        };
        let protocol_header = subprotocol
            .map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: a3diLWxvYWQtMDEyMzQ1Ng==\r\nSec-WebSocket-Version: 13\r\n\
             {protocol_header}\r\n",
            url.path, url.host
        );
        ws.stream.write_all(request.as_bytes()).await?;
        loop {
            if let Some(i) = find(&ws.buf[..ws.end], b"\r\n\r\n") {
                let head = &ws.buf[..i];
                let status = head.split(|&b| b == b'\r').next().unwrap_or(&[]);
                let status = String::from_utf8_lossy(status).into_owned();
                if !status.starts_with("HTTP/1.1 101") {
                    return Err(ConnectError::Refused(status));
                }
                if let Some(p) = subprotocol {
                    if header_value(head, b"sec-websocket-protocol") != Some(p.as_bytes()) {
                        return Err(ConnectError::Refused(format!(
                            "{status} without the subprotocol {p}"
                        )));
                    }
                }
                ws.start = i + 4;
                return Ok(ws);
            }
            if ws.end == ws.buf.len() {
                ws.buf.resize(ws.buf.len() * 2, 0);
            }
            let n = ws.stream.read(&mut ws.buf[ws.end..]).await?;
            if n == 0 {
                return Err(ConnectError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            ws.end += n;
        }
    }

    /// Reads more bytes within `wait` (forever when None): Ok(true) when bytes arrived,
    /// Ok(false) when the wait passed, Err(outcome) when the connection ended (`eof`,
    /// `io_<kind>`).
    pub async fn read_more(&mut self, wait: Option<std::time::Duration>) -> Result<bool, String> {
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
            Err(e) => Err(format!("io_{:?}", e.kind())),
        }
    }

    /// [`Self::parse`] with a malformed frame as the outcome that ends the connection.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, String> {
        self.parse().map_err(|_| "bad_frame".to_owned())
    }

    /// Reads more bytes; Ok(0) at end of stream. Cancel-safe.
    pub async fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 && self.buf.len() - self.end < self.buf.len() / 4 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let len = self.buf.len();
            self.buf.resize(len * 2, 0);
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    /// The next complete frame in the buffer, or None when more bytes are needed. Data frames
    /// of a fragmented message come back once, reassembled, with the first fragment's opcode.
    pub fn parse(&mut self) -> io::Result<Option<Frame>> {
        loop {
            let avail = &self.buf[self.start..self.end];
            if avail.len() < 2 {
                return Ok(None);
            }
            let fin = avail[0] & 0x80 != 0;
            let op = avail[0] & 0x0f;
            let masked = avail[1] & 0x80 != 0;
            let len7 = (avail[1] & 0x7f) as usize;
            let (mut header, len) = match len7 {
                126 => {
                    if avail.len() < 4 {
                        return Ok(None);
                    }
                    (4, u16::from_be_bytes([avail[2], avail[3]]) as usize)
                }
                127 => {
                    if avail.len() < 10 {
                        return Ok(None);
                    }
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&avail[2..10]);
                    (10, u64::from_be_bytes(b) as usize)
                }
                n => (2, n),
            };
            let mask_at = header;
            if masked {
                header += 4;
            }
            if avail.len() < header + len {
                if header + len > self.buf.len() {
                    // Make room for the whole frame on the next fill.
                    let need = header + len;
                    self.buf.copy_within(self.start..self.end, 0);
                    self.end -= self.start;
                    self.start = 0;
                    self.buf.resize(need.next_power_of_two(), 0);
                }
                return Ok(None);
            }
            let (s, e) = (self.start + header, self.start + header + len);
            if masked {
                let key: [u8; 4] = self.buf[self.start + mask_at..self.start + mask_at + 4]
                    .try_into()
                    .expect("4 bytes");
                for (i, b) in self.buf[s..e].iter_mut().enumerate() {
                    *b ^= key[i & 3];
                }
            }
            self.start = e;
            if op >= 0x8 {
                return Ok(Some(Frame {
                    op,
                    start: s,
                    end: e,
                    assembled: false,
                }));
            }
            if op == OP_CONT {
                if self.msg_op == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "continuation frame without a message",
                    ));
                }
                self.msg.extend_from_slice(&self.buf[s..e]);
                if fin {
                    let op = std::mem::replace(&mut self.msg_op, 0);
                    return Ok(Some(Frame {
                        op,
                        start: 0,
                        end: self.msg.len(),
                        assembled: true,
                    }));
                }
                continue;
            }
            if !fin {
                self.msg_op = op;
                self.msg.clear();
                self.msg.extend_from_slice(&self.buf[s..e]);
                continue;
            }
            return Ok(Some(Frame {
                op,
                start: s,
                end: e,
                assembled: false,
            }));
        }
    }

    pub fn payload(&self, f: &Frame) -> &[u8] {
        if f.assembled {
            &self.msg[f.start..f.end]
        } else {
            &self.buf[f.start..f.end]
        }
    }

    fn next_mask(&mut self) -> [u8; 4] {
        // xorshift32: masking keys need not be secret here.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        x.to_le_bytes()
    }

    /// Appends one masked frame to the write buffer (sent by [`Ws::flush`]).
    pub fn queue_frame(&mut self, op: u8, payload: &[u8]) {
        let key = self.next_mask();
        self.wbuf.push(0x80 | op);
        let len = payload.len();
        if len < 126 {
            self.wbuf.push(0x80 | len as u8);
        } else if len <= u16::MAX as usize {
            self.wbuf.push(0x80 | 126);
            self.wbuf.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            self.wbuf.push(0x80 | 127);
            self.wbuf.extend_from_slice(&(len as u64).to_be_bytes());
        }
        self.wbuf.extend_from_slice(&key);
        let at = self.wbuf.len();
        self.wbuf.extend_from_slice(payload);
        for (i, b) in self.wbuf[at..].iter_mut().enumerate() {
            *b ^= key[i & 3];
        }
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    pub async fn send_text(&mut self, payload: &[u8]) -> io::Result<()> {
        self.queue_frame(OP_TEXT, payload);
        self.flush().await
    }

    /// Answers a ping frame with a pong carrying the same payload.
    pub async fn pong(&mut self, f: &Frame) -> io::Result<()> {
        let data = self.payload(f).to_vec();
        self.queue_frame(OP_PONG, &data);
        self.flush().await
    }

    /// The next complete text frame already read, answering pings and closes on the way: None
    /// when the buffer holds no more, Err with the outcome when the connection ends.
    pub async fn next_text(&mut self) -> Result<Option<Frame>, String> {
        while let Some(f) = self.next_frame()? {
            if f.op == OP_TEXT {
                return Ok(Some(f));
            }
            if let Some(end) = self.on_control(&f).await {
                return Err(end);
            }
        }
        Ok(None)
    }

    /// Handles a ping (answered) or a close (answered, then the connection ends): the outcome
    /// that ends the connection (`write_error`, `close_<code>`), or None to read on.
    pub async fn on_control(&mut self, f: &Frame) -> Option<String> {
        match f.op {
            OP_PING => self.pong(f).await.err().map(|_| "write_error".to_owned()),
            OP_CLOSE => {
                let code = close_code(self.payload(f));
                self.close().await;
                Some(format!(
                    "close_{}",
                    code.map_or("none".into(), |c| c.to_string())
                ))
            }
            _ => None,
        }
    }

    /// Sends a close frame (code 1000) and shuts the write side down; best effort.
    pub async fn close(&mut self) {
        self.queue_frame(OP_CLOSE, &1000u16.to_be_bytes());
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
    }
}

/// The close code of a close frame's payload.
pub fn close_code(payload: &[u8]) -> Option<u16> {
    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]))
}

/// The unsigned integer after `"name":` (whitespace allowed around the colon), if any.
#[inline]
pub fn find_u64(text: &[u8], quoted_name: &[u8]) -> Option<u64> {
    let at = find(text, quoted_name)? + quoted_name.len();
    let mut i = at;
    while i < text.len() && (text[i] == b' ' || text[i] == b':') {
        i += 1;
    }
    let mut v: u64 = 0;
    let digits_start = i;
    while i < text.len() && text[i].is_ascii_digit() {
        v = v * 10 + (text[i] - b'0') as u64;
        i += 1;
    }
    (i > digits_start).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_numbers() {
        assert_eq!(
            find_u64(br#"{"data":{"ts":12345,"pad":"x"}}"#, b"\"ts\""),
            Some(12345)
        );
        assert_eq!(
            find_u64(br#"{"data": {"ts": 77, "pad": "x"}}"#, b"\"ts\""),
            Some(77)
        );
        assert_eq!(find_u64(br#"{"type":"welcome"}"#, b"\"ts\""), None);
    }
}
