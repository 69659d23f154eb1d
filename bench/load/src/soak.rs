//! Soak: publishers and subscribers connecting and disconnecting continuously, end to end.
//!
//! Publishers publish on an inbound channel whose topic an outbound broadcast channel reads;
//! every ack names the record's partition and offset. Subscribers live a random while, drop the
//! connection, wait a random pause (sometimes long enough that the bridge's memory no longer
//! holds what they missed, so the replay comes from Kafka) and come back with `resume`. They
//! track positions exactly as docs/protocol.md (and the JS client) describe.
//!
//! At the end publishing stops, churn stops, every subscriber reconnects and catches up, and
//! each one's received (partition, offset) set is compared with every acked record after its
//! first subscription's positions: **lost** = acked but never received (must be 0), plus
//! duplicates, out-of-order deliveries within a connection, `gap: true` answers and records
//! whose content differs from what was acked at that position.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::procstat::{cpu_secs, now_us, rss_kib};
use crate::ws::{Url, Ws};

mod sub;
use sub::subscriber;

pub struct SoakOpts {
    pub url: Url,
    pub out_channel: String,
    pub in_channel: String,
    pub subscribers: usize,
    pub publishers: usize,
    pub rate: f64,
    pub duration: Duration,
    pub sub_life_ms: (u64, u64),
    pub pub_life_ms: (u64, u64),
    pub pause_ms: (u64, u64),
    /// Share of reconnect pauses that are long (`long_pause_ms`).
    pub long_pause_share: f64,
    pub long_pause_ms: (u64, u64),
    pub pid: Option<u32>,
    pub drain_timeout: Duration,
    /// Source addresses client sockets bind to, round robin over connections (none: any).
    pub bind: Vec<std::net::IpAddr>,
}

impl SoakOpts {
    /// The source address of connection `n`.
    fn bind_for(&self, n: u64) -> Option<std::net::IpAddr> {
        (!self.bind.is_empty()).then(|| self.bind[(n % self.bind.len() as u64) as usize])
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Probe,
    Run,
    Drain,
    Stop,
}

#[derive(Default)]
struct Sub {
    /// Positions of the first `subscribed`: records after them are expected.
    initial: Option<HashMap<i64, i64>>,
    /// Last offset seen per partition (what `resume` sends).
    positions: HashMap<i64, i64>,
    /// (partition, offset) → times received.
    received: HashMap<u64, u32>,
    duplicates: u64,
    out_of_order: u64,
    gaps: u64,
    connects: u64,
    resumes: u64,
    replayed: u64,
    connected: bool,
    got_probe: bool,
}

#[derive(Default)]
struct Soak {
    phase: Cell<Option<Phase>>,
    subs: RefCell<Vec<Sub>>,
    /// (partition, offset) → (publisher, seq) of every acked main-phase publish.
    acked: RefCell<HashMap<u64, (u64, u64)>>,
    /// (partition, offset) → (publisher, seq) as first seen by any subscriber.
    seen: RefCell<HashMap<u64, (u64, u64)>>,
    mismatches: Cell<u64>,
    published: Cell<u64>,
    acked_count: Cell<u64>,
    unanswered: Cell<u64>,
    errors: RefCell<BTreeMap<String, u64>>,
    closes: RefCell<BTreeMap<String, u64>>,
    pub_connects: Cell<u64>,
    active_publishers: Cell<usize>,
}

fn key(p: i64, o: i64) -> u64 {
    ((p as u64) << 40) | (o as u64 & ((1 << 40) - 1))
}

fn bump(map: &RefCell<BTreeMap<String, u64>>, k: String) {
    *map.borrow_mut().entry(k).or_default() += 1;
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn range(&mut self, (lo, hi): (u64, u64)) -> u64 {
        lo + self.next() % (hi.saturating_sub(lo) + 1)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() % 10_000) as f64 / 10_000.0 < p
    }
}

fn phase(s: &Soak) -> Phase {
    s.phase.get().unwrap_or(Phase::Probe)
}

async fn publisher(j: usize, o: Rc<SoakOpts>, s: Rc<Soak>, probe: bool) {
    s.active_publishers.set(s.active_publishers.get() + 1);
    publish_loop(j, &o, &s, probe).await;
    s.active_publishers.set(s.active_publishers.get() - 1);
}

