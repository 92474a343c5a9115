//! The streaming replication protocol on a logical slot (`START_REPLICATION SLOT … LOGICAL`
//! on a `replication=database` connection): the server's walsender decodes each transaction
//! once, as it commits, and pushes it, so the source wakes when there is something to read
//! and no call decodes the WAL since the slot's restart position again (what every SQL
//! peek does, a cost that grows until the server logs its next running-transactions record,
//! every 15 s).
//!
//! The `postgres` client does not speak this sub-protocol (CopyBoth), so this file does, over
//! its own socket: the startup with `replication=database`, authentication (trust,
//! password, MD5, SCRAM-SHA-256 with `postgres-protocol`'s implementation), the
//! `START_REPLICATION` command, then CopyData frames: `w` (XLogData: a pgoutput message)
//! and `k` (keepalive: the server's sent position, maybe asking for a reply) from the
//! server; `r` (standby status update: the position the slot may be confirmed to) from us.
//! A reader thread turns frames into [`Event`]s on a bounded queue (a slow agent stalls the
//! walsender, not memory) and wakes the source; it answers keepalives that ask for a reply
//! with the last confirmed position. TLS is not supported (nor by the rest of the source).

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, Sender, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use parking_lot::Mutex;
use postgres::config::Host;
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::frontend;

use super::error::PostgresError;
use super::pgoutput::{format_lsn, PG_EPOCH_MS};
use super::{quote_ident, PostgresSourceConfig};

/// Frames the reader thread queues before it stops reading (and the walsender waits).
const QUEUE: usize = 4096;

/// A message the server pushed.
#[derive(Debug)]
pub(crate) enum Event {
    /// One pgoutput message.
    Data(Vec<u8>),
    /// The stream ended (the server went away, an error): the source fails and is rebuilt.
    Failed(String),
}

/// Where the source's waker is kept once the agent hands it over.
pub(crate) type SharedWaker = Arc<Mutex<Option<Sender<()>>>>;

enum Sock {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Sock {
    fn try_clone(&self) -> io::Result<Sock> {
        Ok(match self {
            Sock::Tcp(s) => Sock::Tcp(s.try_clone()?),
            Sock::Unix(s) => Sock::Unix(s.try_clone()?),
        })
    }
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.set_read_timeout(t),
            Sock::Unix(s) => s.set_read_timeout(t),
        }
    }
    fn shutdown(&self) {
        let _ = match self {
            Sock::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
            Sock::Unix(s) => s.shutdown(std::net::Shutdown::Both),
        };
    }
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.read(buf),
            Sock::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.write(buf),
            Sock::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.flush(),
            Sock::Unix(s) => s.flush(),
        }
    }
}

