//! The exit policy: which destinations an exit connects to. By default it refuses
//! private, loopback, link-local and other non-public addresses, and every port not
//! listed; a deployment (like localnet) opts into loopback explicitly.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What an exit may connect to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExitPolicy {
    /// Ports allowed (inclusive ranges).
    pub allowed_ports: Vec<(u16, u16)>,
    /// Allow loopback addresses (127.0.0.0/8, ::1).
    pub allow_loopback: bool,
    /// Allow private and other non-public ranges (RFC 1918, ULA, link-local, CGNAT…).
    pub allow_private: bool,
}

impl Default for ExitPolicy {
    fn default() -> Self {
        Self { allowed_ports: vec![(80, 80), (443, 443)], allow_loopback: false, allow_private: false }
    }
}

/// Why a destination was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyDenied {
    /// The port is not listed.
    #[error("port {0} is not allowed by the exit policy")]
    Port(u16),
    /// A loopback address.
    #[error("{0} is a loopback address, denied by the exit policy")]
    Loopback(IpAddr),
    /// A private or otherwise non-public address.
    #[error("{0} is a private or non-public address, denied by the exit policy")]
    Private(IpAddr),
}

impl PolicyDenied {
    /// The reason as told to the client: the kind of address, never the address the
    /// exit resolved (which would tell the client about the exit's resolver).
    pub fn client_reason(&self) -> String {
        match self {
            Self::Port(p) => format!("port {p} is not allowed by the exit policy"),
            Self::Loopback(_) => "the host resolves to a loopback address, denied by the exit policy".into(),
            Self::Private(_) => {
                "the host resolves to a private or non-public address, denied by the exit policy".into()
            }
        }
    }
}

fn private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18/15
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments 192.0.0/24
        || (a == 192 && b == 88 && ip.octets()[2] == 99) // 6to4 relay anycast 192.88.99/24
        || a >= 240 // reserved
}

/// Non-public IPv6, including every prefix that reaches an IPv4 address through a
/// translator or a tunnel (the embedded address could be anything, loopback included).
fn private_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated, still routed privately)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation 2001:db8::/32
        || (s[0] == 0x2001 && s[1] == 0x0000) // Teredo 2001::/32
        || (s[0] == 0x2001 && (s[1] & 0xffe0) == 0x0020) // ORCHID 2001:10::/28, ORCHIDv2 2001:20::/28
        || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x0010)
        || s[0] == 0x2002 // 6to4 2002::/16
        || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64 64:ff9b::/96 and 64:ff9b:1::/48
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only 100::/64
        || s[..6] == [0; 6] // IPv4-compatible ::/96 (::a.b.c.d), deprecated
        || (s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0) // IPv4-translated ::ffff:0:0:0/96
}

impl ExitPolicy {
    /// localnet's policy: loopback allowed, any port.
    pub fn localnet() -> Self {
        Self { allowed_ports: vec![(1, u16::MAX)], allow_loopback: true, allow_private: false }
    }

    /// Checks one resolved address.
    pub fn check(&self, ip: IpAddr, port: u16) -> Result<(), PolicyDenied> {
        if !self.allowed_ports.iter().any(|(lo, hi)| (*lo..=*hi).contains(&port)) {
            return Err(PolicyDenied::Port(port));
        }
        // judge IPv4-mapped IPv6 addresses as the IPv4 address they are
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if ip.is_loopback() {
            return if self.allow_loopback { Ok(()) } else { Err(PolicyDenied::Loopback(ip)) };
        }
        let private = match ip {
            IpAddr::V4(v4) => private_v4(v4),
            IpAddr::V6(v6) => private_v6(v6),
        };
        if private && !self.allow_private {
            return Err(PolicyDenied::Private(ip));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn default_denies_private_loopback_and_unlisted_ports() {
        let p = ExitPolicy::default();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(p.check(ip("93.184.216.34"), 443), Ok(()));
        assert_eq!(p.check(ip("93.184.216.34"), 22), Err(PolicyDenied::Port(22)));
        for private in
            ["10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "fd00::1", "fe80::1"]
        {
            assert!(matches!(p.check(ip(private), 443), Err(PolicyDenied::Private(_))), "{private}");
        }
        assert!(matches!(p.check(ip("127.0.0.1"), 80), Err(PolicyDenied::Loopback(_))));
        assert!(matches!(p.check(ip("::1"), 80), Err(PolicyDenied::Loopback(_))));
        assert!(matches!(p.check(ip("::ffff:10.0.0.1"), 80), Err(PolicyDenied::Private(_))));
        assert!(matches!(p.check(ip("::ffff:127.0.0.1"), 80), Err(PolicyDenied::Loopback(_))));
        // prefixes that reach an IPv4 address (any: loopback, metadata services…)
        for embedded in [
            "::7f00:1",
            "::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2001:0:4136:e378::1",
            "fec0::1",
            "::ffff:0:7f00:1",
            "100::1",
            "2001:20::1",
        ] {
            assert!(matches!(p.check(ip(embedded), 443), Err(PolicyDenied::Private(_))), "{embedded}");
        }
        for v4 in ["192.0.0.1", "192.88.99.1", "198.18.0.1", "240.0.0.1", "255.255.255.255"] {
            assert!(matches!(p.check(ip(v4), 443), Err(PolicyDenied::Private(_))), "{v4}");
        }
        assert_eq!(p.check(ip("2606:4700::1111"), 443), Ok(()), "a public IPv6 address");
        assert_eq!(p.check(ip("2001:4860:4860::8888"), 443), Ok(()));
        let local = ExitPolicy::localnet();
        assert_eq!(local.check(ip("127.0.0.1"), 8080), Ok(()));
        assert!(local.check(ip("10.0.0.1"), 8080).is_err());
    }
}
