//! The addresses an operator gives `swarm init` and `swarm join`:
//! `--listen-addr`, `--advertise-addr` and the manager's address, with
//! Docker's defaults (port 2377), and binding the listener.

use std::net::{IpAddr, SocketAddr};

use super::membership::error::MembershipError;
use shoal_manager::Manager;
use tokio::net::TcpListener;

/// The IP a joining node advertises: `--advertise-addr`, else a specific
/// listen IP, else the local address that routes to the manager (found by
/// connecting a UDP socket, which sends nothing).
pub fn advertise_ip(flag: &str, listen: SocketAddr, remote: &str) -> Option<IpAddr> {
    if let Ok(addr) = flag.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    if let Ok(ip) = flag.parse::<IpAddr>() {
        return Some(ip);
    }
    if !listen.ip().is_unspecified() {
        return Some(listen.ip());
    }
    let socket = std::net::UdpSocket::bind(("0.0.0.0", 0)).ok()?;
    socket.connect(remote).ok()?;
    socket.local_addr().ok().map(|a| a.ip())
}

pub async fn bind(addr: &str) -> Result<TcpListener, MembershipError> {
    TcpListener::bind(addr).await.map_err(|e| {
        MembershipError::not_now(format!(
            "cannot listen on {addr}: {e}: choose another address with --listen-addr"
        ))
    })
}

/// `--listen-addr`: `IP:PORT` or `IP`; default `0.0.0.0:2377`.
pub fn parse_listen_addr(text: &str) -> Result<SocketAddr, MembershipError> {
    if text.is_empty() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], Manager::DEFAULT_PORT)));
    }
    Manager::parse_addr(text).ok_or_else(|| {
        MembershipError::bad_input(format!(
            "invalid --listen-addr {text:?}: expected IP[:PORT], e.g. 0.0.0.0:2377"
        ))
    })
}

/// `--advertise-addr`: `IP[:PORT]`; the port defaults to the listen port
/// (0 here means "the port actually bound"). Without it, the listen IP is
/// advertised when it is a specific address.
pub fn parse_advertise_addr(text: &str, listen: SocketAddr) -> Result<SocketAddr, MembershipError> {
    if text.is_empty() {
        if listen.ip().is_unspecified() {
            return Err(MembershipError::bad_input(
                "could not choose an IP address to advertise: the node listens on all addresses; \
                 specify one with --advertise-addr",
            ));
        }
        return Ok(listen);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, listen.port()))
        .map_err(|_| {
            MembershipError::bad_input(format!(
                "invalid --advertise-addr {text:?}: expected IP[:PORT], e.g. 192.168.1.10"
            ))
        })
}

/// A manager address for `swarm join`: `HOST:PORT` or `HOST` (port 2377).
pub fn normalize_remote_addr(text: &str) -> Result<String, MembershipError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(MembershipError::bad_input(
            "a manager address is required: shoal swarm join --token TOKEN HOST[:PORT]",
        ));
    }
    if text.parse::<SocketAddr>().is_ok() {
        return Ok(text.to_string());
    }
    if text.parse::<IpAddr>().is_ok() {
        return Ok(
            SocketAddr::new(text.parse().expect("checked"), Manager::DEFAULT_PORT).to_string(),
        );
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(text.to_string())
        }
        Some(_) => Err(MembershipError::bad_input(format!(
            "invalid manager address {text:?}: expected HOST[:PORT], e.g. 10.0.0.1:2377"
        ))),
        None => Ok(format!("{text}:{}", Manager::DEFAULT_PORT)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_default_their_ports_like_docker() {
        assert_eq!(parse_listen_addr("").unwrap().to_string(), "0.0.0.0:2377");
        assert_eq!(
            parse_listen_addr("127.0.0.2").unwrap().to_string(),
            "127.0.0.2:2377"
        );
        assert!(parse_listen_addr("nonsense").is_err());
        let listen = parse_listen_addr("127.0.0.2:0").unwrap();
        assert_eq!(parse_advertise_addr("", listen).unwrap(), listen);
        assert_eq!(
            parse_advertise_addr("10.0.0.1", parse_listen_addr("").unwrap())
                .unwrap()
                .to_string(),
            "10.0.0.1:2377"
        );
        assert!(parse_advertise_addr("", parse_listen_addr("").unwrap()).is_err());
        assert_eq!(
            normalize_remote_addr("127.0.0.1").unwrap(),
            "127.0.0.1:2377"
        );
        assert_eq!(normalize_remote_addr("mgr:4000").unwrap(), "mgr:4000");
        assert_eq!(normalize_remote_addr("mgr").unwrap(), "mgr:2377");
        assert!(normalize_remote_addr("mgr:port").is_err());
        assert!(normalize_remote_addr("").is_err());
    }
}
