//! The input half of a hijacked attach or exec stream: one pump for both, from the client's connection
//! to the process's stdin ([`engine::containers::Stdin`]).

use bytes::Bytes;
use engine::containers::Stdin;
use stdio::detach::EscapeProxy;
use tokio::io::{AsyncRead, AsyncReadExt};

/// How the client's input ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InputEnd {
    /// The client closed its side (or the connection broke).
    Closed,
    /// The client typed the detach keys (TTY sessions only); what followed them was dropped.
    Detached,
    /// The process's stdin is gone (it closed it, or exited).
    StdinGone,
}

/// Copies the client's bytes to `stdin` until one of the [`InputEnd`]s. With a TTY the detach keys
/// (`keys`, or Ctrl-P Ctrl-Q when empty) are watched for, as dockerd does, and never reach the process.
/// Reads wait while `stdin` is behind, so the client is held back rather than buffered without bound.
pub(crate) async fn pump(
    mut client: impl AsyncRead + Unpin,
    stdin: &mut Stdin,
    tty: bool,
    keys: &[u8],
) -> InputEnd {
    let mut buf = vec![0u8; 32 * 1024];
    let mut escape = tty.then(|| EscapeProxy::new(keys));
    loop {
        let n = match client.read(&mut buf).await {
            Ok(0) | Err(_) => return InputEnd::Closed,
            Ok(n) => n,
        };
        let (data, detach) = match escape.as_mut() {
            Some(e) => e.feed(&buf[..n]),
            None => (buf[..n].to_vec(), false),
        };
        if !data.is_empty() && !stdin.write(Bytes::from(data)).await {
            return InputEnd::StdinGone;
        }
        if detach {
            return InputEnd::Detached;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn input_goes_through_until_the_client_closes_or_detaches() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let mut stdin = Stdin::Container(tx);
        let end = pump(&b"hello"[..], &mut stdin, false, &[]).await;
        assert_eq!(end, InputEnd::Closed);
        assert_eq!(rx.recv().await, Some(Some(Bytes::from_static(b"hello"))));

        // With a TTY the keys end it; bytes before them pass, the keys and what follows do not.
        let end = pump(&b"ls\x10\x11rm -rf"[..], &mut stdin, true, &[]).await;
        assert_eq!(end, InputEnd::Detached);
        assert_eq!(rx.recv().await, Some(Some(Bytes::from_static(b"ls"))));
        drop(rx);
        let end = pump(&b"more"[..], &mut stdin, false, &[]).await;
        assert_eq!(end, InputEnd::StdinGone);
    }
}
