//! Recording an answer: the one use case behind the survey page, the public link and
//! `POST /api/v1/responses`.
//!
//! One response per invitation (or per anonymous submission), updated in place when the
//! customer changes it within the survey's edit window. Recording runs one transaction:
//! the response, the invitation and contact state, the report rollups, the follow-up task
//! (see `followups`) and the webhook events.

use chrono::{NaiveDateTime, TimeDelta};

use crate::context::AppState;
use crate::domain::{new_id, now, IdPrefix, Score};
use crate::error::AppError;
use crate::followups::{self, Rules, TaskEvent};
use crate::store::contacts::ContactInput;
use crate::store::models::{InvitationRow, ResponseRow, SurveyRow};
use crate::store::{contacts, responses, rollups, segments, DbConnection};
use crate::webhooks;

/// What to do with the comment.
#[derive(Debug, Clone)]
pub enum CommentChange {
    Keep,
    Set(Option<String>),
}

#[derive(Debug, Clone)]
pub struct Answer {
    pub survey: SurveyRow,
    pub invitation: Option<InvitationRow>,
    pub score: Score,
    pub comment: CommentChange,
    /// `email`, `link`, `public` or `api`.
    pub channel: String,
    pub locale: Option<String>,
    /// Anonymous answers: the form's one-time id, so a double submit updates one response.
    pub submission_id: Option<String>,
    /// For an answer without an invitation: the customer it belongs to, upserted (by
    /// `external_id`, then `email`) in the same transaction as by `POST /contacts`.
    pub contact: Option<ContactInput>,
}

#[derive(Debug, Clone)]
pub enum Recorded {
    Created(Box<ResponseRow>),
    Updated {
        before: Box<ResponseRow>,
        after: Box<ResponseRow>,
    },
}

impl Recorded {
    pub fn response(&self) -> &ResponseRow {
        match self {
            Recorded::Created(r) => r,
            Recorded::Updated { after, .. } => after,
        }
    }

    /// The response before this change (none for a new one).
    pub fn before(&self) -> Option<&ResponseRow> {
        match self {
            Recorded::Created(_) => None,
            Recorded::Updated { before, .. } => Some(before),
        }
    }
}

/// What recording an answer did.
pub struct RecordOutcome {
    pub recorded: Recorded,
    /// Follow-up tasks created or changed (their alerts may be queued).
    pub tasks: Vec<TaskEvent>,
    /// Webhook deliveries queued (0 when no webhook listens).
    pub webhook_events: usize,
}

/// The end of the edit window of a response.
pub fn editable_until(survey: &SurveyRow, response: &ResponseRow) -> NaiveDateTime {
    response.created_at + TimeDelta::hours(survey.edit_window_hours as i64)
}

/// Records an answer (grouped with concurrent ones into one transaction on SQLite), then
/// wakes the workers that send what it queued. Every front door calls this.
pub async fn record(state: &AppState, answer: Answer) -> Result<Recorded, AppError> {
    let rules = Rules::from_settings(&state.settings);
    let kind = answer.survey.kind.clone();
    // The invitation's row is the one an answer locks (anonymous answers lock none).
    let key = answer.invitation.as_ref().map_or("", |i| &i.id).to_string();
    let outcome = state
        .db
        .write_grouped(key, move |conn, tally| {
            record_in_tx(conn, &answer, &rules, tally)
        })
        .await?;
    if let Recorded::Created(r) = &outcome.recorded {
        state.metrics.answer_recorded(&kind, &r.category);
    }
    // Wake the workers only when there is something for them: a woken worker claims in a
    // write transaction, which competes with answers for SQLite's one writer.
    if !outcome.tasks.is_empty() {
        state.wake_dispatcher.notify_one();
    }
    if outcome.webhook_events > 0 {
        state.wake_webhooks.notify_one();
    }
    Ok(outcome.recorded)
}

