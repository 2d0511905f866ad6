//! The embedded DNS server: answers container names, aliases and short IDs from a table the
//! engine keeps per network, forwards everything else to upstream servers.
//!
//! Docker listens on 127.0.0.11:53 inside each container's namespace; the engine starts one
//! [`Server`] there with the container's network's [`Table`]. It serves UDP and TCP on the same
//! port; forwarded queries go upstream over UDP (a truncated upstream answer is relayed as is, and
//! the client retries over TCP, which Berth forwards over UDP again). Answers carry a TTL of 600 s, as Docker's do; A
//! answers a name's IPv4 addresses and AAAA its IPv6 ones (a container on a dual-stack network has
//! both); a known name without an address of the asked family gets an empty NOERROR answer, like
//! Docker.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::{JoinHandle, JoinSet};

use crate::error::{Error, Result};
use crate::netns::{run_in, NetNs};

const TYPE_A: u16 = 1;
const TYPE_PTR: u16 = 12;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
const RCODE_SERVFAIL: u8 = 2;
const RCODE_NXDOMAIN: u8 = 3;
const TTL: u32 = 600;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Names known on one network: each name (container name, alias, short ID) maps to addresses.
#[derive(Debug, Clone, Default)]
pub struct Table {
    inner: Arc<RwLock<BTreeMap<String, BTreeSet<IpAddr>>>>,
}

impl Table {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `names` (name, aliases, short ID) for a container at `ip`.
    pub fn add(&self, names: &[&str], ip: impl Into<IpAddr>) {
        let ip = ip.into();
        if let Ok(mut t) = self.inner.write() {
            for n in names {
                t.entry(normalise(n)).or_default().insert(ip);
            }
        }
    }

    /// Replace the whole table with `entries` (names and the address they point at), in one
    /// step so a query never sees it half-built.
    pub fn replace(&self, entries: &[(Vec<String>, IpAddr)]) {
        let mut fresh: BTreeMap<String, BTreeSet<IpAddr>> = BTreeMap::new();
        for (names, ip) in entries {
            for n in names {
                fresh.entry(normalise(n)).or_default().insert(*ip);
            }
        }
        if let Ok(mut t) = self.inner.write() {
            *t = fresh;
        }
    }

    /// Remove every name that points at `ip` (the container left the network).
    pub fn remove_ip(&self, ip: impl Into<IpAddr>) {
        let ip = ip.into();
        if let Ok(mut t) = self.inner.write() {
            t.retain(|_, ips| {
                ips.remove(&ip);
                !ips.is_empty()
            });
        }
    }

    /// Addresses of `name`.
    pub fn lookup(&self, name: &str) -> Vec<IpAddr> {
        self.inner
            .read()
            .ok()
            .and_then(|t| t.get(&normalise(name)).map(|s| s.iter().copied().collect()))
            .unwrap_or_default()
    }

    /// The first name (alphabetically) that points at `ip`, for PTR queries.
    pub fn reverse(&self, ip: IpAddr) -> Option<String> {
        let t = self.inner.read().ok()?;
        t.iter()
            .find(|(_, ips)| ips.contains(&ip))
            .map(|(n, _)| n.clone())
    }
}

/// A parsed question.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Question {
    name: String,
    qtype: u16,
    qclass: u16,
    /// Byte offset where the question section ends.
    end: usize,
}

fn parse_question(msg: &[u8]) -> Option<Question> {
    if msg.len() < 12 || u16::from_be_bytes([msg[4], msg[5]]) != 1 {
        return None;
    }
    let mut labels = Vec::new();
    let mut i = 12;
    loop {
        let len = *msg.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None; // compression in a question is not valid
        }
        let label = msg.get(i..i + len)?;
        labels.push(String::from_utf8_lossy(label).into_owned());
        i += len;
    }
    let qtype = u16::from_be_bytes([*msg.get(i)?, *msg.get(i + 1)?]);
    let qclass = u16::from_be_bytes([*msg.get(i + 2)?, *msg.get(i + 3)?]);
    Some(Question {
        name: labels.join("."),
        qtype,
        qclass,
        end: i + 4,
    })
}

