//! A `streamlog` CLI process driven by a test: lines written to its standard input, lines
//! read from its standard output, every read bounded in time and the process killed when the
//! handle drops, so a hang fails the test instead of stalling CI. [`run`] runs a command to
//! its end within the same bound.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// How long a read waits for the child before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A running `streamlog` process.
pub struct CliChild {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl CliChild {
    /// Starts `exe` with `args`, stdin and stdout piped, stderr inherited.
    pub fn spawn(exe: &str, args: &[&str]) -> CliChild {
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        CliChild {
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Writes `text` to the child's standard input.
    pub fn write(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// The next line the child prints; fails the test after [`PATIENCE`].
    pub fn line(&self) -> String {
        self.lines
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|e| panic!("no line from the child within {PATIENCE:?}: {e}"))
    }

    /// Closes standard input and waits (bounded) for the child to exit; returns whether it
    /// exited successfully, and the lines it printed that were not read yet.
    pub fn finish(mut self) -> (bool, Vec<String>) {
        self.stdin.take();
        let mut rest = Vec::new();
        // The reader thread ends when the child closes its stdout (it exits).
        loop {
            match self.lines.recv_timeout(PATIENCE) {
                Ok(line) => rest.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("child did not exit"),
            }
        }
        let status = self.child.wait().unwrap();
        (status.success(), rest)
    }
}

impl Drop for CliChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child killed (and reaped) when dropped, also when the test fails midway.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `exe` with `args`, writes `stdin` to it and closes it, and collects its exit status,
/// standard output and standard error, as [`Command::output`] does, but within
/// [`PATIENCE`]: a child still running then is killed and the test fails, naming the
/// command. A child that exits before reading all of `stdin` is fine (a broken pipe).
pub fn run(exe: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = KillOnDrop(
        Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {exe}: {e}")),
    );
    // Every pipe has its own thread, so a child that writes much before it reads (or never
    // reads) cannot block the test.
    let (tx, done) = mpsc::channel();
    let mut out = child.0.stdout.take().unwrap();
    let tx_out = tx.clone();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let result = out.read_to_end(&mut bytes).map(|_| bytes);
        let _ = tx_out.send((1, result));
    });
    let mut err = child.0.stderr.take().unwrap();
    let tx_err = tx.clone();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let result = err.read_to_end(&mut bytes).map(|_| bytes);
        let _ = tx_err.send((2, result));
    });
    let mut input = child.0.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    std::thread::spawn(move || {
        // Dropping `input` at the end closes the child's standard input.
        let result = input.write_all(&stdin).map(|()| Vec::new());
        let _ = tx.send((0, result));
    });
    let deadline = Instant::now() + PATIENCE;
    let (mut stdout, mut stderr) = (None, None);
    let mut written = None;
    while stdout.is_none() || stderr.is_none() || written.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok((which, result)) = done.recv_timeout(left) else {
            panic!(
                "`{exe} {}` did not finish within {PATIENCE:?}; killed",
                args.join(" ")
            );
        };
        match which {
            0 => {
                if let Err(e) = &result {
                    assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
                }
                written = Some(());
            }
            1 => stdout = Some(result.unwrap()),
            _ => stderr = Some(result.unwrap()),
        }
    }
    // Both pipes closed: the child has exited, or is about to.
    let status = child.0.wait().unwrap();
    Output {
        status,
        stdout: stdout.unwrap_or_default(),
        stderr: stderr.unwrap_or_default(),
    }
}
