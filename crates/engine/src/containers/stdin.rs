//! The way a hijacked client's input reaches a process: the container's stdin (shared by its attached
//! clients) or an exec process's. The API copies into either through this one type, so attach and exec
//! treat input, its end and the detach keys alike.

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::mpsc;

/// Where a client's input goes.
pub enum Stdin {
    /// The container's: the hub's channel to the engine's connection with the shim (`None` on it ends
    /// the container's stdin).
    Container(mpsc::Sender<Option<Bytes>>),
    /// An exec process's: the write half of its session's connection to the shim.
    Exec(OwnedWriteHalf),
}

impl Stdin {
    /// Passes bytes on (waiting while the process is behind); false once the other end is gone.
    pub async fn write(&mut self, data: Bytes) -> bool {
        match self {
            Stdin::Container(tx) => tx.send(Some(data)).await.is_ok(),
            Stdin::Exec(w) => w.write_all(&data).await.is_ok(),
        }
    }

    /// Ends the input: the process reads EOF after what was written.
    pub async fn close(self) {
        match self {
            Stdin::Container(tx) => {
                // The shim's writer may have ended (the container exited): no input to close then.
                let _ = tx.send(None).await;
            }
            Stdin::Exec(mut w) => {
                if let Err(e) = w.shutdown().await {
                    tracing::debug!(error = %e, "closing an exec's stdin");
                }
            }
        }
    }
}
