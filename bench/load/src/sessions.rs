//! The load sessions of the outbound scenarios: each connects, subscribes (session i to key
//! `k{i}` on keyed load), and counts every delivery into [`Shared`]: receipt time − the
//! record's `ts` goes into the histogram when `ts` lies in the measured window.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::deliver::Target;
use crate::hist::Hist;
use crate::procstat::now_us;
use crate::proto::{Event, Protocol};
use crate::sse::Sse;
use crate::ws::{find_u64, Ws, OP_TEXT};

#[derive(Default)]
pub struct Shared {
    pub win_start: Cell<u64>,
    pub win_end: Cell<u64>,
    pub hist: RefCell<Hist>,
    pub in_window: Cell<u64>,
    /// Raw writer runs: the lowest and one past the highest record number seen in the window
    /// (its records are numbered without gaps, so this is how many it wrote).
    pub seq_min: Cell<u64>,
    pub seq_max: Cell<u64>,
    pub received: Cell<u64>,
    /// Receipt time (µs) of the latest delivery of a record scheduled in the window.
    pub last_win_rx_us: Cell<u64>,
    pub last_rx_us: Cell<u64>,
    pub subscribed: Cell<usize>,
    pub probed: Cell<usize>,
    pub done: Cell<usize>,
    pub closes: RefCell<BTreeMap<String, u64>>,
    pub errors: RefCell<BTreeMap<String, u64>>,
    pub connect_failures: RefCell<BTreeMap<String, u64>>,
}

impl Shared {
    pub fn count(map: &RefCell<BTreeMap<String, u64>>, key: String) {
        *map.borrow_mut().entry(key).or_default() += 1;
    }

    pub fn closed_total(&self) -> u64 {
        self.closes.borrow().values().sum()
    }
}

pub fn map_json(map: &RefCell<BTreeMap<String, u64>>) -> Value {
    json!(map.borrow().clone())
}

/// Counts one event of a session (`payload`: the frame or event it came in, `now`: when it was
/// read); true when it asks for an application-level pong.
fn on_event(
    e: Event,
    now: u64,
    payload: &[u8],
    t: &Target,
    shared: &Shared,
    probed: &mut bool,
) -> bool {
    match e {
        Event::Publication(ts) => {
            shared.received.set(shared.received.get() + 1);
            shared.last_rx_us.set(now);
            if ts >= shared.win_start.get() && ts < shared.win_end.get() {
                shared.in_window.set(shared.in_window.get() + 1);
                shared.hist.borrow_mut().record(now.saturating_sub(ts));
                shared.last_win_rx_us.set(now);
                if t.raw {
                    if let Some(seq) = find_u64(payload, b"\"seq\"") {
                        shared.seq_min.set(shared.seq_min.get().min(seq));
                        shared.seq_max.set(shared.seq_max.get().max(seq + 1));
                    }
                }
            }
            if !*probed {
                *probed = true;
                shared.probed.set(shared.probed.get() + 1);
            }
        }
        Event::Subscribed => shared.subscribed.set(shared.subscribed.get() + 1),
        Event::Error(code) => Shared::count(&shared.errors, code),
        Event::Ping => return true,
        Event::Other => {}
    }
    false
}

pub async fn session(
    i: usize,
    t: Rc<Target>,
    shared: Rc<Shared>,
    gate: Rc<Semaphore>,
    bufsize: usize,
) {
    if t.protocol == Protocol::Sse {
        return sse_session(i, t, shared, gate, bufsize).await;
    }
    let bind = (!t.bind.is_empty()).then(|| t.bind[i % t.bind.len()]);
    let permit = gate.acquire().await;
    let mut ws = match Ws::connect_with(&t.url, bind, bufsize, t.protocol.subprotocol()).await {
        Ok(ws) => ws,
        Err(e) => {
            Shared::count(&shared.connect_failures, e.kind());
            shared.done.set(shared.done.get() + 1);
            return;
        }
    };
    drop(permit);
    let key = t.keyed.then(|| format!("k{i}"));
    for frame in t.protocol.subscribe_frames(i, &t.channel, key.as_deref()) {
        ws.queue_frame(OP_TEXT, frame.as_bytes());
    }
    if ws.flush().await.is_err() {
        Shared::count(&shared.closes, "write_error".into());
        shared.done.set(shared.done.get() + 1);
        return;
    }
    let mut probed = false;
    let outcome: String = 'outer: loop {
        if let Err(end) = ws.read_more(None).await {
            break end;
        }
        let now = now_us();
        loop {
            let f = match ws.next_text().await {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(end) => break 'outer end,
            };
            let p = ws.payload(&f);
            let mut ping = false;
            t.protocol.events(p, |e| {
                ping |= on_event(e, now, p, &t, &shared, &mut probed);
            });
            if ping && ws.send_text(t.protocol.pong()).await.is_err() {
                break 'outer "write_error".to_owned();
            }
        }
    };
    Shared::count(&shared.closes, outcome);
    shared.done.set(shared.done.get() + 1);
}

/// A Server-Sent Events session: one stream on the channel (`t.url` is the SSE endpoint).
async fn sse_session(
    i: usize,
    t: Rc<Target>,
    shared: Rc<Shared>,
    gate: Rc<Semaphore>,
    bufsize: usize,
) {
    let bind = (!t.bind.is_empty()).then(|| t.bind[i % t.bind.len()]);
    let key = t.keyed.then(|| format!("k{i}"));
    let query = Protocol::sse_query(&t.channel, key.as_deref());
    let permit = gate.acquire().await;
    let mut sse = match Sse::connect(&t.url, &query, bind, bufsize).await {
        Ok(sse) => sse,
        Err(e) => {
            Shared::count(&shared.connect_failures, e.kind());
            shared.done.set(shared.done.get() + 1);
            return;
        }
    };
    drop(permit);
    let mut probed = false;
    let mut now = now_us();
    let outcome: String = loop {
        while let Some(at) = sse.next_event() {
            let p = sse.event(&at);
            t.protocol.events(p, |e| {
                on_event(e, now, p, &t, &shared, &mut probed);
            });
        }
        if let Err(end) = sse.read_more(None).await {
            break end;
        }
        now = now_us();
    };
    Shared::count(&shared.closes, outcome);
    shared.done.set(shared.done.get() + 1);
}
