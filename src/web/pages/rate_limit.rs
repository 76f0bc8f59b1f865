//! Per-client rate limit of public-link submissions (`governor`, MIT), with a friendly 429
//! page. Only answers (POST) count: reading the page is free, so an office behind one NAT
//! address is not locked out by people opening the link. The client is the TCP peer, or,
//! when the peer is a trusted proxy (`TRUSTED_PROXIES`), the address it forwarded.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::http::header;
use actix_web::HttpRequest;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

/// The public-link limiter: `per_minute` submissions a minute per client, bursts of `burst`.
pub struct Limiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    trusted: Vec<IpNet>,
    checks: AtomicU64,
}

impl Limiter {
    pub fn new(per_minute: u32, burst: u32, trusted: Vec<IpNet>) -> Limiter {
        let per_minute = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        Limiter {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
            trusted,
            checks: AtomicU64::new(0),
        }
    }

    /// Counts one submission of the request's client: `Err(seconds)` to wait when over the
    /// limit.
    pub fn check(&self, req: &HttpRequest) -> Result<(), u64> {
        // Forget idle clients now and then, so the table stays as small as the live set.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 1024 == 1023 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        let Some(ip) = client_ip(req, &self.trusted) else {
            return Ok(());
        };
        self.limiter.check_key(&ip).map_err(|not_until| {
            not_until
                .wait_time_from(DefaultClock::default().now())
                .as_secs()
                .max(1)
        })
    }
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy; then the nearest
/// address in `Forwarded` (`for=`) or `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let chain = forwarded_chain(req);
    // Walk from the nearest hop outwards; the first untrusted hop is the client.
    for ip in chain.iter().rev() {
        if !is_trusted(ip) {
            return Some(*ip);
        }
    }
    Some(chain.first().copied().unwrap_or(peer))
}

/// The addresses a proxy chain reported, client first: `Forwarded` (RFC 7239) when present,
/// else `X-Forwarded-For`. Unparsable entries (obfuscated ids, `unknown`) are skipped.
fn forwarded_chain(req: &HttpRequest) -> Vec<IpAddr> {
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all(header::FORWARDED)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| parse_node(v))?
            })
        })
        .collect();
    if !forwarded.is_empty() {
        return forwarded;
    }
    req.headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(parse_node)
        .collect()
}

/// `192.0.2.1`, `"[2001:db8::1]:4711"`, `198.51.100.7:80` → the address.
fn parse_node(raw: &str) -> Option<IpAddr> {
    let v = raw.trim().trim_matches('"');
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    v.rsplit_once(':').and_then(|(host, _)| host.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let req = TestRequest::default()
            .peer_addr("203.0.113.9:5000".parse().unwrap())
            .insert_header(("X-Forwarded-For", "1.2.3.4"))
            .to_http_request();
        assert_eq!(
            client_ip(&req, &nets(&["10.0.0.0/8"])),
            Some("203.0.113.9".parse().unwrap())
        );
    }

    #[test]
    fn a_trusted_proxy_gives_the_nearest_untrusted_forwarded_address() {
        let req = TestRequest::default()
            .peer_addr("10.0.0.2:5000".parse().unwrap())
            .insert_header(("X-Forwarded-For", "6.6.6.6, 198.51.100.7, 10.0.0.5"))
            .to_http_request();
        assert_eq!(
            client_ip(&req, &nets(&["10.0.0.0/8"])),
            Some("198.51.100.7".parse().unwrap())
        );
        let req = TestRequest::default()
            .peer_addr("10.0.0.2:5000".parse().unwrap())
            .insert_header(("Forwarded", "for=\"[2001:db8::1]:4711\";proto=https"))
            .to_http_request();
        assert_eq!(
            client_ip(&req, &nets(&["10.0.0.0/8"])),
            Some("2001:db8::1".parse().unwrap())
        );
    }
}
