//! Scenario f: as many idle sessions as the box allows, each subscribed to one broadcast
//! channel on which nothing is produced; the bridge's RSS per session and its idle CPU (which
//! includes answering its own keepalive pings).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::hist::Hist;
use crate::procstat::{now_us, rss_kib, CpuMeter};
use crate::proto::{Event, Protocol};
use crate::ws::{Url, Ws, OP_PING, OP_TEXT};

pub struct IdleOpts {
    pub url: Url,
    pub channel: String,
    pub sessions: usize,
    pub bind: Vec<IpAddr>,
    pub pid: Option<u32>,
    pub hold: Duration,
    pub settle: Duration,
    pub connect_concurrency: usize,
    pub connect_timeout: Duration,
    pub protocol: Protocol,
}

#[derive(Default)]
struct State {
    subscribed: Cell<usize>,
    finished: Cell<usize>,
    failures: RefCell<BTreeMap<String, u64>>,
    closes: RefCell<BTreeMap<String, u64>>,
    errors: RefCell<BTreeMap<String, u64>>,
    pings: Cell<u64>,
    /// Records received (a broadcast produced while the sessions are held): produce → receipt.
    hist: RefCell<Hist>,
    publications: Cell<u64>,
}

async fn session(i: usize, o: Rc<IdleOpts>, st: Rc<State>, gate: Rc<Semaphore>) {
    let bind = (!o.bind.is_empty()).then(|| o.bind[i % o.bind.len()]);
    let permit = gate.acquire().await;
    let mut ws = match Ws::connect_with(&o.url, bind, 1024, o.protocol.subprotocol()).await {
        Ok(ws) => ws,
        Err(e) => {
            *st.failures.borrow_mut().entry(e.kind()).or_default() += 1;
            st.finished.set(st.finished.get() + 1);
            return;
        }
    };
    for frame in o.protocol.subscribe_frames(i, &o.channel, None) {
        ws.queue_frame(OP_TEXT, frame.as_bytes());
    }
    let mut outcome = String::new();
    if ws.flush().await.is_err() {
        outcome = "write_error".into();
    }
    let mut permit = Some(permit);
    while outcome.is_empty() {
        if let Err(end) = ws.read_more(None).await {
            outcome = end;
        }
        let now = now_us();
        while outcome.is_empty() {
            let f = match ws.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(end) => {
                    outcome = end;
                    break;
                }
            };
            match f.op {
                OP_TEXT => {
                    let mut ping = false;
                    o.protocol.events(ws.payload(&f), |e| match e {
                        Event::Subscribed => {
                            st.subscribed.set(st.subscribed.get() + 1);
                            // The next handshake may start once this session is established.
                            permit.take();
                        }
                        Event::Error(code) => {
                            *st.errors.borrow_mut().entry(code).or_default() += 1;
                        }
                        Event::Publication(ts) => {
                            st.publications.set(st.publications.get() + 1);
                            st.hist.borrow_mut().record(now.saturating_sub(ts));
                        }
                        Event::Ping => ping = true,
                        Event::Other => {}
                    });
                    if ping {
                        st.pings.set(st.pings.get() + 1);
                        if ws.send_text(o.protocol.pong()).await.is_err() {
                            outcome = "write_error".into();
                        }
                    }
                }
                op => {
                    if op == OP_PING {
                        st.pings.set(st.pings.get() + 1);
                    }
                    if let Some(end) = ws.on_control(&f).await {
                        outcome = end;
                    }
                }
            }
        }
    }
    *st.closes.borrow_mut().entry(outcome).or_default() += 1;
    st.finished.set(st.finished.get() + 1);
}

pub async fn run(o: IdleOpts) -> Value {
    let o = Rc::new(o);
    let st = Rc::new(State::default());
    let gate = Rc::new(Semaphore::new(o.connect_concurrency.max(1)));
    let pid = o.pid;
    let rss_before = pid.and_then(rss_kib);
    let my_rss_before = rss_kib(std::process::id());
    let started = Instant::now();
    for i in 0..o.sessions {
        tokio::task::spawn_local(session(i, o.clone(), st.clone(), gate.clone()));
    }
    let deadline = started + o.connect_timeout;
    let mut last_report = Instant::now();
    while st.subscribed.get() + st.finished.get() < o.sessions && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if last_report.elapsed() > Duration::from_secs(5) {
            last_report = Instant::now();
            eprintln!(
                "  idle: {} subscribed, {} failed/closed after {:.0} s",
                st.subscribed.get(),
                st.finished.get(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "  idle: {} of {} sessions subscribed in {connect_secs:.1} s; settling {} s",
        st.subscribed.get(),
        o.sessions,
        o.settle.as_secs()
    );
    tokio::time::sleep(o.settle).await;
    let rss_after = pid.and_then(rss_kib);
    let pings_before = st.pings.get();
    // scripts/bench.sh waits for this line before it produces the broadcast of the
    // several-instances scenario.
    eprintln!("  idle: holding for {} s", o.hold.as_secs());
    let meter = CpuMeter::start(pid);
    let gen_meter = CpuMeter::start(Some(std::process::id()));
    tokio::time::sleep(o.hold).await;
    let idle_cpu = meter.percent();
    let gen_cpu = gen_meter.percent();
    let rss_end = pid.and_then(rss_kib);
    let my_rss = rss_kib(std::process::id());
    let alive = st
        .subscribed
        .get()
        .saturating_sub(st.closes.borrow().values().sum::<u64>() as usize);
    let per_session = match (rss_before, rss_after) {
        (Some(b), Some(a)) if st.subscribed.get() > 0 => {
            Some(((a as f64 - b as f64) / st.subscribed.get() as f64 * 100.0).round() / 100.0)
        }
        _ => None,
    };
    json!({
        "scenario": "idle",
        "sessions_target": o.sessions,
        "sessions": st.subscribed.get(),
        "alive_at_end": alive,
        "connect_secs": (connect_secs * 10.0).round() / 10.0,
        "connect_failures": st.failures.borrow().clone(),
        "closes": st.closes.borrow().clone(),
        "errors": st.errors.borrow().clone(),
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "rss_end_kib": rss_end,
        "rss_per_session_kib": per_session,
        "idle_cpu_pct": idle_cpu,
        "hold_secs": o.hold.as_secs(),
        "pings_during_hold": st.pings.get() - pings_before,
        "generator_cpu_pct": gen_cpu,
        "broadcast_received": st.publications.get(),
        "broadcast_latency": st.hist.borrow().summary_ms(),
        "generator_rss_per_session_kib": match (my_rss_before, my_rss) {
            (Some(b), Some(a)) if st.subscribed.get() > 0 =>
                Some(((a as f64 - b as f64) / st.subscribed.get() as f64 * 100.0).round() / 100.0),
            _ => None,
        },
    })
}
