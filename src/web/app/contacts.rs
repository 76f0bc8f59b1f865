//! `/app/contacts`: look up a customer (by email, name, external id or a property), see
//! everything about them (invitations, answers, follow-up tasks, subscription), and, for
//! admins, re-subscribe or erase them. The same use cases as `/api/v1/contacts`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::page::{html, message, see_other, Layout, PageError};
use super::task::{actor_name, badge, display_name, properties, when, Badge, When};
use super::Signed;
use crate::contacts::{self as use_case, Lookup};
use crate::context::AppState;
use crate::domain::{now, IdPrefix, Page, Role};
use crate::store::contacts::ContactFilter;

/// Contacts per page of the list.
const PER_PAGE: i64 = 50;
/// The longest search text.
const SEARCH_MAX: usize = 200;

/// Registers the contact pages' routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/app/contacts", web::get().to(list))
        .route("/app/contacts/{id}", web::get().to(show))
        .route(
            "/app/contacts/{id}/resubscribe",
            web::post().to(resubscribe),
        )
        .route("/app/contacts/{id}/erase", web::get().to(erase_confirm))
        .route("/app/contacts/{id}/erase", web::post().to(erase));
}

/// A contact as the list shows it.
pub struct Row {
    pub href: String,
    pub name: String,
    pub email: Option<String>,
    pub external_id: Option<String>,
    pub props: String,
    pub last_surveyed: Option<When>,
    pub unsubscribed: bool,
}

#[derive(Template)]
#[template(path = "app/contacts.html")]
struct ListPage {
    l: Layout,
    search: String,
    /// What the search looked for, in words (none: everything).
    looked_for: Option<String>,
    rows: Vec<Row>,
    next: Option<String>,
    notice: Option<&'static str>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    cursor: Option<String>,
    notice: Option<String>,
}

/// The filter a search box text means: `key=value` or `key:value` (a property key, then a
/// value) is a property; anything else is text found in the email, name or external id.
pub fn filter_of(search: &str) -> ContactFilter {
    let text = search.trim();
    let property = text
        .split_once(['=', ':'])
        .filter(|(k, v)| crate::store::followups::is_property_key(k.trim()) && !v.trim().is_empty())
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()));
    match property {
        Some(p) => ContactFilter {
            property: Some(p),
            ..Default::default()
        },
        None if text.is_empty() => ContactFilter::default(),
        None => ContactFilter {
            q: Some(text.to_string()),
            ..Default::default()
        },
    }
}

