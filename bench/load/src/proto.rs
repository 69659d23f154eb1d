//! The client protocols kwb-load speaks: kafka-ws-bridge's (which the Node and Python baselines
//! and the raw writer speak too) and Centrifugo's JSON protocol (v2: a `connect` command, then
//! `subscribe`; publications arrive as `push` replies, several per WebSocket frame separated by
//! newlines; an empty object `{}` is the server's ping and is answered with `{}`).
//!
//! Both are read without parsing the JSON of a publication: the record's `"ts":` is found in
//! place, as for the bridge.

use clap::ValueEnum;
use serde_json::Value;

use crate::ws::find_u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// kafka-ws-bridge's protocol (also the baselines' and the raw writer's).
    Kwb,
    /// Centrifugo's JSON protocol; a keyed session subscribes to the channel named by its key.
    Centrifugo,
}

/// What one server message means to a load session.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A delivered record, with the produce timestamp it carries (µs).
    Publication(u64),
    Subscribed,
    /// An error answer; its code.
    Error(String),
    /// Centrifugo's application-level ping: answer with [`Protocol::pong`].
    Ping,
    Other,
}

impl Protocol {
    /// The text frames a session sends after the upgrade to subscribe (session `i`; `key` on a
    /// by_key channel).
    pub fn subscribe_frames(self, i: usize, channel: &str, key: Option<&str>) -> Vec<String> {
        match self {
            Protocol::Kwb => vec![match key {
                Some(k) => format!(
                    r#"{{"type":"subscribe","id":"s{i}","channel":"{channel}","key":"{k}"}}"#
                ),
                None => format!(r#"{{"type":"subscribe","id":"s{i}","channel":"{channel}"}}"#),
            }],
            Protocol::Centrifugo => vec![
                r#"{"id":1,"connect":{}}"#.to_owned(),
                format!(
                    r#"{{"id":2,"subscribe":{{"channel":"{}"}}}}"#,
                    key.unwrap_or(channel)
                ),
            ],
        }
    }

    /// The answer to [`Event::Ping`].
    pub fn pong(self) -> &'static [u8] {
        b"{}"
    }

    /// Calls `f` for every message in one text frame's payload.
    pub fn events(self, payload: &[u8], mut f: impl FnMut(Event)) {
        match self {
            Protocol::Kwb => f(kwb_event(payload)),
            Protocol::Centrifugo => {
                for line in payload.split(|&b| b == b'\n') {
                    if !line.is_empty() {
                        f(centrifugo_event(line));
                    }
                }
            }
        }
    }
}

fn kwb_event(p: &[u8]) -> Event {
    if let Some(ts) = find_u64(p, b"\"ts\"") {
        return Event::Publication(ts);
    }
    let Ok(v) = serde_json::from_slice::<Value>(p) else {
        return Event::Error("unparsable_frame".into());
    };
    match v["type"].as_str() {
        Some("subscribed") => Event::Subscribed,
        Some("error") => Event::Error(v["code"].as_str().unwrap_or("?").to_owned()),
        _ => Event::Other,
    }
}

fn centrifugo_event(line: &[u8]) -> Event {
    if line == b"{}" {
        return Event::Ping;
    }
    if line.starts_with(b"{\"push\"") {
        return match find_u64(line, b"\"ts\"") {
            Some(ts) => Event::Publication(ts),
            None => Event::Other,
        };
    }
    let Ok(v) = serde_json::from_slice::<Value>(line) else {
        return Event::Error("unparsable_frame".into());
    };
    if let Some(e) = v.get("error") {
        return Event::Error(format!("centrifugo_{}", e["code"]));
    }
    if v.get("subscribe").is_some() {
        return Event::Subscribed;
    }
    Event::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(p: Protocol, payload: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        p.events(payload, |e| out.push(e));
        out
    }

    #[test]
    fn centrifugo_frames() {
        let frame = b"{\"id\":1,\"connect\":{\"client\":\"c\",\"version\":\"6\"}}\n{\"id\":2,\"subscribe\":{}}\n{}\n{\"push\":{\"channel\":\"fanout\",\"pub\":{\"data\":{\"ts\":42,\"seq\":1,\"pad\":\"x\"}}}}";
        assert_eq!(
            all(Protocol::Centrifugo, frame),
            vec![
                Event::Other,
                Event::Subscribed,
                Event::Ping,
                Event::Publication(42)
            ]
        );
        assert_eq!(
            all(
                Protocol::Centrifugo,
                b"{\"id\":2,\"error\":{\"code\":103,\"message\":\"permission denied\"}}"
            ),
            vec![Event::Error("centrifugo_103".into())]
        );
    }

    #[test]
    fn kwb_frames() {
        assert_eq!(
            all(Protocol::Kwb, br#"{"type":"subscribed","id":"s1"}"#),
            vec![Event::Subscribed]
        );
        assert_eq!(
            all(
                Protocol::Kwb,
                br#"{"type":"message","data":{"ts":7,"seq":0}}"#
            ),
            vec![Event::Publication(7)]
        );
    }

    #[test]
    fn subscribe_frames_name_the_key_channel() {
        let f = Protocol::Centrifugo.subscribe_frames(3, "keyed", Some("k3"));
        assert_eq!(f[1], r#"{"id":2,"subscribe":{"channel":"k3"}}"#);
        let f = Protocol::Kwb.subscribe_frames(3, "keyed", Some("k3"));
        assert_eq!(
            f,
            vec![r#"{"type":"subscribe","id":"s3","channel":"keyed","key":"k3"}"#]
        );
    }
}
