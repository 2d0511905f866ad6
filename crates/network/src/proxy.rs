//! The userland proxy: per published port, one tokio task that listens on the host address and
//! relays to the container (TCP with `copy_bidirectional`, UDP with per-client flows).
//!
//! It also serves what DNAT cannot: connections to 127.0.0.1 and from containers on the same
//! bridge (hairpin), since Berth does not set `route_localnet`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::net::{AddressFamily, SocketFlags, SocketType};
use tokio::net::{TcpListener, TcpSocket, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};

use crate::error::{Error, Result};
use crate::netns::{run_in, NetNs};

/// How long a UDP flow lives without traffic.
pub const DEFAULT_UDP_IDLE: Duration = Duration::from_secs(90);

/// Buffer per direction of a proxied TCP connection. tokio's default (8 KiB) costs a syscall pair per
/// 8 KiB; 64 KiB lifts bulk throughput through the proxy several times over for 128 KiB per connection.
const TCP_BUFFER: usize = 64 * 1024;

/// Pause after a socket error before trying again.
pub(crate) const ERROR_BACKOFF: Duration = Duration::from_millis(20);

/// A running proxy; dropping it stops the listener and every relayed connection.
#[derive(Debug)]
pub struct ProxyHandle {
    task: JoinHandle<()>,
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn family(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    }
}

/// Make a socket in `netns` (a socket keeps the namespace it was made in).
fn socket_in(netns: Option<&NetNs>, ip: IpAddr, ty: SocketType) -> Result<OwnedFd> {
    run_in(netns, || {
        let fd = rustix::net::socket_with(
            family(ip),
            ty,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )?;
        if ip.is_ipv6() {
            // `[::]:8080` must not also claim `0.0.0.0:8080`, which Berth binds separately.
            rustix::net::sockopt::set_ipv6_v6only(&fd, true)?;
        }
        Ok::<_, rustix::io::Errno>(fd)
    })?
    .map_err(|e| Error::io(format!("create socket for {ip}"), e.into()))
}

/// The current tokio runtime, or an error instead of tokio's panic when there is none.
pub(crate) fn runtime(what: &str) -> Result<tokio::runtime::Handle> {
    tokio::runtime::Handle::try_current().map_err(|e| {
        Error::io(
            format!("{what}: no tokio runtime"),
            std::io::Error::other(e),
        )
    })
}

fn bind_err(addr: SocketAddr) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::io(format!("listen on {addr}"), e)
}

/// Start a TCP proxy from `bind` (in `netns`) to `target`. Fails with an `AddrInUse` I/O error
/// when the port is taken. Must be called inside a tokio runtime.
pub fn start_tcp(
    bind: SocketAddr,
    target: SocketAddr,
    netns: Option<Arc<NetNs>>,
) -> Result<ProxyHandle> {
    let rt = runtime(&format!("proxy on {bind}"))?;
    let _guard = rt.enter();
    let fd = socket_in(netns.as_deref(), bind.ip(), SocketType::STREAM)?;
    let sock = TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
    sock.set_reuseaddr(true).map_err(bind_err(bind))?;
    sock.bind(bind).map_err(bind_err(bind))?;
    let listener: TcpListener = sock.listen(1024).map_err(bind_err(bind))?;
    let task = rt.spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (mut inbound, peer) = match accepted {
                        Ok(v) => v,
                        Err(e) => {
                            // EMFILE and friends persist; back off instead of spinning.
                            tracing::warn!(%bind, error = %e, "proxy accept failed");
                            tokio::time::sleep(ERROR_BACKOFF).await;
                            continue;
                        }
                    };
                    let netns = netns.clone();
                    conns.spawn(async move {
                        let made = tokio::task::spawn_blocking(move || {
                            socket_in(netns.as_deref(), target.ip(), SocketType::STREAM)
                        })
                        .await;
                        let Ok(Ok(fd)) = made else { return };
                        let out = TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
                        match out.connect(target).await {
                            Ok(mut outbound) => {
                                // Ends with an error when either side resets: that is how TCP connections end.
                                let _ = tokio::io::copy_bidirectional_with_sizes(
                                    &mut inbound,
                                    &mut outbound,
                                    TCP_BUFFER,
                                    TCP_BUFFER,
                                )
                                .await;
                            }
                            Err(e) => tracing::debug!(%peer, %target, error = %e, "proxy connect failed"),
                        }
                    });
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    });
    Ok(ProxyHandle { task })
}

