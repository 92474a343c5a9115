//! A background thread that runs until told to stop: the flusher and the storage's
//! maintenance thread share it.

use std::sync::mpsc;
use std::thread;

use crate::error::{Error, Result};

/// A thread that runs until told to stop, with the stop-and-join logic the flusher and the
/// storage's maintenance thread (`storage/maintenance.rs`) share, written once so both stop
/// the same way: closing the channel wakes the thread, which returns its result.
#[derive(Debug)]
pub(crate) struct BackgroundThread {
    /// Names the thread in the error when it panicked.
    what: &'static str,
    /// Dropped to tell the thread to stop: its `recv_timeout` then returns `Disconnected`.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<Result<()>>>,
}

impl BackgroundThread {
    /// Runs `body` on a new thread; it should return once `stop_rx` disconnects.
    pub(crate) fn spawn<F>(what: &'static str, body: F) -> Self
    where
        F: FnOnce(mpsc::Receiver<()>) -> Result<()> + Send + 'static,
    {
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        BackgroundThread {
            what,
            stop: Some(stop_tx),
            thread: Some(thread::spawn(move || body(stop_rx))),
        }
    }

    /// Stops the thread, waits for it and returns its result.
    pub(crate) fn stop(mut self) -> Result<()> {
        self.stop.take();
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(Error::BackgroundThreadPanicked { thread: self.what }),
            None => Ok(()),
        }
    }
}

impl Drop for BackgroundThread {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