/// Records an answer inside the caller's transaction: the response (a second answer for
/// the same invitation updates the one response within the edit window, 409
/// `edit_window_closed` after it, also under concurrent submits), the invitation becomes
/// `responded`, the contact's `last_responded_at` is set (an invitation of an erased contact
/// is refused: 409 `contact_erased`), the contact's values of the survey's `report_segments`
/// are snapshotted onto a new answer, the rollups count it, the feedback
/// loop reacts and webhook events are queued. The rollup increments go to `tally`, which the
/// caller writes at the end of its transaction (see `rollups::Tally`).
pub fn record_in_tx(
    conn: &mut DbConnection,
    a: &Answer,
    rules: &Rules,
    tally: &mut rollups::Tally,
) -> Result<RecordOutcome, AppError> {
    let t = now();
    // A customer named with the answer (no invitation) is upserted first.
    let (named_contact, mut properties) = match (&a.invitation, &a.contact) {
        (None, Some(input)) => {
            let c = contacts::upsert(conn, input)?.0;
            (Some(c.id), Some(c.properties))
        }
        _ => (None, None),
    };
    // The properties the survey reports on, as committed (see `store::segments`).
    let segment_names;
    // Whether any webhook may listen (when none is active, no event is built or looked up).
    let mut listening = true;
    // For an invitation, one query reads its delivery state and its current response.
    let (delivery, current) = match &a.invitation {
        Some(inv) => {
            let st = responses::invitation_state(conn, &inv.id)?;
            // An erased person's links are dead: nothing is stored, no task changes.
            if st.contact_erased_at.is_some() {
                return Err(AppError::conflict(
                    "contact_erased",
                    "the contact of this invitation was erased; it takes no answer",
                ));
            }
            let (sent_at, responded_at) = (st.sent_at, st.responded_at);
            segment_names = segments::names(&st.report_segments);
            properties = Some(st.properties);
            listening = st.webhooks;
            (Some((sent_at, responded_at)), st.response)
        }
        None => {
            segment_names = segments::survey_names(conn, &a.survey.id)?;
            (None, existing(conn, a)?)
        }
    };
    let recorded = match current {
        Some(before) => update(conn, a, before, t)?,
        None => {
            let row = ResponseRow {
                id: new_id(IdPrefix::Response),
                survey_id: a.survey.id.clone(),
                invitation_id: a.invitation.as_ref().map(|i| i.id.clone()),
                contact_id: a
                    .invitation
                    .as_ref()
                    .map(|i| i.contact_id.clone())
                    .or_else(|| named_contact.clone()),
                score: a.score.value(),
                category: a.score.category().as_str().into(),
                comment: match &a.comment {
                    CommentChange::Keep => None,
                    CommentChange::Set(c) => c.clone(),
                },
                channel: a.channel.clone(),
                locale: a.locale.clone(),
                submission_id: a.submission_id.clone(),
                created_at: t,
                updated_at: t,
            };
            // When a concurrent submit won the race, the unique index refuses this insert
            // and the answer becomes an update of the winner's row.
            if responses::try_insert(conn, &row)? {
                Recorded::Created(Box::new(row))
            } else {
                let before = existing(conn, a)?.ok_or(AppError::NotFound("response"))?;
                update(conn, a, before, t)?
            }
        }
    };
    match &recorded {
        Recorded::Created(r) => {
            tally.answer(&r.survey_id, &rollups::day(r.created_at), r.score, 1);
            if let Some((Some(sent), None)) = delivery {
                tally.first_answer(&r.survey_id, sent, r.created_at);
            }
            segments::snapshot(conn, r, &segment_names, properties.as_deref(), tally)?;
        }
        Recorded::Updated { before, after } if before.score != after.score => {
            let day = rollups::day(before.created_at);
            tally.answer(&before.survey_id, &day, before.score, -1);
            tally.answer(&after.survey_id, &day, after.score, 1);
            segments::move_score(conn, before, after.score, tally)?;
        }
        Recorded::Updated { .. } => {}
    }
    if let Some(inv) = &a.invitation {
        responses::mark_responded(conn, &inv.id, &inv.contact_id, t)?;
    }
    if let Some(id) = &named_contact {
        contacts::mark_responded(conn, id, t)?;
    }
    let mut webhook_events = match listening {
        true => webhooks::enqueue_response(conn, recorded.before(), recorded.response())?,
        false => 0,
    };
    let tasks = followups::on_response(
        conn,
        rules,
        &a.survey,
        recorded.before(),
        recorded.response(),
    )?;
    for task in tasks.iter().filter(|_| listening) {
        webhook_events += match task {
            TaskEvent::Created(t) => {
                let how = webhooks::payload::TaskChange {
                    change: "created",
                    actor: "system",
                    note: None,
                    public_url: &rules.public_url,
                };
                webhooks::enqueue_followup(conn, true, "open", t, how)?
            }
            TaskEvent::Updated(t, before) => {
                let how = webhooks::payload::TaskChange {
                    change: "answer_changed",
                    actor: "customer",
                    note: None,
                    public_url: &rules.public_url,
                };
                webhooks::enqueue_followup(conn, false, before, t, how)?
            }
        };
    }
    Ok(RecordOutcome {
        recorded,
        tasks,
        webhook_events,
    })
}

/// The anonymous answer of the same submission, if any.
fn existing(conn: &mut DbConnection, a: &Answer) -> Result<Option<ResponseRow>, AppError> {
    match (&a.invitation, &a.submission_id) {
        (Some(inv), _) => responses::for_invitation(conn, &inv.id),
        (None, Some(sub)) => responses::by_submission(conn, &a.survey.id, sub),
        (None, None) => Ok(None),
    }
}

fn update(
    conn: &mut DbConnection,
    a: &Answer,
    before: ResponseRow,
    t: NaiveDateTime,
) -> Result<Recorded, AppError> {
    if t > editable_until(&a.survey, &before) {
        return Err(AppError::conflict(
            "edit_window_closed",
            "this answer can no longer be changed",
        ));
    }
    let comment = match &a.comment {
        CommentChange::Keep => before.comment.clone(),
        CommentChange::Set(c) => c.clone(),
    };
    responses::set_answer(conn, &before.id, a.score, comment.as_deref(), t)?;
    let after = ResponseRow {
        score: a.score.value(),
        category: a.score.category().as_str().into(),
        comment,
        updated_at: t,
        ..before.clone()
    };
    Ok(Recorded::Updated {
        before: Box::new(before),
        after: Box::new(after),
    })
}
