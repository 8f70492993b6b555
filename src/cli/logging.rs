//! How text log lines are written: every control character that reaches a
//! line from input (a file name, an S3 key, a manifest field, a foreign
//! operationName, an AWS message) is escaped, so no input can start a line
//! of its own (a forged `pass finished`) or send a terminal escape. Only the
//! newline that ends each event stays raw. JSON lines are escaped by the
//! JSON encoder already.

use std::io::{self, Write};

/// The event bytes with control characters escaped (`\n`, `\r`, `\t`,
/// `\u{1b}` …), but for the final newline.
pub fn escape_event(event: &[u8]) -> Vec<u8> {
    let (body, end) = match event.split_last() {
        Some((b'\n', body)) => (body, &b"\n"[..]),
        _ => (event, &b""[..]),
    };
    let mut out = Vec::with_capacity(event.len() + 8);
    for chunk in String::from_utf8_lossy(body).chars() {
        match chunk {
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.extend_from_slice(end);
    out
}

/// Standard error, one escaped event per write (the log formatter writes
/// each event in one piece).
pub struct EscapedStderr;

impl Write for EscapedStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::stderr().lock().write_all(&escape_event(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_cannot_start_a_line_or_send_an_escape() {
        let table: &[(&str, &str)] = &[
            ("a plain line\n", "a plain line\n"),
            (
                "file=x\npass finished result=\"success\"\n.yaml\n",
                "file=x\\npass finished result=\"success\"\\n.yaml\n",
            ),
            ("cr\r\n", "cr\\r\n"),
            ("\u{1b}[2Jwiped\n", "\\u{1b}[2Jwiped\n"),
            ("tab\there\n", "tab\\there\n"),
            ("no newline at the end", "no newline at the end"),
            ("ünïcödé stays\n", "ünïcödé stays\n"),
        ];
        for (raw, want) in table {
            assert_eq!(
                String::from_utf8(escape_event(raw.as_bytes())).unwrap(),
                *want
            );
        }
    }
}
