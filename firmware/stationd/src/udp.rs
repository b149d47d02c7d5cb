//! The station's media socket: one UDP socket for IPv4 and IPv6 media servers alike.
//!
//! It is bound to `[::]:0` with `IPV6_V6ONLY` off, so it reaches an IPv6 server directly and an
//! IPv4 one through a v4-mapped address (`::ffff:192.0.2.10`), whatever the system's
//! `net.ipv6.bindv6only`. On a kernel without IPv6 it falls back to `0.0.0.0:0`.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use socket2::{Domain, Socket, Type};

/// Binds the media socket (see the module docs).
pub fn bind() -> io::Result<UdpSocket> {
    match bind_dual_stack() {
        Ok(socket) => Ok(socket),
        Err(e) => {
            log::info!("no IPv6 UDP socket ({e}); media over IPv4 only");
            UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        }
    }
}

fn bind_dual_stack() -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, None)?;
    socket.set_only_v6(false)?;
    socket.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)).into())?;
    Ok(socket.into())
}

/// The address to send to `dest` from a socket bound to `local`: an IPv4 destination is
/// written v4-mapped for a dual-stack socket. Datagrams from that peer arrive from the same
/// form, so the result also identifies the peer.
pub fn peer_address(local: SocketAddr, dest: SocketAddr) -> SocketAddr {
    match (local, dest) {
        (SocketAddr::V6(_), SocketAddr::V4(v4)) => {
            SocketAddr::from((v4.ip().to_ipv6_mapped(), v4.port()))
        }
        _ => dest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_servers_are_reached_v4_mapped_from_a_dual_stack_socket() {
        let v6: SocketAddr = "[::]:4000".parse().unwrap();
        let v4: SocketAddr = "0.0.0.0:4000".parse().unwrap();
        let server4: SocketAddr = "192.0.2.10:50000".parse().unwrap();
        let server6: SocketAddr = "[2001:db8::10]:50000".parse().unwrap();
        assert_eq!(
            peer_address(v6, server4),
            "[::ffff:192.0.2.10]:50000".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(peer_address(v6, server6), server6);
        assert_eq!(peer_address(v4, server4), server4);
    }

    /// Real datagrams on loopback: the dual-stack socket sends to an IPv4 peer and knows the
    /// reply's sender as that peer.
    #[test]
    fn a_dual_stack_socket_talks_to_an_ipv4_peer() {
        let station = bind().unwrap();
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = peer_address(station.local_addr().unwrap(), server.local_addr().unwrap());
        station.send_to(b"ping", peer).unwrap();
        let mut buf = [0u8; 8];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping");
        server.send_to(b"pong", from).unwrap();
        let (n, reply_from) = station.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], reply_from), (&b"pong"[..], peer));
    }
}
