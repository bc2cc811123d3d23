//! Forwarding a query the overlay does not answer to the node's upstream
//! resolvers, over the client's transport, with UDP truncation retried over
//! TCP.
//!
//! The sockets to the upstreams are opened by the daemon's own threads, so
//! they live in the daemon's (the host's) network namespace whatever task
//! namespace the query came from: upstreams are reached as the host reaches
//! them, including loopback ones. The tokio worker threads must therefore
//! never be moved into another namespace (the netns helpers use threads of
//! their own).
//!
//! Each upstream is tried in turn, at most [`super::resolv_conf::MAX_UPSTREAMS`], each
//! with its own timeout; an upstream that says SERVFAIL or REFUSED, times
//! out, refuses the connection or answers garbage makes way for the next.
//! The query keeps the client's EDNS options but gets a fresh random ID on
//! its own socket, so an off-path spoofer must guess both ID and port.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

use super::answer::encode_within;

/// Why one upstream gave no usable answer (for the SERVFAIL log line).
#[derive(Debug)]
pub enum UpstreamFailure {
    TimedOut(Duration),
    Io(std::io::Error),
    Garbage(String),
    Rcode(ResponseCode),
}

impl fmt::Display for UpstreamFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TimedOut(after) => write!(f, "no answer within {after:?}"),
            Self::Io(e) => write!(f, "{e}"),
            Self::Garbage(why) => write!(f, "unusable answer: {why}"),
            Self::Rcode(code) => write!(f, "answered {code}"),
        }
    }
}

/// Every upstream failed: what each one did.
#[derive(Debug)]
pub struct ForwardFailed(pub Vec<(SocketAddr, UpstreamFailure)>);

impl fmt::Display for ForwardFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(
                f,
                "the node has no upstream resolver (no usable nameserver in its /etc/resolv.conf)"
            );
        }
        for (i, (upstream, failure)) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{upstream}: {failure}")?;
        }
        Ok(())
    }
}

/// Forwards `query` (its wire bytes, and decoded) to `upstreams`; returns
/// the reply bytes for the client, with the client's ID, at most
/// `reply_limit` bytes (re-truncated if the upstream's is larger).
pub async fn forward(
    query_bytes: &[u8],
    query: &Message,
    over_tcp: bool,
    reply_limit: usize,
    upstreams: &[SocketAddr],
    per_upstream: Duration,
) -> Result<Vec<u8>, ForwardFailed> {
    let mut failures = Vec::new();
    for &upstream in upstreams.iter().take(super::resolv_conf::MAX_UPSTREAMS) {
        let id: u16 = rand::random();
        let mut outgoing = query_bytes.to_vec();
        outgoing[..2].copy_from_slice(&id.to_be_bytes());

        let result = if over_tcp {
            exchange_tcp(upstream, &outgoing, per_upstream).await
        } else {
            match exchange_udp(upstream, &outgoing, per_upstream).await {
                // The upstream's answer did not fit its UDP reply: ask again
                // over TCP, and fit the whole answer to the client below. If
                // TCP fails, the truncated reply still tells the client to
                // retry over TCP itself.
                Ok(truncated) if is_truncated(&truncated) => {
                    match exchange_tcp(upstream, &outgoing, per_upstream).await {
                        Ok(whole) => Ok(whole),
                        Err(e) => {
                            tracing::debug!(%upstream, error = %e, "TCP retry of a truncated answer failed");
                            Ok(truncated)
                        }
                    }
                }
                other => other,
            }
        };
        let reply = match result.and_then(|bytes| check_reply(bytes, id, query)) {
            Ok(reply) => reply,
            Err(failure) => {
                failures.push((upstream, failure));
                continue;
            }
        };
        let (mut bytes, decoded) = reply;
        if bytes.len() > reply_limit {
            // Re-truncate to what the client accepts, keeping what fits.
            match encode_within(&decoded, reply_limit) {
                Some(fitted) => bytes = fitted,
                None => {
                    failures.push((
                        upstream,
                        UpstreamFailure::Garbage("cannot re-encode".into()),
                    ));
                    continue;
                }
            }
        }
        bytes[..2].copy_from_slice(&query.id().to_be_bytes());
        return Ok(bytes);
    }
    Err(ForwardFailed(failures))
}

