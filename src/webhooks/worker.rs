//! The webhook delivery worker.
//!
//! Claims due deliveries in batches, marked with this instance's id and a lease
//! (`WEBHOOK_LEASE_SECONDS`) that a heartbeat extends while the batch is worked on, so a live
//! worker never loses its deliveries to another replica. POSTs them concurrently, and records
//! each attempt and outcome as soon as it is known (a crash repeats at most the requests in
//! flight; a restarted process with the same id takes its old claims back at once). A panic
//! in one delivery is caught: that delivery fails and the worker goes on. Each delivery moves
//! on, as the Standard Webhooks spec says: a 2xx answer → `delivered`; a timeout, connection
//! error, 408, 429 or 5xx → back to `pending`, due after the answer's `Retry-After` (seconds or
//! an HTTP date, at most [`RETRY_AFTER_MAX_SECS`]) or else after exponential backoff (`failed`
//! once `WEBHOOK_MAX_ATTEMPTS` attempts were made); 410 Gone → `failed` and the webhook is
//! disabled; any other answer (3xx, 4xx) → `failed` at once. Redirects are not followed. A
//! webhook whose every attempt has failed for `WEBHOOK_DISABLE_AFTER_HOURS` is disabled too, and
//! the workspace admins are emailed (in the transaction that disables it).
//!
//! The same outbox carries Slack messages (`kind = 'slack'`, see [`super::slack`]): their
//! body is built from the task when they are sent, they are not signed, and they follow the
//! same retry rules (a 410 fails the message; there is no webhook to disable). Every request
//! goes through the SSRF guard ([`super::guard`]) unless `WEBHOOK_ALLOW_PRIVATE`: IP-literal
//! hosts are checked before the request, names by the client's resolver, which hands the
//! connector only addresses it checked. A refused request is a failed attempt, not retried.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use futures_util::stream::{self, StreamExt};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use tokio::sync::Notify;

use super::guard;
use crate::config::Settings;
use crate::domain::backoff;
use crate::domain::now;
use crate::store::webhooks::{self as store, Attempt, Claimed, Outcome, Target};
use crate::store::{Db, Held};
use crate::telemetry::{catch_panic, Metrics};

/// Deliveries claimed per batch.
const BATCH: i64 = 100;
/// Requests in flight at once per worker.
const CONCURRENCY: usize = 16;
/// Bytes of a failed answer's body kept in the attempt log.
const ERROR_BODY_BYTES: usize = 200;
/// The longest `Retry-After` honoured: one day (a longer one is cut to this).
pub const RETRY_AFTER_MAX_SECS: i64 = 86_400;

#[derive(Clone)]
pub struct WebhookWorker {
    pub db: Db,
    pub settings: Arc<Settings>,
    /// Woken when deliveries are queued, so they go out without waiting for the poll.
    pub wake: Arc<Notify>,
    pub metrics: Arc<Metrics>,
    /// This process's name on its claims.
    pub instance: Arc<str>,
    client: reqwest::Client,
}

impl crate::context::AppState {
    /// A webhook worker over this state's database.
    pub fn webhook_worker(&self) -> anyhow::Result<WebhookWorker> {
        WebhookWorker::new(
            self.db.clone(),
            self.settings.clone(),
            self.wake_webhooks.clone(),
            self.metrics.clone(),
            self.instance_id.clone(),
        )
    }
}