fn props_summary(c: &crate::store::models::ContactRow) -> String {
    properties(c)
        .into_iter()
        .take(3)
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn search_url(search: &str, cursor: &str) -> String {
    format!(
        "/app/contacts?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("q", search)
            .append_pair("cursor", cursor)
            .finish()
    )
}

/// `GET /app/contacts`.
pub async fn list(
    state: web::Data<AppState>,
    signed: Signed,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    let q = query.into_inner();
    let search: String =
        q.q.unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .collect();
    if search.chars().count() > SEARCH_MAX {
        return Err(PageError::BadRequest(format!(
            "Search for at most {SEARCH_MAX} characters."
        )));
    }
    let cursor = q
        .cursor
        .filter(|c| !c.is_empty())
        .map(|c| {
            if IdPrefix::Contact.matches(&c) {
                Ok(c)
            } else {
                Err(PageError::BadRequest(
                    "That page link is not valid; start the search again.".into(),
                ))
            }
        })
        .transpose()?;
    let filter = filter_of(&search);
    let looked_for = match (&filter.property, &filter.q) {
        (Some((k, v)), _) => Some(format!("contacts whose {k} is “{v}”")),
        (None, Some(t)) => Some(format!("“{t}” in email, name or external id")),
        _ => None,
    };
    let (rows, next) = use_case::search(
        &state,
        filter,
        Page {
            limit: PER_PAGE,
            cursor,
        },
        // The page after an erase or an import redirects here: it reads the primary.
        false,
    )
    .await?;
    let at = now();
    let rows = rows
        .into_iter()
        .map(|c| Row {
            href: format!("/app/contacts/{}", c.id),
            name: display_name(&c),
            props: props_summary(&c),
            last_surveyed: c.last_surveyed_at.map(|t| when(t, at)),
            unsubscribed: c.unsubscribed_at.is_some(),
            email: c.email,
            external_id: c.external_id,
        })
        .collect();
    let notice = match q.notice.as_deref() {
        Some("erased") => Some(
            "The contact was erased. Their scores stay in reports as anonymous numbers; nothing else about them is kept.",
        ),
        _ => None,
    };
    Ok(html(
        StatusCode::OK,
        ListPage {
            l: Layout::signed("Contacts", &signed, "contacts"),
            next: next.map(|c| search_url(&search, &c)),
            search,
            looked_for,
            rows,
            notice,
        }
        .render(),
    ))
}

pub struct InvitationItem {
    pub survey: String,
    pub channel: String,
    pub status: String,
    /// `sent`, `responded`: good; `failed`: bad; others: neutral.
    pub tone: &'static str,
    pub reason: Option<String>,
    pub last_error: Option<String>,
    pub at: When,
}

pub struct AnswerItem {
    pub badge: Badge,
    pub survey: String,
    pub comment: Option<String>,
    pub at: When,
}

pub struct ChangeItem {
    pub text: String,
    pub at: When,
}

pub struct TaskItem {
    pub href: String,
    pub badge: Badge,
    pub survey: String,
    pub status: &'static str,
    pub at: When,
}

#[derive(Template)]
#[template(path = "app/contact.html")]
struct ContactPage {
    l: Layout,
    csrf: String,
    is_admin: bool,
    id: String,
    name: String,
    email: Option<String>,
    external_id: Option<String>,
    value: Option<String>,
    props: Vec<(String, String)>,
    created: When,
    last_surveyed: Option<When>,
    unsubscribed: Option<When>,
    invitations: Vec<InvitationItem>,
    answers: Vec<AnswerItem>,
    tasks: Vec<TaskItem>,
    changes: Vec<ChangeItem>,
    notice: Option<&'static str>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ShowQuery {
    notice: Option<String>,
}

fn check_id(id: &str) -> Result<(), PageError> {
    if IdPrefix::Contact.matches(id) {
        Ok(())
    } else {
        Err(PageError::NotFound("contact"))
    }
}

/// The page of an erased contact: nothing personal is left to show.
fn erased_page() -> HttpResponse {
    message(
        StatusCode::GONE,
        "This contact was erased",
        "Their personal data was deleted on request. Their scores stay in reports as anonymous numbers.",
        Some(("/app/contacts", "Back to contacts")),
    )
}

fn invitation_tone(status: &str) -> &'static str {
    match status {
        "sent" | "responded" => "good",
        "failed" => "bad",
        _ => "mid",
    }
}

