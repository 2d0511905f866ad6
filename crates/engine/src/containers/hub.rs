//! A running container's output fan-out: the engine holds one attach connection to the shim and copies what
//! it gets to every API client attached to the container; stdin from an attached client goes the other way.

use std::sync::OnceLock;

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, watch, Mutex};

/// How many frames a slow attached client may fall behind before it misses output.
const BACKLOG: usize = 4096;

/// One multiplexed output frame: stream (1 stdout, 2 stderr) and payload.
#[derive(Debug, Clone)]
pub struct Frame {
    /// 1 for stdout, 2 for stderr.
    pub stream: u8,
    /// The bytes.
    pub data: Bytes,
}

/// The output and stdin of one container, shared by its attached clients.
pub struct Hub {
    /// Made by the first subscriber: the channel's ring of `BACKLOG` slots is about 240 KB, and most
    /// containers (`run -d`, compose services) never have a client attached, so a hub for each of 50
    /// running containers would hold 12 MB for nothing. Output sent before anyone subscribes is dropped
    /// either way: a broadcast keeps nothing for receivers that do not exist yet.
    output: OnceLock<broadcast::Sender<Frame>>,
    closed: watch::Sender<bool>,
    stdin: Mutex<Option<mpsc::Sender<Option<Bytes>>>>,
    stdin_rx: Mutex<Option<mpsc::Receiver<Option<Bytes>>>>,
}

impl Default for Hub {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(64);
        Hub {
            output: OnceLock::new(),
            closed: watch::channel(false).0,
            stdin: Mutex::new(Some(tx)),
            stdin_rx: Mutex::new(Some(rx)),
        }
    }
}

/// What an attached client holds.
pub struct Subscription {
    /// Output frames.
    pub output: broadcast::Receiver<Frame>,
    /// Becomes true when the container's output has ended.
    pub closed: watch::Receiver<bool>,
}

impl Hub {
    /// Subscribes to the output from now on.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            output: self
                .output
                .get_or_init(|| broadcast::channel(BACKLOG).0)
                .subscribe(),
            closed: self.closed.subscribe(),
        }
    }

    /// Publishes a frame to every subscriber.
    pub fn publish(&self, frame: Frame) {
        if let Some(output) = self.output.get() {
            // A broadcast: no attached reader is the common case.
            let _ = output.send(frame);
        }
    }

    /// Marks the output as ended; subscribers finish once they have drained what was sent.
    pub fn close(&self) {
        // Fails only when no subscriber is left: then nobody needs telling.
        let _ = self.closed.send(true);
    }

    /// A sender for stdin data; `None` ends the container's stdin.
    pub async fn stdin(&self) -> Option<mpsc::Sender<Option<Bytes>>> {
        self.stdin.lock().await.clone()
    }

    /// Takes the receiving end of stdin (once, by the pump that talks to the shim).
    pub async fn take_stdin(&self) -> Option<mpsc::Receiver<Option<Bytes>>> {
        self.stdin_rx.lock().await.take()
    }
}