/// A running replication stream on one slot.
pub(crate) struct ReplicationStream {
    writer: Arc<Mutex<Sock>>,
    events: Receiver<Event>,
    confirmed: Arc<AtomicU64>,
    /// The largest sent position a keepalive reported: every message before it is queued
    /// before this is stored. Kept out of the queue and without a wake (a lagging client
    /// gets one per WAL flush).
    sent_end: Arc<AtomicU64>,
    woken: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

fn err(op: &'static str) -> impl Fn(String) -> PostgresError {
    move |reason| PostgresError::Replication { op, reason }
}

fn io_err(op: &'static str) -> impl Fn(io::Error) -> PostgresError {
    move |e| PostgresError::Replication {
        op,
        reason: e.to_string(),
    }
}

impl ReplicationStream {
    /// Connects, authenticates and starts streaming `config`'s slot from `start` (the
    /// server starts at the slot's confirmed position if that is later).
    pub(crate) fn start(
        config: &PostgresSourceConfig,
        start: u64,
        waker: SharedWaker,
    ) -> Result<Self, PostgresError> {
        let pg = postgres::Config::from_str(&config.conninfo)
            .map_err(|e| err("parse conninfo")(e.to_string()))?;
        let timeout = pg
            .get_connect_timeout()
            .copied()
            .unwrap_or(Duration::from_secs(config.connect_timeout_s.max(1)));
        let mut sock = connect(&pg, timeout)?;
        sock.set_read_timeout(Some(timeout))
            .map_err(io_err("set a timeout"))?;
        let user = pg
            .get_user()
            .map(str::to_string)
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "postgres".into());
        let dbname = pg.get_dbname().unwrap_or(&user).to_string();
        let application = format!("streamlog-ingest {}", config.name);
        let mut buf = BytesMut::new();
        frontend::startup_message(
            [
                ("user", user.as_str()),
                ("database", dbname.as_str()),
                ("replication", "database"),
                ("application_name", application.as_str()),
            ],
            &mut buf,
        )
        .map_err(io_err("write the startup message"))?;
        send(&mut sock, &mut buf)?;
        authenticate(&mut sock, &user, pg.get_password())?;
        // START_REPLICATION: the options are string literals, the publication list a
        // comma-separated list of (quoted) identifiers.
        let publication = quote_ident(&config.publication_name()).replace('\'', "''");
        let command = format!(
            "START_REPLICATION SLOT {} LOGICAL {} (proto_version '1', publication_names '{}')",
            config.slot_name(),
            format_lsn(start),
            publication
        );
        frontend::query(&command, &mut buf).map_err(io_err("write START_REPLICATION"))?;
        send(&mut sock, &mut buf)?;
        loop {
            let (tag, body) = read_message(&mut sock)?;
            match tag {
                b'W' => break, // CopyBothResponse
                b'E' => return Err(err("START_REPLICATION")(error_text(&body))),
                b'N' | b'S' => continue,
                other => {
                    return Err(err("START_REPLICATION")(format!(
                        "unexpected message {:?}",
                        other as char
                    )))
                }
            }
        }
        sock.set_read_timeout(None)
            .map_err(io_err("clear the timeout"))?;
        let writer = Arc::new(Mutex::new(
            sock.try_clone().map_err(io_err("clone the socket"))?,
        ));
        let confirmed = Arc::new(AtomicU64::new(start));
        let sent_end = Arc::new(AtomicU64::new(0));
        let woken = Arc::new(AtomicBool::new(false));
        let (tx, rx) = sync_channel(QUEUE);
        let reader = {
            let shared = Shared {
                writer: Arc::clone(&writer),
                confirmed: Arc::clone(&confirmed),
                sent_end: Arc::clone(&sent_end),
                waker,
                woken: Arc::clone(&woken),
            };
            std::thread::Builder::new()
                .name(format!("ingest-{}-wal", config.name))
                .spawn(move || read_stream(sock, tx, shared))
                .map_err(io_err("spawn the stream's reader"))?
        };
        Ok(ReplicationStream {
            writer,
            events: rx,
            confirmed,
            sent_end,
            woken,
            reader: Some(reader),
        })
    }

    /// The largest sent position a keepalive reported. Read it before draining the queue:
    /// once the queue is empty, every message before that position has been taken.
    pub(crate) fn sent_end(&self) -> u64 {
        self.sent_end.load(Ordering::SeqCst)
    }

    /// Called before draining the queue: a message queued after this wakes the agent again.
    pub(crate) fn rearm(&self) {
        self.woken.store(false, Ordering::SeqCst);
    }

    /// The next event, if one is queued.
    pub(crate) fn try_next(&self) -> Option<Event> {
        match self.events.try_recv() {
            Ok(e) => Some(e),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                Some(Event::Failed("the stream's reader ended".into()))
            }
        }
    }

    /// Tells the server the slot may be confirmed up to `lsn` (everything up to it is
    /// committed to the topic, or none of ours).
    pub(crate) fn confirm(&self, lsn: u64) -> Result<(), PostgresError> {
        let lsn = self.confirmed.fetch_max(lsn, Ordering::SeqCst).max(lsn);
        status_update(&self.writer, lsn, false)
    }
}

impl Drop for ReplicationStream {
    fn drop(&mut self) {
        // The reader ends on the closed socket (or, blocked on a full queue, once the queue's
        // receiver is dropped right after this): not joined here, which would wait on that.
        self.writer.lock().shutdown();
        drop(self.reader.take());
    }
}