fn encode_name(name: &str, out: &mut Vec<u8>) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let b = label.as_bytes();
        let b = &b[..b.len().min(63)];
        out.push(b.len() as u8);
        out.extend_from_slice(b);
    }
    out.push(0);
}

/// Build a reply to `query` (whose question ends at `q.end`) with `answers` as RDATA records.
fn reply(query: &[u8], q: &Question, rcode: u8, answers: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(q.end + answers.len() * 32);
    out.extend_from_slice(&query[..2]); // ID
                                        // QR=1, opcode and RD copied from the query, AA=1, RA=1.
    out.push(0x80 | (query[2] & 0x79) | 0x04);
    out.push(0x80 | (rcode & 0x0f));
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&query[12..q.end]);
    for (rtype, rdata) in answers {
        out.extend_from_slice(&[0xc0, 0x0c]); // pointer to the question's name
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(rdata);
    }
    out
}

fn ptr_ip(name: &str) -> Option<IpAddr> {
    let rest = normalise(name);
    if let Some(nibbles) = rest.strip_suffix(".ip6.arpa") {
        // 32 nibbles, least significant first.
        let n: Vec<u8> = nibbles
            .split('.')
            .map(|p| u8::from_str_radix(p, 16))
            .collect::<std::result::Result<_, _>>()
            .ok()?;
        if n.len() != 32 || n.iter().any(|x| *x > 15) {
            return None;
        }
        let v = n
            .iter()
            .rev()
            .fold(0u128, |acc, x| (acc << 4) | u128::from(*x));
        return Some(IpAddr::V6(Ipv6Addr::from(v)));
    }
    let rest = rest.strip_suffix(".in-addr.arpa")?;
    let o: Vec<u8> = rest
        .split('.')
        .map(|p| p.parse::<u8>())
        .collect::<std::result::Result<_, _>>()
        .ok()?;
    (o.len() == 4).then(|| IpAddr::V4(Ipv4Addr::new(o[3], o[2], o[1], o[0])))
}

/// What to do with a query: answer it locally, or forward it.
enum Action {
    Answer(Vec<u8>),
    Forward,
    Drop,
}

fn resolve(table: &Table, query: &[u8]) -> Action {
    let Some(q) = parse_question(query) else {
        return Action::Drop;
    };
    if q.qclass != CLASS_IN {
        return Action::Forward;
    }
    match q.qtype {
        TYPE_A | TYPE_AAAA => {
            let ips = table.lookup(&q.name);
            if ips.is_empty() {
                return Action::Forward;
            }
            let answers: Vec<(u16, Vec<u8>)> = ips
                .iter()
                .filter_map(|ip| match ip {
                    IpAddr::V4(v4) if q.qtype == TYPE_A => Some((TYPE_A, v4.octets().to_vec())),
                    IpAddr::V6(v6) if q.qtype == TYPE_AAAA => {
                        Some((TYPE_AAAA, v6.octets().to_vec()))
                    }
                    _ => None,
                })
                .collect();
            Action::Answer(reply(query, &q, 0, &answers))
        }
        TYPE_PTR => match ptr_ip(&q.name).and_then(|ip| table.reverse(ip)) {
            Some(name) => {
                let mut rdata = Vec::new();
                encode_name(&name, &mut rdata);
                Action::Answer(reply(query, &q, 0, &[(TYPE_PTR, rdata)]))
            }
            None => Action::Forward,
        },
        _ => Action::Forward,
    }
}

