//! The physical floor: `kwb-load raw-writer`, a WebSocket server that writes the bridge's
//! `message` frames (same bytes: the record, its channel, key, offset, timestamp and headers) to
//! connected sockets at a paced rate, with no Kafka and no logic — no routing table beyond a key
//! map, no queues, no per-session task. What the bridge spends per delivery above what this
//! spends is the cost of being a bridge; the rest is the kernel's.
//!
//! One thread, one loop, woken every millisecond. Record `n` after a `RATE r` command is
//! *scheduled* at `n / r` seconds after it and carries that time as its `ts` (as the Kafka load
//! producer does, see pace.rs); how late the loop encoded it is `behind_us_max`.
//!
//! - Broadcast (default): due records are encoded once and accumulated; every `F` of them
//!   (`--frames-per-write F`) go to each socket in one `write` — so the floor can batch exactly
//!   as much as the bridge did at the same rate (the bridge's frames per write are
//!   Δ`messages_delivered_total` / Δ`socket_writes_total`). A partial group is written once its
//!   oldest frame has waited `--max-hold-ms`.
//! - `--keyed`: each session subscribed with `"key":"k{i}"` is the one socket of that key;
//!   record `n` is keyed `k{n mod keys}` (`KEYS` command, default: the keyed sockets connected)
//!   and goes as one frame in one write to the socket of its key.
//!
//! Bytes a socket does not take wait in its own buffer for the next tick (a socket more than
//! 4 MiB behind is dropped). Everything is counted, not computed: records generated, frames
//! and bytes owed to sockets, bytes actually written (per socket: min and max), writes.
//! The load generator drives it over a text control connection on the same port (rawconn.rs).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};

use crate::kafka::{record_value, CENTRIFUGO_CHANNELS_HEADER};
use crate::pace::{due, offset_us};
use crate::rawconn::connection;
pub use crate::rawconn::RawControl;

/// A socket more than this many bytes behind is dropped (the bridge's bound is per message
/// count; this only keeps a stuck client from growing the writer without limit).
const MAX_PENDING: usize = 4 << 20;

pub struct Sink {
    pub stream: Rc<TcpStream>,
    pending: Vec<u8>,
    /// Bytes handed to the kernel since the last `WINDOW`.
    written: u64,
}

impl Sink {
    pub fn new(stream: Rc<TcpStream>) -> Sink {
        Sink {
            stream,
            pending: Vec::new(),
            written: 0,
        }
    }
}

/// Counters since the last `WINDOW` command (what `STATS` answers).
#[derive(Default, Clone, Copy)]
pub struct Stats {
    /// Records generated.
    pub records: u64,
    /// Records whose scheduled time lies in the window.
    pub in_window: u64,
    /// Largest lateness of a record: encode time − scheduled time, µs.
    pub behind_us_max: u64,
    /// Frames owed to sockets (a record × each socket it goes to).
    pub frames_asked: u64,
    pub bytes_asked: u64,
    pub bytes_written: u64,
    /// `write` calls that wrote something.
    pub writes: u64,
    /// Keyed records whose key had no socket.
    pub unrouted: u64,
    pub dropped_sockets: u64,
}

#[derive(Default)]
pub struct State {
    pub sinks: Vec<Sink>,
    /// `--keyed`: the socket of each key number.
    pub keyed: HashMap<u64, Sink>,
    /// Keyed sockets holding unwritten bytes.
    dirty: Vec<u64>,
    pub rate: f64,
    /// When the current rate was set (monotonic, and µs since the epoch).
    pub rate_since: Option<(Instant, u64)>,
    /// No record scheduled at or after this (µs since the epoch) is generated.
    pub rate_until: u64,
    pub keys: u64,
    pub window: (u64, u64),
    pub stats: Stats,
    total_records: u64,
}

impl State {
    /// `WINDOW t0 t1`: counts start again, for records scheduled in [t0, t1).
    pub fn reset_window(&mut self, t0: u64, t1: u64) {
        self.window = (t0, t1);
        self.stats = Stats::default();
        self.sinks.iter_mut().for_each(|s| s.written = 0);
        self.keyed.values_mut().for_each(|s| s.written = 0);
    }

