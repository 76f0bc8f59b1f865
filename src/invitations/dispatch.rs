//! The send queue worker.
//!
//! Invitations and the outbox of other emails are durable queues in the database. A worker
//! claims due rows in batches, marked with its instance id and a lease (`EMAIL_LEASE_SECONDS`)
//! that a heartbeat extends while the batch is worked on, so a live worker never loses its
//! rows to another replica, and a dead one's rows are free one lease after its last beat. It
//! re-checks suppression and throttling, sends concurrently over the transport's pool and
//! records each outcome as soon as it is known, in its own transaction: `sent`, `failed` (a
//! permanent 5xx reply, a message that cannot be built, or attempts exhausted),
//! `suppressed`, or back to `scheduled` with exponential backoff after a transient error. A
//! crash therefore repeats at most the messages in flight (`EMAIL_CONCURRENCY`), and a
//! restarted process with the same instance id takes its old claims back at once.
//!
//! A panic while building or sending one message is caught: that message is `failed` with
//! the panic's text and the worker goes on.

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
use crate::store::emails::EmailOutcome;
use crate::store::invitations::{self, Claimed, Outcome};
use crate::store::models::EmailRow;
use crate::store::{Db, Held};
use crate::telemetry::{catch_panic, Metrics};

/// How long a paused survey's invitations wait before they are looked at again.
const PAUSE_RECHECK: TimeDelta = TimeDelta::minutes(1);
/// How long an invitation waits while an older one to the same contact is being sent.
const SIBLING_RECHECK: TimeDelta = TimeDelta::seconds(10);
/// Tries to record one outcome before leaving the row to its lease.
const RECORD_TRIES: u32 = 5;

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
    /// The last day (UTC) for which the housekeeping job was handled by this process.
    pub housekeeping_checked: Arc<std::sync::Mutex<String>>,
    /// This process's name on its claims.
    pub instance: Arc<str>,
    /// When this process last looked for due re-surveys.
    pub resurvey_checked: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
    /// When this process last looked for tasks that became overdue.
    pub overdue_checked: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
    /// Woken when webhook deliveries were queued (`invitation.failed`, `followup.overdue`).
    pub wake_webhooks: Arc<Notify>,
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
            housekeeping_checked: Default::default(),
            instance: self.instance_id.clone(),
            resurvey_checked: Default::default(),
            overdue_checked: Default::default(),
            wake_webhooks: self.wake_webhooks.clone(),
        }
    }
}

impl Dispatcher {
    fn lease(&self) -> TimeDelta {
        TimeDelta::seconds(self.settings.email_lease_seconds as i64)
    }

