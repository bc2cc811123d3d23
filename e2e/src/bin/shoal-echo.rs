//! A tiny TCP and UDP server and client for the overlay suites, run as
//! process tasks: a real exchange whose answer says who answered.
//!
//! - `shoal-echo serve PORT`: on TCP and UDP `PORT` (all addresses), answers
//!   every connection or datagram with `$SHOAL_TASK_ID` (the task's ID), or
//!   `$SHOAL_ECHO_REPLY` when set, and a newline. With
//!   `SHOAL_ECHO_SHOW_PEER=1` the answer is followed by a space and the
//!   client's address as the server saw it (what the routing mesh keeps),
//!   or as a PROXY protocol v1 header ahead of the data says it.
//! - `shoal-echo ask tcp|udp HOST:PORT [TIMEOUT_MS]`: sends one line, prints
//!   the answer; exits 1 (saying why on stderr) without one. `HOST` may be a
//!   name, resolved through the system resolver (the task's resolv.conf).
//! - `shoal-echo tally tcp|udp HOST:PORT N`: `N` exchanges one after the
//!   other, each on a new connection (TCP) or socket (UDP); prints each
//!   answer on its own line, or `ERR why` for one that failed (refused,
//!   reset, or no answer within 5 s). Exits 0.
//!
//! (busybox, the other tool the suites use, has no UDP server or client.)
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::Duration;

/// How long one exchange of `tally` may take.
const TALLY_TIMEOUT_MS: u64 = 5000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["serve", port] => serve(port),
        ["ask", proto, target] => ask(proto, target, 2000).map(|answer| println!("{answer}")),
        ["ask", proto, target, timeout] => ask(proto, target, timeout.parse().unwrap_or(2000))
            .map(|answer| println!("{answer}")),
        ["tally", proto, target, count] => {
            for _ in 0..count.parse::<usize>().unwrap_or(1) {
                // Long enough for TCP's SYN retransmission (1 s, then 3 s):
                // a connection that is slow to open is not a failed one.
                match ask(proto, target, TALLY_TIMEOUT_MS) {
                    Ok(answer) => println!("{answer}"),
                    Err(e) => println!("ERR {e}"),
                }
            }
            Ok(())
        }
        _ => Err(
            "usage: shoal-echo serve PORT | shoal-echo ask tcp|udp HOST:PORT [TIMEOUT_MS] | shoal-echo tally tcp|udp HOST:PORT N".into(),
        ),
    };
    if let Err(e) = result {
        eprintln!("shoal-echo: {e}");
        std::process::exit(1);
    }
}

fn reply() -> String {
    std::env::var("SHOAL_ECHO_REPLY")
        .or_else(|_| std::env::var("SHOAL_TASK_ID"))
        .unwrap_or_else(|_| "unknown".into())
}

fn serve(port: &str) -> Result<(), String> {
    let port: u16 = port.parse().map_err(|e| format!("port {port:?}: {e}"))?;
    let answer = reply();
    let show_peer = std::env::var("SHOAL_ECHO_SHOW_PEER").as_deref() == Ok("1");
    let line = move |peer: std::net::SocketAddr| {
        if show_peer {
            format!("{answer} {}\n", peer.ip())
        } else {
            format!("{answer}\n")
        }
    };
    let udp = UdpSocket::bind(("0.0.0.0", port)).map_err(|e| format!("UDP {port}: {e}"))?;
    let tcp = TcpListener::bind(("0.0.0.0", port)).map_err(|e| format!("TCP {port}: {e}"))?;
    let udp_line = line.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        loop {
            if let Ok((_, peer)) = udp.recv_from(&mut buf) {
                let _ = udp.send_to(udp_line(peer).as_bytes(), peer);
            }
        }
    });
    for stream in tcp.incoming() {
        let Ok(mut stream) = stream else { continue };
        let line = line.clone();
        std::thread::spawn(move || {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 256];
            let n = stream.read(&mut buf).unwrap_or(0);
            let (header, rest) = proxy_header(&buf[..n]);
            if header.is_some() && rest.is_empty() {
                // The header came alone: the client's line follows.
                let _ = stream.read(&mut buf);
            }
            let answer = header
                .or_else(|| stream.peer_addr().ok())
                .map(&line)
                .unwrap_or_else(|| "unknown\n".into());
            let _ = stream.write_all(answer.as_bytes());
        });
    }
    Ok(())
}

/// A PROXY protocol v1 line at the start of `data` (`PROXY TCP4 SRC DST
/// SPORT DPORT\r\n`): the client's address it carries, and what follows.
fn proxy_header(data: &[u8]) -> (Option<std::net::SocketAddr>, &[u8]) {
    let Some(end) = data.windows(2).position(|w| w == b"\r\n") else {
        return (None, data);
    };
    let Ok(text) = std::str::from_utf8(&data[..end]) else {
        return (None, data);
    };
    let fields: Vec<&str> = text.split(' ').collect();
    match fields[..] {
        ["PROXY", _, src, _, sport, _] => match format!("{src}:{sport}").parse() {
            Ok(addr) => (Some(addr), &data[end + 2..]),
            Err(_) => (None, data),
        },
        _ => (None, data),
    }
}

fn ask(proto: &str, target: &str, timeout_ms: u64) -> Result<String, String> {
    let timeout = Duration::from_millis(timeout_ms);
    let addr = target
        .to_socket_addrs()
        .map_err(|e| format!("resolving {target}: {e}"))?
        .find(|a| a.is_ipv4())
        .ok_or_else(|| format!("{target}: no IPv4 address"))?;
    let mut answer = Vec::new();
    match proto {
        "tcp" => {
            let mut stream = TcpStream::connect_timeout(&addr, timeout)
                .map_err(|e| format!("connecting to {addr}: {e}"))?;
            stream
                .set_read_timeout(Some(timeout))
                .map_err(|e| e.to_string())?;
            stream
                .write_all(b"hello\n")
                .map_err(|e| format!("sending to {addr}: {e}"))?;
            stream
                .read_to_end(&mut answer)
                .map_err(|e| format!("reading from {addr}: {e}"))?;
        }
        "udp" => {
            let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
            socket
                .set_read_timeout(Some(timeout))
                .map_err(|e| e.to_string())?;
            socket
                .send_to(b"hello\n", addr)
                .map_err(|e| format!("sending to {addr}: {e}"))?;
            let mut buf = [0u8; 2048];
            let (n, _) = socket
                .recv_from(&mut buf)
                .map_err(|e| format!("no UDP answer from {addr}: {e}"))?;
            answer.extend_from_slice(&buf[..n]);
        }
        other => return Err(format!("unknown protocol {other:?}: use tcp or udp")),
    }
    let text = String::from_utf8_lossy(&answer);
    if text.trim().is_empty() {
        return Err(format!("{addr} closed without an answer"));
    }
    Ok(text.trim().to_string())
}
