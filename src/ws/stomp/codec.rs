//! STOMP 1.2 frames, one per WebSocket message: decoding of client frames (bounded header
//! count and size, header escapes, `content-length`, the NUL terminator, EOL heart-beats) and
//! encoding of server frames. Written here rather than taken from a crate: the candidate
//! (`stomp-parser`, nom-based, ~2.5k lines, one maintainer, used by two crates) has no bounds on
//! header count or size, which a server facing browsers needs; this one is small and fuzzed (the
//! property tests below).

/// Most headers one client frame may carry.
pub const MAX_HEADERS: usize = 64;
/// Longest header line (name, colon and value, escaped), in bytes.
pub const MAX_HEADER_BYTES: usize = 4096;

/// Client commands (STOMP 1.2, section "Client Frames").
pub const CLIENT_COMMANDS: &[&str] = &[
    "CONNECT",
    "STOMP",
    "SEND",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "ACK",
    "NACK",
    "BEGIN",
    "COMMIT",
    "ABORT",
    "DISCONNECT",
];

/// A decoded frame. Headers keep their order and repeats; [`StompFrame::header`] returns the
/// first, as the specification says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StompFrame {
    pub command: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl StompFrame {
    pub fn new(command: &str) -> Self {
        StompFrame {
            command: command.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// The frame as sent: command, escaped headers, `content-length` when there is a body,
    /// blank line, body, NUL. CONNECT and CONNECTED headers are not escaped (STOMP 1.2).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.body.len());
        out.extend_from_slice(self.command.as_bytes());
        out.push(b'\n');
        let escape = !matches!(self.command.as_str(), "CONNECT" | "CONNECTED");
        for (name, value) in &self.headers {
            push_header_text(&mut out, name, escape);
            out.push(b':');
            push_header_text(&mut out, value, escape);
            out.push(b'\n');
        }
        if !self.body.is_empty() {
            out.extend_from_slice(format!("content-length:{}\n", self.body.len()).as_bytes());
        }
        out.push(b'\n');
        out.extend_from_slice(&self.body);
        out.push(0);
        out
    }
}

fn push_header_text(out: &mut Vec<u8>, text: &str, escape: bool) {
    if !escape {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    for byte in text.bytes() {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b':' => out.extend_from_slice(b"\\c"),
            other => out.push(other),
        }
    }
}

/// What one WebSocket message held.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Only end-of-lines: a heart-beat.
    HeartBeat,
    Frame(StompFrame),
}

/// Decodes one WebSocket message: optional heart-beat EOLs, one frame, optional trailing EOLs.
/// Every error says what was expected and what was found.
pub fn decode(input: &[u8]) -> Result<Decoded, String> {
    let mut at = 0;
    while at < input.len() && (input[at] == b'\n' || input[at] == b'\r') {
        at += 1;
    }
    if at == input.len() {
        return Ok(Decoded::HeartBeat);
    }
    let (command, next) = line(input, at)?;
    let command = std::str::from_utf8(command).map_err(|_| "command is not UTF-8".to_owned())?;
    if !CLIENT_COMMANDS.contains(&command) {
        let shown: String = command.chars().take(32).collect();
        return Err(format!(
            "unknown command `{shown}`: expected one of {}",
            CLIENT_COMMANDS.join(", ")
        ));
    }
    at = next;
    let escaped = command != "CONNECT" && command != "STOMP";
    let mut headers = Vec::new();
    loop {
        let (raw, next) = line(input, at)?;
        at = next;
        if raw.is_empty() {
            break;
        }
        if headers.len() == MAX_HEADERS {
            return Err(format!("more than {MAX_HEADERS} headers"));
        }
        if raw.len() > MAX_HEADER_BYTES {
            return Err(format!(
                "a header line is longer than {MAX_HEADER_BYTES} bytes"
            ));
        }
        let colon = raw
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| "expected `name:value` in a header line, found no colon".to_owned())?;
        let name = unescape(&raw[..colon], escaped)?;
        let value = unescape(&raw[colon + 1..], escaped)?;
        headers.push((name, value));
    }
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| format!("content-length: expected a number of bytes, found `{v}`"))
        })
        .transpose()?;
    let rest = &input[at..];
    let (body, after) = match length {
        Some(length) => {
            if rest.len() <= length || rest[length] != 0 {
                return Err(format!(
                    "content-length: expected {length} bytes of body then NUL"
                ));
            }
            (&rest[..length], &rest[length + 1..])
        }
        None => {
            let nul = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or_else(|| "frame does not end with NUL".to_owned())?;
            (&rest[..nul], &rest[nul + 1..])
        }
    };
    if after.iter().any(|&b| b != b'\n' && b != b'\r') {
        return Err("expected one frame per WebSocket message, found more after the NUL".into());
    }
    Ok(Decoded::Frame(StompFrame {
        command: command.to_owned(),
        headers,
        body: body.to_vec(),
    }))
}

