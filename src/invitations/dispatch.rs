//! The send queue worker.
//!
//! Invitations are a durable queue in the database. A worker claims due ones in batches
//! (with a lease, so a crashed worker's claims are picked up again), re-checks suppression
//! and throttling, sends concurrently over the transport's pool, and records each outcome:
//! `sent`, `failed` (a permanent 5xx reply, or attempts exhausted), `suppressed`, or back to
//! `scheduled` with exponential backoff after a transient error.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use futures_util::stream::{self, StreamExt};
use tokio::sync::Notify;

use crate::config::Settings;
use crate::domain::backoff;
use crate::domain::now;
use crate::email::message::{survey_email, SurveyEmail};
use crate::email::Mailer;
use crate::store::invitations::{self, Claimed, Outcome};
use crate::store::Db;
use crate::telemetry::Metrics;

/// How long a claim lasts before another worker may take the invitation over.
const LEASE: TimeDelta = TimeDelta::minutes(5);
/// How long a paused survey's invitations wait before they are looked at again.
const PAUSE_RECHECK: TimeDelta = TimeDelta::minutes(1);

#[derive(Clone)]
pub struct Dispatcher {
    pub db: Db,
    pub mailer: Mailer,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    /// Woken when new invitations are queued, so they go out without waiting for the poll.
    pub wake: Arc<Notify>,
    /// The last day (UTC) for which the overdue digest was handled by this process.
    pub digest_checked: Arc<std::sync::Mutex<String>>,
}

impl crate::context::AppState {
    /// A dispatcher over this state's database and transport.
    pub fn dispatcher(&self) -> Dispatcher {
        Dispatcher {
            db: self.db.clone(),
            mailer: self.mailer.clone(),
            settings: self.settings.clone(),
            metrics: self.metrics.clone(),
            wake: self.wake_dispatcher.clone(),
            digest_checked: Default::default(),
        }
    }
}