impl WebhookWorker {
    /// A worker with its own HTTP client (connection pool, `WEBHOOK_TIMEOUT_SECONDS` per
    /// request, no redirects).
    pub fn new(
        db: Db,
        settings: Arc<Settings>,
        wake: Arc<Notify>,
        metrics: Arc<Metrics>,
        instance: Arc<str>,
    ) -> anyhow::Result<Self> {
        let timeout = Duration::from_secs(settings.webhook_timeout_seconds);
        let mut headers = HeaderMap::new();
        headers.insert(USER_AGENT, HeaderValue::from_static("Closeloop-Webhooks/1"));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(guard::GuardedResolver {
                allow_private: settings.webhook_allow_private,
            }))
            .default_headers(headers)
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the webhook HTTP client: {e}"))?;
        Ok(WebhookWorker {
            db,
            settings,
            wake,
            metrics,
            instance,
            client,
        })
    }

    /// How long a claim lasts without a heartbeat.
    fn lease(&self) -> TimeDelta {
        TimeDelta::seconds(self.settings.webhook_lease_seconds as i64)
    }

    /// Claims and sends one batch of due deliveries. Returns how many were handled.
    pub async fn run_once(&self) -> anyhow::Result<usize> {
        let lease = self.lease();
        let me = self.instance.clone();
        let claimed = self
            .db
            .write(move |conn| store::claim_due(conn, BATCH, lease, &me))
            .await?;
        let handled = claimed.len();
        if handled == 0 {
            return Ok(0);
        }
        let held = Held::new(claimed.iter().map(|c| c.delivery.id.clone()));
        let _heartbeat =
            self.db
                .keep_claims(self.instance.clone(), held.clone(), lease, store::extend);
        stream::iter(claimed)
            .for_each_concurrent(CONCURRENCY, |c| {
                let held = held.clone();
                async move {
                    let (attempt, outcome) =
                        match catch_panic(self.deliver(&c)).await {
                            Ok(done) => done,
                            Err(panic) => {
                                let text = panic;
                                tracing::error!(delivery = %c.delivery.id, panic = %text, "webhook delivery panicked; marked failed");
                                (
                                    None,
                                    Outcome::Failed {
                                        error: format!("internal error: {text}"),
                                    },
                                )
                            }
                        };
                    let id = c.delivery.id.clone();
                    self.record(c, attempt, outcome).await;
                    held.release(&id);
                    self.metrics.webhook_worker.beat();
                }
            })
            .await;
        Ok(handled)
    }

    /// Records one delivery's attempt and outcome at once (a few tries).
    async fn record(&self, c: Claimed, attempt: Option<Attempt>, outcome: Outcome) {
        let word = match &outcome {
            Outcome::Delivered => "delivered",
            Outcome::Retry { .. } => "retry",
            Outcome::Failed { .. } => "failed",
            Outcome::Gone { .. } => "gone",
        };
        self.metrics.webhook_delivery(word);
        if let Outcome::Failed { error } | Outcome::Gone { error } = &outcome {
            tracing::warn!(delivery = %c.delivery.id, target = %target_name(&c), attempts = c.delivery.attempts, error = %error, "webhook delivery failed for good");
        }
        let job = Arc::new((c, attempt, outcome));
        let disable_after = TimeDelta::hours(self.settings.webhook_disable_after_hours as i64);
        for n in 0..5u32 {
            let (me, job2, settings) = (self.instance.clone(), job.clone(), self.settings.clone());
            match self
                .db
                // Grouped with the other outcomes and answers of the moment (group commit).
                .write_grouped(job.0.delivery.id.clone(), move |conn, _| {
                    let disabled = store::record_one(
                        conn,
                        &me,
                        &job2.0,
                        job2.1.as_ref(),
                        &job2.2,
                        disable_after,
                    )?;
                    if let Some(hook) = &disabled {
                        super::queue_disabled_email(conn, hook, &settings)?;
                    }
                    Ok(disabled)
                })
                .await
            {
                Ok(disabled) => {
                    if let Some(hook) = disabled {
                        tracing::warn!(webhook = %hook.id, reason = hook.disabled_reason.as_deref().unwrap_or_default(), "webhook disabled; the admins are emailed");
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!(delivery = %job.0.delivery.id, error = %e, "cannot record the webhook delivery; trying again");
                    tokio::time::sleep(Duration::from_millis(200 << n)).await;
                }
            }
        }
        tracing::error!(delivery = %job.0.delivery.id, "could not record the webhook delivery; it is tried again when its lease runs out");
    }

    async fn deliver(&self, c: &Claimed) -> (Option<Attempt>, Outcome) {
        let failed = |error: &str| {
            (
                None,
                Outcome::Failed {
                    error: error.into(),
                },
            )
        };
        let attempted_at = now();
        let timestamp = attempted_at.and_utc().timestamp();
        let (url, body, signature) = match &c.target {
            Target::Webhook(hook) => {
                if !hook.live() {
                    return failed(if hook.deleted_at.is_some() {
                        super::DELETED
                    } else {
                        super::INACTIVE
                    });
                }
                let body = c.delivery.payload.clone().into_bytes();
                let secrets = hook.signing_secrets(attempted_at);
                let Some(signature) =
                    super::signature_header(&secrets, &c.delivery.id, timestamp, &body)
                else {
                    return failed("the webhook's secret is not a whsec_ secret; rotate it");
                };
                (hook.url.clone(), body, Some(signature))
            }
            Target::Slack { url, followup_id } => {
                let (id, task) = (c.delivery.id.clone(), followup_id.clone());
                let public_url = self.settings.public_url.to_string();
                match self
                    .db
                    .write(move |conn| super::slack::prepare(conn, &id, &task, &public_url))
                    .await
                {
                    Ok(Some(body)) => (url.clone(), body.into_bytes(), None),
                    Ok(None) => return failed(super::slack::CANCELLED),
                    Err(e) => {
                        // The task cannot be read now (the database is busy): try again.
                        return (
                            None,
                            Outcome::Retry {
                                at: now()
                                    + backoff(
                                        self.settings.webhook_retry_base_seconds,
                                        c.delivery.attempts,
                                    ),
                                error: format!("cannot build the Slack message: {e}"),
                            },
                        );
                    }
                }
            }
        };
        let started = Instant::now();
        // Hosts written as addresses are not resolved: the guard checks them here. Names go
        // through the client's `GuardedResolver`, which checks what it connects to.
        let literal = match url::Url::parse(&url) {
            Ok(u)
                if !self.settings.webhook_allow_private
                    && matches!(u.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_))) =>
            {
                guard::check_literal(&u).err()
            }
            _ => None,
        };
        let sent = match literal {
            Some(why) => Err(SendError::Refused(guard::Refused(why))),
            None => {
                let mut req = self.client.post(&url).body(body);
                if let Some(signature) = signature {
                    req = req
                        .header("webhook-id", &c.delivery.id)
                        .header("webhook-timestamp", timestamp.to_string())
                        .header("webhook-signature", signature);
                }
                req.send().await.map_err(|e| match guard::refused_in(&e) {
                    Some(r) => SendError::Refused(r),
                    None => SendError::Http(e),
                })
            }
        };
        let mut retry_after = None;
        let mut refused = false;
        let (status_code, error, transient) = match sent {
            Ok(mut res) => {
                let status = res.status();
                if status.is_success() {
                    (Some(status.as_u16() as i32), None, false)
                } else {
                    retry_after = res
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
                    let snippet = read_snippet(&mut res).await;
                    let mut error = format!("HTTP {status}");
                    if status.is_redirection() {
                        error.push_str(" (redirects are not followed)");
                    }
                    if !snippet.is_empty() {
                        error.push_str(": ");
                        error.push_str(&snippet);
                    }
                    let transient = status.is_server_error()
                        || status.as_u16() == 429
                        || status.as_u16() == 408;
                    (Some(status.as_u16() as i32), Some(error), transient)
                }
            }
            Err(SendError::Refused(r)) => {
                refused = true;
                (None, Some(r.to_string()), false)
            }
            Err(SendError::Http(e)) => (None, Some(describe(&e, &self.settings)), true),
        };
        let attempt = Attempt {
            attempted_at,
            status_code,
            error: error.clone(),
            duration_ms: started.elapsed().as_millis().min(i32::MAX as u128) as i32,
        };
        let outcome = match error {
            None => Outcome::Delivered,
            // A Slack URL that is gone fails the message; there is no webhook to disable.
            Some(error) if status_code == Some(410) && c.webhook().is_some() => {
                Outcome::Gone { error }
            }
            Some(error) if !transient || refused => Outcome::Failed { error },
            Some(error) if c.delivery.attempts >= self.settings.webhook_max_attempts => {
                Outcome::Failed {
                    error: format!("gave up after {} attempts: {error}", c.delivery.attempts),
                }
            }
            Some(error) => {
                let delay = retry_after.unwrap_or_else(|| {
                    backoff(
                        self.settings.webhook_retry_base_seconds,
                        c.delivery.attempts,
                    )
                });
                tracing::warn!(delivery = %c.delivery.id, target = %target_name(c), attempt = c.delivery.attempts, error = %error, "webhook delivery failed, will retry");
                Outcome::Retry {
                    at: now() + delay,
                    error,
                }
            }
        };
        (Some(attempt), outcome)
    }

    /// Runs until `shutdown` turns true: a batch whenever something is due, else waits for
    /// new work or the poll interval. A batch in flight is finished first.
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let metrics = self.metrics.clone();
        let _running = metrics.webhook_worker.start();
        tracing::info!(instance = %self.instance, "webhook worker started");
        let me = self.instance.clone();
        match self
            .db
            .write(move |conn| store::release_claims_of(conn, &me))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                deliveries = n,
                "took back the claims of this instance's previous run"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot take back this instance's previous claims")
            }
        }
        while !*shutdown.borrow() {
            metrics.webhook_worker.beat();
            let handled = match catch_panic(self.run_once()).await {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "webhook batch failed; retrying");
                    0
                }
                Err(panic) => {
                    tracing::error!(panic = %panic, "webhook batch panicked; going on");
                    0
                }
            };
            if handled > 0 {
                continue;
            }
            tokio::select! {
                _ = shutdown.changed() => {}
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(self.settings.dispatch_interval_ms)) => {}
            }
        }
        tracing::info!("webhook worker stopped");
    }
}

