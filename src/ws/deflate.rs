//! permessage-deflate (RFC 7692) negotiation: which of the client's offers the bridge can
//! honour. It always answers with both `no_context_takeover` parameters, so no session keeps a
//! compression window: each frame is compressed once, for every session (`Frame::wire_deflated`),
//! and each client message is inflated with a fresh context (`inflate.rs`).

use warp::http::HeaderValue;

/// The `Sec-WebSocket-Extensions` answer when an offer was accepted.
pub(super) const ACCEPTED: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// Whether one of the offers in the request's `Sec-WebSocket-Extensions` headers is a
/// permessage-deflate the bridge can honour with [`ACCEPTED`].
pub(super) fn negotiate<'a>(headers: impl IntoIterator<Item = &'a HeaderValue>) -> bool {
    headers
        .into_iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(acceptable)
}

/// An offer (`name; param; param=value …`) that is permessage-deflate with parameters the
/// bridge can satisfy. An offer with unknown or repeated parameters, or bad values, is declined
/// (RFC 7692 §5); so is one that limits the server's window below 15 bits: frames are compressed
/// once for every session with the full 32 KiB window.
fn acceptable(offer: &str) -> bool {
    let mut parts = offer.split(';').map(str::trim);
    if !parts
        .next()
        .is_some_and(|name| name.eq_ignore_ascii_case("permessage-deflate"))
    {
        return false;
    }
    let mut seen: Vec<String> = Vec::new();
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
            None => (param, None),
        };
        let name = name.to_ascii_lowercase();
        if seen.contains(&name) {
            return false;
        }
        let ok = match (name.as_str(), value) {
            ("server_no_context_takeover" | "client_no_context_takeover", None) => true,
            // The client's window only bounds what it sends; inflating with 15 bits reads any.
            ("client_max_window_bits", None) => true,
            ("client_max_window_bits", Some(bits)) => window_bits(bits).is_some(),
            ("server_max_window_bits", Some(bits)) => window_bits(bits) == Some(15),
            _ => false,
        };
        if !ok {
            return false;
        }
        seen.push(name);
    }
    true
}

/// A window size parameter: 8 to 15, digits only, no leading zero.
fn window_bits(value: &str) -> Option<u8> {
    if value.starts_with('0') || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|bits| (8..=15).contains(bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(values: &[&'static str]) -> bool {
        let headers: Vec<HeaderValue> =
            values.iter().map(|v| HeaderValue::from_static(v)).collect();
        negotiate(&headers)
    }

    #[test]
    fn what_browsers_and_libraries_offer_is_accepted() {
        // Chromium, Firefox, Safari.
        assert!(offered(&["permessage-deflate; client_max_window_bits"]));
        // Python websockets, ws (Node).
        assert!(offered(&[
            "permessage-deflate; server_max_window_bits=15; client_max_window_bits"
        ]));
        assert!(offered(&["permessage-deflate"]));
        assert!(offered(&[
            "Permessage-Deflate; Client_No_Context_Takeover; server_no_context_takeover"
        ]));
        assert!(offered(&[
            "permessage-deflate; client_max_window_bits=\"10\""
        ]));
    }

    #[test]
    fn offers_that_cannot_be_honoured_are_declined_and_the_next_one_tried() {
        assert!(!offered(&[]));
        assert!(!offered(&["x-webkit-deflate-frame"]));
        assert!(!offered(&["permessage-deflate; server_max_window_bits=10"]));
        assert!(!offered(&["permessage-deflate; server_max_window_bits"]));
        assert!(!offered(&["permessage-deflate; client_max_window_bits=16"]));
        assert!(!offered(&["permessage-deflate; client_max_window_bits=09"]));
        assert!(!offered(&["permessage-deflate; mystery"]));
        assert!(!offered(&[
            "permessage-deflate; server_no_context_takeover=1"
        ]));
        assert!(!offered(&[
            "permessage-deflate; client_max_window_bits; client_max_window_bits"
        ]));
        assert!(offered(&[
            "permessage-deflate; server_max_window_bits=10, permessage-deflate; client_max_window_bits"
        ]));
        assert!(offered(&["foo", "permessage-deflate"]));
    }
}
