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

/// Longest value of the session group parameter (`auth.session_group_param`).
pub(super) const MAX_GROUP_CHARS: usize = 64;

/// The session group named by the query parameter `param` (`auth.session_group_param`):
/// `None` when the parameter is absent, else 1 to [`MAX_GROUP_CHARS`] letters, digits, `.`,
/// `_`, `~` or `-`. Anything else is refused, saying what was found (never echoing a long
/// value).
pub(super) fn session_group(query: &str, param: &str) -> Result<Option<String>, String> {
    let mut values = query.split('&').filter_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == param).then_some(v)
    });
    let Some(raw) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(format!("query parameter `{param}` is given more than once"));
    }
    let expected = format!(
        "query parameter `{param}`: expected 1 to {MAX_GROUP_CHARS} letters, digits, `.`, `_`, `~` or `-`"
    );
    // Bounded before decoding: a 10 KB value is not decoded, only measured.
    if raw.len() > 3 * MAX_GROUP_CHARS {
        return Err(format!("{expected}, found {} bytes", raw.len()));
    }
    let value = percent_decode(raw);
    if value.is_empty() {
        return Err(format!("{expected}, found an empty value"));
    }
    let chars = value.chars().count();
    if chars > MAX_GROUP_CHARS {
        return Err(format!("{expected}, found {chars} characters"));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._~-".contains(*c)))
    {
        return Err(format!("{expected}, found {bad:?} in {value:?}"));
    }
    Ok(Some(value))
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
    fn session_groups() {
        assert_eq!(session_group("a=1", "app"), Ok(None));
        assert_eq!(
            session_group("access_token=x&app=teller-2.b", "app"),
            Ok(Some("teller-2.b".to_owned()))
        );
        assert_eq!(session_group("app=%41b", "app"), Ok(Some("Ab".to_owned())));
        let expected =
            "query parameter `app`: expected 1 to 64 letters, digits, `.`, `_`, `~` or `-`";
        assert_eq!(
            session_group("app=", "app"),
            Err(format!("{expected}, found an empty value"))
        );
        assert_eq!(
            session_group("app", "app"),
            Err(format!("{expected}, found an empty value"))
        );
        let long = format!("app={}", "a".repeat(10 * 1024));
        assert_eq!(
            session_group(&long, "app"),
            Err(format!("{expected}, found 10240 bytes"))
        );
        let over = format!("app={}", "a".repeat(65));
        assert_eq!(
            session_group(&over, "app"),
            Err(format!("{expected}, found 65 characters"))
        );
        assert_eq!(
            session_group(&format!("app={}", "a".repeat(64)), "app").map(|g| g.map(|g| g.len())),
            Ok(Some(64))
        );
        assert_eq!(
            session_group("app=a%20b", "app"),
            Err(format!("{expected}, found ' ' in \"a b\""))
        );
        assert_eq!(
            session_group("app=%ff", "app"),
            Err(format!("{expected}, found '\u{fffd}' in \"\u{fffd}\""))
        );
        assert_eq!(
            session_group("app=a&app=b", "app"),
            Err("query parameter `app` is given more than once".to_owned())
        );
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
