//! How near the approving person is to the device, by network address: a signal
//! against device-code phishing (RFC 8628 §5.4, the cross-device flow security
//! draft). A person approving from the device's own network is the expected case;
//! a different network is what a phisher's victim looks like.

use std::net::{IpAddr, Ipv6Addr};

/// How the approver's network relates to the device's.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Proximity {
    /// The same address (typically the same home or office behind one NAT).
    SameAddress,
    /// The same IPv4 /24 or IPv6 /64.
    SameNetwork,
    /// Different networks: warn the person, or ask for more.
    DifferentNetwork,
    /// One of the addresses is unknown.
    Unknown,
}

/// An IPv4-mapped IPv6 address is the IPv4 address it maps.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Compares the device's address with the approver's.
pub(crate) fn proximity(device: Option<IpAddr>, approver: Option<IpAddr>) -> Proximity {
    let (Some(d), Some(a)) = (device, approver) else {
        return Proximity::Unknown;
    };
    match (canonical(d), canonical(a)) {
        (d, a) if d == a => Proximity::SameAddress,
        (IpAddr::V4(d), IpAddr::V4(a)) if d.octets()[..3] == a.octets()[..3] => {
            Proximity::SameNetwork
        }
        (IpAddr::V6(d), IpAddr::V6(a)) if d.segments()[..4] == a.segments()[..4] => {
            Proximity::SameNetwork
        }
        _ => Proximity::DifferentNetwork,
    }
}

/// The source network a device-authorization budget is counted under: the IPv4
/// address, or the IPv6 /64 (one subscriber's usual allocation).
pub(crate) fn source_network(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{}/64", Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn proximity_levels() {
        assert_eq!(
            proximity(ip("192.0.2.7"), ip("192.0.2.7")),
            Proximity::SameAddress
        );
        assert_eq!(
            proximity(ip("192.0.2.7"), ip("::ffff:192.0.2.7")),
            Proximity::SameAddress
        );
        assert_eq!(
            proximity(ip("192.0.2.7"), ip("192.0.2.200")),
            Proximity::SameNetwork
        );
        assert_eq!(
            proximity(ip("192.0.2.7"), ip("192.0.3.7")),
            Proximity::DifferentNetwork
        );
        assert_eq!(
            proximity(ip("2001:db8:1:2::1"), ip("2001:db8:1:2:ffff::9")),
            Proximity::SameNetwork
        );
        assert_eq!(
            proximity(ip("2001:db8:1:2::1"), ip("2001:db8:1:3::1")),
            Proximity::DifferentNetwork
        );
        assert_eq!(
            proximity(ip("192.0.2.7"), ip("2001:db8::1")),
            Proximity::DifferentNetwork
        );
        assert_eq!(proximity(None, ip("192.0.2.7")), Proximity::Unknown);
    }

    #[test]
    fn source_networks() {
        assert_eq!(
            source_network("198.51.100.4".parse().unwrap()),
            "198.51.100.4"
        );
        assert_eq!(
            source_network("::ffff:198.51.100.4".parse().unwrap()),
            "198.51.100.4"
        );
        assert_eq!(
            source_network("2001:db8:a:b:c:d:e:f".parse().unwrap()),
            "2001:db8:a:b::/64"
        );
    }
}
