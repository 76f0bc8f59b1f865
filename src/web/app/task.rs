//! The task page `/app/followups/{id}`: the answer and its history, the customer, the
//! activity timeline, and (for agents) assign, status, notes and the reply composer.
//!
//! Rules:
//! - The inbox links here as `/app/followups/{id}?<its query>`; that query is kept on every
//!   link and form of the page, so previous/next and "back to the inbox" stay in the view
//!   the lead came from. After a POST: 303 back here with the same query.
//! - Readers see the page without action forms; their POSTs are 403. Every POST checks the
//!   CSRF token first.
//! - Bad input is a page that says what to change (and keeps the text typed), never a 500.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::{NaiveDateTime, TimeDelta};
use serde::Deserialize;
use serde_json::Value;

use super::inbox::status_label;
use super::page::{html, see_other, Layout, PageError};
use super::Signed;
use crate::context::AppState;
use crate::domain::{now, IdPrefix, Page, Role, SurveyKind};
use crate::error::AppError;
use crate::followups::{self, transitions, Change};
use crate::members::Member;
use crate::store::followups::{Sort, OPEN_STATUSES};
use crate::store::models::{
    ActivityRow, ContactRow, EmailRow, FollowupRow, ResponseRow, SurveyRow,
};

/// The longest note, in characters.
pub const NOTE_MAX: usize = 10_000;
/// The longest reply subject and body, in characters (as the API).
pub const SUBJECT_MAX: usize = 200;
pub const REPLY_MAX: usize = 20_000;
/// The longest inbox query kept on the page's links.
const QUERY_MAX: usize = 2000;
/// How many tasks of a view previous/next looks through.
const VIEW_MAX: i64 = 2000;

/// Registers the task page's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/app/followups/{id}", web::get().to(show))
        .route("/app/followups/{id}/assign", web::post().to(assign))
        .route("/app/followups/{id}/status", web::post().to(status))
        .route("/app/followups/{id}/notes", web::post().to(note))
        .route("/app/followups/{id}/reply", web::post().to(reply));
}

// ------------------------------------------------------------------ what the page shows

/// A score with its category, coloured by a class and always said in words.
pub struct Badge {
    pub text: String,
    /// `bad`, `meh` or `good`.
    pub class: &'static str,
}

pub(super) fn badge(kind: &str, score: i32) -> Badge {
    // The category as the inbox names it (from the domain's score rules).
    let (tone, label) = super::inbox::tone(kind, score);
    let max = if SurveyKind::parse(kind) == Some(SurveyKind::Csat) {
        5
    } else {
        10
    };
    Badge {
        text: format!("{score}/{max} {label}"),
        class: if tone == "mid" { "meh" } else { tone },
    }
}

/// A time: machine-readable, absolute and relative.
pub struct When {
    pub iso: String,
    pub abs: String,
    pub rel: String,
}