impl Dispatcher {
    /// Claims and sends one batch of due invitations and reminders. Returns how many were
    /// handled (0 when nothing was due).
    pub async fn run_once(&self) -> anyhow::Result<usize> {
        let batch = self.settings.email_batch_size;
        let claimed = self
            .db
            .write(move |conn| invitations::claim_due(conn, batch, LEASE))
            .await?;
        let mut handled = claimed.len();
        if !claimed.is_empty() {
            self.process(claimed).await?;
        }
        let reminders = match self
            .db
            .write(move |conn| invitations::claim_reminders(conn, batch))
            .await
        {
            Ok(r) => r,
            Err(crate::error::AppError::Conflict { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        handled += reminders.len();
        if !reminders.is_empty() {
            self.process(reminders).await?;
        }
        let emails = self
            .db
            .write(move |conn| crate::store::emails::claim_due(conn, batch, LEASE))
            .await?;
        handled += emails.len();
        if !emails.is_empty() {
            self.send_emails(emails).await?;
        }
        if self.digest_due().await? {
            handled += 1;
        }
        Ok(handled)
    }

    /// Queues the daily overdue digest when its hour has come (once a day across replicas).
    async fn digest_due(&self) -> anyhow::Result<bool> {
        let today = now().format("%Y-%m-%d").to_string();
        if self.settings.team_email.is_none()
            || self
                .digest_checked
                .lock()
                .map(|d| *d == today)
                .unwrap_or(false)
        {
            return Ok(false);
        }
        let rules = crate::followups::Rules::from_settings(&self.settings);
        let hour = self.settings.digest_hour_utc;
        let queued = self
            .db
            .write(move |conn| crate::followups::daily_digest(conn, &rules, hour))
            .await?;
        if chrono::Timelike::hour(&now()) >= hour {
            if let Ok(mut d) = self.digest_checked.lock() {
                *d = today;
            }
        }
        Ok(queued)
    }

    /// Sends queued alerts, replies and digests.
    async fn send_emails(&self, rows: Vec<crate::store::models::EmailRow>) -> anyhow::Result<()> {
        use crate::store::emails::EmailOutcome;
        let concurrency = self.settings.email_concurrency;
        let outcomes: Vec<(String, EmailOutcome)> = stream::iter(rows)
            .map(|row| async move {
                let outcome = match crate::email::message::outbox_email(&row, &self.settings) {
                    Err(e) => EmailOutcome::Failed { error: e },
                    Ok((message, message_id)) => match self.mailer.send(&message, &row.id).await {
                        Ok(()) => {
                            self.metrics.emails_sent.fetch_add(1, Ordering::Relaxed);
                            EmailOutcome::Sent { message_id }
                        }
                        Err(e)
                            if e.permanent || row.attempts >= self.settings.email_max_attempts =>
                        {
                            self.metrics.emails_failed.fetch_add(1, Ordering::Relaxed);
                            EmailOutcome::Failed { error: e.message }
                        }
                        Err(e) => EmailOutcome::Retry {
                            at: now()
                                + backoff(self.settings.email_retry_base_seconds, row.attempts),
                            error: e.message,
                        },
                    },
                };
                (row.id, outcome)
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        self.db
            .write(move |conn| crate::store::emails::record(conn, &outcomes))
            .await?;
        Ok(())
    }

    async fn process(&self, claimed: Vec<Claimed>) -> anyhow::Result<()> {
        // Re-check suppression against the database as it is now.
        let checked = {
            let claimed = claimed.clone();
            self.db
                .run(move |conn| {
                    let t = now();
                    let mut out = Vec::with_capacity(claimed.len());
                    for c in claimed {
                        let stop = pre_send_check(conn, &c, t)?;
                        out.push((c, stop));
                    }
                    Ok(out)
                })
                .await?
        };
        let concurrency = self.settings.email_concurrency;
        let outcomes: Vec<(Claimed, Outcome)> = stream::iter(checked)
            .map(|(c, stop)| async move {
                let outcome = match stop {
                    Some(outcome) => outcome,
                    None => self.send_one(&c).await,
                };
                (c, outcome)
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        for (_, o) in &outcomes {
            match o {
                Outcome::Sent { .. } | Outcome::ReminderSent => {
                    self.metrics.emails_sent.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::Stopped {
                    status: "failed", ..
                }
                | Outcome::ReminderFailed { .. } => {
                    self.metrics.emails_failed.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
        self.db
            .write(move |conn| invitations::record(conn, &outcomes))
            .await?;
        Ok(())
    }

    async fn send_one(&self, c: &Claimed) -> Outcome {
        let Some(to) = c.contact.email.as_deref() else {
            return Outcome::Stopped {
                status: "cancelled",
                reason: "no_email".into(),
            };
        };
        let email = SurveyEmail {
            survey: &c.survey,
            invitation_id: &c.invitation.id,
            token: &c.invitation.token,
            to_email: to,
            to_name: c.contact.name.as_deref(),
            reminder: c.reminder,
        };
        let (message, message_id) = match survey_email(&email, &self.settings) {
            Ok(m) => m,
            Err(e) => {
                return if c.reminder {
                    Outcome::ReminderFailed { error: e }
                } else {
                    Outcome::Stopped {
                        status: "failed",
                        reason: e,
                    }
                }
            }
        };
        let stem = format!(
            "{}{}",
            c.invitation.id,
            if c.reminder { "-reminder" } else { "" }
        );
        match self.mailer.send(&message, &stem).await {
            Ok(()) if c.reminder => Outcome::ReminderSent,
            Ok(()) => Outcome::Sent { message_id },
            Err(e) if c.reminder => Outcome::ReminderFailed { error: e.message },
            Err(e) if e.permanent => Outcome::Stopped {
                status: "failed",
                reason: e.message,
            },
            Err(e) if c.invitation.attempts >= self.settings.email_max_attempts => {
                Outcome::Stopped {
                    status: "failed",
                    reason: format!(
                        "gave up after {} attempts: {}",
                        c.invitation.attempts, e.message
                    ),
                }
            }
            Err(e) => {
                let delay = backoff(
                    self.settings.email_retry_base_seconds,
                    c.invitation.attempts,
                );
                tracing::warn!(invitation = %c.invitation.id, attempt = c.invitation.attempts, error = %e.message, "transient send error, will retry");
                Outcome::Retry {
                    at: now() + delay,
                    error: e.message,
                }
            }
        }
    }

    /// Runs until `shutdown` turns true: a batch whenever something is due, else waits for
    /// new work or the poll interval. A batch in flight is finished first.
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        tracing::info!(transport = %self.mailer.describe(), "email dispatcher started");
        while !*shutdown.borrow() {
            let handled = match self.run_once().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "dispatcher batch failed; retrying");
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
        tracing::info!("email dispatcher stopped");
    }
}

/// What stops a claimed invitation before sending, if anything.
fn pre_send_check(
    conn: &mut crate::store::DbConnection,
    c: &Claimed,
    t: chrono::NaiveDateTime,
) -> Result<Option<Outcome>, crate::error::AppError> {
    if c.reminder {
        return Ok(None);
    }
    let stop = |status: &'static str, reason: &str| {
        Some(Outcome::Stopped {
            status,
            reason: reason.to_string(),
        })
    };
    if c.contact.erased_at.is_some() {
        return Ok(stop("cancelled", "contact_erased"));
    }
    if c.contact.unsubscribed_at.is_some() {
        return Ok(stop("suppressed", "unsubscribed"));
    }
    match c.survey.status.as_str() {
        "archived" => return Ok(stop("cancelled", "survey_archived")),
        "paused" => {
            return Ok(Some(Outcome::Hold {
                until: t + PAUSE_RECHECK,
            }))
        }
        _ => {}
    }
    if invitations::surveyed_elsewhere(conn, c, c.survey.throttle_days, t)? {
        return Ok(stop("suppressed", "throttled"));
    }
    Ok(None)
}