/// `GET /app/contacts/{id}`.
pub async fn show(
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
    query: web::Query<ShowQuery>,
) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    check_id(&id)?;
    let p = match use_case::profile(&state, &id).await? {
        Lookup::Erased => return Ok(erased_page()),
        Lookup::Found(p) => p,
    };
    let at = now();
    let c = &p.contact;
    let page = ContactPage {
        l: Layout::signed(&display_name(c), &signed, "contacts"),
        csrf: signed.csrf().to_string(),
        is_admin: signed.can(Role::Admin),
        id: c.id.clone(),
        name: display_name(c),
        email: c.email.clone(),
        external_id: c.external_id.clone(),
        value: c.value.map(super::inbox::money),
        props: properties(c),
        created: when(c.created_at, at),
        last_surveyed: c.last_surveyed_at.map(|t| when(t, at)),
        unsubscribed: c.unsubscribed_at.map(|t| when(t, at)),
        invitations: p
            .invitations
            .iter()
            .map(|(i, survey)| InvitationItem {
                survey: survey.clone(),
                channel: i.channel.clone(),
                tone: invitation_tone(&i.status),
                status: i.status.clone(),
                reason: i.reason.clone(),
                last_error: i
                    .last_error
                    .clone()
                    .filter(|_| i.status == "failed" || i.status == "scheduled"),
                at: when(i.sent_at.unwrap_or(i.created_at), at),
            })
            .collect(),
        answers: p
            .answers
            .iter()
            .map(|(r, survey, kind)| AnswerItem {
                badge: badge(kind, r.score),
                survey: survey.clone(),
                comment: r.comment.clone().filter(|c| !c.trim().is_empty()),
                at: when(r.created_at, at),
            })
            .collect(),
        tasks: p
            .tasks
            .iter()
            .map(|(t, survey, kind)| TaskItem {
                href: format!("/app/followups/{}", t.id),
                badge: badge(kind, t.score),
                survey: survey.clone(),
                status: super::inbox::status_label(&t.status),
                at: when(t.created_at, at),
            })
            .collect(),
        changes: p
            .activities
            .iter()
            .map(|(a, member)| {
                let who = member
                    .clone()
                    .unwrap_or_else(|| actor_name(a.actor.as_deref(), &Default::default()));
                let what = match a.kind.as_str() {
                    use_case::UNSUBSCRIBED => "Unsubscribed",
                    use_case::RESUBSCRIBED => "Re-subscribed",
                    other => other,
                };
                ChangeItem {
                    text: format!("{what} by {who}"),
                    at: when(a.created_at, at),
                }
            })
            .collect(),
        notice: match query.notice.as_deref() {
            Some("resubscribed") => Some("Re-subscribed: this contact can be surveyed again."),
            _ => None,
        },
    };
    Ok(html(StatusCode::OK, page.render()))
}

#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    csrf_token: Option<String>,
}

/// `POST /app/contacts/{id}/resubscribe` (admin): the contact may be emailed again; logged
/// with who did it.
pub async fn resubscribe(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: Signed,
    id: web::Path<String>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, PageError> {
    signed.check_csrf(&req, form.csrf_token.as_deref())?;
    signed.require(Role::Admin)?;
    let id = id.into_inner();
    check_id(&id)?;
    use_case::set_unsubscribed(&state, &id, false, &signed.member().actor()).await?;
    Ok(see_other(&format!(
        "/app/contacts/{id}?notice=resubscribed"
    )))
}

#[derive(Template)]
#[template(path = "app/contact_erase.html")]
struct ErasePage {
    l: Layout,
    csrf: String,
    id: String,
    name: String,
    invitations: usize,
    pending: usize,
    answers: usize,
    comments: usize,
    tasks: usize,
    capped: bool,
}

/// `GET /app/contacts/{id}/erase` (admin): what erasing deletes and what stays.
pub async fn erase_confirm(
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    signed.require(Role::Admin)?;
    let id = id.into_inner();
    check_id(&id)?;
    let p = match use_case::profile(&state, &id).await? {
        Lookup::Erased => return Ok(erased_page()),
        Lookup::Found(p) => p,
    };
    let cap = use_case::PROFILE_ITEMS as usize;
    let page = ErasePage {
        l: Layout::signed("Erase a contact", &signed, "contacts"),
        csrf: signed.csrf().to_string(),
        id: p.contact.id.clone(),
        name: display_name(&p.contact),
        invitations: p.invitations.len(),
        pending: p
            .invitations
            .iter()
            .filter(|(i, _)| i.status == "scheduled")
            .count(),
        answers: p.answers.len(),
        comments: p
            .answers
            .iter()
            .filter(|(r, _, _)| r.comment.as_deref().is_some_and(|c| !c.trim().is_empty()))
            .count(),
        tasks: p.tasks.len(),
        capped: p.invitations.len() >= cap || p.answers.len() >= cap || p.tasks.len() >= cap,
    };
    Ok(html(StatusCode::OK, page.render()))
}

/// `POST /app/contacts/{id}/erase` (admin): erases, then the list with a notice.
pub async fn erase(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: Signed,
    id: web::Path<String>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, PageError> {
    signed.check_csrf(&req, form.csrf_token.as_deref())?;
    signed.require(Role::Admin)?;
    let id = id.into_inner();
    check_id(&id)?;
    use_case::erase(&state, &id).await?;
    tracing::info!(contact = %id, by = %signed.member().actor(), "contact erased");
    Ok(see_other("/app/contacts?notice=erased"))
}