struct Flow {
    sock: Arc<UdpSocket>,
    last: Mutex<Instant>,
}

/// Start a UDP proxy from `bind` (in `netns`) to `target`: each client address gets its own
/// connected socket towards the container, dropped after `idle` without traffic.
pub fn start_udp(
    bind: SocketAddr,
    target: SocketAddr,
    netns: Option<Arc<NetNs>>,
    idle: Duration,
) -> Result<ProxyHandle> {
    let rt = runtime(&format!("proxy on {bind}"))?;
    let _guard = rt.enter();
    let fd = socket_in(netns.as_deref(), bind.ip(), SocketType::DGRAM)?;
    let std_sock = std::net::UdpSocket::from(fd);
    rustix::net::bind(&std_sock, &bind).map_err(|e| bind_err(bind)(e.into()))?;
    let front = Arc::new(UdpSocket::from_std(std_sock).map_err(bind_err(bind))?);
    let task = rt.spawn(async move {
        let flows: Arc<Mutex<HashMap<SocketAddr, Arc<Flow>>>> = Arc::default();
        let mut replies = JoinSet::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, client) = tokio::select! {
                r = front.recv_from(&mut buf) => match r {
                    Ok(v) => v,
                    Err(_) => {
                        // ICMP errors surface here and may repeat; back off a little.
                        tokio::time::sleep(ERROR_BACKOFF).await;
                        continue;
                    }
                },
                Some(_) = replies.join_next(), if !replies.is_empty() => continue,
            };
            let existing = flows.lock().ok().and_then(|f| f.get(&client).cloned());
            let flow = match existing {
                Some(f) => f,
                None => {
                    let Ok(fd) = socket_in(netns.as_deref(), target.ip(), SocketType::DGRAM) else {
                        continue;
                    };
                    let Ok(sock) = UdpSocket::from_std(std::net::UdpSocket::from(fd)) else {
                        continue;
                    };
                    if sock.connect(target).await.is_err() {
                        continue;
                    }
                    let flow = Arc::new(Flow {
                        sock: Arc::new(sock),
                        last: Mutex::new(Instant::now()),
                    });
                    if let Ok(mut f) = flows.lock() {
                        f.insert(client, flow.clone());
                    }
                    let (front, flows, flow2) = (front.clone(), flows.clone(), flow.clone());
                    replies.spawn(async move {
                        let mut rbuf = vec![0u8; 65536];
                        loop {
                            match tokio::time::timeout(idle, flow2.sock.recv(&mut rbuf)).await {
                                Ok(Ok(m)) => {
                                    if let Ok(mut l) = flow2.last.lock() {
                                        *l = Instant::now();
                                    }
                                    // Datagrams may be lost; the peers retry as they would on any network.
                                    let _ = front.send_to(&rbuf[..m], client).await;
                                }
                                Ok(Err(_)) => break,
                                Err(_) => {
                                    let quiet = flow2
                                        .last
                                        .lock()
                                        .map(|l| l.elapsed() >= idle)
                                        .unwrap_or(true);
                                    if quiet {
                                        break;
                                    }
                                }
                            }
                        }
                        if let Ok(mut f) = flows.lock() {
                            f.remove(&client);
                        }
                    });
                    flow
                }
            };
            if let Ok(mut l) = flow.last.lock() {
                *l = Instant::now();
            }
            // As above: a datagram that cannot be sent is lost, as UDP allows.
            let _ = flow.sock.send(&buf[..n]).await;
        }
    });
    Ok(ProxyHandle { task })
}
