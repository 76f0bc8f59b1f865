//! Inviting contacts to a survey (email or link), in one transaction per batch, with
//! idempotent retries; and the send queue worker (`dispatch`).

pub mod dispatch;
pub mod resurvey;

use chrono::{NaiveDateTime, TimeDelta};
use diesel::Connection;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::context::AppState;
use crate::domain::{link, new_id, new_secret, now, IdPrefix};
use crate::error::AppError;
use crate::store::contacts::ContactInput;
use crate::store::idempotency::{self, Stored};
use crate::store::invitations::{self as store_invitations, Channel};
use crate::store::models::{ContactRow, InvitationRow, SurveyRow};
use crate::store::DbConnection;

/// What became of one contact of the batch, in request order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InvitationItem {
    pub email: Option<String>,
    pub external_id: Option<String>,
    pub contact_id: Option<String>,
    pub invitation_id: Option<String>,
    /// `scheduled` (email queued), `sent` (link ready), `suppressed` (made but not sent:
    /// see `reason`) or `rejected` (nothing made: see `reason`).
    #[schema(example = "scheduled")]
    pub status: String,
    /// The personal survey link `{PUBLIC_URL}/s/{token}`.
    pub url: Option<String>,
    /// `unsubscribed`, `throttled`, `invalid_contact`, `duplicate_in_batch`,
    /// `contact_conflict`, `survey_archived`.
    pub reason: Option<String>,
    /// Details for a rejected item.
    pub message: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InvitationBatch {
    pub items: Vec<InvitationItem>,
    pub summary: BatchSummary,
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct BatchSummary {
    pub scheduled: usize,
    pub sent: usize,
    pub suppressed: usize,
    pub rejected: usize,
}

/// A checked batch of invitations.
pub struct InviteRequest {
    pub survey_id: String,
    pub channel: Channel,
    /// When to send (email); not before now.
    pub send_at: chrono::NaiveDateTime,
    /// Each contact, checked on its own: a bad one is rejected with a reason and a message,
    /// the others go ahead.
    pub inputs: Vec<Result<ContactInput, (&'static str, String)>>,
    /// The email and external id of each contact as given, for rejected items.
    pub displayed: Vec<(Option<String>, Option<String>)>,
    /// A digest of the request, to tell a retry from another request with the same key.
    pub request_hash: String,
    /// `(api key id, Idempotency-Key)`: a retry with the same key replays the first answer.
    pub idempotency: Option<(String, String)>,
    /// A one-time key (the workspace's invite preview): the batch is made once; a second
    /// request with the same key is a 409 `already_invited` and makes nothing.
    pub once: Option<String>,
}

/// The answer to a batch: new (the JSON body of an [`InvitationBatch`]), or the stored
/// answer of an earlier request with the same idempotency key and body (the same key with
/// another body is a 409 `idempotency_key_reused`).
pub enum Invited {
    Fresh(String),
    Replayed(Stored),
}

/// Invites a batch of contacts: upserts each contact, makes one invitation per contact
/// (suppressed when unsubscribed or throttled), and wakes the dispatcher when emails were
/// queued. 404 when there is no such survey; an archived survey rejects every item.
pub async fn invite(state: &AppState, request: InviteRequest) -> Result<Invited, AppError> {
    let base = state.settings.public_url.clone();
    let idem = request.idempotency.clone();
    let hash = request.request_hash.clone();
    let result = state
        .db
        .write(move |conn| {
            conn.transaction(|conn| {
                if let Some((key_id, k)) = &request.idempotency {
                    if let Some(stored) = idempotency::find(conn, key_id, k)? {
                        return Ok(Err(stored));
                    }
                }
                if let Some(key) = &request.once {
                    if !crate::store::jobs::claim_run(conn, ONCE_JOB, key, now())? {
                        return Err(AppError::conflict(
                            "already_invited",
                            "this batch was already confirmed; nothing was invited twice",
                        ));
                    }
                }
                let survey = crate::store::surveys::get(conn, &request.survey_id)?;
                let outcomes = if survey.status == "archived" {
                    request
                        .inputs
                        .iter()
                        .map(|_| ItemOutcome::Rejected {
                            reason: "survey_archived",
                            message: "the survey is archived".into(),
                        })
                        .collect()
                } else {
                    create_batch(
                        conn,
                        &survey,
                        &request.inputs,
                        request.channel,
                        request.send_at,
                    )?
                };
                let batch = to_batch(outcomes, &request.displayed, &base);
                let body = serde_json::to_string(&batch).map_err(AppError::internal)?;
                if let Some((key_id, k)) = &request.idempotency {
                    idempotency::save(conn, key_id, k, &request.request_hash, 200, &body)?;
                }
                Ok(Ok((body, batch.summary.scheduled)))
            })
        })
        .await;
    let stored = match result {
        Ok(Ok((body, scheduled))) => {
            if scheduled > 0 {
                state.wake_dispatcher.notify_one();
            }
            return Ok(Invited::Fresh(body));
        }
        Ok(Err(stored)) => stored,
        // A concurrent retry with the same key committed first: answer as it did.
        Err(AppError::Conflict {
            code: "conflict", ..
        }) if idem.is_some() => {
            let (key_id, k) = idem.unwrap_or_default();
            state
                .db
                .run(move |conn| idempotency::find(conn, &key_id, &k))
                .await?
                .ok_or_else(|| {
                    AppError::conflict(
                        "conflict",
                        "a concurrent request with this Idempotency-Key failed; retry",
                    )
                })?
        }
        Err(e) => return Err(e),
    };
    if stored.request_hash != hash {
        return Err(AppError::conflict(
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different request",
        ));
    }
    Ok(Invited::Replayed(stored))
}

/// The `job_runs` job under which the one-time keys of [`InviteRequest::once`] are kept.
const ONCE_JOB: &str = "invite_batch";

/// What [`invite`] would answer for `request`, with nothing made: the same rules run in a
/// transaction that is rolled back (contacts, invitations and counters alike).
pub async fn preview(
    state: &AppState,
    request: InviteRequest,
) -> Result<InvitationBatch, AppError> {
    let base = state.settings.public_url.clone();
    state
        .db
        .write(move |conn| {
            let mut outcomes = None;
            let rolled_back = conn.transaction::<(), DryRun, _>(|conn| {
                let survey = crate::store::surveys::get(conn, &request.survey_id)?;
                if survey.status == "archived" {
                    outcomes = Some(
                        request
                            .inputs
                            .iter()
                            .map(|_| ItemOutcome::Rejected {
                                reason: "survey_archived",
                                message: "the survey is archived".into(),
                            })
                            .collect(),
                    );
                } else {
                    outcomes = Some(create_batch(
                        conn,
                        &survey,
                        &request.inputs,
                        request.channel,
                        request.send_at,
                    )?);
                }
                Err(DryRun::Undo)
            });
            match (rolled_back, outcomes) {
                (Err(DryRun::Failed(e)), _) => Err(e),
                (_, Some(outcomes)) => Ok(to_batch(outcomes, &request.displayed, &base)),
                (_, None) => Err(AppError::internal(anyhow::anyhow!(
                    "dry run made no outcome"
                ))),
            }
        })
        .await
}

/// How the transaction of a dry run ends: always rolled back, failed or not.
enum DryRun {
    Undo,
    Failed(AppError),
}

impl From<AppError> for DryRun {
    fn from(e: AppError) -> Self {
        DryRun::Failed(e)
    }
}

impl From<diesel::result::Error> for DryRun {
    fn from(e: diesel::result::Error) -> Self {
        DryRun::Failed(e.into())
    }
}

fn to_batch(
    outcomes: Vec<ItemOutcome>,
    displayed: &[(Option<String>, Option<String>)],
    base: &url::Url,
) -> InvitationBatch {
    let mut summary = BatchSummary::default();
    let items = outcomes
        .into_iter()
        .zip(displayed)
        .map(|(outcome, (email, external_id))| match outcome {
            ItemOutcome::Created {
                invitation,
                contact,
            } => {
                match invitation.status.as_str() {
                    "scheduled" => summary.scheduled += 1,
                    "sent" => summary.sent += 1,
                    _ => summary.suppressed += 1,
                }
                InvitationItem {
                    email: contact.email,
                    external_id: contact.external_id,
                    contact_id: Some(contact.id),
                    url: (invitation.status != "suppressed")
                        .then(|| link(base, "s", &invitation.token)),
                    invitation_id: Some(invitation.id),
                    status: invitation.status,
                    reason: invitation.reason,
                    message: None,
                }
            }
            ItemOutcome::Rejected { reason, message } => {
                summary.rejected += 1;
                InvitationItem {
                    email: email.clone(),
                    external_id: external_id.clone(),
                    contact_id: None,
                    invitation_id: None,
                    status: "rejected".into(),
                    url: None,
                    reason: Some(reason.into()),
                    message: Some(message),
                }
            }
        })
        .collect();
    InvitationBatch { items, summary }
}

/// The outcome for one contact of a batch.
#[derive(Debug, Clone)]
pub enum ItemOutcome {
    /// An invitation was made (status `scheduled`, `sent` or `suppressed` with a reason).
    Created {
        invitation: Box<InvitationRow>,
        contact: Box<ContactRow>,
    },
    /// No invitation was made.
    Rejected {
        reason: &'static str,
        message: String,
    },
}

/// Why a contact is not invited now, if anything stops it.
fn suppression(
    contact: &ContactRow,
    survey: &SurveyRow,
    channel: Channel,
    at: NaiveDateTime,
) -> Option<&'static str> {
    if channel == Channel::Email && contact.unsubscribed_at.is_some() {
        return Some("unsubscribed");
    }
    if channel == Channel::Email && contact.email.is_none() {
        return Some("no_email");
    }
    if survey.throttle_days > 0 {
        if let Some(last) = contact.last_surveyed_at {
            if last > at - TimeDelta::days(survey.throttle_days as i64) {
                return Some("throttled");
            }
        }
    }
    None
}

/// Creates one invitation per contact, in one transaction; the outcomes come in the order
/// of `contacts_in`. Contacts are upserted first; an unsubscribed contact (email channel) or
/// one surveyed within the survey's `throttle_days` gets a `suppressed` invitation with the
/// reason.
///
/// Contacts are taken in a fixed order (by email, then external id; a repeated contact keeps
/// its place among its copies), so two batches sharing contacts lock their rows in the same
/// order and cannot deadlock on PostgreSQL. The report counters are written once, at the end.
fn create_batch(
    conn: &mut DbConnection,
    survey: &SurveyRow,
    contacts_in: &[Result<ContactInput, (&'static str, String)>],
    channel: Channel,
    send_at: NaiveDateTime,
) -> Result<Vec<ItemOutcome>, AppError> {
    let t = now();
    let mut order: Vec<usize> = (0..contacts_in.len()).collect();
    let key = |i: &usize| match &contacts_in[*i] {
        Ok(c) => (
            c.email.as_ref().map(|e| e.as_str().to_string()),
            c.external_id.clone(),
        ),
        Err(_) => (None, None),
    };
    order.sort_by_cached_key(key);
    let mut tally = crate::store::rollups::Tally::default();
    let mut slots: Vec<Option<ItemOutcome>> = (0..contacts_in.len()).map(|_| None).collect();
    for i in order {
        let out = &mut slots[i];
        let item = &contacts_in[i];
        let input = match item {
            Ok(input) => input,
            Err((reason, message)) => {
                *out = Some(ItemOutcome::Rejected {
                    reason,
                    message: message.clone(),
                });
                continue;
            }
        };
        let contact = match crate::store::contacts::upsert(conn, input) {
            Ok((contact, _)) => contact,
            Err(AppError::Conflict { message, .. }) => {
                *out = Some(ItemOutcome::Rejected {
                    reason: "contact_conflict",
                    message,
                });
                continue;
            }
            Err(e) => return Err(e),
        };
        let (invitation, contact) = invite_contact(
            conn,
            survey,
            contact,
            channel,
            send_at,
            Origin::Api,
            t,
            &mut tally,
        )?;
        *out = Some(ItemOutcome::Created {
            invitation: Box::new(invitation),
            contact: Box::new(contact),
        });
    }
    // Counters last (see `Tally`).
    tally.flush(conn)?;
    Ok(slots.into_iter().flatten().collect())
}

/// Why an invitation was made (the `origin` column; `reason` says why one was stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// An invitation request (the API's batch, or a page that calls the same use case).
    Api,
    /// The re-survey of a resolved follow-up (`resurvey_after_days`).
    Resurvey,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Api => "api",
            Origin::Resurvey => "resurvey",
        }
    }
}