/// A running DNS server; dropping it stops it.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// Listen on `bind` (UDP) inside `netns` (the caller's namespace when `None`), answering from
    /// `table` and forwarding other names to `upstreams` in order. Must be called in a tokio
    /// runtime.
    pub fn start(
        bind: SocketAddr,
        table: Table,
        upstreams: Vec<SocketAddr>,
        netns: Option<Arc<NetNs>>,
    ) -> Result<Server> {
        let rt = crate::proxy::runtime(&format!("dns on {bind}"))?;
        let _guard = rt.enter();
        let listen_err = |e| Error::io(format!("dns: listen on {bind}"), e);
        let (udp, tcp) = run_in(netns.as_deref(), || -> std::io::Result<_> {
            let udp = std::net::UdpSocket::bind(bind)?;
            // TCP on the same port as UDP (which may have been chosen by the kernel).
            let tcp = std::net::TcpListener::bind(udp.local_addr()?)?;
            udp.set_nonblocking(true)?;
            tcp.set_nonblocking(true)?;
            Ok((udp, tcp))
        })?
        .map_err(listen_err)?;
        let addr = udp.local_addr().map_err(listen_err)?;
        let udp = Arc::new(UdpSocket::from_std(udp).map_err(listen_err)?);
        let tcp = tokio::net::TcpListener::from_std(tcp).map_err(listen_err)?;
        let ctx = Arc::new(Context {
            table,
            upstreams,
            netns,
        });
        let task = rt.spawn(async move {
            let mut jobs = JoinSet::new();
            let mut buf = vec![0u8; 4096];
            loop {
                tokio::select! {
                    r = udp.recv_from(&mut buf) => match r {
                        Ok((n, client)) => {
                            let (query, udp, ctx) = (buf[..n].to_vec(), udp.clone(), ctx.clone());
                            jobs.spawn(async move {
                                if let Some(r) = ctx.answer(&query).await {
                                    // A lost UDP answer is the client's to retry, as any lost datagram.
                                    let _ = udp.send_to(&r, client).await;
                                }
                            });
                        }
                        Err(_) => tokio::time::sleep(crate::proxy::ERROR_BACKOFF).await,
                    },
                    r = tcp.accept() => match r {
                        Ok((stream, _)) => {
                            let ctx = ctx.clone();
                            jobs.spawn(async move { serve_tcp(stream, &ctx).await });
                        }
                        Err(_) => tokio::time::sleep(crate::proxy::ERROR_BACKOFF).await,
                    },
                    Some(_) = jobs.join_next(), if !jobs.is_empty() => {}
                }
            }
        });
        Ok(Server { addr, task })
    }

    /// The address the server listens on (useful when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

/// What every query needs: the names, where to forward, which namespace to forward from.
struct Context {
    table: Table,
    upstreams: Vec<SocketAddr>,
    netns: Option<Arc<NetNs>>,
}

impl Context {
    /// The reply to `query`: local, forwarded, or an error reply (NXDOMAIN without upstreams,
    /// SERVFAIL when they all failed); `None` for garbage, which gets no reply.
    async fn answer(&self, query: &[u8]) -> Option<Vec<u8>> {
        match resolve(&self.table, query) {
            Action::Answer(r) => Some(r),
            Action::Drop => None,
            Action::Forward => {
                if let Some(a) = forward(query, &self.upstreams, self.netns.clone()).await {
                    return Some(a);
                }
                let q = parse_question(query)?;
                let rcode = if self.upstreams.is_empty() {
                    RCODE_NXDOMAIN
                } else {
                    RCODE_SERVFAIL
                };
                Some(reply(query, &q, rcode, &[]))
            }
        }
    }
}

/// DNS over TCP: each message is preceded by its 16-bit length (RFC 1035 §4.2.2).
async fn serve_tcp(mut stream: tokio::net::TcpStream, ctx: &Context) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let idle = tokio::time::timeout(Duration::from_secs(10), stream.read_u16()).await;
        let Ok(Ok(len)) = idle else { return };
        let mut query = vec![0u8; usize::from(len)];
        if stream.read_exact(&mut query).await.is_err() {
            return;
        }
        let Some(r) = ctx.answer(&query).await else {
            return;
        };
        let Ok(rlen) = u16::try_from(r.len()) else {
            return;
        };
        if stream.write_u16(rlen).await.is_err() || stream.write_all(&r).await.is_err() {
            return;
        }
    }
}

