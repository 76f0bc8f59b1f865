//! Contacts: erasing a person's data (the right to be forgotten), unsubscribing and
//! re-subscribing, for every front door (the unsubscribe page and the API).

use chrono::{NaiveDateTime, TimeDelta};
use diesel::Connection;

use crate::context::AppState;
use crate::domain::now;
use crate::domain::Page;
use crate::error::AppError;
use crate::store::contacts::ContactFilter;
use crate::store::models::{ContactRow, FollowupRow, InvitationRow, ResponseRow, SurveyRow};
use crate::store::{contacts, emails, followups, invitations, responses, segments, surveys};
use crate::webhooks;

/// How long after unsubscribing the customer can undo it from the unsubscribe page.
pub const RESUBSCRIBE_DAYS: i64 = 30;

/// `ada@example.com` → `a•••@example.com`: enough for a person to recognise their address,
/// not enough to learn someone else's from a forwarded link.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}•••@{domain}")
        }
        None => "•••".to_string(),
    }
}

/// What the unsubscribe page of an invitation shows.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub survey: SurveyRow,
    pub contact_id: String,
    /// The address, masked; none once the contact is erased.
    pub masked_email: Option<String>,
    pub unsubscribed_at: Option<NaiveDateTime>,
    /// Until when the page offers to re-subscribe (none: not offered).
    pub resubscribe_until: Option<NaiveDateTime>,
}

fn subscription(contact: &ContactRow, survey: SurveyRow) -> Subscription {
    let erased = contact.erased_at.is_some();
    Subscription {
        survey,
        contact_id: contact.id.clone(),
        masked_email: contact.email.as_deref().filter(|_| !erased).map(mask_email),
        unsubscribed_at: contact.unsubscribed_at,
        resubscribe_until: contact
            .unsubscribed_at
            .filter(|_| !erased)
            .map(|t| t + TimeDelta::days(RESUBSCRIBE_DAYS))
            .filter(|until| now() <= *until),
    }
}

/// What the unsubscribe page does with the contact of an invitation's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionChange {
    /// Only look (GET).
    None,
    Unsubscribe,
    Resubscribe,
}

/// The subscription state of the contact of `token` after `change`; `None` for an unknown
/// token. Unsubscribing is idempotent; re-subscribing is allowed for `RESUBSCRIBE_DAYS`
/// after unsubscribing (409 `resubscribe_window_closed` after, 410-like
/// `contact_erased` for an erased contact). Both changes are logged.
pub async fn by_token(
    state: &AppState,
    token: &str,
    change: SubscriptionChange,
) -> Result<Option<Subscription>, AppError> {
    let token = token.to_string();
    let write = change != SubscriptionChange::None;
    let work = move |conn: &mut crate::store::DbConnection| {
        conn.transaction(|conn| {
            let Some(invitation) = invitations::find_by_token(conn, &token)? else {
                return Ok(None);
            };
            let survey = crate::store::surveys::get(conn, &invitation.survey_id)?;
            let Some(contact) = contacts::find_any(conn, &invitation.contact_id)? else {
                return Ok(None);
            };
            match change {
                SubscriptionChange::None => {}
                SubscriptionChange::Unsubscribe => {
                    if contacts::unsubscribe(conn, &contact.id)? {
                        tracing::info!(contact = %contact.id, invitation = %invitation.id, via = "unsubscribe page", "contact unsubscribed");
                        contacts::log(conn, &contact.id, UNSUBSCRIBED, CUSTOMER)?;
                        webhooks::enqueue_unsubscribed(
                            conn,
                            &contact.id,
                            CUSTOMER,
                            Some(&invitation),
                        )?;
                    }
                }
                SubscriptionChange::Resubscribe => {
                    let before = subscription(&contact, survey.clone());
                    if contact.erased_at.is_some() {
                        return Err(AppError::conflict(
                            "contact_erased",
                            "the contact of this invitation was erased",
                        ));
                    }
                    if contact.unsubscribed_at.is_some() {
                        if before.resubscribe_until.is_none() {
                            return Err(AppError::conflict(
                                "resubscribe_window_closed",
                                format!(
                                    "re-subscribing from the page is possible for {RESUBSCRIBE_DAYS} days after unsubscribing"
                                ),
                            ));
                        }
                        contacts::resubscribe(conn, &contact.id)?;
                        contacts::log(conn, &contact.id, RESUBSCRIBED, CUSTOMER)?;
                        tracing::info!(contact = %contact.id, invitation = %invitation.id, via = "unsubscribe page", "contact re-subscribed");
                    }
                }
            }
            let contact = contacts::find_any(conn, &contact.id)?.unwrap_or(contact);
            Ok(Some(subscription(&contact, survey)))
        })
    };
    if write {
        let done = state.db.write(work).await;
        state.wake_webhooks.notify_one();
        done
    } else {
        state.db.run(work).await
    }
}

