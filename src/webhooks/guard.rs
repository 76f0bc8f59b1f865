//! The SSRF guard: webhook and Slack URLs may not point into the service's own network.
//!
//! Unless `WEBHOOK_ALLOW_PRIVATE=true`, a URL is refused when its host is, or resolves to, an
//! address that is not public: loopback, private (RFC 1918, IPv6 unique-local), link-local
//! (with the cloud metadata address 169.254.169.254), unspecified, "this network" (0/8),
//! carrier-grade NAT (100.64/10), multicast, broadcast and reserved space, and IPv6 forms
//! that embed such an IPv4 address (IPv4-mapped `::ffff:…`, IPv4-compatible `::…`, NAT64
//! `64:ff9b::/96`, 6to4 `2002::/16`). `localhost` and names under `.localhost` are refused
//! without asking DNS. Every address a name resolves to is checked: one bad address refuses
//! the URL.
//!
//! The check runs when a URL is saved ([`check_target`]: a 422 with a field message) and
//! again at every delivery, because DNS can change. At delivery the worker's HTTP client
//! resolves names through [`GuardedResolver`], which checks the addresses it hands to the
//! connector: the connection goes to exactly the addresses that were checked, so a DNS answer
//! that changes between the check and the connection (DNS rebinding) cannot slip past it.
//! Hosts written as IP addresses need no DNS and are checked by [`check_literal`] before the
//! request. A refused delivery is a failed attempt whose error says why.
//!
//! Behind an egress proxy (`HTTPS_PROXY`) the proxy resolves the names, not Closeloop: there
//! the proxy must filter, and `WEBHOOK_ALLOW_PRIVATE=true` lets Closeloop reach the proxy.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why an address is refused, in a few words; `None` for a public address.
pub fn blocked(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => blocked_v6(v6),
    }
}

fn blocked_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_unspecified() || a == 0 {
        Some("an unspecified (0.0.0.0/8) address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private (RFC 1918) address")
    } else if ip.is_link_local() {
        Some("a link-local address (such as the cloud metadata service)")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a carrier-grade NAT (100.64.0.0/10) address")
    } else if ip.is_broadcast() {
        Some("the broadcast address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if a >= 240 {
        Some("a reserved (240.0.0.0/4) address")
    } else if a == 192 && b == 0 && c == 0 {
        Some("an IETF protocol (192.0.0.0/24) address")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("a benchmarking (198.18.0.0/15) address")
    } else {
        None
    }
}

fn blocked_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some("the unspecified address (::)");
    }
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    // IPv6 forms that carry an IPv4 address: judged by that address.
    let [a, b] = [ip.octets()[12], ip.octets()[13]];
    let [c, d] = [ip.octets()[14], ip.octets()[15]];
    let embedded = Ipv4Addr::new(a, b, c, d);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return blocked_v4(v4);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] {
        // IPv4-compatible (deprecated) ::a.b.c.d.
        return blocked_v4(embedded).or(Some("an IPv4-compatible IPv6 address"));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return blocked_v4(embedded);
    }
    if s[0] == 0x2002 {
        let [_, _, e, f, g, h, ..] = ip.octets();
        return blocked_v4(Ipv4Addr::new(e, f, g, h));
    }
    if s[0] & 0xfe00 == 0xfc00 {
        return Some("a unique-local (fc00::/7) address");
    }
    if s[0] & 0xffc0 == 0xfe80 {
        return Some("a link-local address");
    }
    if s[0] & 0xffc0 == 0xfec0 {
        return Some("a site-local (fec0::/10) address");
    }
    if ip.is_multicast() {
        return Some("a multicast address");
    }
    None
}

/// The sentence a refused URL gets: which host, which address, why, and the way out.
fn refusal(host: &str, ip: IpAddr, why: &str) -> String {
    if host == ip.to_string() {
        format!(
            "points to {why} ({ip}); such addresses are refused unless WEBHOOK_ALLOW_PRIVATE=true"
        )
    } else {
        format!("has a host ({host}) that resolves to {why} ({ip}); such addresses are refused unless WEBHOOK_ALLOW_PRIVATE=true")
    }
}

/// `localhost` and `*.localhost` always mean this machine (RFC 6761), whatever DNS says.
fn local_name(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "localhost" || h.ends_with(".localhost")
}

/// The host of a URL when it is written as an IP address (the `url` crate reads decimal,
/// octal and hex IPv4 forms such as `2130706433` or `0x7f.1` as the address they mean), with
/// its refusal when it is not public. `Ok(None)`: a name, to resolve.
pub fn check_literal(url: &url::Url) -> Result<Option<IpAddr>, String> {
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(url::Host::Domain(d)) => {
            if local_name(d) {
                return Err(format!(
                    "has the host {d}, which is this machine; such hosts are refused unless WEBHOOK_ALLOW_PRIVATE=true"
                ));
            }
            return Ok(None);
        }
        None => return Err("has no host".into()),
    };
    match blocked(ip) {
        Some(why) => Err(refusal(&ip.to_string(), ip, why)),
        None => Ok(Some(ip)),
    }
}

