//! Per-client rate limit of the public link (actix-governor), with a friendly 429 page.

use std::net::IpAddr;

use actix_governor::governor::clock::{Clock, DefaultClock, QuantaInstant};
use actix_governor::governor::middleware::NoOpMiddleware;
use actix_governor::governor::NotUntil;
use actix_governor::{
    GovernorConfig, GovernorConfigBuilder, KeyExtractor, SimpleKeyExtractionError,
};
use actix_web::dev::ServiceRequest;
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder};

use super::{message, Chrome};
use crate::i18n::Locale;

/// The client's IP address (the TCP peer; put a trusted proxy's address rules in front of
/// the service if it runs behind one).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp;

impl KeyExtractor for ClientIp {
    type Key = IpAddr;
    type KeyExtractionError = SimpleKeyExtractionError<&'static str>;

    fn extract(&self, req: &ServiceRequest) -> Result<IpAddr, Self::KeyExtractionError> {
        req.peer_addr()
            .map(|a| a.ip())
            .ok_or_else(|| SimpleKeyExtractionError::new("cannot tell the client's address"))
    }

    fn exceed_rate_limit_response(
        &self,
        negative: &NotUntil<QuantaInstant>,
        _response: HttpResponseBuilder,
    ) -> HttpResponse {
        let wait = negative
            .wait_time_from(DefaultClock::default().now())
            .as_secs()
            .max(1);
        // Neutral: no brand name (the customer never heard of Closeloop).
        let chrome = Chrome::new(
            Locale::En,
            String::new(),
            Some(super::NEUTRAL_COLOR),
            "Too many requests",
        );
        let mut res = message(
            StatusCode::TOO_MANY_REQUESTS,
            &chrome,
            chrome.texts.too_many_title,
            chrome.texts.too_many_body,
        );
        if let Ok(v) = header::HeaderValue::from_str(&wait.to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        res
    }
}

pub type Limiter = GovernorConfig<ClientIp, NoOpMiddleware<QuantaInstant>>;

/// `per_minute` requests a minute per client, with bursts of `burst`.
pub fn public_link_limiter(per_minute: u32, burst: u32) -> Limiter {
    let per_minute = per_minute.max(1) as u64;
    GovernorConfigBuilder::default()
        .key_extractor(ClientIp)
        .period(std::time::Duration::from_millis(60_000 / per_minute))
        .burst_size(burst.max(1))
        .finish()
        .expect("a positive period and burst")
}