/// The line starting at `at` (without its `\n` or `\r\n`) and where the next one starts.
fn line(input: &[u8], at: usize) -> Result<(&[u8], usize), String> {
    let end = input[at..]
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| at + i)
        .ok_or_else(|| "expected an end of line, found the end of the frame".to_owned())?;
    let text = &input[at..end];
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    Ok((text, end + 1))
}

fn unescape(raw: &[u8], escaped: bool) -> Result<String, String> {
    let text = std::str::from_utf8(raw).map_err(|_| "a header is not UTF-8".to_owned())?;
    if !escaped || !text.contains('\\') {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('c') => out.push(':'),
            other => {
                return Err(format!(
                    "undefined header escape `\\{}`: expected \\\\, \\n, \\r or \\c",
                    other.map(String::from).unwrap_or_default()
                ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(input: &[u8]) -> StompFrame {
        match decode(input).unwrap() {
            Decoded::Frame(frame) => frame,
            Decoded::HeartBeat => panic!("a heart-beat"),
        }
    }

    #[test]
    fn a_frame_with_escapes_and_a_body() {
        let f = frame(b"\nSEND\r\ndestination:/app/a\\cb\nx:1\nx:2\n\n{\"a\":1}\0\n");
        assert_eq!(f.command, "SEND");
        assert_eq!(f.header("destination"), Some("/app/a:b"));
        assert_eq!(f.header("x"), Some("1"), "the first repeat wins");
        assert_eq!(f.body, b"{\"a\":1}");
    }

    #[test]
    fn content_length_allows_nul_in_the_body() {
        let f = frame(b"SEND\ncontent-length:3\n\na\0b\0");
        assert_eq!(f.body, b"a\0b");
        assert!(decode(b"SEND\ncontent-length:9\n\nab\0").is_err());
        assert!(decode(b"SEND\ncontent-length:x\n\nab\0").is_err());
    }

    #[test]
    fn connect_headers_are_not_unescaped() {
        let f = frame(b"CONNECT\npasscode:a\\cb\n\n\0");
        assert_eq!(f.header("passcode"), Some("a\\cb"));
    }

    #[test]
    fn heart_beats_and_errors() {
        assert_eq!(decode(b"\n").unwrap(), Decoded::HeartBeat);
        assert_eq!(decode(b"\r\n\n").unwrap(), Decoded::HeartBeat);
        for (bad, says) in [
            (&b"HELLO\n\n\0"[..], "unknown command"),
            (b"SEND\nnocolon\n\n\0", "no colon"),
            (b"SEND\na:\\t\n\n\0", "undefined header escape"),
            (b"SEND\na:b\n\nbody", "NUL"),
            (b"SEND", "end of line"),
            (b"SEND\n\n\0SEND\n\n\0", "one frame"),
        ] {
            let error = decode(bad).unwrap_err();
            assert!(error.contains(says), "{error}");
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("h{i}:v\n")).collect();
        assert!(decode(format!("SEND\n{many}\n\0").as_bytes())
            .unwrap_err()
            .contains("headers"));
        let long = format!("SEND\nh:{}\n\n\0", "v".repeat(MAX_HEADER_BYTES));
        assert!(decode(long.as_bytes()).unwrap_err().contains("longer"));
    }

    #[test]
    fn encoding_escapes_and_counts_the_body() {
        let f = StompFrame::new("MESSAGE")
            .with("destination", "/topic/a:b\n")
            .with("x", "\\");
        let mut f = f;
        f.body = b"hi".to_vec();
        assert_eq!(
            f.encode(),
            b"MESSAGE\ndestination:/topic/a\\cb\\n\nx:\\\\\ncontent-length:2\n\nhi\0"
        );
        assert_eq!(
            StompFrame::new("CONNECTED").with("a", "b:c").encode(),
            b"CONNECTED\na:b:c\n\n\0"
        );
    }

    proptest! {
        #[test]
        fn encoding_then_decoding_gives_the_frame_back(
            command in proptest::sample::select(&CLIENT_COMMANDS[2..]),
            headers in proptest::collection::vec(("[a-z][a-z0-9:\\\\\r\n-]{0,12}", "\\PC{0,24}"), 0..8),
            body in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let sent = StompFrame { command: command.to_owned(), headers, body };
            let Decoded::Frame(mut got) = decode(&sent.encode()).unwrap() else { panic!() };
            if !sent.body.is_empty() {
                let last = got.headers.pop().unwrap();
                prop_assert_eq!(last, ("content-length".to_owned(), sent.body.len().to_string()));
            }
            prop_assert_eq!(got, sent);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn frame_like_bytes_never_panic(
            text in "(SEND|CONNECT|SUBSCRIBE)\r?\n([a-z:\\\\-]{0,8}\r?\n){0,4}\r?\n[a-z\\x00]{0,8}",
        ) {
            let _ = decode(text.as_bytes());
        }
    }
}