fn span(d: TimeDelta) -> String {
    let s = d.num_seconds().abs();
    match s {
        ..=59 => "less than a minute".into(),
        60..=3599 => format!("{} min", s / 60),
        3600..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

pub(super) fn when(t: NaiveDateTime, at: NaiveDateTime) -> When {
    let d = at - t;
    When {
        iso: t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        abs: t.format("%Y-%m-%d %H:%M UTC").to_string(),
        rel: if d.num_seconds() < 60 {
            "just now".into()
        } else {
            format!("{} ago", span(d))
        },
    }
}

/// How a contact is named: their name, else email, else external id.
pub(super) fn display_name(c: &ContactRow) -> String {
    c.name
        .clone()
        .or_else(|| c.email.clone())
        .or_else(|| c.external_id.clone())
        .unwrap_or_else(|| "Unnamed customer".into())
}

/// A contact's properties but `value` (shown on its own), as text.
pub(super) fn properties(c: &ContactRow) -> Vec<(String, String)> {
    serde_json::from_str::<serde_json::Map<String, Value>>(&c.properties)
        .map(|m| {
            m.into_iter()
                .filter(|(k, _)| k != "value")
                .map(|(k, v)| {
                    let v = v
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string());
                    (k, v)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `resolved_issue` → `Resolved issue`.
fn outcome_label(o: &str) -> String {
    let words = o.replace('_', " ");
    let mut c = words.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

pub struct Due {
    pub text: String,
    pub overdue: bool,
    pub at: When,
}

pub struct HistoryItem {
    pub text: String,
    pub comment: Option<String>,
    pub at: When,
}

pub struct AnswerItem {
    pub badge: Badge,
    pub survey: String,
    pub at: When,
    pub this_one: bool,
}

pub struct TaskItem {
    pub href: String,
    pub survey: String,
    pub status: &'static str,
    pub badge: Badge,
    pub at: When,
}

/// The customer card.
pub struct Customer {
    pub name: String,
    /// The contact page (none when anonymous or erased).
    pub href: Option<String>,
    /// Why there is nothing to show (anonymous or erased).
    pub missing: Option<&'static str>,
    pub email: Option<String>,
    pub external_id: Option<String>,
    pub props: Vec<(String, String)>,
    pub value: Option<String>,
    pub unsubscribed: Option<When>,
    pub answers: Vec<AnswerItem>,
    pub tasks: Vec<TaskItem>,
}

/// One entry of the activity timeline.
pub struct Entry {
    pub who: String,
    pub at: When,
    pub what: String,
    /// `note`, `reply`, `status`, `assign`, `answer` or `other`.
    pub kind: &'static str,
    pub subject: Option<String>,
    pub body: Option<String>,
    /// A reply's delivery state: `(text, class)`.
    pub delivery: Option<(String, &'static str)>,
}

pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// What the email of a previewed reply looks like.
pub struct Preview {
    pub from: String,
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// What a POST hands back to the page: a form's text and its error, or a preview.
#[derive(Default)]
pub struct Extra {
    pub notice: Option<&'static str>,
    pub note_text: Option<String>,
    pub note_error: Option<String>,
    pub close_note: Option<String>,
    pub close_outcome: Option<String>,
    pub close_error: Option<String>,
    pub reply_subject: Option<String>,
    pub reply_body: Option<String>,
    pub reply_error: Option<String>,
    pub preview: Option<Preview>,
}

#[derive(Template)]
#[template(path = "app/task.html")]
struct TaskPage {
    l: Layout,
    csrf: String,
    can_act: bool,
    id: String,
    /// `?<inbox query>` or empty: appended to every link and form action.
    q: String,
    prev: Option<String>,
    next: Option<String>,
    who: String,
    survey: String,
    badge: Badge,
    comment: Option<String>,
    answered: When,
    history: Vec<HistoryItem>,
    status_key: String,
    status: &'static str,
    assignee: Option<String>,
    due: Option<Due>,
    outcome: Option<String>,
    closed_at: Option<When>,
    customer: Customer,
    timeline: Vec<Entry>,
    assignees: Vec<Choice>,
    assigned_to_me: bool,
    my_email: String,
    moves: Vec<Choice>,
    closes: Vec<Choice>,
    outcomes: Vec<Choice>,
    reply_blocked: Option<&'static str>,
    reply_to: String,
    subject: String,
    body: String,
    last_reply: Option<(String, &'static str)>,
    x: Extra,
}

/// Everything the page reads, in one go.
struct Data {
    task: FollowupRow,
    survey: SurveyRow,
    contact: Option<ContactRow>,
    erased: bool,
    answers: Vec<(ResponseRow, String, String)>,
    tasks: Vec<(FollowupRow, String, String)>,
    activities: Vec<ActivityRow>,
    emails: Vec<EmailRow>,
}

fn read(conn: &mut crate::store::DbConnection, id: &str) -> Result<Data, AppError> {
    use crate::store::{contacts, emails, followups as tasks, responses, surveys};
    let task = tasks::get(conn, id)?;
    let survey = surveys::get(conn, &task.survey_id)?;
    let (contact, erased) = match &task.contact_id {
        Some(c) => match contacts::find_any(conn, c)? {
            Some(row) if row.erased_at.is_some() => (None, true),
            other => (other, false),
        },
        None => (None, false),
    };
    let mut names: HashMap<String, (String, String)> = HashMap::new();
    names.insert(
        survey.id.clone(),
        (survey.name.clone(), survey.kind.clone()),
    );
    let mut survey_of = |conn: &mut crate::store::DbConnection, sid: &str| {
        if let Some(v) = names.get(sid) {
            return v.clone();
        }
        let v = surveys::get(conn, sid)
            .map(|s| (s.name, s.kind))
            .unwrap_or_else(|_| ("a survey".into(), "nps".into()));
        names.insert(sid.to_string(), v.clone());
        v
    };
    let mut answers = Vec::new();
    let mut earlier = Vec::new();
    if let Some(c) = &contact {
        let filter = responses::ResponseFilter {
            contact_id: Some(c.id.clone()),
            ..Default::default()
        };
        let page = Page {
            limit: 5,
            cursor: None,
        };
        for r in responses::list(conn, &filter, &page)?.into_iter().take(5) {
            let (name, kind) = survey_of(conn, &r.survey_id);
            answers.push((r, name, kind));
        }
        for t in tasks::for_contact(conn, &c.id, 21)? {
            if t.id != task.id {
                let (name, kind) = survey_of(conn, &t.survey_id);
                earlier.push((t, name, kind));
            }
        }
        earlier.truncate(20);
    }
    let activities = tasks::activities(conn, id)?;
    let emails = emails::for_followup(conn, id)?;
    Ok(Data {
        task,
        survey,
        contact,
        erased,
        answers,
        tasks: earlier,
        activities,
        emails,
    })
}

/// How an actor is shown: a member's name, `API key <name>`, `System`, `Customer`.
pub(super) fn actor_name(actor: Option<&str>, names: &HashMap<String, String>) -> String {
    let Some(a) = actor else {
        return "System".into();
    };
    if let Some(n) = names.get(a) {
        return n.clone();
    }
    if let Some(email) = a.strip_prefix("user:") {
        return email.to_string();
    }
    if let Some(key) = a.strip_prefix("api-key:") {
        return format!("API key {key}");
    }
    match a {
        "system" => "System".into(),
        "customer" => "Customer".into(),
        "rule" => "Assignment rule".into(),
        other => other.to_string(),
    }
}

/// A reply email's delivery state.
fn delivery(e: &EmailRow) -> (String, &'static str) {
    match e.status.as_str() {
        "pending" | "sending" => ("Queued".into(), "queued"),
        "sent" => ("Sent".into(), "sent"),
        "failed" => (
            match &e.last_error {
                Some(why) => format!("Failed: {why}"),
                None => "Failed".into(),
            },
            "failed",
        ),
        "cancelled" => ("Cancelled".into(), "failed"),
        other => (other.to_string(), "queued"),
    }
}

fn timeline(
    d: &Data,
    at: NaiveDateTime,
    names: &HashMap<String, String>,
    person: &dyn Fn(&str) -> String,
) -> (Vec<Entry>, Vec<HistoryItem>, Option<(String, &'static str)>) {
    let emails: HashMap<&str, &EmailRow> = d.emails.iter().map(|e| (e.id.as_str(), e)).collect();
    let mut entries = Vec::new();
    let mut history = Vec::new();
    let mut last_reply = None;
    for a in &d.activities {
        let data: Value = a
            .data
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(Value::Null);
        let s = |k: &str| data.get(k).and_then(Value::as_str).map(str::to_string);
        let mut e = Entry {
            who: actor_name(a.actor.as_deref(), names),
            at: when(a.created_at, at),
            what: String::new(),
            kind: "other",
            subject: None,
            body: None,
            delivery: None,
        };
        match a.kind.as_str() {
            "created" => {
                e.kind = "answer";
                e.what = match data.get("score").and_then(Value::as_i64) {
                    Some(score) => format!("opened the task (score {score})"),
                    None => "opened the task".into(),
                };
            }
            "assigned" => {
                e.kind = "assign";
                e.what = match s("to") {
                    Some(to) => format!("assigned it to {}", person(&to)),
                    None => "unassigned it".into(),
                };
            }
            "status_changed" => {
                e.kind = "status";
                let from = s("from").unwrap_or_default();
                let to = s("to").unwrap_or_default();
                e.what = format!(
                    "changed the status from {} to {}",
                    status_label(&from),
                    status_label(&to)
                );
                if let Some(o) = s("outcome") {
                    e.what
                        .push_str(&format!(" (outcome: {})", outcome_label(&o)));
                }
                if s("reason").as_deref() == Some("score_lowered") {
                    e.what.push_str(" because the customer lowered the score");
                }
            }
            "note" => {
                e.kind = "note";
                e.what = "added a note".into();
                e.body = a.body.clone();
            }
            "replied" => {
                e.kind = "reply";
                e.what = match s("to") {
                    Some(to) => format!("replied to {to}"),
                    None => "replied to the customer".into(),
                };
                e.subject = s("subject");
                e.body = a.body.clone();
                e.delivery =
                    s("email_id").and_then(|id| emails.get(id.as_str()).map(|m| delivery(m)));
                last_reply = e.delivery.clone();
            }
            "score_changed" => {
                e.kind = "answer";
                let (from, to) = (
                    data.get("from").and_then(Value::as_i64),
                    data.get("to").and_then(Value::as_i64),
                );
                e.what = match (from, to) {
                    (Some(f), Some(t)) => format!("changed the score from {f} to {t}"),
                    _ => "changed the score".into(),
                };
                history.push(HistoryItem {
                    text: format!("Score {}", e.what.trim_start_matches("changed the score ")),
                    comment: None,
                    at: when(a.created_at, at),
                });
            }
            "comment_changed" => {
                e.kind = "answer";
                e.what = "changed the comment".into();
                e.body = a.body.clone();
                history.push(HistoryItem {
                    text: "Comment changed to".into(),
                    comment: Some(a.body.clone().unwrap_or_default()),
                    at: when(a.created_at, at),
                });
            }
            other => e.what = other.replace('_', " "),
        }
        entries.push(e);
    }
    (entries, history, last_reply)
}

fn first_name(c: Option<&ContactRow>) -> String {
    c.and_then(|c| c.name.as_deref())
        .and_then(|n| n.split_whitespace().next())
        .map(str::to_string)
        .unwrap_or_else(|| "there".into())
}

/// The reply body the composer starts with: a greeting and a quote of the answer.
fn draft(d: &Data) -> String {
    let max = if SurveyKind::parse(&d.survey.kind) == Some(SurveyKind::Csat) {
        5
    } else {
        10
    };
    let mut s = format!(
        "Hi {},\n\nThank you for your feedback. You rated us {}/{max}",
        first_name(d.contact.as_ref()),
        d.task.score
    );
    match d.task.comment.as_deref().map(str::trim) {
        Some(c) if !c.is_empty() => {
            s.push_str(" and wrote:\n\n");
            for line in c.lines() {
                s.push_str("> ");
                s.push_str(line);
                s.push('\n');
            }
            s.push('\n');
        }
        _ => s.push_str(".\n\n"),
    }
    s
}

/// The subject `followups::reply` uses when none is given: `Re: ` and the survey email's.
fn default_subject(survey: &SurveyRow) -> String {
    let locale = crate::i18n::Locale::parse(&survey.locale).unwrap_or_default();
    format!(
        "Re: {}",
        locale
            .email()
            .subject
            .replace("{brand}", survey.brand.as_deref().unwrap_or("us"))
    )
}

// ------------------------------------------------------------------ the inbox query

/// The pairs of a query string.
fn pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// The inbox query to keep on this page's links: `?…` or empty (without this page's own
/// `notice`, and nothing when absurdly long).
fn carried(query: &str) -> String {
    let kept: Vec<(String, String)> = pairs(query)
        .into_iter()
        .filter(|(k, v)| k != "notice" && !k.is_empty() && !(k.contains('\0') || v.contains('\0')))
        .collect();
    if kept.is_empty() {
        return String::new();
    }
    let s = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(kept)
        .finish();
    if s.len() > QUERY_MAX {
        String::new()
    } else {
        format!("?{s}")
    }
}

/// This task's page with the inbox query and optionally a notice.
fn here(id: &str, query: &str, notice: Option<&str>) -> String {
    let q = carried(query);
    match notice {
        None => format!("/app/followups/{id}{q}"),
        Some(n) if q.is_empty() => format!("/app/followups/{id}?notice={n}"),
        Some(n) => format!("/app/followups/{id}{q}&notice={n}"),
    }
}

fn notice_text(query: &str) -> Option<&'static str> {
    let n = pairs(query).into_iter().find(|(k, _)| k == "notice")?.1;
    Some(match n.as_str() {
        "assigned" => "Assignee changed.",
        "status" => "Status changed.",
        "noted" => "Note added.",
        "replied" => "Reply queued. Its delivery state is shown in the activity below.",
        _ => return None,
    })
}

/// The previous and next task of the inbox view in `query` (the inbox's own query string:
/// view, filters and sort), as ids: the same search as the inbox page.
pub async fn neighbours(
    state: &AppState,
    member: &Member,
    query: &str,
    id: &str,
) -> Result<(Option<String>, Option<String>), AppError> {
    let Ok(q) = super::inbox::InboxQuery::parse(query) else {
        return Ok((None, None));
    };
    let Some(filter) = q.filter(&member.email) else {
        return Ok((None, None));
    };
    let sort = q.sort();
    let id = id.to_string();
    let (rows, current) = state
        .db
        .run(move |conn| {
            let rows: Vec<FollowupRow> =
                crate::store::followups::search(conn, &filter, sort, 0, VIEW_MAX)?
                    .into_iter()
                    .map(|item| item.task)
                    .collect();
            let current = crate::store::followups::get(conn, &id)?;
            Ok((rows, current))
        })
        .await?;
    let mut ids: Vec<&FollowupRow> = rows.iter().collect();
    // A task that just left the view (closed, reassigned) keeps its place between the others.
    let at = match ids.iter().position(|t| t.id == current.id) {
        Some(i) => i,
        None => {
            let i = ids
                .iter()
                .position(|t| before(&current, t, sort))
                .unwrap_or(ids.len());
            ids.insert(i, &current);
            i
        }
    };
    let prev = at
        .checked_sub(1)
        .and_then(|i| ids.get(i))
        .map(|t| t.id.clone());
    let next = ids.get(at + 1).map(|t| t.id.clone());
    Ok((prev, next))
}

/// Whether `a` comes before `b` in the list's order.
fn before(a: &FollowupRow, b: &FollowupRow, sort: Sort) -> bool {
    use std::cmp::Ordering;
    let ord = match sort {
        Sort::Priority => {
            let (va, vb) = (
                a.contact_value.unwrap_or(0.0),
                b.contact_value.unwrap_or(0.0),
            );
            vb.partial_cmp(&va)
                .unwrap_or(Ordering::Equal)
                .then(a.score.cmp(&b.score))
                .then(a.answered_at.cmp(&b.answered_at))
                .then(a.id.cmp(&b.id))
        }
        Sort::DueAt => a.due_at.cmp(&b.due_at).then(a.id.cmp(&b.id)),
        Sort::CreatedAt => b.id.cmp(&a.id),
    };
    ord == Ordering::Less
}

// ------------------------------------------------------------------ rendering

fn check_id(id: &str) -> Result<(), PageError> {
    if IdPrefix::Followup.matches(id) {
        Ok(())
    } else {
        Err(PageError::NotFound("follow-up"))
    }
}

async fn render(
    state: &AppState,
    signed: &Signed,
    id: &str,
    query: &str,
    status: StatusCode,
    x: Extra,
) -> Result<HttpResponse, PageError> {
    check_id(id)?;
    let rid = id.to_string();
    let d = state.db.run(move |conn| read(conn, &rid)).await?;
    let members = crate::members::list(state).await?;
    let (prev, next) = neighbours(state, signed.member(), query, id).await?;
    let names: HashMap<String, String> = members
        .iter()
        .map(|m| (m.actor(), m.name.clone()))
        .collect();
    let by_email: HashMap<String, String> = members
        .iter()
        .map(|m| (m.email.clone(), m.name.clone()))
        .collect();
    let person = |email: &str| {
        by_email
            .get(email)
            .cloned()
            .unwrap_or_else(|| email.to_string())
    };
    let at = now();
    let t = &d.task;
    let q = carried(query);
    let (timeline, history, last_reply) = timeline(&d, at, &names, &person);
    let open = OPEN_STATUSES.contains(&t.status.as_str());
    let me = signed.member();

    let mut assignees: Vec<Choice> = vec![Choice {
        value: String::new(),
        label: "Unassigned".into(),
        selected: t.assignee.is_none(),
    }];
    let mut listed = false;
    for m in members.iter().filter(|m| m.active) {
        let selected = t.assignee.as_deref() == Some(m.email.as_str());
        listed |= selected;
        assignees.push(Choice {
            value: m.email.clone(),
            label: if m.id == me.id {
                format!("{} (you)", m.name)
            } else {
                m.name.clone()
            },
            selected,
        });
    }
    if let (Some(a), false) = (&t.assignee, listed) {
        assignees.push(Choice {
            value: a.clone(),
            label: format!("{a} (not a member)"),
            selected: true,
        });
    }
    let mut moves = Vec::new();
    let mut closes = Vec::new();
    for s in transitions::STATUSES {
        if s == t.status || transitions::check(&t.status, s).is_err() {
            continue;
        }
        let label = match s {
            "in_progress" => "Start working",
            "open" => "Reopen",
            "resolved" => "Resolve",
            _ => "Dismiss",
        };
        let c = Choice {
            value: s.to_string(),
            label: label.into(),
            selected: false,
        };
        if matches!(s, "resolved" | "dismissed") {
            closes.push(c);
        } else {
            moves.push(c);
        }
    }
    let outcomes = state
        .settings
        .followup_outcomes
        .iter()
        .map(|o| Choice {
            value: o.to_string(),
            label: outcome_label(o),
            selected: x.close_outcome.as_deref() == Some(o.as_str()),
        })
        .collect();
    let due = open.then(|| {
        let overdue = t.due_at <= at;
        Due {
            text: if overdue {
                format!("Overdue by {}", span(at - t.due_at))
            } else {
                format!("in {}", span(t.due_at - at))
            },
            overdue,
            at: when(t.due_at, at),
        }
    });

    let contact = d.contact.as_ref();
    let who = match contact {
        Some(c) => display_name(c),
        None if d.erased => "Erased customer".into(),
        None => "Anonymous customer".into(),
    };
    let props = contact.map(properties).unwrap_or_default();
    let customer = Customer {
        name: who.clone(),
        href: contact.map(|c| format!("/app/contacts/{}", c.id)),
        missing: if d.erased {
            Some("This customer's personal data was erased on request. Their answer stays, without name, email or properties.")
        } else if contact.is_none() {
            Some("This answer was given anonymously (a public link): there is no customer to show.")
        } else {
            None
        },
        email: contact.and_then(|c| c.email.clone()),
        external_id: contact.and_then(|c| c.external_id.clone()),
        props,
        // Written as the inbox writes it (120,000).
        value: contact.and_then(|c| c.value).map(super::inbox::money),
        unsubscribed: contact.and_then(|c| c.unsubscribed_at).map(|u| when(u, at)),
        answers: d
            .answers
            .iter()
            .map(|(r, name, kind)| AnswerItem {
                badge: badge(kind, r.score),
                survey: name.clone(),
                at: when(r.created_at, at),
                this_one: r.id == t.response_id,
            })
            .collect(),
        tasks: d
            .tasks
            .iter()
            .map(|(f, name, kind)| TaskItem {
                href: format!("/app/followups/{}{q}", f.id),
                survey: name.clone(),
                status: status_label(&f.status),
                badge: badge(kind, f.score),
                at: when(f.answered_at, at),
            })
            .collect(),
    };
    let reply_blocked = match contact {
        _ if d.erased => Some("You cannot reply: this customer's data was erased, so there is no email address to write to."),
        None => Some("You cannot reply: the answer is anonymous, so there is no email address to write to."),
        Some(c) if c.email.is_none() => Some("You cannot reply: this customer has no email address."),
        Some(_) => None,
    };
    let page = TaskPage {
        l: Layout::signed(&format!("{who} · {}", d.survey.name), signed, "inbox"),
        csrf: signed.csrf().to_string(),
        can_act: signed.can(Role::Agent),
        id: t.id.clone(),
        prev: prev.map(|p| format!("/app/followups/{p}{q}")),
        next: next.map(|n| format!("/app/followups/{n}{q}")),
        who,
        survey: d.survey.name.clone(),
        badge: badge(&d.survey.kind, t.score),
        comment: t.comment.clone().filter(|c| !c.trim().is_empty()),
        answered: when(t.answered_at, at),
        history,
        status_key: t.status.clone(),
        status: status_label(&t.status),
        assignee: t.assignee.as_deref().map(&person),
        due,
        outcome: t.outcome.as_deref().map(outcome_label),
        closed_at: t.resolved_at.filter(|_| !open).map(|r| when(r, at)),
        customer,
        timeline,
        assignees,
        assigned_to_me: t.assignee.as_deref() == Some(me.email.as_str()),
        my_email: me.email.clone(),
        moves,
        closes,
        outcomes,
        reply_blocked,
        reply_to: contact.and_then(|c| c.email.clone()).unwrap_or_default(),
        subject: x
            .reply_subject
            .clone()
            .unwrap_or_else(|| default_subject(&d.survey)),
        body: x.reply_body.clone().unwrap_or_else(|| draft(&d)),
        last_reply,
        q,
        x: Extra {
            notice: x.notice.or_else(|| notice_text(query)),
            ..x
        },
    };
    Ok(html(status, page.render()))
}

/// `GET /app/followups/{id}`.
pub async fn show(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: Signed,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    render(
        &state,
        &signed,
        &id,
        req.query_string(),
        StatusCode::OK,
        Extra::default(),
    )
    .await
}

// ------------------------------------------------------------------ actions

/// The checks every POST starts with: CSRF first, then the role, then the id's shape.
fn may_act(
    req: &HttpRequest,
    signed: &Signed,
    token: Option<&str>,
    id: &str,
) -> Result<(), PageError> {
    signed.check_csrf(req, token)?;
    signed.require(Role::Agent)?;
    check_id(id)
}

/// Field text: `Err` with what to change when it is blank, too long or holds NUL.
fn text_field(raw: Option<&str>, what: &str, max: usize, required: bool) -> Result<String, String> {
    let t = raw.unwrap_or_default().trim();
    if t.contains('\0') {
        return Err(format!(
            "The {what} contains a NUL character; remove it and try again."
        ));
    }
    let n = t.chars().count();
    if n > max {
        return Err(format!(
            "The {what} is {n} characters long; the limit is {max}. Shorten it and try again."
        ));
    }
    if required && t.is_empty() {
        return Err(format!("Write the {what} first."));
    }
    Ok(t.to_string())
}

/// Text to give back to a form after an error (without NUL characters).
fn keep(raw: Option<&str>) -> Option<String> {
    raw.map(|s| s.replace('\0', ""))
}

#[derive(Debug, Default, Deserialize)]
pub struct AssignForm {
    csrf_token: Option<String>,
    /// A member's email, or empty to unassign.
    assignee: Option<String>,
}

/// `POST /app/followups/{id}/assign`.
pub async fn assign(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: Signed,
    id: web::Path<String>,
    form: web::Form<AssignForm>,
) -> Result<HttpResponse, PageError> {
    may_act(&req, &signed, form.csrf_token.as_deref(), &id)?;
    let raw = form
        .assignee
        .as_deref()
        .unwrap_or_default()
        .trim()
        .to_string();
    let to = if raw.is_empty() {
        None
    } else {
        let tid = id.to_string();
        let current = state
            .db
            .run(move |conn| crate::store::followups::get(conn, &tid))
            .await?
            .assignee;
        let member = crate::members::active(&state)
            .await?
            .into_iter()
            .any(|m| m.email == raw);
        if !member && current.as_deref() != Some(raw.as_str()) {
            return Err(PageError::BadRequest(
                "Choose an active member of the team (or Unassigned).".into(),
            ));
        }
        Some(raw)
    };
    followups::change(
        &state,
        &id,
        Change {
            assignee: Some(to),
            ..Default::default()
        },
        &signed.member().actor(),
    )
    .await?;
    Ok(see_other(&here(&id, req.query_string(), Some("assigned"))))
}

#[derive(Debug, Default, Deserialize)]
pub struct StatusForm {
    csrf_token: Option<String>,
    status: Option<String>,
    outcome: Option<String>,
    note: Option<String>,
}

/// `POST /app/followups/{id}/status`: a move along the allowed transitions; closing needs an
/// outcome and may carry a note.
pub async fn status(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: Signed,
    id: web::Path<String>,
    form: web::Form<StatusForm>,
) -> Result<HttpResponse, PageError> {
    may_act(&req, &signed, form.csrf_token.as_deref(), &id)?;
    let to = form
        .status
        .as_deref()
        .unwrap_or_default()
        .trim()
        .to_string();
    if !transitions::STATUSES.contains(&to.as_str()) {
        return Err(PageError::BadRequest(format!(
            "There is no status {to:?}. Use the buttons on the task page."
        )));
    }
    let closing = matches!(to.as_str(), "resolved" | "dismissed");
    let mut outcome = None;
    let mut note = String::new();
    if closing {
        let back = |why: String| Extra {
            close_error: Some(why),
            close_note: keep(form.note.as_deref()),
            close_outcome: form.outcome.clone(),
            ..Default::default()
        };
        let o = form.outcome.as_deref().unwrap_or_default().trim();
        if o.is_empty() {
            let x = back("Choose an outcome: how did it end?".into());
            return render(
                &state,
                &signed,
                &id,
                req.query_string(),
                StatusCode::UNPROCESSABLE_ENTITY,
                x,
            )
            .await;
        }
        if !state
            .settings
            .followup_outcomes
            .iter()
            .any(|known| known == o)
        {
            return Err(PageError::BadRequest(format!(
                "There is no outcome {o:?}. Choose one of the list on the task page."
            )));
        }
        note = match text_field(form.note.as_deref(), "note", NOTE_MAX, false) {
            Ok(n) => n,
            Err(why) => {
                let x = back(why);
                return render(
                    &state,
                    &signed,
                    &id,
                    req.query_string(),
                    StatusCode::UNPROCESSABLE_ENTITY,
                    x,
                )
                .await;
            }
        };
        outcome = Some(o.to_string());
    }
    let actor = signed.member().actor();
    followups::change(
        &state,
        &id,
        Change {
            status: Some(to),
            outcome,
            // Logged with the close, in the same transaction.
            note: Some(note).filter(|n| !n.is_empty()),
            ..Default::default()
        },
        &actor,
    )
    .await?;
    Ok(see_other(&here(&id, req.query_string(), Some("status"))))
}

#[derive(Debug, Default, Deserialize)]
pub struct NoteForm {
    csrf_token: Option<String>,
    body: Option<String>,
}

/// `POST /app/followups/{id}/notes`.
pub async fn note(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: Signed,
    id: web::Path<String>,
    form: web::Form<NoteForm>,
) -> Result<HttpResponse, PageError> {
    may_act(&req, &signed, form.csrf_token.as_deref(), &id)?;
    let text = match text_field(form.body.as_deref(), "note", NOTE_MAX, true) {
        Ok(t) => t,
        Err(why) => {
            let x = Extra {
                note_error: Some(why),
                note_text: keep(form.body.as_deref()),
                ..Default::default()
            };
            return render(
                &state,
                &signed,
                &id,
                req.query_string(),
                StatusCode::UNPROCESSABLE_ENTITY,
                x,
            )
            .await;
        }
    };
    followups::add_note(&state, &id, &text, &signed.member().actor()).await?;
    Ok(see_other(&here(&id, req.query_string(), Some("noted"))))
}

#[derive(Debug, Default, Deserialize)]
pub struct ReplyForm {
    csrf_token: Option<String>,
    subject: Option<String>,
    body: Option<String>,
    /// `preview` shows the email; anything else sends it.
    action: Option<String>,
}

/// `POST /app/followups/{id}/reply`: previews or sends a reply to the customer.
pub async fn reply(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: Signed,
    id: web::Path<String>,
    form: web::Form<ReplyForm>,
) -> Result<HttpResponse, PageError> {
    may_act(&req, &signed, form.csrf_token.as_deref(), &id)?;
    let checked = text_field(form.subject.as_deref(), "subject", SUBJECT_MAX, true).and_then(|s| {
        if s.chars().any(char::is_control) {
            return Err("The subject must be one line.".into());
        }
        text_field(form.body.as_deref(), "reply", REPLY_MAX, true).map(|b| (s, b))
    });
    let mut x = Extra {
        reply_subject: keep(form.subject.as_deref()),
        reply_body: keep(form.body.as_deref()),
        ..Default::default()
    };
    let (subject, body) = match checked {
        Ok(v) => v,
        Err(why) => {
            x.reply_error = Some(why);
            return render(
                &state,
                &signed,
                &id,
                req.query_string(),
                StatusCode::UNPROCESSABLE_ENTITY,
                x,
            )
            .await;
        }
    };
    if form.action.as_deref() == Some("preview") {
        let rid = id.to_string();
        let (from, to) = state
            .db
            .run(move |conn| {
                let task = crate::store::followups::get(conn, &rid)?;
                let survey = crate::store::surveys::get(conn, &task.survey_id)?;
                let to = match &task.contact_id {
                    Some(c) => crate::store::contacts::get(conn, c)
                        .ok()
                        .and_then(|c| c.email),
                    None => None,
                };
                Ok((survey.brand, to))
            })
            .await?;
        let Some(to) = to else {
            return Err(PageError::Conflict(
                "This answer has no email address to reply to (anonymous or erased).".into(),
            ));
        };
        let sender = &state.settings.smtp_from;
        let name = from
            .filter(|b| !b.trim().is_empty())
            .or_else(|| sender.name.clone());
        x.preview = Some(Preview {
            from: match name {
                Some(n) => format!("{n} <{}>", sender.email),
                None => sender.email.to_string(),
            },
            to,
            subject,
            body,
        });
        return render(&state, &signed, &id, req.query_string(), StatusCode::OK, x).await;
    }
    followups::reply(&state, &id, Some(&subject), &body, &signed.member().actor()).await?;
    Ok(see_other(&here(&id, req.query_string(), Some("replied"))))
}