/// The kinds of a contact's recorded changes, and the actor of the customer's own changes.
pub const UNSUBSCRIBED: &str = "unsubscribed";
pub const RESUBSCRIBED: &str = "resubscribed";
pub const CUSTOMER: &str = "customer";

/// Unsubscribes (`true`) or re-subscribes (`false`) a contact on an admin's request (the
/// API or the workspace), with no time limit; recorded in the contact's activity with
/// `actor` (`user:<email>`, `api-key:<name>`) and logged. Repeating it records nothing.
pub async fn set_unsubscribed(
    state: &AppState,
    id: &str,
    unsubscribed: bool,
    actor: &str,
) -> Result<ContactRow, AppError> {
    let id = id.to_string();
    let actor = actor.to_string();
    let row = state
        .db
        .write(move |conn| {
            conn.transaction(|conn| {
                let before = contacts::get(conn, &id)?;
                match (unsubscribed, before.unsubscribed_at.is_some()) {
                    (true, false) => {
                        // False when a concurrent request unsubscribed them first.
                        let changed = contacts::unsubscribe(conn, &id)?;
                        if changed {
                            contacts::log(conn, &id, UNSUBSCRIBED, &actor)?;
                            tracing::info!(contact = %id, by = %actor, "contact unsubscribed");
                            webhooks::enqueue_unsubscribed(conn, &id, &actor, None)?;
                        }
                    }
                    (false, true) => {
                        contacts::resubscribe(conn, &id)?;
                        contacts::log(conn, &id, RESUBSCRIBED, &actor)?;
                        tracing::info!(contact = %id, by = %actor, "contact re-subscribed");
                    }
                    _ => {}
                }
                contacts::get(conn, &id)
            })
        })
        .await;
    state.wake_webhooks.notify_one();
    row
}

/// Erases a person: name, email, external id and properties are cleared, their comments and
/// the follow-up notes about them are blanked, pending invitations are cancelled and queued
/// emails to them are dropped, the webhook deliveries about them (queued or logged) are
/// scrubbed of their personal data (`webhooks::scrub_contact`), and the property values
/// snapshotted onto their answers (`report_segments`) are cleared: those answers count under
/// "no value" from then on. Scores, categories and counts stay, so reports keep their
/// anonymous aggregates. The contact then answers 404.
pub async fn erase(state: &AppState, id: &str) -> Result<(), AppError> {
    let id = id.to_string();
    state
        .db
        .write(move |conn| {
            conn.transaction(|conn| {
                let row = contacts::get(conn, &id)?;
                let t = now();
                contacts::clear_personal_data(conn, &id, t)?;
                responses::clear_comments_of_contact(conn, &id)?;
                segments::neutralise_contact(conn, &id)?;
                followups::clear_text_of_contact(conn, &id)?;
                invitations::cancel_scheduled_of_contact(conn, &id, "contact_erased", t)?;
                if let Some(email) = row.email {
                    emails::erase_address(conn, &email)?;
                }
                webhooks::scrub_contact(conn, &id)?;
                Ok(())
            })
        })
        .await
}

/// How many invitations, answers and tasks the contact page lists (newest first).
pub const PROFILE_ITEMS: i64 = 100;

