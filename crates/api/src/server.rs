//! The accept loop: one hyper HTTP/1.1 connection task per client, with upgrades for hijacked streams.

use std::future::Future;
use std::sync::Arc;

use engine::Engine;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;

use crate::router;

/// Serves the API on `listener` until `shutdown` completes. Connections already open are cut when it returns.
pub async fn serve(
    listener: UnixListener,
    engine: Arc<Engine>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: log and keep serving the clients we have.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let engine = Arc::clone(&engine);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let engine = Arc::clone(&engine);
                async move { Ok::<_, std::convert::Infallible>(router::handle(engine, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}
