//! The accept loop: one hyper HTTP/1.1 connection task per client, with upgrades for hijacked streams, on a
//! unix socket or a TCP port (with or without TLS).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use engine::Engine;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};

use crate::{head_limits, router};

/// How long a TCP client has to finish its TLS handshake: a peer that opens the port and says nothing holds
/// only its own task, but should not hold it forever.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the API is served.
pub enum Listener {
    /// A unix socket (`unix:///run/berth/berth.sock`); its file mode and group say who may connect.
    Unix(UnixListener),
    /// A TCP port (`tcp://ADDR:PORT`), with TLS unless the operator explicitly turned it off.
    Tcp(TcpListener, Option<Arc<rustls::ServerConfig>>),
}

/// Serves the API on `listener` until `shutdown` completes. Connections already open are cut when it returns.
pub async fn serve(
    listener: Listener,
    engine: Arc<Engine>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    let tls = match &listener {
        Listener::Tcp(_, Some(cfg)) => Some(tokio_rustls::TlsAcceptor::from(Arc::clone(cfg))),
        _ => None,
    };
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = accept(&listener) => accepted,
        };
        let stream = match accepted {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: log and keep serving the clients we have.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let engine = Arc::clone(&engine);
        match (stream, &tls) {
            (Stream::Unix(s), _) => {
                tokio::spawn(serve_connection(s, engine));
            }
            (Stream::Tcp(s), None) => {
                tokio::spawn(serve_connection(s, engine));
            }
            (Stream::Tcp(s), Some(acceptor)) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let peer = s.peer_addr().ok();
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(s)).await {
                        Ok(Ok(tls)) => serve_connection(tls, engine).await,
                        // A client without a certificate from the CA ends here: rustls has sent it the alert.
                        Ok(Err(e)) => {
                            tracing::info!(peer = ?peer, error = %e, "TLS handshake refused")
                        }
                        Err(_) => tracing::info!(peer = ?peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

enum Stream {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}

async fn accept(listener: &Listener) -> std::io::Result<Stream> {
    match listener {
        Listener::Unix(l) => l.accept().await.map(|(s, _)| Stream::Unix(s)),
        Listener::Tcp(l, _) => {
            let (s, _) = l.accept().await?;
            // Requests and attach streams are small writes that should leave at once.
            let _ = s.set_nodelay(true);
            Ok(Stream::Tcp(s))
        }
    }
}

async fn serve_connection<I>(io: I, engine: Arc<Engine>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let engine = Arc::clone(&engine);
        async move { Ok::<_, std::convert::Infallible>(router::handle(engine, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .max_header_size(head_limits::MAX_HEAD_BYTES)
        .serve_connection(TokioIo::new(head_limits::JsonErrors::new(io)), service)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