async fn forward(
    query: &[u8],
    upstreams: &[SocketAddr],
    netns: Option<Arc<NetNs>>,
) -> Option<Vec<u8>> {
    for up in upstreams {
        let up = *up;
        let ns = netns.clone();
        let made = tokio::task::spawn_blocking(move || {
            let any: SocketAddr = if up.is_ipv4() {
                (Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            run_in(ns.as_deref(), || std::net::UdpSocket::bind(any))
        })
        .await;
        let Ok(Ok(Ok(s))) = made else { continue };
        if s.set_nonblocking(true).is_err() {
            continue;
        }
        let Ok(s) = UdpSocket::from_std(s) else {
            continue;
        };
        if s.connect(up).await.is_err() || s.send(query).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        if let Ok(Ok(n)) = tokio::time::timeout(UPSTREAM_TIMEOUT, s.recv(&mut buf)).await {
            // Only accept a reply to our query ID.
            if n >= 2 && buf[..2] == query[..2] {
                buf.truncate(n);
                return Some(buf);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        encode_name(name, &mut q);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        q
    }

    #[test]
    fn a_query_for_a_known_name_is_answered_with_its_addresses() {
        let t = Table::new();
        t.add(
            &["web", "web-alias", "0123456789ab"],
            Ipv4Addr::new(172, 17, 0, 5),
        );
        let Action::Answer(r) = resolve(&t, &query(7, "WEB-alias.", TYPE_A)) else {
            panic!("not answered")
        };
        assert_eq!(&r[..2], &7u16.to_be_bytes());
        assert_eq!(r[3] & 0x0f, 0);
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1);
        assert_eq!(&r[r.len() - 4..], &[172, 17, 0, 5]);
    }

    #[test]
    fn known_name_aaaa_is_empty_noerror_and_unknown_is_forwarded() {
        let t = Table::new();
        t.add(&["web"], Ipv4Addr::new(172, 17, 0, 5));
        let Action::Answer(r) = resolve(&t, &query(1, "web", TYPE_AAAA)) else {
            panic!("not answered")
        };
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 0);
        assert!(matches!(
            resolve(&t, &query(1, "example.org", TYPE_A)),
            Action::Forward
        ));
        assert!(matches!(resolve(&t, &[1, 2, 3]), Action::Drop));
    }

    #[test]
    fn aaaa_answers_the_ipv6_address_and_a_only_the_ipv4_one() {
        let t = Table::new();
        let v6: Ipv6Addr = "fd00:db8::2".parse().unwrap();
        t.add(&["web"], Ipv4Addr::new(172, 18, 0, 2));
        t.add(&["web"], v6);
        let Action::Answer(r) = resolve(&t, &query(3, "web", TYPE_AAAA)) else {
            panic!("not answered")
        };
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1);
        assert_eq!(&r[r.len() - 16..], &v6.octets());
        let Action::Answer(r) = resolve(&t, &query(4, "web", TYPE_A)) else {
            panic!("not answered")
        };
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1);
        assert_eq!(&r[r.len() - 4..], &[172, 18, 0, 2]);
        let ptr = "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.0.0.d.f.ip6.arpa";
        let Action::Answer(r) = resolve(&t, &query(5, ptr, TYPE_PTR)) else {
            panic!("not answered")
        };
        assert!(r.ends_with(&[3, b'w', b'e', b'b', 0]));
    }

    #[test]
    fn ptr_query_maps_an_address_back_to_a_name() {
        let t = Table::new();
        t.add(&["db"], Ipv4Addr::new(10, 0, 0, 9));
        let Action::Answer(r) = resolve(&t, &query(2, "9.0.0.10.in-addr.arpa", TYPE_PTR)) else {
            panic!("not answered")
        };
        assert!(r.ends_with(&[2, b'd', b'b', 0]));
        t.remove_ip(Ipv4Addr::new(10, 0, 0, 9));
        assert!(t.lookup("db").is_empty());
    }
}