    /// The `STATS` answer.
    pub fn stats_json(&self) -> Value {
        let s = &self.stats;
        let per_socket = self
            .sinks
            .iter()
            .chain(self.keyed.values())
            .map(|k| k.written);
        let min = per_socket.clone().min();
        let max = per_socket.max();
        json!({
            "records": s.records, "in_window": s.in_window, "behind_us_max": s.behind_us_max,
            "frames_asked": s.frames_asked, "bytes_asked": s.bytes_asked,
            "bytes_written": s.bytes_written, "writes": s.writes, "unrouted": s.unrouted,
            "dropped_sockets": s.dropped_sockets, "sockets": self.sinks.len() + self.keyed.len(),
            "socket_bytes_written_min": min, "socket_bytes_written_max": max,
        })
    }
}

pub struct RawOpts {
    pub listen: SocketAddr,
    pub channel: String,
    pub size: usize,
    /// Broadcast: frames per socket write (≥ 1).
    pub frames_per_write: usize,
    /// Broadcast: a partial group of frames is written once its oldest has waited this long.
    pub max_hold: Duration,
    /// Sessions that subscribe with a key get only the records of their key.
    pub keyed: bool,
}

/// Writes `chunk` (`frames` frames) to one socket: one `write` when nothing is pending,
/// else appended to what is. False when the socket is gone.
fn offer(sink: &mut Sink, chunk: &[u8], frames: u64, st: &mut Stats) -> bool {
    st.frames_asked += frames;
    st.bytes_asked += chunk.len() as u64;
    if !sink.pending.is_empty() {
        sink.pending.extend_from_slice(chunk);
        return true;
    }
    match sink.stream.try_write(chunk) {
        Ok(n) => {
            st.writes += 1;
            st.bytes_written += n as u64;
            sink.written += n as u64;
            sink.pending.extend_from_slice(&chunk[n..]);
            true
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            sink.pending.extend_from_slice(chunk);
            true
        }
        Err(_) => false,
    }
}

/// Writes what a socket has pending; false when it is gone or too far behind.
fn flush(sink: &mut Sink, st: &mut Stats) -> bool {
    if sink.pending.is_empty() {
        return true;
    }
    match sink.stream.try_write(&sink.pending) {
        Ok(n) => {
            st.writes += 1;
            st.bytes_written += n as u64;
            sink.written += n as u64;
            sink.pending.drain(..n);
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(_) => return false,
    }
    if sink.pending.len() > MAX_PENDING {
        st.dropped_sockets += 1;
        return false;
    }
    true
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
    let keyed = o.keyed;
    tokio::task::spawn_local(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::task::spawn_local(connection(stream, st.clone(), keyed));
        }
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let fpw = o.frames_per_write.max(1);
    let mut seq: u64 = 0;
    let mut batch = Vec::with_capacity(64 << 10);
    // End offset of each frame in `batch`, and when its first frame was encoded.
    let mut ends: Vec<usize> = Vec::new();
    let mut oldest = Instant::now();
    let mut frame = Vec::with_capacity(o.size + 256);
    let mut value = Vec::with_capacity(o.size + 64);
    let mut key = String::new();
    let mut produced_since_rate: u64 = 0;
    let mut rate_seen: Option<(Instant, u64)> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
        let mut guard = state.borrow_mut();
        let s = &mut *guard;
        if s.rate_since != rate_seen {
            rate_seen = s.rate_since;
            produced_since_rate = 0;
        }
        if let Some((since, since_us)) = s.rate_since.filter(|_| s.rate > 0.0) {
            let elapsed = since.elapsed().as_micros() as u64;
            let due = due(elapsed, s.rate, u64::MAX);
            let keys = if s.keys > 0 {
                s.keys
            } else {
                s.keyed.len() as u64
            };
            while produced_since_rate < due {
                let at = offset_us(produced_since_rate, s.rate);
                let ts = since_us + at;
                if ts >= s.rate_until {
                    break;
                }
                let late = (since.elapsed().as_micros() as u64).saturating_sub(at);
                s.stats.behind_us_max = s.stats.behind_us_max.max(late);
                s.stats.records += 1;
                s.total_records += 1;
                if ts >= s.window.0 && ts < s.window.1 {
                    s.stats.in_window += 1;
                }
                record_value(&mut value, ts, seq, o.size);
                if o.keyed && keys > 0 {
                    use std::fmt::Write;
                    let k = seq % keys;
                    key.clear();
                    let _ = write!(key, "k{k}");
                    frame.clear();
                    message_frame(&mut frame, &o.channel, Some(&key), &value, seq, ts / 1000);
                    match s.keyed.get_mut(&k) {
                        Some(sink) => {
                            let had = !sink.pending.is_empty();
                            if !offer(sink, &frame, 1, &mut s.stats) {
                                s.keyed.remove(&k);
                            } else if !had && !sink.pending.is_empty() {
                                s.dirty.push(k);
                            }
                        }
                        None => s.stats.unrouted += 1,
                    }
                } else {
                    if ends.is_empty() {
                        oldest = Instant::now();
                    }
                    message_frame(&mut batch, &o.channel, None, &value, seq, ts / 1000);
                    ends.push(batch.len());
                }
                seq += 1;
                produced_since_rate += 1;
            }
        }
        // Broadcast: full groups of `fpw` frames, then a partial group that waited long enough.
        let mut from = 0;
        let mut done = 0;
        while ends.len() - done >= fpw || (ends.len() > done && oldest.elapsed() >= o.max_hold) {
            let n = (ends.len() - done).min(fpw);
            let to = ends[done + n - 1];
            let chunk = &batch[from..to];
            let State { sinks, stats, .. } = &mut *s;
            sinks.retain_mut(|sink| offer(sink, chunk, n as u64, stats));
            from = to;
            done += n;
        }
        if done > 0 {
            batch.drain(..from);
            ends.drain(..done);
            ends.iter_mut().for_each(|e| *e -= from);
            oldest = Instant::now();
        }
        let State {
            sinks,
            keyed,
            dirty,
            stats,
            ..
        } = &mut *s;
        sinks.retain_mut(|sink| flush(sink, stats));
        dirty.retain(|k| {
            let Some(sink) = keyed.get_mut(k) else {
                return false;
            };
            if flush(sink, stats) {
                !sink.pending.is_empty()
            } else {
                keyed.remove(k);
                false
            }
        });
    }
    let s = state.borrow();
    Ok(
        json!({"records": s.total_records, "writes": s.stats.writes, "dropped_sockets": s.stats.dropped_sockets}),
    )
}

