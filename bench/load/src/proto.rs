//! The client protocols kwb-load speaks: kafka-ws-bridge's (which the Node and Python baselines
//! and the raw writer speak too) and Centrifugo's JSON protocol (v2: a `connect` command, then
//! `subscribe`; publications arrive as `push` replies, several per WebSocket frame separated by
//! newlines; an empty object `{}` is the server's ping and is answered with `{}`).
//!
//! kafka-ws-bridge's other dialects are spoken too: STOMP 1.2 over WebSocket (subprotocol
//! `v12.stomp`: CONNECT, then SUBSCRIBE to `/topic/<channel>[/<key>]` with a receipt; records
//! arrive as MESSAGE frames whose body is the record's data) and Server-Sent Events (`GET
//! <path>?channel=C[&key=K]`, see sse.rs; records arrive as `message` events).
//!
//! All are read without parsing the JSON of a publication: the record's `"ts":` is found in
//! place, as for the bridge.

use clap::ValueEnum;
use serde_json::Value;

use crate::ws::find_u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// kafka-ws-bridge's protocol (also the baselines' and the raw writer's); `json` is the
    /// same.
    #[value(alias = "json")]
    Kwb,
    /// Centrifugo's JSON protocol; a keyed session subscribes to the channel named by its key.
    Centrifugo,
    /// kafka-ws-bridge's STOMP 1.2 over WebSocket (default destination prefix `/topic/`).
    Stomp,
    /// kafka-ws-bridge's Server-Sent Events; `--url` is then `http://host:port/<sse_path>`.
    Sse,
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

/// The STOMP destination prefix of a channel (kafka-ws-bridge's default `server.stomp.topic_prefix`).
pub const STOMP_TOPIC_PREFIX: &str = "/topic/";

