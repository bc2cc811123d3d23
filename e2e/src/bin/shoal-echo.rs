//! A tiny TCP and UDP server and client for the overlay suites, run as
//! process tasks: a real exchange whose answer says who answered.
//!
//! - `shoal-echo serve PORT`: on TCP and UDP `PORT` (all addresses), answers
//!   every connection or datagram with `$SHOAL_TASK_ID` (the task's ID), or
//!   `$SHOAL_ECHO_REPLY` when set, and a newline.
//! - `shoal-echo ask tcp|udp HOST:PORT [TIMEOUT_MS]`: sends one line, prints
//!   the answer; exits 1 (saying why on stderr) without one. `HOST` may be a
//!   name, resolved through the system resolver (the task's resolv.conf).
//!
//! (busybox, the other tool the suites use, has no UDP server or client.)
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["serve", port] => serve(port),
        ["ask", proto, target] => ask(proto, target, 2000),
        ["ask", proto, target, timeout] => ask(proto, target, timeout.parse().unwrap_or(2000)),
        _ => Err(
            "usage: shoal-echo serve PORT | shoal-echo ask tcp|udp HOST:PORT [TIMEOUT_MS]".into(),
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
    let answer = format!("{}\n", reply());
    let udp = UdpSocket::bind(("0.0.0.0", port)).map_err(|e| format!("UDP {port}: {e}"))?;
    let tcp = TcpListener::bind(("0.0.0.0", port)).map_err(|e| format!("TCP {port}: {e}"))?;
    let udp_answer = answer.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        loop {
            if let Ok((_, peer)) = udp.recv_from(&mut buf) {
                let _ = udp.send_to(udp_answer.as_bytes(), peer);
            }
        }
    });
    for stream in tcp.incoming() {
        let Ok(mut stream) = stream else { continue };
        let answer = answer.clone();
        std::thread::spawn(move || {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 256];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(answer.as_bytes());
        });
    }
    Ok(())
}

fn ask(proto: &str, target: &str, timeout_ms: u64) -> Result<(), String> {
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
    println!("{}", text.trim());
    Ok(())
}
