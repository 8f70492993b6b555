//! How text log lines are written: every control character that reaches a
//! line from input (a file name, an S3 key, a manifest field, a foreign
//! operationName, an AWS message) is escaped, and so are the Unicode line
//! and paragraph separators and the bidirectional controls, so no input can
//! start a line of its own (a forged `pass finished`), reorder what a reader
//! sees, or send a terminal escape. Only the newline that ends each event
//! stays raw. A field's value that holds a space, `=` or `"` is quoted
//! ([`QuotedFields`]), so no input can add a `key=value` pair of its own.
//! JSON lines are escaped by the JSON encoder already.

use std::fmt::{self as stdfmt, Debug};
use std::io::{self, Write};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;

/// Characters that reorder or break lines for a Unicode-aware reader
/// without being control characters: LINE SEPARATOR, PARAGRAPH SEPARATOR
/// and the bidirectional marks, embeddings, overrides and isolates.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{2028}'
            | '\u{2029}'
            | '\u{061c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

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
            c if c.is_control() || is_invisible_format(c) => {
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

/// The text formatter's fields: `name=value`, the value quoted (with `\\`
/// and `"` escaped) when it holds whitespace, `=` or `"` and is not
/// already one quoted string; the message first, as it is.
pub struct QuotedFields;

impl<'w> FormatFields<'w> for QuotedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> stdfmt::Result {
        let mut v = FieldWriter {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

struct FieldWriter<'w> {
    writer: Writer<'w>,
    first: bool,
    result: stdfmt::Result,
}

impl FieldWriter<'_> {
    fn field(&mut self, name: &str, value: &str) {
        if self.result.is_err() {
            return;
        }
        let sep = if self.first { "" } else { " " };
        self.first = false;
        self.result = if name == "message" {
            write!(self.writer, "{sep}{value}")
        } else {
            let name = name.strip_prefix("r#").unwrap_or(name);
            write!(self.writer, "{sep}{name}={}", quoted(value))
        };
    }
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let text = if field.name() == "message" {
            value.to_string()
        } else {
            format!("{value:?}")
        };
        self.field(field.name(), &text);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.field(field.name(), &format!("{value:?}"));
    }
}

/// `value` as a log field's value: as it is when it is one token, else
/// quoted.
pub fn quoted(value: &str) -> std::borrow::Cow<'_, str> {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c == '=' || c == '"');
    if plain || is_one_quoted_string(value) {
        return value.into();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out.into()
}

/// Whether `s` is one double-quoted string whose inner quotes are all
/// escaped (as `Debug` writes a string).
fn is_one_quoted_string(s: &str) -> bool {
    let Some(inner) = s
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .filter(|_| s.len() >= 2)
    else {
        return false;
    };
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.next().is_none() => return false,
            '"' => return false,
            _ => {}
        }
    }
    true
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
            (
                "file=a\u{2028}pass finished result=\"success\"\n",
                "file=a\\u{2028}pass finished result=\"success\"\n",
            ),
            ("p\u{2029}q\n", "p\\u{2029}q\n"),
            ("rtl\u{202e}txt.yaml\n", "rtl\\u{202e}txt.yaml\n"),
            ("iso\u{2066}x\u{2069}\n", "iso\\u{2066}x\\u{2069}\n"),
            ("mark\u{200f}\u{061c}\n", "mark\\u{200f}\\u{61c}\n"),
        ];
        for (raw, want) in table {
            assert_eq!(
                String::from_utf8(escape_event(raw.as_bytes())).unwrap(),
                *want
            );
        }
    }

    #[test]
    fn values_that_could_add_a_field_are_quoted() {
        let table: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("/m/a.yaml", "/m/a.yaml"),
            ("a b.yaml", "\"a b.yaml\""),
            ("x result=success", "\"x result=success\""),
            ("a=b", "\"a=b\""),
            ("", "\"\""),
            // Already one quoted string (as Debug writes one): as it is.
            ("\"a b\"", "\"a b\""),
            ("\"a \\\" b\"", "\"a \\\" b\""),
            // Not one string: quoted again, inner quotes escaped.
            ("\"x\" forged=\"y\"", "\"\\\"x\\\" forged=\\\"y\\\"\""),
            ("back\\slash me", "\"back\\\\slash me\""),
        ];
        for (raw, want) in table {
            assert_eq!(quoted(raw), *want, "{raw:?}");
        }
    }

    #[test]
    fn a_logged_line_keeps_its_fields_apart() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(&escape_event(buf));
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let out = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .without_time()
            .fmt_fields(QuotedFields)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let file = "x.yaml result=success\u{2028}pass finished";
            tracing::warn!(file = %file, count = 3, name = "a b", "manifest rejected");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains(
                "manifest rejected file=\"x.yaml result=success\\u{2028}pass finished\" count=3 name=\"a b\""
            ),
            "{text}"
        );
    }
}
