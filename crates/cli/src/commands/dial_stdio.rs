//! `system dial-stdio`: joins this process's stdin and stdout to a new connection to the daemon. It is the
//! far end of `DOCKER_HOST=ssh://…`: the docker CLI (and Berth's) runs `docker system dial-stdio` (`berth
//! system dial-stdio`) through ssh and speaks HTTP over the ssh session.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::Client;
use crate::error::CliError;

/// Copies stdin to the daemon and the daemon's answers to stdout until the daemon closes the connection;
/// the end of stdin half-closes the connection (the client is done sending), as the docker CLI's does.
pub async fn run(client: &Client) -> Result<(), CliError> {
    let conn = client.connect().await?;
    let (mut from_daemon, mut to_daemon) = tokio::io::split(conn);
    // Stdin is read on a thread of its own, not tokio's blocking pool: a read blocked on a silent client
    // must not keep the runtime from shutting down once the daemon has closed.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    std::thread::spawn(move || {
        use std::io::Read;
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let up = async move {
        while let Some(chunk) = rx.recv().await {
            to_daemon.write_all(&chunk).await?;
        }
        to_daemon.shutdown().await
    };
    let down = async move {
        // Written directly: the pipe to ssh drains on its own, and the daemon's side waits meanwhile.
        let mut stdout = std::io::stdout();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = from_daemon.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            std::io::Write::write_all(&mut stdout, &buf[..n])?;
            std::io::Write::flush(&mut stdout)?;
        }
        Ok::<_, std::io::Error>(())
    };
    tokio::pin!(up, down);
    let io = |e: std::io::Error| CliError::Io(format!("dial-stdio: {e}"));
    tokio::select! {
        r = &mut down => return r.map_err(io),
        r = &mut up => r.map_err(io)?,
    }
    down.await.map_err(io)
}