fn is_truncated(bytes: &[u8]) -> bool {
    // The TC bit: byte 2, bit 1 of the header.
    bytes.len() >= 3 && bytes[2] & 0x02 != 0
}

/// Checks that `bytes` is a reply to our query (ID, QR bit, same question)
/// with a code worth passing on. SERVFAIL and REFUSED mean "try the next
/// upstream" (Docker does the same: REFUSED is often transitional).
fn check_reply(
    bytes: Vec<u8>,
    id: u16,
    query: &Message,
) -> Result<(Vec<u8>, Message), UpstreamFailure> {
    let reply = Message::from_vec(&bytes).map_err(|e| UpstreamFailure::Garbage(e.to_string()))?;
    if reply.id() != id || reply.message_type() != MessageType::Response {
        return Err(UpstreamFailure::Garbage("not a reply to the query".into()));
    }
    let same_question = reply.queries().len() == query.queries().len()
        && reply.queries().iter().zip(query.queries()).all(|(a, b)| {
            // Name equality is case-insensitive, as DNS wants.
            a.name() == b.name()
                && a.query_type() == b.query_type()
                && a.query_class() == b.query_class()
        });
    if !same_question {
        return Err(UpstreamFailure::Garbage("answers another question".into()));
    }
    match reply.response_code() {
        code @ (ResponseCode::ServFail | ResponseCode::Refused) => {
            Err(UpstreamFailure::Rcode(code))
        }
        _ => Ok((bytes, reply)),
    }
}

async fn exchange_udp(
    upstream: SocketAddr,
    query: &[u8],
    limit: Duration,
) -> Result<Vec<u8>, UpstreamFailure> {
    let exchange = async {
        let local: SocketAddr = if upstream.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal")
        } else {
            "[::]:0".parse().expect("literal")
        };
        let socket = UdpSocket::bind(local).await?;
        // Connected: the kernel drops datagrams from anyone else, and a dead
        // upstream's ICMP port-unreachable surfaces as ECONNREFUSED at once.
        socket.connect(upstream).await?;
        socket.send(query).await?;
        // Robustness: accept a reply larger than the client advertised (some
        // servers ignore EDNS); it is fitted to the client afterwards.
        let mut buf = vec![0u8; usize::from(u16::MAX)];
        loop {
            let n = socket.recv(&mut buf).await?;
            // A late reply to an earlier exchange cannot reach this fresh
            // socket; anything without our ID is ignored, not fatal.
            if n >= 2 && buf[..2] == query[..2] {
                buf.truncate(n);
                return Ok::<_, std::io::Error>(buf);
            }
        }
    };
    match timeout(limit, exchange).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(UpstreamFailure::Io(e)),
        Err(_) => Err(UpstreamFailure::TimedOut(limit)),
    }
}

async fn exchange_tcp(
    upstream: SocketAddr,
    query: &[u8],
    limit: Duration,
) -> Result<Vec<u8>, UpstreamFailure> {
    let exchange = async {
        let mut stream = TcpStream::connect(upstream).await?;
        stream.set_nodelay(true)?;
        write_framed(&mut stream, query).await?;
        read_framed(&mut stream).await
    };
    match timeout(limit, exchange).await {
        Ok(Ok(Some(bytes))) => Ok(bytes),
        Ok(Ok(None)) => Err(UpstreamFailure::Garbage("closed the connection".into())),
        Ok(Err(e)) => Err(UpstreamFailure::Io(e)),
        Err(_) => Err(UpstreamFailure::TimedOut(limit)),
    }
}

/// Writes one DNS message with its 2-byte length prefix (RFC 1035 4.2.2).
pub async fn write_framed<W: AsyncWriteExt + Unpin>(w: &mut W, msg: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "message over 65535 bytes")
    })?;
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(msg);
    w.write_all(&framed).await
}

/// Reads one length-prefixed DNS message; `None` on a clean end of stream
/// before the prefix.
pub async fn read_framed<R: AsyncReadExt + Unpin>(r: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    r.read_exact(&mut msg).await?;
    Ok(Some(msg))
}