/// Makes one invitation of `survey` for an existing `contact`, applying the invitation
/// rules: `suppressed` with the reason when the contact is unsubscribed, has no email (email
/// channel) or was surveyed within the survey's `throttle_days`; else `scheduled` (email) or
/// `sent` (link). Delivered links count in `tally` and as the contact's last survey. `t` is
/// the time of making it (now, except for the back-dated demo data).
#[allow(clippy::too_many_arguments)]
pub fn invite_contact(
    conn: &mut DbConnection,
    survey: &SurveyRow,
    contact: ContactRow,
    channel: Channel,
    send_at: NaiveDateTime,
    origin: Origin,
    t: NaiveDateTime,
    tally: &mut crate::store::rollups::Tally,
) -> Result<(InvitationRow, ContactRow), AppError> {
    let suppressed = suppression(&contact, survey, channel, send_at.max(t));
    let (status, sent_at) = match (suppressed, channel) {
        (Some(_), _) => ("suppressed", None),
        (None, Channel::Link) => ("sent", Some(t)),
        (None, Channel::Email) => ("scheduled", None),
    };
    let invitation = InvitationRow {
        id: new_id(IdPrefix::Invitation),
        survey_id: survey.id.clone(),
        contact_id: contact.id.clone(),
        channel: channel.as_str().into(),
        token: new_secret(""),
        status: status.into(),
        reason: suppressed.map(str::to_string),
        send_at,
        next_attempt_at: send_at,
        claimed_until: None,
        attempts: 0,
        last_error: None,
        message_id: None,
        sent_at,
        responded_at: None,
        reminder_sent_at: None,
        created_at: t,
        updated_at: t,
        opened_at: None,
        origin: origin.as_str().into(),
    };
    store_invitations::insert(conn, &invitation)?;
    let mut contact = contact;
    if let (None, Some(t)) = (suppressed, sent_at) {
        tally.delivery(&survey.id, &crate::store::rollups::day(t), 1, 0);
    }
    // Throttling counts delivered emails and handed-out links only: a link counts now,
    // an email when it is actually sent (the dispatcher sets it then).
    if let (None, Some(sent_at)) = (suppressed, sent_at) {
        crate::store::contacts::set_last_surveyed(conn, &contact.id, sent_at)?;
        contact.last_surveyed_at = Some(sent_at);
    }
    Ok((invitation, contact))
}

