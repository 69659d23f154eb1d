//! The physical floor: `kwb-load raw-writer`, a WebSocket server that writes the bridge's
//! `message` frames (same bytes: the record, its channel, offset, timestamp and headers) to every
//! connected socket at a paced rate, with no Kafka and no logic — no routing, no queues, no
//! per-session task. What the bridge spends per delivery above what this spends is the cost of
//! being a bridge; the rest is the kernel's.
//!
//! One thread, one loop: every millisecond the records that are due are encoded once into one
//! buffer, and that buffer goes to each socket in one `write` (bytes a socket does not take wait
//! for the next tick; a socket more than 4 MiB behind is dropped). The load generator paces it
//! over a plain-text control connection on the same port (`RATE <records/s>\n` → `OK\n`), and
//! reads its CPU from /proc like a bridge's.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::kafka::{record_value, PaceReport, CENTRIFUGO_CHANNELS_HEADER};
use crate::procstat::now_us;

/// A socket more than this many bytes behind is dropped (the bridge's bound is per message
/// count; this only keeps a stuck client from growing the writer without limit).
const MAX_PENDING: usize = 4 << 20;

struct Sink {
    stream: Rc<TcpStream>,
    pending: Vec<u8>,
}

#[derive(Default)]
struct State {
    sinks: Vec<Sink>,
    rate: f64,
    rate_since: Option<Instant>,
    written: u64,
    dropped: u64,
}

pub struct RawOpts {
    pub listen: SocketAddr,
    pub channel: String,
    pub size: usize,
}

