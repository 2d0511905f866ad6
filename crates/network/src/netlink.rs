//! A small synchronous rtnetlink client: one request, its replies, its ACK.
//!
//! Synchronous on purpose: a socket opened on a thread inside a namespace stays bound to that
//! namespace, so the link code can open one per namespace and never switch threads around.

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::error::{Error, Result};
use crate::netns::{run_in, NetNs};

/// A route netlink socket bound to the namespace it was opened in.
pub(crate) struct Netlink {
    sock: Socket,
    seq: u32,
}

impl Netlink {
    /// Open a socket in `ns`, or in the caller's namespace when `None`.
    pub(crate) fn open(ns: Option<&NetNs>) -> Result<Self> {
        let label = ns.map(|n| n.label().to_string()).unwrap_or_default();
        let sock = run_in(ns, || -> std::io::Result<Socket> {
            let mut sock = Socket::new(NETLINK_ROUTE)?;
            sock.bind_auto()?;
            sock.connect(&SocketAddr::new(0, 0))?;
            // Ask for extended ACKs; the kernel then names the bad attribute in errors. Only a nicer
            // message: a kernel without them still answers.
            let _ = sock.set_ext_ack(true);
            Ok(sock)
        })?
        .map_err(|source| Error::Netlink {
            op: format!("open socket {label}"),
            source,
        })?;
        Ok(Netlink { sock, seq: 0 })
    }

    /// Send a request that changes state and wait for its ACK.
    pub(crate) fn ack(&mut self, msg: RouteNetlinkMessage, flags: u16, op: &str) -> Result<()> {
        self.exchange(msg, NLM_F_REQUEST | NLM_F_ACK | flags, op)
            .map(|_| ())
    }

    /// Send a dump request and collect every reply message.
    pub(crate) fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
        op: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.exchange(msg, NLM_F_REQUEST | NLM_F_DUMP, op)
    }

    /// Send a get request for one object and return its reply messages.
    pub(crate) fn get(
        &mut self,
        msg: RouteNetlinkMessage,
        op: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.exchange(msg, NLM_F_REQUEST | NLM_F_ACK, op)
    }

    fn exchange(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        let netlink_err = |source| Error::Netlink {
            op: op.to_string(),
            source,
        };
        self.sock.send(&buf, 0).map_err(netlink_err)?;

        let mut out = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full().map_err(netlink_err)?;
            let mut off = 0usize;
            while off + 16 <= data.len() {
                let len =
                    u32::from_ne_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]])
                        as usize;
                if len < 16 || off + len > data.len() {
                    return Err(Error::NetlinkDecode {
                        op: op.to_string(),
                        reason: format!("message length {len} at offset {off}"),
                    });
                }
                let parsed =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[off..off + len])
                        .map_err(|e| Error::NetlinkDecode {
                            op: op.to_string(),
                            reason: e.to_string(),
                        })?;
                off += (len + 3) & !3;
                if parsed.header.sequence_number != seq {
                    continue;
                }
                match parsed.payload {
                    NetlinkPayload::InnerMessage(m) => {
                        out.push(m);
                        if parsed.header.flags & netlink_packet_core::NLM_F_MULTIPART == 0
                            && flags & NLM_F_DUMP != NLM_F_DUMP
                            && flags & NLM_F_ACK == 0
                        {
                            return Ok(out);
                        }
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(_) => Err(netlink_err(e.to_io())),
                        };
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Whether a netlink error is "no such device" (the object is already gone).
pub(crate) fn is_enodev(err: &Error) -> bool {
    matches!(err, Error::Netlink { source, .. } if source.raw_os_error() == Some(libc::ENODEV))
}

/// Whether a netlink error is "exists".
pub(crate) fn is_eexist(err: &Error) -> bool {
    matches!(err, Error::Netlink { source, .. } if source.raw_os_error() == Some(libc::EEXIST))
}
