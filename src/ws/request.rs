//! What clients put in their requests, read the same way by every transport (the WebSocket
//! upgrade, Server-Sent Events, STOMP's CONNECT and SUBSCRIBE): tokens (`Authorization: Bearer`,
//! `?access_token=`), query values, origins, and positions (`partition:offset,…`).

use std::collections::BTreeMap;

use warp::http::{header, HeaderMap, HeaderValue};

/// Most partitions one list of positions may name.
const MAX_POSITIONS: usize = 1024;

pub(super) fn origin_allowed(allowed: &[String], origin: &HeaderValue) -> bool {
    let origin = origin.to_str().unwrap_or_default();
    allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
}

/// The token from `Authorization: Bearer …`, else from `?access_token=…`.
pub(super) fn bearer_token(headers: &HeaderMap, query: &str) -> Option<String> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        return bearer(value.to_str().ok()?);
    }
    form_urlencoded_value(query, "access_token")
}

/// The token of an `Authorization: Bearer …` value.
pub(super) fn bearer(authorization: &str) -> Option<String> {
    Some(crate::server::http::bearer(Some(authorization)))
        .filter(|token| !token.is_empty())
        .map(str::to_owned)
}

/// One value of an `application/x-www-form-urlencoded` query string.
pub(super) fn form_urlencoded_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = text
            .get(i + 1..i + 3)
            .filter(|hex| bytes[i] == b'%' && hex.bytes().all(|c| c.is_ascii_hexdigit()))
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[i], escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (other, None) => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `partition:offset,…` → positions seen (offset -1: nothing yet), each partition once.
pub(super) fn parse_positions(text: &str) -> Result<BTreeMap<i32, i64>, String> {
    let bad = || format!("expected `partition:offset,…`, found \"{text}\"");
    let mut seen = BTreeMap::new();
    for part in text.split(',') {
        let (partition, offset) = part.split_once(':').ok_or_else(bad)?;
        let partition = partition.parse::<i32>().map_err(|_| bad())?;
        let offset = offset.parse::<i64>().map_err(|_| bad())?;
        if partition < 0 || offset < -1 || seen.insert(partition, offset).is_some() {
            return Err(bad());
        }
        if seen.len() > MAX_POSITIONS {
            return Err(format!("lists more than {MAX_POSITIONS} partitions"));
        }
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_from_header_or_query() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            bearer_token(&headers, "a=1&access_token=abc%2Edef&b=2").as_deref(),
            Some("abc.def")
        );
        assert_eq!(bearer_token(&headers, "a=1"), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer xyz"),
        );
        assert_eq!(
            bearer_token(&headers, "access_token=abc").as_deref(),
            Some("xyz")
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic xyz"));
        assert_eq!(bearer_token(&headers, ""), None);
    }

    #[test]
    fn percent_decoding_tolerates_garbage() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn origins() {
        let allowed = vec!["https://bank.example".to_owned()];
        assert!(origin_allowed(
            &allowed,
            &HeaderValue::from_static("https://bank.example")
        ));
        assert!(!origin_allowed(
            &allowed,
            &HeaderValue::from_static("https://evil.example")
        ));
        assert!(origin_allowed(
            &["*".to_owned()],
            &HeaderValue::from_static("https://x")
        ));
    }
}
