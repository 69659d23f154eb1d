//! Reads a peer's Prometheus metrics (`--metrics-url`): kafka-ws-bridge exposes
//! `kafka_ws_bridge_messages_delivered_total` (frames delivered) and
//! `kafka_ws_bridge_socket_writes_total` (socket writes, all dialects); their deltas over a
//! step give the peer's frames per write.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const DELIVERED: &str = "kafka_ws_bridge_messages_delivered_total";
pub const WRITES: &str = "kafka_ws_bridge_socket_writes_total";

/// The body of `GET url` (plain http only), within 2 s.
pub async fn get(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// metrics URLs"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/metrics"),
    };
    let fetch = async {
        let mut s = TcpStream::connect(host).await.map_err(|e| e.to_string())?;
        let req = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut body = Vec::new();
        s.read_to_end(&mut body).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&body).into_owned();
        match text.split_once("\r\n\r\n") {
            Some((head, body))
                if head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200") =>
            {
                Ok(body.to_owned())
            }
            _ => Err(format!("{url}: not a 200 answer")),
        }
    };
    tokio::time::timeout(Duration::from_secs(2), fetch)
        .await
        .map_err(|_| format!("{url}: timed out"))?
}

/// The sum of every series of metric `name` in a Prometheus text exposition; None when absent.
pub fn sum(text: &str, name: &str) -> Option<f64> {
    let mut total = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let value = if rest.starts_with('{') {
            rest.rsplit_once('}').map(|(_, v)| v)
        } else if rest.starts_with(' ') {
            Some(rest)
        } else {
            None
        };
        if let Some(v) = value.and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok()) {
            *total.get_or_insert(0.0) += v;
        }
    }
    total
}

/// (delivered, writes) counters of the peer, when both are exposed.
pub async fn counters(url: &str) -> Option<(f64, f64)> {
    let text = get(url).await.ok()?;
    Some((sum(&text, DELIVERED)?, sum(&text, WRITES)?))
}

/// Frames per write between two readings of [`counters`].
pub fn frames_per_write(a: Option<(f64, f64)>, b: Option<(f64, f64)>) -> Option<f64> {
    let ((d0, w0), (d1, w1)) = (a?, b?);
    (w1 > w0).then(|| ((d1 - d0) / (w1 - w0) * 100.0).round() / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_labelled_series_and_skips_longer_names() {
        let text = "# HELP x\nkafka_ws_bridge_messages_delivered_total{channel=\"a\"} 3\n\
                    kafka_ws_bridge_messages_delivered_total{channel=\"b\"} 4\n\
                    kafka_ws_bridge_messages_delivered_total_other 100\n\
                    kafka_ws_bridge_socket_writes_total 2\n";
        assert_eq!(sum(text, DELIVERED), Some(7.0));
        assert_eq!(sum(text, WRITES), Some(2.0));
        assert_eq!(sum(text, "nope"), None);
        assert_eq!(
            frames_per_write(Some((0.0, 0.0)), Some((7.0, 2.0))),
            Some(3.5)
        );
        assert_eq!(frames_per_write(Some((0.0, 2.0)), Some((7.0, 2.0))), None);
    }
}