fn connect(pg: &postgres::Config, timeout: Duration) -> Result<Sock, PostgresError> {
    let ports = pg.get_ports();
    let mut last = String::from("no host in conninfo");
    for (i, host) in pg.get_hosts().iter().enumerate() {
        let port = ports
            .get(i)
            .or_else(|| ports.first())
            .copied()
            .unwrap_or(5432);
        let attempt = match host {
            Host::Tcp(name) => (name.as_str(), port)
                .to_socket_addrs()
                .and_then(|mut addrs| addrs.next().ok_or_else(|| io::Error::other("no address")))
                .and_then(|addr| TcpStream::connect_timeout(&addr, timeout))
                .map(|s| {
                    let _ = s.set_nodelay(true);
                    Sock::Tcp(s)
                }),
            Host::Unix(dir) => {
                UnixStream::connect(dir.join(format!(".s.PGSQL.{port}"))).map(Sock::Unix)
            }
        };
        match attempt {
            Ok(s) => return Ok(s),
            Err(e) => last = e.to_string(),
        }
    }
    Err(err("connect")(last))
}

fn send(sock: &mut Sock, buf: &mut BytesMut) -> Result<(), PostgresError> {
    sock.write_all(buf).map_err(io_err("write"))?;
    buf.clear();
    Ok(())
}

/// One backend message: its tag and body.
fn read_message(sock: &mut impl Read) -> Result<(u8, Vec<u8>), PostgresError> {
    let mut head = [0u8; 5];
    sock.read_exact(&mut head).map_err(io_err("read"))?;
    let [tag, a, b, c, d] = head;
    let len = u32::from_be_bytes([a, b, c, d]) as usize;
    // The length counts itself; a frame is at most 1 GiB (the server's own limit).
    if !(4..=(1 << 30)).contains(&len) {
        return Err(err("read")(format!("a message of length {len}")));
    }
    let mut body = vec![0u8; len - 4];
    sock.read_exact(&mut body).map_err(io_err("read"))?;
    Ok((tag, body))
}

fn authenticate(sock: &mut Sock, user: &str, password: Option<&[u8]>) -> Result<(), PostgresError> {
    let mut buf = BytesMut::new();
    let mut scram: Option<sasl::ScramSha256> = None;
    let need_password = || err("authenticate")("the server asks for a password".into());
    loop {
        let (tag, body) = read_message(sock)?;
        match tag {
            b'R' => {
                let code = be_u32(&body, 0)?;
                match code {
                    0 => {}
                    3 => {
                        let mut pw = password.ok_or_else(need_password)?.to_vec();
                        pw.push(0);
                        frontend::password_message(&pw, &mut buf)
                            .map_err(io_err("write the password"))?;
                        send(sock, &mut buf)?;
                    }
                    5 => {
                        let salt: [u8; 4] = body
                            .get(4..8)
                            .and_then(|s| s.try_into().ok())
                            .ok_or_else(|| err("authenticate")("short MD5 request".into()))?;
                        let hash =
                            md5_hash(user.as_bytes(), password.ok_or_else(need_password)?, salt);
                        let mut pw = hash.into_bytes();
                        pw.push(0);
                        frontend::password_message(&pw, &mut buf)
                            .map_err(io_err("write the password"))?;
                        send(sock, &mut buf)?;
                    }
                    10 => {
                        let mechanisms = body.get(4..).unwrap_or_default();
                        let offered = mechanisms
                            .split(|b| *b == 0)
                            .any(|m| m == sasl::SCRAM_SHA_256.as_bytes());
                        if !offered {
                            return Err(err("authenticate")(
                                "no SASL mechanism this client speaks (SCRAM-SHA-256)".into(),
                            ));
                        }
                        let s = sasl::ScramSha256::new(
                            password.ok_or_else(need_password)?,
                            sasl::ChannelBinding::unsupported(),
                        );
                        frontend::sasl_initial_response(sasl::SCRAM_SHA_256, s.message(), &mut buf)
                            .map_err(io_err("write SASL"))?;
                        send(sock, &mut buf)?;
                        scram = Some(s);
                    }
                    11 => {
                        let s = scram
                            .as_mut()
                            .ok_or_else(|| err("authenticate")("SASL out of order".into()))?;
                        s.update(body.get(4..).unwrap_or_default())
                            .map_err(io_err("SASL"))?;
                        frontend::sasl_response(s.message(), &mut buf)
                            .map_err(io_err("write SASL"))?;
                        send(sock, &mut buf)?;
                    }
                    12 => {
                        let s = scram
                            .as_mut()
                            .ok_or_else(|| err("authenticate")("SASL out of order".into()))?;
                        s.finish(body.get(4..).unwrap_or_default())
                            .map_err(io_err("SASL"))?;
                    }
                    other => {
                        return Err(err("authenticate")(format!(
                            "authentication method {other} is not supported"
                        )))
                    }
                }
            }
            b'E' => return Err(err("connect")(error_text(&body))),
            b'Z' => return Ok(()),
            _ => {} // ParameterStatus, BackendKeyData, notices
        }
    }
}