    /// Claims and sends one batch of due invitations and reminders. Returns how many were
    /// handled (0 when nothing was due).
    pub async fn run_once(&self) -> anyhow::Result<usize> {
        let batch = self.settings.email_batch_size;
        let lease = self.lease();
        let me = self.instance.clone();
        let claimed = self
            .db
            .write(move |conn| invitations::claim_due(conn, batch, lease, &me))
            .await?;
        let mut handled = claimed.len();
        if !claimed.is_empty() {
            if let Err(e) = self.process(claimed).await {
                // Nothing of the batch was sent (only the checks before sending can fail):
                // hand the claims back now rather than when their lease runs out.
                self.hand_back(false).await;
                return Err(e);
            }
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
        let me = self.instance.clone();
        let emails = self
            .db
            .write(move |conn| crate::store::emails::claim_due(conn, batch, lease, &me))
            .await?;
        handled += emails.len();
        if !emails.is_empty() {
            if let Err(e) = self.send_emails(emails).await {
                self.hand_back(true).await;
                return Err(e);
            }
        }
        if self.digest_due().await? {
            handled += 1;
        }
        self.housekeeping_due();
        handled += self.resurveys_due().await?;
        self.overdue_due().await?;
        Ok(handled)
    }

    /// Queues `followup.overdue` for tasks that passed their due time (at most every
    /// `FOLLOWUP_OVERDUE_CHECK_SECONDS`; see `webhooks::queue_overdue`). Not counted as
    /// handled work: a scan that finds tasks sends no email.
    async fn overdue_due(&self) -> anyhow::Result<usize> {
        let every = Duration::from_secs(self.settings.followup_overdue_check_seconds);
        {
            let Ok(mut last) = self.overdue_checked.lock() else {
                return Ok(0);
            };
            if last.is_some_and(|at| at.elapsed() < every) {
                return Ok(0);
            }
            *last = Some(std::time::Instant::now());
        }
        let public_url = crate::followups::Rules::from_settings(&self.settings).public_url;
        let n = self
            .db
            .write(move |conn| crate::webhooks::queue_overdue(conn, &public_url, now()))
            .await?;
        if n > 0 {
            self.wake_webhooks.notify_one();
        }
        Ok(n)
    }

    /// Makes the re-survey invitations that are due (at most every `RESURVEY_CHECK_SECONDS`);
    /// returns how many emails were queued (they go out in the next round).
    async fn resurveys_due(&self) -> anyhow::Result<usize> {
        let every = Duration::from_secs(self.settings.resurvey_check_seconds);
        {
            let Ok(mut last) = self.resurvey_checked.lock() else {
                return Ok(0);
            };
            if last.is_some_and(|at| at.elapsed() < every) {
                return Ok(0);
            }
            *last = Some(std::time::Instant::now());
        }
        Ok(self
            .db
            .write(|conn| super::resurvey::run_due(conn, now()))
            .await?)
    }

    /// Starts the daily housekeeping job (`RETENTION_DAYS`) in a task of its own when this
    /// process has not yet looked at it today, so a long first prune never holds up the
    /// emails; across replicas it runs once a day (see [`crate::housekeeping`]).
    fn housekeeping_due(&self) {
        let days = self.settings.retention_days;
        let today = now().format("%Y-%m-%d").to_string();
        {
            let Ok(mut checked) = self.housekeeping_checked.lock() else {
                return;
            };
            if days == 0 || *checked == today {
                return;
            }
            *checked = today;
        }
        let (db, metrics, checked) = (
            self.db.clone(),
            self.metrics.clone(),
            self.housekeeping_checked.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = crate::housekeeping::run_daily(&db, days, &metrics).await {
                tracing::warn!(error = %e, "housekeeping failed; trying again in the next round");
                // Today's claim may not have been made: look again later (a claim that was
                // made stays, and the rest is pruned tomorrow).
                if let Ok(mut c) = checked.lock() {
                    c.clear();
                }
            }
        });
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

    /// Sends queued alerts, replies and digests, recording each as soon as it is done.
    async fn send_emails(&self, rows: Vec<EmailRow>) -> anyhow::Result<()> {
        let held = Held::new(rows.iter().map(|r| r.id.clone()));
        let _heartbeat = self.db.keep_claims(
            self.instance.clone(),
            held.clone(),
            self.lease(),
            crate::store::emails::extend,
        );
        // Alerts are written when they go out, from the task as it stands then.
        let rules = crate::followups::Rules::from_settings(&self.settings);
        let rows = self
            .db
            .write(move |conn| Ok(crate::followups::prepare_alerts(conn, &rules, rows.clone())))
            .await?;
        let concurrency = self.settings.email_concurrency;
        stream::iter(rows)
            .for_each_concurrent(concurrency, |(row, cancelled)| {
                let held = held.clone();
                async move {
                    let outcome = match cancelled {
                        Some(reason) => EmailOutcome::Cancelled { reason },
                        None => self.send_outbox_email(&row).await,
                    };
                    self.record_email(&row.id, outcome).await;
                    held.release(&row.id);
                    self.metrics.email_worker.beat();
                }
            })
            .await;
        Ok(())
    }

    /// Builds and sends one outbox email; a panic on the way makes it `failed`.
    async fn send_outbox_email(&self, row: &EmailRow) -> EmailOutcome {
        let attempt = async {
            match crate::email::message::outbox_email(row, &self.settings) {
                Err(e) => {
                    tracing::warn!(email = %row.id, error = %e, "cannot build the email; marked failed");
                    EmailOutcome::Failed { error: e }
                }
                Ok((message, message_id)) => match self.mailer.send(&message, &row.id).await {
                    Ok(()) => EmailOutcome::Sent { message_id },
                    Err(e) if e.permanent || row.attempts >= self.settings.email_max_attempts => {
                        tracing::warn!(email = %row.id, kind = %row.kind, attempts = row.attempts, error = %e.message, "giving up on email");
                        EmailOutcome::Failed { error: e.message }
                    }
                    Err(e) => EmailOutcome::Retry {
                        at: now() + backoff(self.settings.email_retry_base_seconds, row.attempts),
                        error: e.message,
                    },
                },
            }
        };
        let outcome = match catch_panic(attempt).await {
            Ok(o) => o,
            Err(panic) => {
                let text = panic;
                self.metrics.send_panicked();
                tracing::error!(email = %row.id, panic = %text, "building or sending the email panicked; marked failed");
                EmailOutcome::Failed {
                    error: format!("could not build or send the message: {text}"),
                }
            }
        };
        match &outcome {
            EmailOutcome::Sent { .. } => self.metrics.email_sent(&row.kind),
            EmailOutcome::Failed { .. } => self.metrics.email_failed(&row.kind),
            _ => {}
        }
        outcome
    }

    async fn record_email(&self, id: &str, outcome: EmailOutcome) {
        let job = Arc::new((id.to_string(), outcome));
        for attempt in 0..RECORD_TRIES {
            let (me, job2) = (self.instance.clone(), job.clone());
            match self
                .db
                .write_grouped(job.0.clone(), move |conn, _| {
                    crate::store::emails::record_one(conn, &me, &job2.0, &job2.1)
                })
                .await
            {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(email = %id, error = %e, "cannot record the email's outcome; trying again");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
        tracing::error!(email = %id, "could not record the email's outcome; it goes out again when its lease runs out");
    }

    async fn process(&self, claimed: Vec<Claimed>) -> anyhow::Result<()> {
        let held = Held::new(
            claimed
                .iter()
                .filter(|c| !c.reminder)
                .map(|c| c.invitation.id.clone()),
        );
        let _heartbeat = self.db.keep_claims(
            self.instance.clone(),
            held.clone(),
            self.lease(),
            invitations::extend,
        );
        // Re-check suppression against the database as it is now.
        let checked = self
            .db
            .run(move |conn| {
                let t = now();
                let mut out = Vec::with_capacity(claimed.len());
                for c in &claimed {
                    let stop = pre_send_check(conn, c, t)?;
                    out.push((c.clone(), stop));
                }
                Ok(out)
            })
            .await?;
        let concurrency = self.settings.email_concurrency;
        stream::iter(checked)
            .for_each_concurrent(concurrency, |(c, stop)| {
                let held = held.clone();
                async move {
                    let outcome = match stop {
                        Some(outcome) => outcome,
                        None => self.send_one_guarded(&c).await,
                    };
                    match &outcome {
                        Outcome::Sent { .. } => self.metrics.email_sent("invitation"),
                        Outcome::ReminderSent => self.metrics.email_sent("reminder"),
                        Outcome::Stopped {
                            status: "failed", ..
                        } => self.metrics.email_failed("invitation"),
                        Outcome::ReminderFailed { .. } => self.metrics.email_failed("reminder"),
                        _ => {}
                    }
                    let id = c.invitation.id.clone();
                    self.record(c, outcome).await;
                    held.release(&id);
                    self.metrics.email_worker.beat();
                }
            })
            .await;
        Ok(())
    }

    /// Records one outcome at once (a few tries); when the database stays unreachable the
    /// row is left to its lease and sent again later.
    async fn record(&self, c: Claimed, outcome: Outcome) {
        let job = Arc::new((c, outcome));
        for attempt in 0..RECORD_TRIES {
            let (me, job2) = (self.instance.clone(), job.clone());
            match self
                .db
                // Grouped with the other outcomes (and answers) of the moment into one
                // transaction: one commit for many messages, in the same few milliseconds.
                .write_grouped(job.0.invitation.id.clone(), move |conn, tally| {
                    let moved = invitations::record_one(conn, &me, &job2.0, &job2.1, tally)?;
                    // The outbox rule: the event commits with the failure it reports.
                    if let (
                        true,
                        Outcome::Stopped {
                            status: "failed",
                            reason,
                        },
                    ) = (moved, &job2.1)
                    {
                        let inv = &job2.0.invitation;
                        return Ok(
                            crate::webhooks::enqueue_invitation_failed(conn, inv, reason)? > 0,
                        );
                    }
                    Ok(false)
                })
                .await
            {
                Ok(queued) => {
                    if queued {
                        self.wake_webhooks.notify_one();
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!(invitation = %job.0.invitation.id, error = %e, "cannot record the send outcome; trying again");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
        tracing::error!(invitation = %job.0.invitation.id, "could not record the send outcome; it goes out again when its lease runs out");
    }

    /// `send_one`, with a panic while building or sending turned into a `failed` outcome.
    async fn send_one_guarded(&self, c: &Claimed) -> Outcome {
        match catch_panic(self.send_one(c)).await {
            Ok(outcome) => outcome,
            Err(panic) => {
                let text = panic;
                self.metrics.send_panicked();
                tracing::error!(invitation = %c.invitation.id, panic = %text, "building or sending the survey email panicked; marked failed");
                let error = format!("could not build or send the message: {text}");
                if c.reminder {
                    Outcome::ReminderFailed { error }
                } else {
                    Outcome::Stopped {
                        status: "failed",
                        reason: error,
                    }
                }
            }
        }
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
                tracing::warn!(invitation = %c.invitation.id, error = %e, "cannot build the survey email; marked failed");
                return if c.reminder {
                    Outcome::ReminderFailed { error: e }
                } else {
                    Outcome::Stopped {
                        status: "failed",
                        reason: e,
                    }
                };
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
            Err(e) if e.permanent => {
                tracing::warn!(invitation = %c.invitation.id, attempt = c.invitation.attempts, error = %e.message, "permanent send error; invitation failed");
                Outcome::Stopped {
                    status: "failed",
                    reason: e.message,
                }
            }
            Err(e) if c.invitation.attempts >= self.settings.email_max_attempts => {
                tracing::warn!(invitation = %c.invitation.id, attempts = c.invitation.attempts, error = %e.message, "giving up on invitation after its last attempt; invitation failed");
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

    /// Hands this instance's claims on invitations (or on outbox emails) back to the queue,
    /// after a batch failed before sending anything. Batches run one at a time, so no other
    /// claim of this instance on that table is in flight.
    async fn hand_back(&self, emails: bool) {
        let me = self.instance.clone();
        let _ = self
            .db
            .write(move |conn| {
                if emails {
                    crate::store::emails::release_claims_of(conn, &me)
                } else {
                    invitations::release_claims_of(conn, &me)
                }
            })
            .await;
    }

    /// Takes back at once the claims a previous run of this instance left behind.
    async fn take_back_own_claims(&self) {
        let me = self.instance.clone();
        match self
            .db
            .write(move |conn| {
                Ok(invitations::release_claims_of(conn, &me)?
                    + crate::store::emails::release_claims_of(conn, &me)?)
            })
            .await
        {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(instance = %self.instance, rows = n, "took back the claims of this instance's previous run")
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot take back this instance's previous claims; they free up when their lease runs out")
            }
        }
    }

    /// Runs until `shutdown` turns true: a batch whenever something is due, else waits for
    /// new work or the poll interval. A batch in flight is finished first. A panic in a batch
    /// is caught and logged, and the loop goes on.
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let metrics = self.metrics.clone();
        let _running = metrics.email_worker.start();
        tracing::info!(transport = %self.mailer.describe(), instance = %self.instance, "email dispatcher started");
        self.take_back_own_claims().await;
        while !*shutdown.borrow() {
            metrics.email_worker.beat();
            let handled = match catch_panic(self.run_once()).await {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "dispatcher batch failed; retrying");
                    0
                }
                Err(panic) => {
                    tracing::error!(panic = %panic, "dispatcher batch panicked; going on");
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
    if c.survey.throttle_days > 0 && invitations::older_one_in_flight(conn, c, t)? {
        // Whether this one is throttled depends on whether that one goes out.
        return Ok(Some(Outcome::Hold {
            until: t + SIBLING_RECHECK,
        }));
    }
    Ok(None)
}