/// Puts a `failed` or `cancelled` email invitation back in the send queue (due now, attempts
/// from zero) and wakes the dispatcher; 409 for any other status. Suppression and throttling
/// are checked again when it is sent.
pub async fn retry(state: &AppState, id: String) -> Result<InvitationRow, AppError> {
    let row = state
        .db
        .write(move |conn| store_invitations::retry(conn, &id))
        .await?;
    tracing::info!(invitation = %row.id, "invitation put back in the send queue");
    state.wake_dispatcher.notify_one();
    Ok(row)
}

/// Queues the survey email of `survey` to a team member (`to`, `name`) through the outbox:
/// the real templates, with a token that belongs to no invitation, so nothing is invited,
/// no link records an answer and no report counts it. The subject starts with "[Test] ".
pub async fn send_test(
    state: &AppState,
    survey: SurveyRow,
    to: String,
    name: String,
) -> Result<(), AppError> {
    let body = crate::email::message::survey_body(
        &survey,
        Some(&name),
        &new_secret(""),
        false,
        &state.settings,
    )
    .map_err(|e| AppError::internal(anyhow::anyhow!(e)))?;
    let subject = format!("[Test] {}", body.subject);
    state
        .db
        .write(move |conn| {
            crate::store::emails::enqueue(
                conn,
                crate::store::emails::NewEmail {
                    kind: "survey_test",
                    to: &to,
                    subject: &subject,
                    body_text: &body.text,
                    in_reply_to: None,
                    followup_id: None,
                    from_name: Some(&body.sender),
                    reply_to: None,
                    body_html: Some(&body.html),
                    send_at: None,
                },
            )
        })
        .await?;
    state.wake_dispatcher.notify_one();
    Ok(())
}