struct Shared {
    writer: Arc<Mutex<Sock>>,
    confirmed: Arc<AtomicU64>,
    sent_end: Arc<AtomicU64>,
    waker: SharedWaker,
    /// Set when a wake was sent and the source has not polled since: one wake covers
    /// every message queued until then.
    woken: Arc<AtomicBool>,
}

/// The reader thread: frames to events until the stream ends.
fn read_stream(sock: Sock, events: SyncSender<Event>, shared: Shared) {
    let mut sock = std::io::BufReader::with_capacity(64 * 1024, sock);
    let wake = || {
        if !shared.woken.swap(true, Ordering::SeqCst) {
            if let Some(w) = shared.waker.lock().as_ref() {
                let _ = w.send(());
            }
        }
    };
    loop {
        let event = match read_message(&mut sock) {
            Ok((b'd', body)) => match body.split_first() {
                // XLogData: start, end, send time (8 bytes each), then the message.
                Some((b'w', rest)) => match rest.get(24..) {
                    Some(data) => Event::Data(data.to_vec()),
                    None => Event::Failed("a short XLogData frame".into()),
                },
                // Keepalive: the sent position, the send time, whether to reply now.
                Some((b'k', rest)) => match (be_u64(rest, 0), rest.get(16)) {
                    (Ok(wal_end), Some(reply)) => {
                        shared.sent_end.fetch_max(wal_end, Ordering::SeqCst);
                        if *reply == 0 {
                            continue;
                        }
                        let lsn = shared.confirmed.load(Ordering::SeqCst);
                        match status_update(&shared.writer, lsn, false) {
                            Ok(()) => continue,
                            Err(e) => Event::Failed(e.to_string()),
                        }
                    }
                    _ => Event::Failed("a short keepalive frame".into()),
                },
                _ => continue,
            },
            Ok((b'E', body)) => Event::Failed(error_text(&body)),
            Ok((b'c', _)) => Event::Failed("the server ended the stream".into()),
            Ok(_) => continue,
            Err(e) => Event::Failed(e.to_string()),
        };
        let failed = matches!(event, Event::Failed(_));
        if events.send(event).is_err() {
            return; // the source is gone
        }
        wake();
        if failed {
            return;
        }
    }
}

/// A standby status update: written, flushed and applied all at `lsn`.
fn status_update(writer: &Mutex<Sock>, lsn: u64, reply: bool) -> Result<(), PostgresError> {
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
        .saturating_sub(PG_EPOCH_MS * 1000);
    let mut body = Vec::with_capacity(34);
    body.push(b'r');
    for _ in 0..3 {
        body.extend_from_slice(&lsn.to_be_bytes());
    }
    body.extend_from_slice(&now_us.to_be_bytes());
    body.push(u8::from(reply));
    let mut buf = BytesMut::new();
    frontend::CopyData::new(&body[..])
        .map_err(io_err("write a status update"))?
        .write(&mut buf);
    writer
        .lock()
        .write_all(&buf)
        .map_err(io_err("send a status update"))
}

fn be_u32(body: &[u8], at: usize) -> Result<u32, PostgresError> {
    body.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| err("read")("a short message".into()))
}

fn be_u64(body: &[u8], at: usize) -> Result<u64, PostgresError> {
    body.get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| err("read")("a short message".into()))
}

/// An ErrorResponse's severity, code and message.
fn error_text(body: &[u8]) -> String {
    let mut fields = body.split(|b| *b == 0).filter(|f| !f.is_empty());
    let mut out = Vec::new();
    for f in &mut fields {
        if let Some((kind, text)) = f.split_first() {
            if matches!(kind, b'S' | b'C' | b'M') {
                out.push(String::from_utf8_lossy(text).into_owned());
            }
        }
    }
    out.join(" ")
}
