//! Scenario e: clients publishing through the bridge as fast as acks come back, each with a
//! fixed window of publishes in flight; acks/s and send → ack latency.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::hist::Hist;
use crate::kafka::record_value;
use crate::procstat::{now_us, CpuMeter};
use crate::ws::{find_u64, Url, Ws, OP_TEXT};

pub struct InboundOpts {
    pub url: Url,
    pub channel: String,
    pub clients: usize,
    pub window: usize,
    pub warm: Duration,
    pub measure: Duration,
    pub size: usize,
    pub pid: Option<u32>,
    pub broker_pid: Option<u32>,
    pub bind: Vec<IpAddr>,
}

#[derive(Default)]
struct Totals {
    hist: Hist,
    acked_in_window: u64,
    acked: u64,
    sent: u64,
    unanswered: u64,
    errors: BTreeMap<String, u64>,
    closes: BTreeMap<String, u64>,
}

async fn client(i: usize, o: Rc<InboundOpts>, t0: u64, t1: u64, totals: Rc<RefCell<Totals>>) {
    let bind = (!o.bind.is_empty()).then(|| o.bind[i % o.bind.len()]);
    let mut ws = match Ws::connect(&o.url, bind, 16 << 10).await {
        Ok(ws) => ws,
        Err(e) => {
            *totals
                .borrow_mut()
                .closes
                .entry(format!("connect_{}", e.kind()))
                .or_default() += 1;
            return;
        }
    };
    let mut pending: HashMap<u64, u64> = HashMap::with_capacity(o.window * 2);
    let mut next_id: u64 = (i as u64) << 32;
    let mut frame = Vec::with_capacity(o.size + 128);
    let mut value = Vec::with_capacity(o.size + 64);
    let prefix = format!(r#"{{"type":"publish","channel":"{}","id":"#, o.channel);
    let give_up = t1 + 10_000_000;
    let outcome: String = 'outer: loop {
        let now = now_us();
        while pending.len() < o.window && now < t1 {
            record_value(&mut value, now, next_id, o.size);
            frame.clear();
            frame.extend_from_slice(prefix.as_bytes());
            frame.extend_from_slice(next_id.to_string().as_bytes());
            frame.extend_from_slice(b",\"data\":");
            frame.extend_from_slice(&value);
            frame.push(b'}');
            ws.queue_frame(OP_TEXT, &frame);
            pending.insert(next_id, now);
            next_id += 1;
            totals.borrow_mut().sent += 1;
        }
        if ws.flush().await.is_err() {
            break "write_error".into();
        }
        if pending.is_empty() && now >= t1 {
            break "done".into();
        }
        if now > give_up {
            break "gave_up".into();
        }
        match ws.read_more(Some(Duration::from_secs(1))).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(end) => break end,
        }
        let now = now_us();
        loop {
            let f = match ws.next_text().await {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(end) => break 'outer end,
            };
            let p = ws.payload(&f);
            if memchr::memmem::find(p, b"\"type\":\"ack\"").is_some() {
                if let Some(id) = find_u64(p, b"\"id\"") {
                    if let Some(sent) = pending.remove(&id) {
                        let mut t = totals.borrow_mut();
                        t.acked += 1;
                        if sent >= t0 && sent < t1 {
                            t.acked_in_window += 1;
                            t.hist.record(now.saturating_sub(sent));
                        }
                    }
                }
            } else if let Ok(v) = serde_json::from_slice::<Value>(p) {
                if v["type"] == "error" {
                    let code = v["code"].as_str().unwrap_or("?").to_owned();
                    *totals.borrow_mut().errors.entry(code).or_default() += 1;
                    if let Some(id) = v["id"].as_u64() {
                        pending.remove(&id);
                    }
                }
            }
        }
    };
    {
        let mut t = totals.borrow_mut();
        t.unanswered += pending.len() as u64;
        if outcome != "done" {
            *t.closes.entry(outcome).or_default() += 1;
        }
    }
    ws.close().await;
}

pub async fn run(o: InboundOpts) -> Value {
    let o = Rc::new(o);
    let totals = Rc::new(RefCell::new(Totals::default()));
    let start = now_us();
    let t0 = start + o.warm.as_micros() as u64;
    let t1 = t0 + o.measure.as_micros() as u64;
    let mut tasks = Vec::new();
    for i in 0..o.clients {
        tasks.push(tokio::task::spawn_local(client(
            i,
            o.clone(),
            t0,
            t1,
            totals.clone(),
        )));
    }
    tokio::time::sleep(o.warm).await;
    let meters = (
        CpuMeter::start(o.pid),
        CpuMeter::start(Some(std::process::id())),
        CpuMeter::start(o.broker_pid),
    );
    tokio::time::sleep(o.measure).await;
    let (bridge_cpu, gen_cpu, broker_cpu) =
        (meters.0.percent(), meters.1.percent(), meters.2.percent());
    for t in tasks {
        let _ = t.await;
    }
    let t = totals.borrow();
    let secs = o.measure.as_secs_f64();
    let mut notes = Vec::new();
    if gen_cpu.unwrap_or(0.0) >= 90.0 {
        notes.push(format!(
            "generator saturated ({:.0}%)",
            gen_cpu.unwrap_or(0.0)
        ));
    }
    if broker_cpu.unwrap_or(0.0) >= 90.0 {
        notes.push(format!(
            "broker saturated ({:.0}%)",
            broker_cpu.unwrap_or(0.0)
        ));
    }
    json!({
        "scenario": "inbound",
        "clients": o.clients,
        "window": o.window,
        "acks_per_sec": (t.acked_in_window as f64 / secs).round(),
        "ack_latency": t.hist.summary_ms(),
        "sent": t.sent,
        "acked": t.acked,
        "unanswered": t.unanswered,
        "errors": t.errors,
        "closes": t.closes,
        "bridge_cpu_pct": bridge_cpu,
        "generator_cpu_pct": gen_cpu,
        "broker_cpu_pct": broker_cpu,
        "notes": notes,
    })
}
