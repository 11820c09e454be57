//! PROXY protocol headers (HAProxy's spec, v1 text and v2 binary) as a client would send
//! them before TLS, to check that an IUT does not take the claimed address from a source it
//! does not trust.

use std::net::SocketAddr;

/// The v2 signature, 12 bytes.
pub const V2_SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Version {
    V1,
    V2,
}

/// A header claiming the connection comes from `source` to `destination`.
pub fn header(version: Version, source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    match version {
        Version::V1 => {
            let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {family} {} {} {} {}\r\n",
                source.ip(),
                destination.ip(),
                source.port(),
                destination.port()
            )
            .into_bytes()
        }
        Version::V2 => {
            let mut h = V2_SIGNATURE.to_vec();
            h.push(0x21); // version 2, command PROXY
            let mut addrs = Vec::new();
            match (source, destination) {
                (SocketAddr::V4(s), SocketAddr::V4(d)) => {
                    h.push(0x11); // TCP over IPv4
                    addrs.extend_from_slice(&s.ip().octets());
                    addrs.extend_from_slice(&d.ip().octets());
                }
                (s, d) => {
                    h.push(0x21); // TCP over IPv6
                    let v6 = |a: SocketAddr| match a {
                        SocketAddr::V4(v) => v.ip().to_ipv6_mapped().octets(),
                        SocketAddr::V6(v) => v.ip().octets(),
                    };
                    addrs.extend_from_slice(&v6(s));
                    addrs.extend_from_slice(&v6(d));
                }
            }
            addrs.extend_from_slice(&source.port().to_be_bytes());
            addrs.extend_from_slice(&destination.port().to_be_bytes());
            h.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
            h.extend_from_slice(&addrs);
            h
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_is_one_text_line() {
        let h = header(
            Version::V1,
            "127.0.0.9:5555".parse().unwrap(),
            "127.0.0.1:443".parse().unwrap(),
        );
        assert_eq!(h, b"PROXY TCP4 127.0.0.9 127.0.0.1 5555 443\r\n");
    }

    #[test]
    fn v2_ipv4_has_signature_family_and_12_address_bytes() {
        let h = header(
            Version::V2,
            "127.0.0.9:5555".parse().unwrap(),
            "127.0.0.1:443".parse().unwrap(),
        );
        assert_eq!(&h[..12], &V2_SIGNATURE);
        assert_eq!(h[12], 0x21);
        assert_eq!(h[13], 0x11);
        assert_eq!(u16::from_be_bytes([h[14], h[15]]), 12);
        assert_eq!(&h[16..20], &[127, 0, 0, 9]);
        assert_eq!(h.len(), 28);
    }
}