/// Why a request was not answered: the SSRF guard refused it, or HTTP failed.
enum SendError {
    Refused(guard::Refused),
    Http(reqwest::Error),
}

/// A delivery's target for the log: the webhook id, or `slack`.
fn target_name(c: &Claimed) -> &str {
    match &c.target {
        Target::Webhook(w) => &w.id,
        Target::Slack { .. } => "slack",
    }
}

/// The wait a `Retry-After` value asks for: delay-seconds or an HTTP date (RFC 9110), at
/// `now`. A date in the past is no wait; anything over [`RETRY_AFTER_MAX_SECS`] is cut to it;
/// an unreadable value is `None` (the usual backoff applies).
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<TimeDelta> {
    let value = value.trim();
    let secs = if let Ok(secs) = value.parse::<u64>() {
        secs.min(RETRY_AFTER_MAX_SECS as u64) as i64
    } else {
        let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
        (at.with_timezone(&chrono::Utc) - now).num_seconds()
    };
    Some(TimeDelta::seconds(secs.clamp(0, RETRY_AFTER_MAX_SECS)))
}

/// The start of an error answer's body, as text on one line.
async fn read_snippet(res: &mut reqwest::Response) -> String {
    let mut buf = Vec::new();
    while buf.len() < ERROR_BODY_BYTES {
        match res.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&buf[..buf.len().min(ERROR_BODY_BYTES)]).into_owned();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A transport error in a few words, without the URL (which may hold credentials).
fn describe(e: &reqwest::Error, settings: &Settings) -> String {
    if e.is_timeout() {
        return format!(
            "timed out after {} s (WEBHOOK_TIMEOUT_SECONDS)",
            settings.webhook_timeout_seconds
        );
    }
    let kind = if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut detail = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail.push(s.to_string());
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {}", detail.join(": "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates_and_is_capped() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-26T08:49:37Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let secs = |v: &str| parse_retry_after(v, now).map(|d| d.num_seconds());
        assert_eq!(secs("120"), Some(120));
        assert_eq!(secs(" 0 "), Some(0));
        assert_eq!(secs("Thu, 26 Nov 2026 08:59:37 GMT"), Some(600));
        assert_eq!(secs("Thu, 26 Nov 2026 08:00:00 GMT"), Some(0), "past: now");
        assert_eq!(secs("999999999"), Some(RETRY_AFTER_MAX_SECS));
        assert_eq!(
            secs("Sat, 26 Dec 2026 08:49:37 GMT"),
            Some(RETRY_AFTER_MAX_SECS)
        );
        assert_eq!(secs("-5"), None);
        assert_eq!(secs("soon"), None);
        assert_eq!(secs(""), None);
    }
}
