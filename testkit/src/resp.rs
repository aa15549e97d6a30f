//! Just enough of RESP (2 and 3) to cut a byte stream into whole frames:
//! the proxy must know where one request or one reply ends to drop, hold or
//! cut exactly that one.

/// The length of the first complete frame in `buf`, or `None` when `buf`
/// holds only part of one. `Err` on bytes that are not RESP.
pub(crate) fn frame_len(buf: &[u8]) -> Result<Option<usize>, String> {
    frame_end(buf, 0)
}

/// Where the frame that starts at `at` ends.
fn frame_end(buf: &[u8], at: usize) -> Result<Option<usize>, String> {
    let Some(&kind) = buf.get(at) else {
        return Ok(None);
    };
    let Some(line_end) = find_crlf(buf, at + 1) else {
        return Ok(None);
    };
    let line = &buf[at + 1..line_end];
    let after_line = line_end + 2;
    match kind {
        // Simple string, error, integer, null, double, boolean, big number.
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Ok(Some(after_line)),
        // Bulk string, blob error, verbatim string.
        b'$' | b'!' | b'=' => {
            let n = number(line)?;
            if n < 0 {
                return Ok(Some(after_line));
            }
            let end = after_line + n as usize + 2;
            Ok((buf.len() >= end).then_some(end))
        }
        // Array, set, push; map and attribute hold two frames per entry.
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = number(line)?;
            if n < 0 {
                return Ok(Some(after_line));
            }
            let items = if matches!(kind, b'%' | b'|') {
                n * 2
            } else {
                n
            };
            let mut pos = after_line;
            for _ in 0..items {
                match frame_end(buf, pos)? {
                    Some(next) => pos = next,
                    None => return Ok(None),
                }
            }
            if kind == b'|' {
                // An attribute precedes the frame it describes.
                return frame_end(buf, pos);
            }
            Ok(Some(pos))
        }
        other => Err(format!("not RESP: frame type byte {other:#04x}")),
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| from + p)
}

fn number(line: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not a RESP length: {:?}", String::from_utf8_lossy(line)))
}

/// The words of a request frame (an array of bulk strings), as far as they
/// are text: the command name first.
pub(crate) fn request_words(frame: &[u8]) -> Vec<String> {
    let mut words = Vec::new();
    let Some(line_end) = find_crlf(frame, 1) else {
        return words;
    };
    if frame.first() != Some(&b'*') {
        // An inline command: words separated by spaces.
        return String::from_utf8_lossy(&frame[..line_end])
            .split_whitespace()
            .map(str::to_owned)
            .collect();
    }
    let mut pos = line_end + 2;
    while let Some(b'$') = frame.get(pos) {
        let Some(end) = find_crlf(frame, pos + 1) else {
            break;
        };
        let Ok(n) = number(&frame[pos + 1..end]) else {
            break;
        };
        let start = end + 2;
        let stop = start + n.max(0) as usize;
        let Some(word) = frame.get(start..stop) else {
            break;
        };
        words.push(String::from_utf8_lossy(word).into_owned());
        pos = stop + 2;
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_cut_where_they_end() {
        assert_eq!(frame_len(b"+OK\r\n+PONG\r\n"), Ok(Some(5)));
        assert_eq!(frame_len(b"$3\r\nabc\r\n"), Ok(Some(9)));
        assert_eq!(frame_len(b"$3\r\nab"), Ok(None));
        assert_eq!(frame_len(b"$-1\r\n"), Ok(Some(5)));
        assert_eq!(frame_len(b"*2\r\n:1\r\n$1\r\nx\r\n:9\r\n"), Ok(Some(15)));
        assert_eq!(frame_len(b"*2\r\n:1\r\n"), Ok(None));
        assert_eq!(frame_len(b"*-1\r\n"), Ok(Some(5)));
        assert_eq!(frame_len(b"%1\r\n+a\r\n:1\r\n"), Ok(Some(12)));
        assert_eq!(frame_len(b"*1\r\n*1\r\n$2\r\nab\r\n"), Ok(Some(16)));
        assert_eq!(frame_len(b""), Ok(None));
        assert!(frame_len(b"?oops\r\n").is_err());
    }

    #[test]
    fn request_words_name_the_command() {
        let frame = b"*3\r\n$7\r\nEVALSHA\r\n$3\r\nabc\r\n$1\r\n0\r\n";
        assert_eq!(request_words(frame), ["EVALSHA", "abc", "0"]);
        assert_eq!(request_words(b"PING\r\n"), ["PING"]);
    }
}