/// Runs the writer until SIGTERM or Ctrl-C; prints `READY ws://ADDR/ws` when listening.
pub async fn serve(o: RawOpts) -> Result<Value, String> {
    let listener = TcpListener::bind(o.listen)
        .await
        .map_err(|e| format!("bind {}: {e}", o.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    eprintln!("READY ws://{addr}/ws");
    let state = Rc::new(RefCell::new(State::default()));
    let st = state.clone();
    tokio::task::spawn_local(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::task::spawn_local(connection(stream, st.clone()));
        }
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut seq: u64 = 0;
    let mut batch = Vec::with_capacity(64 << 10);
    let mut value = Vec::with_capacity(o.size + 64);
    let mut produced_since_rate: u64 = 0;
    let mut rate_seen: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
        let mut s = state.borrow_mut();
        if s.rate_since != rate_seen {
            rate_seen = s.rate_since;
            produced_since_rate = 0;
        }
        batch.clear();
        if let Some(since) = s.rate_since.filter(|_| s.rate > 0.0) {
            let due = (since.elapsed().as_secs_f64() * s.rate) as u64 + 1;
            // Never more than 50 ms worth in one tick, as the Kafka load producer.
            let cap = produced_since_rate + ((s.rate * 0.05) as u64).max(1);
            while produced_since_rate < due.min(cap) {
                let ts = now_us();
                record_value(&mut value, ts, seq, o.size);
                message_frame(&mut batch, &o.channel, &value, seq, ts / 1000);
                seq += 1;
                produced_since_rate += 1;
            }
        }
        let State {
            sinks,
            written,
            dropped,
            ..
        } = &mut *s;
        sinks.retain_mut(|sink| {
            if !batch.is_empty() {
                if sink.pending.is_empty() {
                    match sink.stream.try_write(&batch) {
                        Ok(n) => {
                            *written += 1;
                            if n < batch.len() {
                                sink.pending.extend_from_slice(&batch[n..]);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            sink.pending.extend_from_slice(&batch)
                        }
                        Err(_) => return false,
                    }
                    return true;
                }
                sink.pending.extend_from_slice(&batch);
            }
            if sink.pending.is_empty() {
                return true;
            }
            match sink.stream.try_write(&sink.pending) {
                Ok(n) => {
                    *written += 1;
                    sink.pending.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return false,
            }
            if sink.pending.len() > MAX_PENDING {
                *dropped += 1;
                return false;
            }
            true
        });
    }
    let s = state.borrow();
    Ok(json!({"records": seq, "writes": s.written, "dropped_sockets": s.dropped}))
}

/// The bridge's `message` frame for one record of a broadcast channel (an unmasked text
/// frame, header included), appended to `out`.
fn message_frame(out: &mut Vec<u8>, channel: &str, value: &[u8], offset: u64, ts_ms: u64) {
    use std::io::Write;
    let mut payload = Vec::with_capacity(value.len() + 160);
    let _ = write!(
        payload,
        r#"{{"type":"message","channel":"{channel}","data":"#
    );
    payload.extend_from_slice(value);
    let _ = write!(
        payload,
        r#","partition":0,"offset":{offset},"timestamp":{ts_ms},"headers":{{"{CENTRIFUGO_CHANNELS_HEADER}":"{channel}"}}}}"#
    );
    out.push(0x81);
    let len = payload.len();
    if len < 126 {
        out.push(len as u8);
    } else if len <= u16::MAX as usize {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&payload);
}

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

/// One accepted connection: the control protocol (`RATE …`) or a WebSocket upgrade. A
/// WebSocket session is answered `subscribed` on its first frame and joins the sinks; what it
/// sends afterwards is read and ignored.
async fn connection(stream: TcpStream, state: Rc<RefCell<State>>) {
    let _ = stream.set_nodelay(true);
    let mut head = Vec::with_capacity(1024);
    let mut buf = vec![0u8; 4096];
    let stream = Rc::new(stream);
    loop {
        if head.starts_with(b"RATE ") {
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
            let mut seen = head.len() > end + 4;
            loop {
                if seen {
                    let subscribed = br#"{"type":"subscribed","id":"s","channel":"raw"}"#;
                    let mut frame = vec![0x81, subscribed.len() as u8];
                    frame.extend_from_slice(subscribed);
                    if write_all(&stream, &frame).await.is_err() {
                        return;
                    }
                    state.borrow_mut().sinks.push(Sink {
                        stream: stream.clone(),
                        pending: Vec::new(),
                    });
                    break;
                }
                match read_some(&stream, &mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => seen = true,
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

async fn control(stream: TcpStream, first: Vec<u8>, state: Rc<RefCell<State>>) {
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r);
    let mut pending = String::from_utf8_lossy(&first).into_owned();
    loop {
        while let Some(i) = pending.find('\n') {
            let line: String = pending.drain(..=i).collect();
            let rate = line
                .trim()
                .strip_prefix("RATE ")
                .and_then(|r| r.parse::<f64>().ok());
            let answer: &[u8] = match rate {
                Some(r) => {
                    let mut s = state.borrow_mut();
                    s.rate = r;
                    s.rate_since = Some(Instant::now());
                    b"OK\n"
                }
                None => b"ERR\n",
            };
            if w.write_all(answer).await.is_err() {
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

    pub async fn set_rate(&mut self, rate: f64) -> Result<(), String> {
        let line = format!("RATE {rate}\n");
        self.stream
            .get_mut()
            .write_all(line.as_bytes())
            .await
            .map_err(|e| format!("raw writer control: {e}"))?;
        let mut answer = String::new();
        self.stream
            .read_line(&mut answer)
            .await
            .map_err(|e| format!("raw writer control: {e}"))?;
        if answer.trim() != "OK" {
            return Err(format!("raw writer control: answered {answer:?}"));
        }
        Ok(())
    }

    /// Lets the writer write `rate` records/s for `dur` (the pacing is the writer's own).
    pub async fn run(&mut self, rate: f64, dur: Duration) -> PaceReport {
        let start = Instant::now();
        let _ = self.set_rate(rate).await;
        tokio::time::sleep(dur).await;
        let _ = self.set_rate(0.0).await;
        PaceReport {
            produced: (rate * dur.as_secs_f64()) as u64,
            secs: start.elapsed().as_secs_f64(),
            max_behind: 0,
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
    fn frames_are_the_bridges() {
        let mut out = Vec::new();
        message_frame(&mut out, "fanout", br#"{"ts":1,"seq":2,"pad":"x"}"#, 2, 0);
        assert_eq!(out[0], 0x81);
        let header = if out[1] == 126 { 4 } else { 2 };
        let v: Value = serde_json::from_slice(&out[header..]).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["data"]["seq"], 2);
        assert_eq!(v["headers"][CENTRIFUGO_CHANNELS_HEADER], "fanout");
    }
}
