//! The raw writer's connections (raw.rs): WebSocket sessions and the control connection, and
//! the load generator's client of that control connection.
//!
//! Control protocol (text lines, one answer line each):
//! - `RATE <records/s> [<end_us>]` → `OK`: write at that rate from now (0 stops); record `n`
//!   is scheduled `n / rate` after this command; none scheduled at or after `end_us` (µs since
//!   the epoch) is written, so a writer that fell behind does not keep adding to its backlog
//!   when the generator's stop arrives late;
//! - `KEYS <n>` → `OK`: keyed writer: record `n` goes to key `k{n mod keys}`;
//! - `WINDOW <t0_us> <t1_us>` → `OK`: counters start again; records scheduled in [t0, t1) are
//!   counted as the window's;
//! - `STATS` → `STATS <json>`: the counters (see `State::stats_json`).

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::kafka::PaceReport;
use crate::procstat::now_us;
use crate::raw::{Sink, State};

/// `Sec-WebSocket-Accept` for a client's key (RFC 6455 section 4.2.2).
fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn read_some(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        stream.readable().await?;
        match stream.try_read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

/// The unmasked payload of the first client frame in `b`, when it is complete.
pub fn client_frame(b: &[u8]) -> Option<Vec<u8>> {
    if b.len() < 2 {
        return None;
    }
    let masked = b[1] & 0x80 != 0;
    let (len, mut at) = match b[1] & 0x7f {
        126 => (
            u16::from_be_bytes(b.get(2..4)?.try_into().ok()?) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(b.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let mask: [u8; 4] = if masked {
        let m = b.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        m
    } else {
        [0; 4]
    };
    let payload = b.get(at..at + len)?;
    Some(
        payload
            .iter()
            .enumerate()
            .map(|(i, x)| x ^ mask[i % 4])
            .collect(),
    )
}

/// The key number of a subscribe frame's `"key":"k<n>"`.
fn key_number(payload: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(payload, b"\"key\":\"k")?;
    let digits = &payload[at + 8..];
    let n = digits.iter().take_while(|c| c.is_ascii_digit()).count();
    std::str::from_utf8(&digits[..n]).ok()?.parse().ok()
}

/// One accepted connection: the control protocol or a WebSocket upgrade. A WebSocket session
/// is answered `subscribed` on its first frame and joins the sinks (a keyed writer files a
/// session that subscribes with a key under that key); what it sends afterwards is ignored.
pub async fn connection(stream: TcpStream, state: Rc<RefCell<State>>, keyed: bool) {
    let _ = stream.set_nodelay(true);
    let mut head = Vec::with_capacity(1024);
    let mut buf = vec![0u8; 4096];
    let stream = Rc::new(stream);
    loop {
        if head.len() >= 4 && !head.starts_with(b"GET ") {
            let Ok(stream) = Rc::try_unwrap(stream) else {
                return;
            };
            control(stream, head, state).await;
            return;
        }
        if let Some(end) = memchr::memmem::find(&head, b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&head[..end]).into_owned();
            let key = text
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.trim()
                        .eq_ignore_ascii_case("sec-websocket-key")
                        .then(|| value.trim().to_owned())
                })
                .unwrap_or_default();
            let answer = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {}\r\n\r\n",
                accept_key(&key)
            );
            if write_all(&stream, answer.as_bytes()).await.is_err() {
                return;
            }
            let mut rest = head[end + 4..].to_vec();
            let first = loop {
                if let Some(p) = client_frame(&rest) {
                    break p;
                }
                match read_some(&stream, &mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => rest.extend_from_slice(&buf[..n]),
                }
                if rest.len() > 64 << 10 {
                    return;
                }
            };
            let subscribed = br#"{"type":"subscribed","id":"s","channel":"raw"}"#;
            let mut frame = vec![0x81, subscribed.len() as u8];
            frame.extend_from_slice(subscribed);
            if write_all(&stream, &frame).await.is_err() {
                return;
            }
            {
                let mut s = state.borrow_mut();
                match key_number(&first).filter(|_| keyed) {
                    Some(k) => {
                        s.keyed.insert(k, Sink::new(stream.clone()));
                    }
                    None => s.sinks.push(Sink::new(stream.clone())),
                }
            }
            // Read and discard until the client goes away; the writer notices on its next write.
            loop {
                match read_some(&stream, &mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        }
        match read_some(&stream, &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 16 << 10 {
            return;
        }
    }
}

/// The answer to one control line.
fn command(line: &str, state: &RefCell<State>) -> String {
    let mut words = line.split_whitespace();
    let mut s = state.borrow_mut();
    let num = |w: Option<&str>| w.and_then(|x| x.parse::<f64>().ok());
    match words.next() {
        Some("RATE") => match num(words.next()) {
            Some(r) => {
                s.rate = r;
                s.rate_since = Some((Instant::now(), now_us()));
                s.rate_until = num(words.next()).map_or(u64::MAX, |u| u as u64);
                "OK".into()
            }
            None => "ERR".into(),
        },
        Some("KEYS") => match num(words.next()) {
            Some(n) => {
                s.keys = n as u64;
                "OK".into()
            }
            None => "ERR".into(),
        },
        Some("WINDOW") => match (num(words.next()), num(words.next())) {
            (Some(t0), Some(t1)) => {
                s.reset_window(t0 as u64, t1 as u64);
                "OK".into()
            }
            _ => "ERR".into(),
        },
        Some("STATS") => format!("STATS {}", s.stats_json()),
        _ => "ERR".into(),
    }
}

async fn control(stream: TcpStream, first: Vec<u8>, state: Rc<RefCell<State>>) {
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r);
    let mut pending = String::from_utf8_lossy(&first).into_owned();
    loop {
        while let Some(i) = pending.find('\n') {
            let line: String = pending.drain(..=i).collect();
            let answer = command(line.trim(), &state) + "\n";
            if w.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
        let mut line = String::new();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => pending.push_str(&line),
        }
    }
}

/// The load generator's side of the control connection.
pub struct RawControl {
    stream: BufReader<TcpStream>,
}

impl RawControl {
    pub async fn connect(addr: SocketAddr) -> Result<RawControl, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("raw writer control {addr}: {e}"))?;
        Ok(RawControl {
            stream: BufReader::new(stream),
        })
    }

    async fn ask(&mut self, line: &str) -> Result<String, String> {
        self.stream
            .get_mut()
            .write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(|e| format!("raw writer control: {e}"))?;
        let mut answer = String::new();
        self.stream
            .read_line(&mut answer)
            .await
            .map_err(|e| format!("raw writer control: {e}"))?;
        Ok(answer.trim().to_owned())
    }

    async fn ok(&mut self, line: &str) -> Result<(), String> {
        match self.ask(line).await? {
            a if a == "OK" => Ok(()),
            a => Err(format!("raw writer control: {line:?} answered {a:?}")),
        }
    }

    pub async fn set_rate(&mut self, rate: f64) -> Result<(), String> {
        self.ok(&format!("RATE {rate}")).await
    }

    /// `rate` from now, no record scheduled at or after `end_us` (µs since the epoch).
    pub async fn set_rate_until(&mut self, rate: f64, end_us: u64) -> Result<(), String> {
        self.ok(&format!("RATE {rate} {end_us}")).await
    }

    pub async fn keys(&mut self, n: u64) -> Result<(), String> {
        self.ok(&format!("KEYS {n}")).await
    }

    pub async fn window(&mut self, t0: u64, t1: u64) -> Result<(), String> {
        self.ok(&format!("WINDOW {t0} {t1}")).await
    }

    /// The writer's counters since the last `WINDOW` (raw.rs `State::stats_json`).
    pub async fn stats(&mut self) -> Result<Value, String> {
        let a = self.ask("STATS").await?;
        let json = a
            .strip_prefix("STATS ")
            .ok_or_else(|| format!("raw writer control: STATS answered {a:?}"))?;
        serde_json::from_str(json).map_err(|e| format!("raw writer STATS: {e}"))
    }

    /// Lets the writer write `rate` records/s for `dur` (the pacing is the writer's own);
    /// what it reports is what it counted.
    pub async fn run(&mut self, rate: f64, dur: Duration) -> PaceReport {
        let start = Instant::now();
        let _ = self.window(0, u64::MAX).await;
        let _ = self.set_rate(rate).await;
        tokio::time::sleep(dur).await;
        let _ = self.set_rate(0.0).await;
        let stats = self.stats().await.unwrap_or(Value::Null);
        let behind_us = stats["behind_us_max"].as_u64().unwrap_or(u64::MAX);
        PaceReport {
            produced: stats["records"].as_u64().unwrap_or(0),
            secs: start.elapsed().as_secs_f64(),
            max_behind: ((behind_us as f64) * rate / 1e6) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_accept_key() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn masked_subscribe_frames_are_read_and_keyed() {
        let payload = br#"{"type":"subscribe","id":"s3","channel":"keyed","key":"k42"}"#;
        let mask = [1u8, 2, 3, 4];
        let mut f = vec![0x81, 0x80 | payload.len() as u8];
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        assert!(client_frame(&f[..f.len() - 1]).is_none());
        let p = client_frame(&f).unwrap();
        assert_eq!(p, payload);
        assert_eq!(key_number(&p), Some(42));
        assert_eq!(key_number(br#"{"channel":"x"}"#), None);
    }

    #[test]
    fn control_commands() {
        let st = RefCell::new(State::default());
        assert_eq!(command("KEYS 10", &st), "OK");
        assert_eq!(command("WINDOW 5 9", &st), "OK");
        assert_eq!(command("RATE x", &st), "ERR");
        let stats = command("STATS", &st);
        let v: Value = serde_json::from_str(stats.strip_prefix("STATS ").unwrap()).unwrap();
        assert_eq!(v["records"], 0);
        assert_eq!(st.borrow().keys, 10);
        assert_eq!(st.borrow().window, (5, 9));
    }
}
