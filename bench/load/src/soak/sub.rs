//! The soak's subscribers (split from soak.rs): connect, subscribe (resuming from the positions
//! they track), record every delivery (positions, duplicates, `gap` answers) for a random life,
//! disconnect, pause, repeat. soak.rs compares what they received with what was acked.

use super::*;

pub(super) async fn subscriber(i: usize, o: Rc<SoakOpts>, s: Rc<Soak>) {
    let mut rng = Rng(0x5DEE_CE66_D1CE_4E5B ^ ((i as u64 + 1) * 0x9E37_79B9_7F4A_7C15) ^ now_us());
    let mut attempt: u64 = i as u64;
    while phase(&s) != Phase::Stop {
        attempt += 1;
        let mut ws = match Ws::connect(&o.url, o.bind_for(attempt), 16 << 10).await {
            Ok(ws) => ws,
            Err(e) => {
                bump(&s.errors, format!("connect_{}", e.kind()));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let resume = {
            let mut subs = s.subs.borrow_mut();
            let sub = &mut subs[i];
            sub.connects += 1;
            if sub.initial.is_some() {
                sub.resumes += 1;
                let map: serde_json::Map<String, Value> = sub
                    .positions
                    .iter()
                    .map(|(p, o)| (p.to_string(), json!(o)))
                    .collect();
                Some(Value::Object(map))
            } else {
                None
            }
        };
        let mut req = json!({"type": "subscribe", "id": format!("s{i}"), "channel": o.out_channel});
        if let Some(r) = resume {
            req["resume"] = r;
        }
        if ws.send_text(req.to_string().as_bytes()).await.is_err() {
            bump(&s.closes, "subscriber_write_error".into());
            continue;
        }
        // This connection's life: churn only while the main phase runs.
        let life = Duration::from_millis(rng.range(o.sub_life_ms));
        let born = Instant::now();
        let mut replay_left: u64 = 0;
        let mut live_positions: Option<HashMap<i64, i64>> = None;
        let mut last_in_conn: HashMap<i64, i64> = HashMap::new();
        let outcome: String = 'conn: loop {
            let ph = phase(&s);
            if ph == Phase::Stop {
                break "stop".into();
            }
            let budget = if ph == Phase::Run {
                match life.checked_sub(born.elapsed()) {
                    Some(d) => d,
                    None => break "churn".into(),
                }
            } else {
                Duration::from_millis(200)
            };
            match ws
                .read_more(Some(budget.min(Duration::from_millis(200))))
                .await
            {
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
                let v: Value = match serde_json::from_slice(ws.payload(&f)) {
                    Ok(v) => v,
                    Err(_) => {
                        bump(&s.errors, "unparsable_frame".into());
                        continue;
                    }
                };
                let mut subs = s.subs.borrow_mut();
                let sub = &mut subs[i];
                match v["type"].as_str() {
                    Some("subscribed") => {
                        sub.connected = true;
                        let positions: HashMap<i64, i64> = v["positions"]
                            .as_object()
                            .map(|m| {
                                m.iter()
                                    .filter_map(|(p, o)| Some((p.parse().ok()?, o.as_i64()?)))
                                    .collect()
                            })
                            .unwrap_or_default();
                        if sub.initial.is_none() {
                            sub.initial = Some(positions.clone());
                        }
                        if v["gap"].as_bool() == Some(true) {
                            sub.gaps += 1;
                        }
                        replay_left = v["replayed"].as_u64().unwrap_or(0);
                        sub.replayed += replay_left;
                        live_positions = Some(positions);
                        if replay_left == 0 {
                            apply(&mut sub.positions, live_positions.take());
                        }
                    }
                    Some("message") => {
                        let (Some(p), Some(off)) = (v["partition"].as_i64(), v["offset"].as_i64())
                        else {
                            bump(&s.errors, "message_without_position".into());
                            continue;
                        };
                        let k = key(p, off);
                        let n = sub.received.entry(k).or_default();
                        *n += 1;
                        if *n > 1 {
                            sub.duplicates += 1;
                        }
                        if last_in_conn.get(&p).is_some_and(|&last| last >= off) {
                            sub.out_of_order += 1;
                        }
                        last_in_conn.insert(p, off);
                        let e = sub.positions.entry(p).or_insert(off);
                        *e = (*e).max(off);
                        if replay_left > 0 {
                            replay_left -= 1;
                            if replay_left == 0 {
                                apply(&mut sub.positions, live_positions.take());
                            }
                        }
                        let data = &v["data"];
                        if data["probe"].as_bool() == Some(true) {
                            sub.got_probe = true;
                        } else if let (Some(pb), Some(seq)) =
                            (data["pub"].as_u64(), data["seq"].as_u64())
                        {
                            let mut seen = s.seen.borrow_mut();
                            let first = *seen.entry(k).or_insert((pb, seq));
                            if first != (pb, seq) {
                                s.mismatches.set(s.mismatches.get() + 1);
                            }
                        }
                    }
                    Some("error") => {
                        bump(
                            &s.errors,
                            format!("subscriber_{}", v["code"].as_str().unwrap_or("?")),
                        );
                    }
                    _ => {}
                }
            }
        };
        s.subs.borrow_mut()[i].connected = false;
        ws.close().await;
        if outcome != "churn" && outcome != "stop" {
            bump(&s.closes, format!("subscriber_{outcome}"));
        }
        if phase(&s) == Phase::Run {
            let pause = if rng.chance(o.long_pause_share) {
                rng.range(o.long_pause_ms)
            } else {
                rng.range(o.pause_ms)
            };
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }
}

fn apply(positions: &mut HashMap<i64, i64>, live: Option<HashMap<i64, i64>>) {
    for (p, o) in live.unwrap_or_default() {
        let e = positions.entry(p).or_insert(o);
        *e = (*e).max(o);
    }
}