impl Protocol {
    /// The name results carry: `json` for kafka-ws-bridge's JSON protocol.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Kwb => "json",
            Protocol::Centrifugo => "centrifugo",
            Protocol::Stomp => "stomp",
            Protocol::Sse => "sse",
        }
    }

    /// The WebSocket subprotocol a session asks for.
    pub fn subprotocol(self) -> Option<&'static str> {
        match self {
            Protocol::Stomp => Some("v12.stomp"),
            _ => None,
        }
    }

    /// The query string of a Server-Sent Events stream (session `i`; `key` on a by_key channel).
    pub fn sse_query(channel: &str, key: Option<&str>) -> String {
        match key {
            Some(k) => format!("?channel={channel}&key={k}"),
            None => format!("?channel={channel}"),
        }
    }

    /// The text frames a session sends after the upgrade to subscribe (session `i`; `key` on a
    /// by_key channel). None for Server-Sent Events (the request names the channel).
    pub fn subscribe_frames(self, i: usize, channel: &str, key: Option<&str>) -> Vec<String> {
        match self {
            // Two WebSocket messages: the bridge takes one STOMP frame per message.
            Protocol::Stomp => vec![
                "CONNECT\naccept-version:1.2\nhost:kwb-load\nheart-beat:0,0\n\n\0".to_owned(),
                match key {
                    Some(k) => format!(
                        "SUBSCRIBE\nid:s{i}\ndestination:{STOMP_TOPIC_PREFIX}{channel}/{k}\nreceipt:r{i}\n\n\0"
                    ),
                    None => format!(
                        "SUBSCRIBE\nid:s{i}\ndestination:{STOMP_TOPIC_PREFIX}{channel}\nreceipt:r{i}\n\n\0"
                    ),
                },
            ],
            Protocol::Sse => Vec::new(),
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

    /// Calls `f` for every message in one text frame's payload (for Server-Sent Events: in one
    /// event's text).
    pub fn events(self, payload: &[u8], mut f: impl FnMut(Event)) {
        match self {
            Protocol::Kwb => f(kwb_event(payload)),
            Protocol::Stomp => f(stomp_event(payload)),
            Protocol::Sse => f(sse_event(payload)),
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

/// One STOMP frame (a WebSocket message holds one): MESSAGE is a record (its body the record's
/// data), RECEIPT the answer to SUBSCRIBE, ERROR an error (its `code` header); heart-beats
/// (EOLs) and CONNECTED are nothing to count.
fn stomp_event(p: &[u8]) -> Event {
    let command_end = p.iter().position(|&b| b == b'\n').unwrap_or(p.len());
    let command = p[..command_end]
        .strip_suffix(b"\r")
        .unwrap_or(&p[..command_end]);
    match command {
        b"MESSAGE" => {
            // The headers hold no `"ts"`; the body is the record's JSON.
            match find_u64(&p[command_end..], b"\"ts\"") {
                Some(ts) => Event::Publication(ts),
                None => Event::Other,
            }
        }
        b"RECEIPT" => Event::Subscribed,
        b"ERROR" => {
            let headers = p.get(command_end + 1..).unwrap_or(&[]);
            let code = headers
                .split(|&b| b == b'\n')
                .take_while(|l| !l.is_empty())
                .find_map(|l| l.strip_prefix(b"code:"))
                .map_or("?".into(), |c| String::from_utf8_lossy(c).into_owned());
            Event::Error(format!("stomp_{code}"))
        }
        _ => Event::Other,
    }
}

/// One Server-Sent Events event (its lines, without the blank line that ends it): `message`
/// is a record, `subscribed` the subscription's answer, `error` an error; comments (keep-alive,
/// `: closed: …`) are nothing to count.
fn sse_event(text: &[u8]) -> Event {
    let mut kind: &[u8] = b"message";
    let mut data: Option<&[u8]> = None;
    for line in text.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(v) = line.strip_prefix(b"event:") {
            kind = v.strip_prefix(b" ").unwrap_or(v);
        } else if let Some(v) = line.strip_prefix(b"data:") {
            // Several data lines would be joined with newlines; the bridge writes one.
            data = Some(v.strip_prefix(b" ").unwrap_or(v));
        }
    }
    let Some(data) = data else {
        return Event::Other;
    };
    match kind {
        b"message" => match find_u64(data, b"\"ts\"") {
            Some(ts) => Event::Publication(ts),
            None => Event::Other,
        },
        b"subscribed" => Event::Subscribed,
        b"error" => match kwb_event(data) {
            Event::Error(code) => Event::Error(code),
            _ => Event::Error("sse_error".into()),
        },
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
    fn stomp_frames() {
        let message = b"MESSAGE\nsubscription:s1\nmessage-id:c-0-4\ndestination:/topic/c\ncontent-type:application/json\nkafka-partition:0\nkafka-offset:4\ncontent-length:20\n\n{\"ts\":9,\"seq\":0}\0";
        assert_eq!(all(Protocol::Stomp, message), vec![Event::Publication(9)]);
        assert_eq!(
            all(Protocol::Stomp, b"RECEIPT\nreceipt-id:r1\n\n\0"),
            vec![Event::Subscribed]
        );
        assert_eq!(
            all(
                Protocol::Stomp,
                b"ERROR\nmessage:no such channel\ncode:unknown_channel\n\n\0"
            ),
            vec![Event::Error("stomp_unknown_channel".into())]
        );
        assert_eq!(
            all(Protocol::Stomp, b"CONNECTED\nversion:1.2\n\n\0"),
            vec![Event::Other]
        );
        assert_eq!(all(Protocol::Stomp, b"\n"), vec![Event::Other]);
        let f = Protocol::Stomp.subscribe_frames(3, "fanout", None);
        assert!(f[0].starts_with("CONNECT\n") && f[0].ends_with("\n\n\0"));
        assert!(f[1].contains("\ndestination:/topic/fanout\n"));
    }

    #[test]
    fn sse_events() {
        assert_eq!(
            all(
                Protocol::Sse,
                b"event:message\ndata:{\"type\":\"message\",\"data\":{\"ts\":5}}\nid:0:4"
            ),
            vec![Event::Publication(5)]
        );
        assert_eq!(
            all(
                Protocol::Sse,
                b"event:subscribed\ndata:{\"type\":\"subscribed\",\"channel\":\"c\"}"
            ),
            vec![Event::Subscribed]
        );
        assert_eq!(all(Protocol::Sse, b": keep-alive"), vec![Event::Other]);
        assert_eq!(
            all(
                Protocol::Sse,
                b"event:error\ndata:{\"type\":\"error\",\"code\":\"forbidden\"}"
            ),
            vec![Event::Error("forbidden".into())]
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