/// The bridge's `message` frame for one record (`key` on a by_key channel; an unmasked text
/// frame, header included), appended to `out`.
pub fn message_frame(
    out: &mut Vec<u8>,
    channel: &str,
    key: Option<&str>,
    value: &[u8],
    offset: u64,
    ts_ms: u64,
) {
    use std::io::Write;
    let mut payload = Vec::with_capacity(value.len() + 160);
    let _ = write!(payload, r#"{{"type":"message","channel":"{channel}""#);
    if let Some(k) = key {
        let _ = write!(payload, r#","key":"{k}""#);
    }
    payload.extend_from_slice(br#","data":"#);
    payload.extend_from_slice(value);
    let header = key.unwrap_or(channel);
    let _ = write!(
        payload,
        r#","partition":0,"offset":{offset},"timestamp":{ts_ms},"headers":{{"{CENTRIFUGO_CHANNELS_HEADER}":"{header}"}}}}"#
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_the_bridges() {
        let mut out = Vec::new();
        message_frame(
            &mut out,
            "fanout",
            None,
            br#"{"ts":1,"seq":2,"pad":"x"}"#,
            2,
            0,
        );
        assert_eq!(out[0], 0x81);
        let header = if out[1] == 126 { 4 } else { 2 };
        let v: Value = serde_json::from_slice(&out[header..]).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["data"]["seq"], 2);
        assert_eq!(v["headers"][CENTRIFUGO_CHANNELS_HEADER], "fanout");
        assert!(v.get("key").is_none());
    }

    #[test]
    fn keyed_frames_carry_their_key() {
        let mut out = Vec::new();
        message_frame(&mut out, "keyed", Some("k7"), br#"{"ts":1}"#, 7, 0);
        let header = if out[1] == 126 { 4 } else { 2 };
        let v: Value = serde_json::from_slice(&out[header..]).unwrap();
        assert_eq!(v["key"], "k7");
        assert_eq!(v["headers"][CENTRIFUGO_CHANNELS_HEADER], "k7");
    }
}