/// Everything the workspace shows about one contact: invitations, answers and follow-up
/// tasks, newest first, each with its survey's name and kind.
#[derive(Debug, Clone)]
pub struct Profile {
    pub contact: ContactRow,
    pub invitations: Vec<(InvitationRow, String)>,
    pub answers: Vec<(ResponseRow, String, String)>,
    pub tasks: Vec<(FollowupRow, String, String)>,
    /// Subscription changes, newest first, with the member's name when a member did it.
    pub activities: Vec<(contacts::ContactActivityRow, Option<String>)>,
}

/// What a contact id names: a contact, or one that was erased (nothing personal is left).
#[derive(Debug, Clone)]
pub enum Lookup {
    Found(Box<Profile>),
    Erased,
}

/// A contact with its invitations, answers and tasks (up to [`PROFILE_ITEMS`] each). 404
/// for an unknown id; [`Lookup::Erased`] for an erased contact.
pub async fn profile(state: &AppState, id: &str) -> Result<Lookup, AppError> {
    let id = id.to_string();
    state
        .db
        .run(move |conn| {
            let Some(contact) = contacts::find_any(conn, &id)? else {
                return Err(AppError::NotFound("contact"));
            };
            if contact.erased_at.is_some() {
                return Ok(Lookup::Erased);
            }
            let page = Page {
                limit: PROFILE_ITEMS,
                cursor: None,
            };
            let mut names: std::collections::HashMap<String, (String, String)> =
                std::collections::HashMap::new();
            let mut survey_of = |conn: &mut crate::store::DbConnection, sid: &str| {
                if let Some(v) = names.get(sid) {
                    return Ok::<_, AppError>(v.clone());
                }
                let s = surveys::get(conn, sid)?;
                let v = (s.name, s.kind);
                names.insert(sid.to_string(), v.clone());
                Ok(v)
            };
            let filter = invitations::InvitationFilter {
                contact_id: Some(id.clone()),
                ..Default::default()
            };
            let mut invs = Vec::new();
            for i in invitations::list(conn, &filter, &page)?
                .into_iter()
                .take(PROFILE_ITEMS as usize)
            {
                let (name, _) = survey_of(conn, &i.survey_id)?;
                invs.push((i, name));
            }
            let filter = responses::ResponseFilter {
                contact_id: Some(id.clone()),
                ..Default::default()
            };
            let mut answers = Vec::new();
            for r in responses::list(conn, &filter, &page)?
                .into_iter()
                .take(PROFILE_ITEMS as usize)
            {
                let (name, kind) = survey_of(conn, &r.survey_id)?;
                answers.push((r, name, kind));
            }
            let mut tasks = Vec::new();
            for t in followups::for_contact(conn, &id, PROFILE_ITEMS)? {
                let (name, kind) = survey_of(conn, &t.survey_id)?;
                tasks.push((t, name, kind));
            }
            let mut activities = Vec::new();
            for a in contacts::activities(conn, &id, PROFILE_ITEMS)? {
                let member = match a.actor.as_deref() {
                    Some(actor) if actor.starts_with("user:") => {
                        crate::store::users::actor_name(conn, actor)?
                    }
                    _ => None,
                };
                activities.push((a, member));
            }
            Ok(Lookup::Found(Box::new(Profile {
                contact,
                invitations: invs,
                answers,
                tasks,
                activities,
            })))
        })
        .await
}

/// A page of contacts matching `filter`, newest first, and the cursor of the next page.
/// `may_lag`: read from the read replica when one is configured (the API list); a page
/// shown after the caller's own change reads the primary.
pub async fn search(
    state: &AppState,
    filter: ContactFilter,
    page: Page,
    may_lag: bool,
) -> Result<(Vec<ContactRow>, Option<String>), AppError> {
    let p = page.clone();
    let read = move |conn: &mut crate::store::DbConnection| contacts::list(conn, &filter, &p);
    let rows = if may_lag {
        state.db.run_replica(read).await?
    } else {
        state.db.run(read).await?
    };
    Ok(crate::domain::paginate(rows, &page, |r| &r.id))
}