async fn publish_loop(j: usize, o: &SoakOpts, s: &Soak, probe: bool) {
    let mut rng = Rng(0xA076_1D64_78BD_642F ^ ((j as u64 + 7) * 0xE703_7ED1_A0B4_28DB) ^ now_us());
    let mut seq: u64 = 0;
    let mut attempt: u64 = j as u64;
    let period = Duration::from_secs_f64(1.0 / o.rate.max(0.001));
    loop {
        let ph = phase(s);
        if ph == Phase::Drain || ph == Phase::Stop || (probe && ph != Phase::Probe) {
            return;
        }
        if !probe && ph == Phase::Probe {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        attempt += 1;
        let mut ws = match Ws::connect(&o.url, o.bind_for(attempt), 16 << 10).await {
            Ok(ws) => ws,
            Err(e) => {
                bump(&s.errors, format!("connect_{}", e.kind()));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        s.pub_connects.set(s.pub_connects.get() + 1);
        let life = Duration::from_millis(rng.range(o.pub_life_ms));
        let born = Instant::now();
        let mut pending: HashMap<String, u64> = HashMap::new();
        let mut next = tokio::time::Instant::now();
        let mut stopping_since: Option<Instant> = None;
        let outcome: String = 'conn: loop {
            let ph = phase(s);
            let stop_publishing = if probe {
                ph != Phase::Probe
            } else {
                ph != Phase::Run || born.elapsed() >= life
            };
            if stop_publishing {
                // Let the publishes in flight be answered (bounded), then go.
                let since = *stopping_since.get_or_insert_with(Instant::now);
                if pending.is_empty() || since.elapsed() > Duration::from_secs(10) {
                    break "churn".into();
                }
            } else if tokio::time::Instant::now() >= next {
                next += period;
                let id = format!("{j}-{seq}");
                let data = if probe {
                    json!({"probe": true, "ts": now_us()})
                } else {
                    json!({"pub": j, "seq": seq, "ts": now_us()})
                };
                let frame =
                    json!({"type": "publish", "id": id, "channel": o.in_channel, "data": data});
                if ws.send_text(frame.to_string().as_bytes()).await.is_err() {
                    break "write_error".into();
                }
                pending.insert(id, seq);
                seq += 1;
                if !probe {
                    s.published.set(s.published.get() + 1);
                }
            }
            let wait = next
                .saturating_duration_since(tokio::time::Instant::now())
                .clamp(Duration::from_millis(1), Duration::from_millis(100));
            match ws.read_more(Some(wait)).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(end) => break end,
            }
            loop {
                let f = match ws.next_text().await {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(end) => break 'conn end,
                };
                let Ok(v) = serde_json::from_slice::<Value>(ws.payload(&f)) else {
                    bump(&s.errors, "unparsable_frame".into());
                    continue;
                };
                let id = v["id"].as_str().unwrap_or_default().to_owned();
                match v["type"].as_str() {
                    Some("ack") => {
                        if let Some(seq) = pending.remove(&id) {
                            if !probe {
                                let (p, off) = (
                                    v["partition"].as_i64().unwrap_or(-1),
                                    v["offset"].as_i64().unwrap_or(-1),
                                );
                                s.acked.borrow_mut().insert(key(p, off), (j as u64, seq));
                                s.acked_count.set(s.acked_count.get() + 1);
                            }
                        }
                    }
                    Some("error") => {
                        pending.remove(&id);
                        bump(
                            &s.errors,
                            format!("publish_{}", v["code"].as_str().unwrap_or("?")),
                        );
                    }
                    _ => {}
                }
            }
        };
        if !probe {
            s.unanswered.set(s.unanswered.get() + pending.len() as u64);
        }
        ws.close().await;
        if outcome != "churn" {
            bump(&s.closes, format!("publisher_{outcome}"));
        }
    }
}

/// Per subscriber: how many acked records it should receive (acked after its first positions)
/// and how many of those it has not received.
fn coverage(s: &Soak) -> Vec<(u64, u64)> {
    let acked = s.acked.borrow();
    s.subs
        .borrow()
        .iter()
        .map(|sub| {
            let initial = sub.initial.clone().unwrap_or_default();
            let due = acked.keys().filter(|&&k| {
                let (p, off) = ((k >> 40) as i64, (k & ((1 << 40) - 1)) as i64);
                off > initial.get(&p).copied().unwrap_or(-1)
            });
            due.fold((0, 0), |(expected, missing), k| {
                (
                    expected + 1,
                    missing + u64::from(!sub.received.contains_key(k)),
                )
            })
        })
        .collect()
}

pub async fn run(o: SoakOpts) -> (Value, bool) {
    let o = Rc::new(o);
    let s = Rc::new(Soak::default());
    s.phase.set(Some(Phase::Probe));
    s.subs
        .borrow_mut()
        .extend((0..o.subscribers).map(|_| Sub::default()));
    let rss_start = o.pid.and_then(rss_kib);
    let cpu_start = o.pid.and_then(cpu_secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..o.subscribers {
        tasks.push(tokio::task::spawn_local(subscriber(
            i,
            o.clone(),
            s.clone(),
        )));
    }
    // Probe: every subscriber subscribed and received a probe record through the bridge.
    let prober = tokio::task::spawn_local(publisher(usize::MAX >> 1, o.clone(), s.clone(), true));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let ready = s
            .subs
            .borrow()
            .iter()
            .all(|x| x.got_probe && x.initial.is_some());
        if ready {
            break;
        }
        if Instant::now() > deadline {
            s.phase.set(Some(Phase::Stop));
            return (
                json!({"error": "subscribers did not all receive a probe record within 90 s"}),
                false,
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "  soak: {} subscribers ready after {:.1} s; running {} s",
        o.subscribers,
        started.elapsed().as_secs_f64(),
        o.duration.as_secs()
    );
    s.phase.set(Some(Phase::Run));
    let _ = prober.await;
    for j in 0..o.publishers {
        tasks.push(tokio::task::spawn_local(publisher(
            j,
            o.clone(),
            s.clone(),
            false,
        )));
    }
    let run_start = Instant::now();
    let mut last = Instant::now();
    while run_start.elapsed() < o.duration {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if last.elapsed() >= Duration::from_secs(10) {
            last = Instant::now();
            let connected = s.subs.borrow().iter().filter(|x| x.connected).count();
            eprintln!(
                "  soak {:>4.0} s: published {} acked {} subscribers connected {}/{} rss {:?} KiB",
                run_start.elapsed().as_secs_f64(),
                s.published.get(),
                s.acked_count.get(),
                connected,
                o.subscribers,
                o.pid.and_then(rss_kib)
            );
        }
    }
    // Drain: publishers finish their in-flight publishes and stop; subscribers stop churning,
    // reconnect if needed and catch up.
    s.phase.set(Some(Phase::Drain));
    eprintln!("  soak: draining (publishers stop, subscribers catch up)");
    let drain_start = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    loop {
        let pubs_done = s.active_publishers.get() == 0;
        let still: u64 = coverage(&s).iter().map(|&(_, missing)| missing).sum();
        let connected = s.subs.borrow().iter().filter(|x| x.connected).count();
        if pubs_done && still == 0 && connected == o.subscribers {
            break;
        }
        if drain_start.elapsed() > o.drain_timeout {
            eprintln!("  soak: drain timeout with {still} records missing");
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Give stray duplicates a moment to show up.
    tokio::time::sleep(Duration::from_secs(1)).await;
    s.phase.set(Some(Phase::Stop));
    let elapsed = started.elapsed().as_secs_f64();
    let rss_end = o.pid.and_then(rss_kib);
    let cpu_end = o.pid.and_then(cpu_secs);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let coverage = coverage(&s);
    let subs = s.subs.borrow();
    let (exp, miss): (Vec<u64>, Vec<u64>) = coverage.into_iter().unzip();
    let received_expected: Vec<u64> = exp.iter().zip(&miss).map(|(e, m)| e - m).collect();
    let lost: u64 = miss.iter().sum();
    let duplicates: u64 = subs.iter().map(|x| x.duplicates).sum();
    let out_of_order: u64 = subs.iter().map(|x| x.out_of_order).sum();
    let gaps: u64 = subs.iter().map(|x| x.gaps).sum();
    let resumes: u64 = subs.iter().map(|x| x.resumes).sum();
    let replayed: u64 = subs.iter().map(|x| x.replayed).sum();
    let received_total: u64 = subs
        .iter()
        .map(|x| x.received.values().map(|&n| n as u64).sum::<u64>())
        .sum();
    let cpu = match (cpu_start, cpu_end) {
        (Some(a), Some(b)) => Some(((b - a) * 100.0).round() / 100.0),
        _ => None,
    };
    let ok = lost == 0 && s.mismatches.get() == 0 && s.acked_count.get() > 0;
    let out = json!({
        "scenario": "soak",
        "duration_secs": o.duration.as_secs(),
        "elapsed_secs": (elapsed * 10.0).round() / 10.0,
        "subscribers": o.subscribers,
        "publishers": o.publishers,
        "publish_rate_per_publisher": o.rate,
        "published": s.published.get(),
        "acked": s.acked_count.get(),
        "unanswered_at_disconnect": s.unanswered.get(),
        "expected_per_subscriber_min": exp.iter().min(),
        "expected_per_subscriber_max": exp.iter().max(),
        "expected_total": exp.iter().sum::<u64>(),
        "received_expected_total": received_expected.iter().sum::<u64>(),
        "received_frames_total": received_total,
        "lost": lost,
        "lost_per_subscriber": miss,
        "duplicates": duplicates,
        "out_of_order": out_of_order,
        "gap_answers": gaps,
        "content_mismatches": s.mismatches.get(),
        "subscriber_connects": subs.iter().map(|x| x.connects).sum::<u64>(),
        "resumes": resumes,
        "replayed_frames": replayed,
        "publisher_connects": s.pub_connects.get(),
        "errors": s.errors.borrow().clone(),
        "unexpected_closes": s.closes.borrow().clone(),
        "bridge_rss_start_kib": rss_start,
        "bridge_rss_end_kib": rss_end,
        "bridge_cpu_secs": cpu,
        "bridge_cpu_pct": cpu.map(|c| (c / elapsed * 1000.0).round() / 10.0),
        "pass": ok,
    });
    (out, ok)
}