/// Resolves `host` and checks every address; the checked addresses, or why they are refused.
async fn resolve_checked(host: &str, port: u16) -> Result<Vec<SocketAddr>, ResolveError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| ResolveError::Lookup(format!("cannot resolve {host}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(ResolveError::Lookup(format!(
            "cannot resolve {host}: no address"
        )));
    }
    for a in &addrs {
        if let Some(why) = blocked(a.ip()) {
            return Err(ResolveError::Refused(Refused(refusal(host, a.ip(), why))));
        }
    }
    Ok(addrs)
}

#[derive(Debug)]
enum ResolveError {
    Lookup(String),
    Refused(Refused),
}

/// Checks a URL being saved (a webhook's, a Slack one): with `allow_private` nothing is
/// checked; otherwise its host must be a public address or a name whose every address is
/// public. The error completes "The URL …" / `url: …`.
pub async fn check_target(raw: &str, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let url = url::Url::parse(raw.trim()).map_err(|_| "is not a valid URL".to_string())?;
    if check_literal(&url)?.is_some() {
        return Ok(());
    }
    let host = url.host_str().unwrap_or_default().to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    match resolve_checked(&host, port).await {
        Ok(_) => Ok(()),
        Err(ResolveError::Refused(r)) => Err(r.0),
        Err(ResolveError::Lookup(e)) => Err(format!(
            "has a host that does not resolve ({e}); use a host name with a public address"
        )),
    }
}

/// A delivery refused by the guard (found in a request error's source chain).
#[derive(Debug, Clone)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused by the SSRF guard: the URL {}", self.0)
    }
}

impl std::error::Error for Refused {}

/// The refusal in a request error's source chain, if the guard caused the error.
pub fn refused_in(e: &(dyn std::error::Error + 'static)) -> Option<Refused> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return Some(r.clone());
        }
        source = s.source();
    }
    None
}

/// The worker's DNS resolver: resolves with the system resolver and, unless private
/// addresses are allowed, fails with [`Refused`] when any address is not public. The
/// connector connects only to the addresses returned here, the ones just checked.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = if allow {
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect()
            } else {
                match resolve_checked(&host, 0).await {
                    Ok(a) => a,
                    Err(ResolveError::Refused(r)) => return Err(Box::new(r) as _),
                    Err(ResolveError::Lookup(e)) => return Err(e.into()),
                }
            };
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &str) -> bool {
        blocked(s.parse().unwrap()).is_some()
    }

    #[test]
    fn loopback_private_link_local_and_metadata_addresses_are_refused() {
        for a in [
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.0.170",
            "198.18.0.1",
        ] {
            assert!(refused(a), "{a} is refused");
        }
    }

    #[test]
    fn ipv6_loopback_ula_link_local_and_embedded_ipv4_are_refused() {
        for a in [
            "::1",
            "::",
            "fc00::1",
            "fd12:3456:789a::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
        ] {
            assert!(refused(a), "{a} is refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.169.0.1",
            "169.253.255.255",
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(!refused(a), "{a} passes");
        }
    }

    #[test]
    fn literal_hosts_in_any_notation_are_judged_by_the_address_they_mean() {
        let check = |u: &str| check_literal(&url::Url::parse(u).unwrap());
        for u in [
            "http://127.0.0.1/x",
            "http://2130706433/x",
            "http://0x7f.1/x",
            "http://0177.0.0.1/x",
            "http://0/x",
            "http://[::1]/x",
            "http://[::ffff:7f00:1]/x",
            "http://localhost:8080/x",
            "http://LocalHost./x",
            "http://api.localhost/x",
            "http://169.254.169.254/latest/meta-data",
        ] {
            assert!(check(u).is_err(), "{u} is refused");
        }
        assert_eq!(
            check("https://8.8.8.8/x").unwrap(),
            Some("8.8.8.8".parse().unwrap())
        );
        assert_eq!(check("https://hooks.slack.com/services/x").unwrap(), None);
        let why = check("http://10.0.0.5/hook").unwrap_err();
        assert!(
            why.contains("private") && why.contains("WEBHOOK_ALLOW_PRIVATE"),
            "{why}"
        );
    }

    #[tokio::test]
    async fn names_are_resolved_and_every_address_checked() {
        let why = check_target("http://localhost/x", false).await.unwrap_err();
        assert!(why.contains("localhost"), "{why}");
        assert!(check_target("http://127.0.0.1/x", true).await.is_ok());
        assert!(check_target("http://localhost/x", true).await.is_ok());
        // The resolver refuses what the system resolver maps to loopback.
        let e = resolve_checked("localhost", 80).await.unwrap_err();
        assert!(matches!(e, ResolveError::Refused(_)), "{e:?}");
    }
}
