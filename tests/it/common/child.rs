//! A `streamlog` CLI process driven by a test: lines written to its standard input, lines
//! read from its standard output, every read bounded in time and the process killed when the
//! handle drops, so a hang fails the test instead of stalling CI.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

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
