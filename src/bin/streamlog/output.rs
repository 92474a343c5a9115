//! Output shared by the commands: stdout, the progress bar, bytes as text and JSON.

use std::io::{self, BufWriter, IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Map, Value};
use streamlog::record::{Header, Record};

pub(crate) fn stdout() -> BufWriter<io::StdoutLock<'static>> {
    BufWriter::new(io::stdout().lock())
}

/// A byte-count progress bar on stderr, drawn only when stderr is a terminal.
pub(crate) fn progress_bar(total: u64, visible: bool) -> ProgressBar {
    if !visible || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Text for a terminal: UTF-8 without control characters as is, anything else as `0x` hex.
pub(crate) fn text_bytes(bytes: Option<&[u8]>) -> String {
    match bytes {
        None => "null".into(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) if !s.chars().any(char::is_control) => s.to_string(),
            _ => format!("0x{}", hex(b)),
        },
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Adds `name` and `name_encoding` for bytes to a JSON object.
pub(crate) fn put_bytes(obj: &mut Map<String, Value>, name: &str, bytes: Option<&[u8]>) {
    let (value, encoding) = match bytes {
        None => (Value::Null, Value::Null),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => (Value::from(s), Value::from("utf8")),
            Err(_) => (Value::from(hex(b)), Value::from("hex")),
        },
    };
    obj.insert(name.into(), value);
    obj.insert(format!("{name}_encoding"), encoding);
}

pub(crate) fn headers_json<'a>(headers: impl Iterator<Item = Header<'a>>) -> Value {
    let list = headers
        .map(|h| {
            let mut obj = Map::new();
            put_bytes(&mut obj, "key", Some(h.key));
            put_bytes(&mut obj, "value", h.value);
            Value::Object(obj)
        })
        .collect();
    Value::Array(list)
}

pub(crate) fn headers_text<'a>(headers: impl Iterator<Item = Header<'a>>) -> String {
    let list: Vec<String> = headers
        .map(|h| format!("{}={}", text_bytes(Some(h.key)), text_bytes(h.value)))
        .collect();
    format!("[{}]", list.join(", "))
}

/// A record as a JSON object, shared by `dump` and `consume`.
pub(crate) fn record_json(r: &Record<'_>) -> Map<String, Value> {
    let mut obj = Map::new();
    obj.insert("offset".into(), r.offset.into());
    obj.insert("timestamp".into(), r.timestamp.into());
    put_bytes(&mut obj, "key", r.key);
    put_bytes(&mut obj, "value", r.value);
    obj.insert("headers".into(), headers_json(r.headers()));
    obj
}

pub(crate) fn write_json(out: &mut impl Write, value: &Value) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}
