//! `/app/followups`: the inbox of follow-up tasks.
//!
//! - Views (tabs with counts): `view=open` (open and in progress; the default), `mine`,
//!   `unassigned`, `overdue`, `closed`, `all`.
//! - Filters (a GET form): `survey` (id), the score band `min_score`/`max_score` (inclusive,
//!   0–10: e.g. NPS 0–3 angry, 4–6 lukewarm; CSAT 1–2; `band=0-3` sets both),
//!   `assignee` (`me`, `none` or a member email), `prop_key` + `prop_value` (a contact
//!   property, e.g. `plan` = `enterprise`; `prop=plan:enterprise` is read too), `from`/`to`
//!   (answered on or after / on or before, `YYYY-MM-DD`, UTC), `q` (text in the comment or the
//!   customer's name, email or company). Filters narrow every view: `view=mine` with another
//!   assignee shows nothing.
//! - `sort=priority` (default: most valuable customer, lower score, older answer),
//!   `due_at`, `created_at` (newest first); 50 per `page`.
//! - A bad parameter is a 400 page naming it. Unknown parameters are ignored.
//! - `POST /app/followups/bulk`: repeated `id`, then `assignee` (`me`, `none`, an email)
//!   and/or `status` (+ `outcome` when closing); each task goes through
//!   `followups::change`; the inbox then says how many changed and why any did not.
//! - `GET /app/followups/live?<query>&since=<t>`: JSON `{"new": n, "since": t2}`, the number of
//!   matching tasks created after `t`, for the page's short poll.
//! - Saved views (`POST /app/views`, `POST /app/views/{id}/delete`): a member's named query
//!   strings, listed beside the tabs. Any member (readers too) keeps their own.

use std::collections::HashMap;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::{NaiveDate, NaiveDateTime, TimeDelta};

use super::page::{html, see_other, Layout, PageError};
use super::Signed;
use crate::context::AppState;
use crate::domain::{new_id, now, IdPrefix, Role};
use crate::error::AppError;
use crate::followups::{transitions, Change};
use crate::store::followups::{
    self as inbox, AssigneeFilter, InboxFilter, TaskListItem, ViewCounts,
};
use crate::store::followups::{Sort, OPEN_STATUSES};
use crate::store::models::SavedViewRow;

/// Tasks per page.
pub const PAGE_SIZE: i64 = 50;
/// Most tasks changed in one bulk submit.
const BULK_MAX: usize = 200;

const VIEWS: [(&str, &str); 6] = [
    ("open", "Open"),
    ("mine", "Mine"),
    ("unassigned", "Unassigned"),
    ("overdue", "Overdue"),
    ("closed", "Closed"),
    ("all", "All"),
];

/// The inbox's query, parsed and checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InboxQuery {
    pub view: String,
    pub survey: Option<String>,
    pub min_score: Option<i32>,
    pub max_score: Option<i32>,
    /// `me`, `none` or an email.
    pub assignee: Option<String>,
    pub prop_key: Option<String>,
    pub prop_value: Option<String>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub q: Option<String>,
    pub sort: String,
    pub page: i64,
}

fn bad(param: &str, why: &str) -> PageError {
    PageError::BadRequest(format!(
        "The inbox parameter “{param}” {why}. Fix it in the address, or start again from the inbox."
    ))
}

fn nonempty(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

impl InboxQuery {
    /// Parses a query string; `Err` names the bad parameter. Unknown keys are ignored.
    pub fn parse(raw: &str) -> Result<InboxQuery, PageError> {
        let mut q = InboxQuery {
            view: "open".into(),
            sort: "priority".into(),
            page: 1,
            ..Default::default()
        };
        for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
            let v = v.as_ref();
            if v.contains('\0') && k != "notice" {
                return Err(bad(&k, "must not contain a NUL character"));
            }
            match k.as_ref() {
                "view" => {
                    if !VIEWS.iter().any(|(n, _)| *n == v) {
                        return Err(bad(
                            "view",
                            "must be one of open, mine, unassigned, overdue, closed, all",
                        ));
                    }
                    q.view = v.to_string();
                }
                "survey" => {
                    q.survey = nonempty(v);
                    if q.survey.as_deref().is_some_and(|s| s.len() > 64) {
                        return Err(bad("survey", "is not a survey id"));
                    }
                }
                "min_score" | "max_score" => {
                    let n = match nonempty(v) {
                        None => None,
                        Some(s) => match s.parse::<i32>() {
                            Ok(n) if (0..=10).contains(&n) => Some(n),
                            _ => return Err(bad(&k, "must be a whole number from 0 to 10")),
                        },
                    };
                    if k == "min_score" {
                        q.min_score = n;
                    } else {
                        q.max_score = n;
                    }
                }
                "band" => {
                    if let Some(b) = nonempty(v) {
                        let (lo, hi) = b
                            .split_once('-')
                            .and_then(|(a, b)| {
                                Some((a.parse::<i32>().ok()?, b.parse::<i32>().ok()?))
                            })
                            .filter(|(a, b)| (0..=10).contains(a) && (0..=10).contains(b))
                            .ok_or_else(|| bad("band", "must look like 0-6 (scores 0 to 10)"))?;
                        q.min_score = Some(lo);
                        q.max_score = Some(hi);
                    }
                }
                "assignee" => {
                    q.assignee = nonempty(v).map(|a| a.to_lowercase());
                    if let Some(a) = &q.assignee {
                        if a != "me" && a != "none" && (!a.contains('@') || a.len() > 254) {
                            return Err(bad(
                                "assignee",
                                "must be me, none or a member's email address",
                            ));
                        }
                    }
                }
                "prop" => {
                    if let Some(p) = nonempty(v) {
                        let (a, b) = p.split_once(':').ok_or_else(|| {
                            bad("prop", "must look like key:value, e.g. plan:enterprise")
                        })?;
                        q.prop_key = nonempty(a);
                        q.prop_value = nonempty(b);
                    }
                }
                "prop_key" => q.prop_key = nonempty(v),
                "prop_value" => q.prop_value = nonempty(v),
                "from" | "to" => {
                    let d = match nonempty(v) {
                        None => None,
                        Some(s) => Some(
                            NaiveDate::parse_from_str(&s, "%Y-%m-%d")
                                .map_err(|_| bad(&k, "must be a date like 2026-01-31"))?,
                        ),
                    };
                    if k == "from" {
                        q.from = d;
                    } else {
                        q.to = d;
                    }
                }
                "q" => {
                    q.q = nonempty(v);
                    if q.q.as_deref().is_some_and(|s| s.chars().count() > 200) {
                        return Err(bad("q", "is longer than 200 characters"));
                    }
                }
                "sort" => {
                    if !matches!(v, "priority" | "due_at" | "created_at") {
                        return Err(bad("sort", "must be one of priority, due_at, created_at"));
                    }
                    q.sort = v.to_string();
                }
                "page" => {
                    q.page = match v.trim().parse::<i64>() {
                        Ok(n) if (1..=100_000).contains(&n) => n,
                        _ => return Err(bad("page", "must be a whole number from 1")),
                    };
                }
                _ => {}
            }
        }
        if let Some(k) = &q.prop_key {
            if k.len() > 64
                || !k
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                return Err(bad(
                    "prop_key",
                    "must be a property name of letters, digits, _ - or . (at most 64)",
                ));
            }
            if q.prop_value.is_none() {
                return Err(bad(
                    "prop_value",
                    "is missing: give the value of the property",
                ));
            }
        } else if q.prop_value.is_some() {
            return Err(bad(
                "prop_key",
                "is missing: give the property's name, e.g. plan",
            ));
        }
        if q.prop_value
            .as_deref()
            .is_some_and(|v| v.chars().count() > 200)
        {
            return Err(bad("prop_value", "is longer than 200 characters"));
        }
        if let (Some(a), Some(b)) = (q.min_score, q.max_score) {
            if a > b {
                return Err(bad("min_score", "is above max_score"));
            }
        }
        if let (Some(a), Some(b)) = (q.from, q.to) {
            if a > b {
                return Err(bad("from", "is after to"));
            }
        }
        Ok(q)
    }

    /// The canonical query string (defaults left out), with `view` and `page` as given.
    fn encode_with(&self, view: &str, page: i64) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        if view != "open" {
            s.append_pair("view", view);
        }
        let opt = |s: &mut url::form_urlencoded::Serializer<String>, k: &str, v: Option<String>| {
            if let Some(v) = v {
                s.append_pair(k, &v);
            }
        };
        opt(&mut s, "survey", self.survey.clone());
        opt(&mut s, "min_score", self.min_score.map(|n| n.to_string()));
        opt(&mut s, "max_score", self.max_score.map(|n| n.to_string()));
        opt(&mut s, "assignee", self.assignee.clone());
        opt(&mut s, "prop_key", self.prop_key.clone());
        opt(&mut s, "prop_value", self.prop_value.clone());
        opt(&mut s, "from", self.from.map(|d| d.to_string()));
        opt(&mut s, "to", self.to.map(|d| d.to_string()));
        opt(&mut s, "q", self.q.clone());
        if self.sort != "priority" {
            s.append_pair("sort", &self.sort);
        }
        if page > 1 {
            s.append_pair("page", &page.to_string());
        }
        s.finish()
    }

    /// The canonical query string of this page.
    pub fn encode(&self) -> String {
        self.encode_with(&self.view, self.page)
    }

    /// Whether any filter (not the view, sort or page) is set.
    fn filtered(&self) -> bool {
        self.survey.is_some()
            || self.min_score.is_some()
            || self.max_score.is_some()
            || self.assignee.is_some()
            || self.prop_key.is_some()
            || self.from.is_some()
            || self.to.is_some()
            || self.q.is_some()
    }

    pub fn sort(&self) -> Sort {
        match self.sort.as_str() {
            "due_at" => Sort::DueAt,
            "created_at" => Sort::CreatedAt,
            _ => Sort::Priority,
        }
    }

    /// The filters of the form, without the view's; `None` when the form's assignee and the
    /// view's exclude each other.
    fn base_filter(&self, me: &str) -> InboxFilter {
        InboxFilter {
            assignee: match self.assignee.as_deref() {
                None => AssigneeFilter::Any,
                Some("none") => AssigneeFilter::Unassigned,
                Some("me") => AssigneeFilter::Is(me.to_string()),
                Some(e) => AssigneeFilter::Is(e.to_string()),
            },
            survey_id: self.survey.clone(),
            min_score: self.min_score,
            max_score: self.max_score,
            property: self.prop_key.clone().zip(self.prop_value.clone()),
            answered_from: self.from.and_then(|d| d.and_hms_opt(0, 0, 0)),
            answered_before: self
                .to
                .and_then(|d| d.succ_opt())
                .and_then(|d| d.and_hms_opt(0, 0, 0)),
            q: self.q.clone(),
            ..Default::default()
        }
    }

    /// The filter of this view with the form's filters; `None` when nothing can match.
    pub fn filter(&self, me: &str) -> Option<InboxFilter> {
        let mut f = self.base_filter(me);
        let open = || OPEN_STATUSES.iter().map(|s| s.to_string()).collect();
        let want = match self.view.as_str() {
            "mine" => Some(AssigneeFilter::Is(me.to_string())),
            "unassigned" => Some(AssigneeFilter::Unassigned),
            _ => None,
        };
        if let Some(w) = want {
            if f.assignee != AssigneeFilter::Any && f.assignee != w {
                return None;
            }
            f.assignee = w;
        }
        match self.view.as_str() {
            "open" | "mine" | "unassigned" => f.statuses = open(),
            "overdue" => f.overdue = Some(true),
            "closed" => {
                f.statuses = inbox::CLOSED_STATUSES
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            }
            _ => {}
        }
        Some(f)
    }
}

/// A tab.
pub struct Tab {
    pub label: &'static str,
    pub count: i64,
    pub href: String,
    pub current: bool,
}

/// A saved view as listed.
pub struct SavedLink {
    pub id: String,
    pub name: String,
    pub href: String,
    pub current: bool,
}

/// A task as a row.
pub struct Row {
    pub id: String,
    pub href: String,
    pub score: i32,
    /// `bad`, `mid` or `good`: the colour.
    pub tone: &'static str,
    /// The category's name, e.g. `detractor`.
    pub category: &'static str,
    pub who: String,
    pub email: Option<String>,
    pub company: Option<String>,
    pub value: Option<String>,
    pub plan: Option<String>,
    pub survey: String,
    pub comment: Option<String>,
    pub age: String,
    pub answered: String,
    /// `Some((text, overdue))` for an open task.
    pub due: Option<(String, bool)>,
    pub assignee: Option<String>,
    pub status: String,
    pub status_label: &'static str,
    /// Created at, for the live poll's highlight.
    pub created: String,
}

pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "app/inbox.html")]
struct InboxPage {
    l: Layout,
    csrf: String,
    can_act: bool,
    q: InboxQuery,
    qs: String,
    tabs: Vec<Tab>,
    saved: Vec<SavedLink>,
    rows: Vec<Row>,
    surveys: Vec<Opt>,
    assignees: Vec<Opt>,
    sorts: Vec<Opt>,
    bulk_assignees: Vec<Opt>,
    statuses: Vec<Opt>,
    outcomes: Vec<Opt>,
    notice: Option<String>,
    first: i64,
    last: i64,
    prev_href: Option<String>,
    next_href: Option<String>,
    since: String,
    filtered: bool,
    live_href: String,
    view_label: &'static str,
    /// What `e` resolves with: the first of `FOLLOWUP_OUTCOMES`.
    quick_outcome: String,
    quick_outcome_label: String,
}

/// `YYYY-MM-DDTHH:MM:SS.ffffff`: the live poll's `since`.
fn stamp(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// "5 min", "3 h", "2 d".
pub fn span(d: TimeDelta) -> String {
    let m = d.num_minutes().max(0);
    if m < 1 {
        "just now".into()
    } else if m < 60 {
        format!("{m} min")
    } else if m < 48 * 60 {
        format!("{} h", m / 60)
    } else {
        format!("{} d", m / 1440)
    }
}

/// A status as pages name it.
pub fn status_label(s: &str) -> &'static str {
    match s {
        "open" => "Open",
        "in_progress" => "In progress",
        "resolved" => "Resolved",
        "dismissed" => "Dismissed",
        _ => "Unknown",
    }
}

/// The colour class (`bad`, `mid`, `good`) and category word of a score.
pub fn tone(kind: &str, score: i32) -> (&'static str, &'static str) {
    use crate::domain::{Category, Score, SurveyKind};
    let cat = SurveyKind::parse(kind)
        .and_then(|k| Score::parse(k, score as i64).ok())
        .map(|s| s.category());
    match cat {
        Some(Category::Detractor) => ("bad", "detractor"),
        Some(Category::Unsatisfied) => ("bad", "unsatisfied"),
        Some(Category::Passive) => ("mid", "passive"),
        Some(Category::Neutral) => ("mid", "neutral"),
        Some(Category::Promoter) => ("good", "promoter"),
        Some(Category::Satisfied) => ("good", "satisfied"),
        None => ("mid", "score"),
    }
}

/// `120000.0` → `120,000`; `12.5` → `12.50`.
pub fn money(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let neg = v < 0.0;
    let whole = v.abs().trunc() as u64;
    let cents = ((v.abs() - v.abs().trunc()) * 100.0).round() as u64;
    let digits = whole.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if cents > 0 {
        out.push_str(&format!(".{cents:02}"));
    }
    if neg {
        format!("-{out}")
    } else {
        out
    }
}

fn row(it: TaskListItem, qs: &str, names: &HashMap<String, String>, t: NaiveDateTime) -> Row {
    let task = it.task;
    let (tone, category) = tone(&it.survey_kind, task.score);
    let open = OPEN_STATUSES.contains(&task.status.as_str());
    let due = open.then(|| {
        if task.due_at < t {
            (
                format!(
                    "Overdue {}",
                    span(t - task.due_at).replace("just now", "< 1 min")
                ),
                true,
            )
        } else {
            (
                format!(
                    "Due in {}",
                    span(task.due_at - t).replace("just now", "< 1 min")
                ),
                false,
            )
        }
    });
    let who = it
        .contact_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .or_else(|| it.contact_email.clone())
        .unwrap_or_else(|| "Anonymous".into());
    let comment = task
        .comment
        .as_deref()
        .and_then(|c| c.lines().map(str::trim).find(|l| !l.is_empty()))
        .map(|l| {
            if l.chars().count() > 160 {
                format!("{}…", l.chars().take(160).collect::<String>())
            } else {
                l.to_string()
            }
        });
    Row {
        href: if qs.is_empty() {
            format!("/app/followups/{}", task.id)
        } else {
            format!("/app/followups/{}?{qs}", task.id)
        },
        score: task.score,
        tone,
        category,
        email: it.contact_email.filter(|e| Some(e) != Some(&who)),
        who,
        company: it.company,
        value: it
            .value
            .filter(|v| *v > 0.0)
            .map(money)
            .filter(|v| !v.is_empty()),
        plan: it.plan,
        survey: it.survey_name,
        comment,
        age: match span(t - task.answered_at) {
            s if s == "just now" => s,
            s => format!("{s} ago"),
        },
        answered: task.answered_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        due,
        assignee: task
            .assignee
            .map(|a| names.get(&format!("user:{a}")).cloned().unwrap_or(a)),
        status_label: status_label(&task.status),
        status: task.status,
        created: stamp(task.created_at),
        id: task.id,
    }
}

fn opts<I: IntoIterator<Item = (String, String)>>(items: I, selected: &str) -> Vec<Opt> {
    items
        .into_iter()
        .map(|(value, label)| Opt {
            selected: value == selected,
            value,
            label,
        })
        .collect()
}

fn clean_notice(n: &str) -> String {
    n.chars().filter(|c| !c.is_control()).take(2000).collect()
}

/// `GET /app/followups`.
pub async fn show(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: Signed,
) -> Result<HttpResponse, PageError> {
    let q = InboxQuery::parse(req.query_string())?;
    let notice = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "notice")
        .map(|(_, v)| clean_notice(&v))
        .filter(|n| !n.is_empty());
    render(&state, &signed, q, notice).await
}

async fn render(
    state: &AppState,
    signed: &Signed,
    q: InboxQuery,
    notice: Option<String>,
) -> Result<HttpResponse, PageError> {
    let me = signed.member().email.clone();
    let since = now();
    let filter = q.filter(&me);
    let base = q.base_filter(&me);
    let (sort, offset) = (q.sort(), (q.page - 1) * PAGE_SIZE);
    let me2 = me.clone();
    let (items, counts, surveys, views) = state
        .db
        .run({
            let uid = signed.member().id.clone();
            move |conn| {
                let items = match &filter {
                    Some(f) => inbox::search(conn, f, sort, offset, PAGE_SIZE + 1)?,
                    None => Vec::new(),
                };
                let counts = inbox::view_counts(conn, &me2, &base)?;
                let surveys = inbox::survey_names(conn)?;
                let views = crate::store::users::saved_views_of(conn, &uid)?;
                Ok((items, counts, surveys, views))
            }
        })
        .await?;
    // One read of the team: the pickers list the active members, the rows name anyone.
    let team = crate::members::list(state).await?;
    let names = crate::members::names(&team);
    let members: Vec<_> = team.iter().filter(|m| m.active).collect();
    let qs = q.encode();
    let more = items.len() as i64 > PAGE_SIZE;
    let t = now();
    let rows: Vec<Row> = items
        .into_iter()
        .take(PAGE_SIZE as usize)
        .map(|it| row(it, &qs, &names, t))
        .collect();
    let count_of = |c: &ViewCounts, v: &str| match v {
        "open" => c.open,
        "mine" => c.mine,
        "unassigned" => c.unassigned,
        "overdue" => c.overdue,
        "closed" => c.closed,
        _ => c.all,
    };
    let tabs = VIEWS
        .iter()
        .map(|(name, label)| {
            let s = q.encode_with(name, 1);
            Tab {
                label,
                count: count_of(&counts, name),
                href: if s.is_empty() {
                    "/app/followups".into()
                } else {
                    format!("/app/followups?{s}")
                },
                current: q.view == *name,
            }
        })
        .collect();
    let plain = q.encode_with(&q.view, 1);
    let saved = views
        .into_iter()
        .map(|v| SavedLink {
            current: v.query == plain,
            href: if v.query.is_empty() {
                "/app/followups".into()
            } else {
                format!("/app/followups?{}", v.query)
            },
            id: v.id,
            name: v.name,
        })
        .collect();
    let page_href = |p: i64| {
        let s = q.encode_with(&q.view, p);
        if s.is_empty() {
            "/app/followups".to_string()
        } else {
            format!("/app/followups?{s}")
        }
    };
    let first = if rows.is_empty() { 0 } else { offset + 1 };
    let last = offset + rows.len() as i64;
    let assignee_sel = q.assignee.clone().unwrap_or_default();
    let mut assignees = vec![
        (String::new(), "Anyone".to_string()),
        ("me".into(), "Me".into()),
        ("none".into(), "Unassigned".into()),
    ];
    assignees.extend(members.iter().map(|m| (m.email.clone(), m.name.clone())));
    let mut bulk_assignees = vec![
        (String::new(), "Assign: no change".to_string()),
        ("me".into(), "Assign to me".into()),
        ("none".into(), "Unassign".into()),
    ];
    bulk_assignees.extend(
        members
            .iter()
            .filter(|m| m.role >= Role::Agent)
            .map(|m| (m.email.clone(), format!("Assign to {}", m.name))),
    );
    let view_label = VIEWS
        .iter()
        .find(|(n, _)| *n == q.view)
        .map(|(_, l)| *l)
        .unwrap_or("Open");
    let mut live = url::form_urlencoded::Serializer::new(plain.clone());
    live.append_pair("since", &stamp(since));
    let quick_outcome = state
        .settings
        .followup_outcomes
        .first()
        .cloned()
        .unwrap_or_default();
    let page = InboxPage {
        quick_outcome_label: quick_outcome.replace('_', " "),
        quick_outcome,
        l: Layout::signed(&format!("Inbox · {view_label}"), signed, "inbox"),
        csrf: signed.csrf().to_string(),
        can_act: signed.can(Role::Agent),
        surveys: opts(
            std::iter::once((String::new(), "All surveys".to_string())).chain(
                surveys
                    .into_iter()
                    .map(|(id, name, kind)| (id, format!("{name} ({})", kind.to_uppercase()))),
            ),
            q.survey.as_deref().unwrap_or(""),
        ),
        assignees: opts(assignees, &assignee_sel),
        sorts: opts(
            [
                ("priority", "Priority"),
                ("due_at", "Due soonest"),
                ("created_at", "Newest"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string())),
            &q.sort,
        ),
        bulk_assignees: opts(bulk_assignees, ""),
        statuses: opts(
            [
                ("", "Status: no change"),
                ("in_progress", "Mark in progress"),
                ("resolved", "Resolve"),
                ("dismissed", "Dismiss"),
                ("open", "Reopen"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string())),
            "",
        ),
        outcomes: opts(
            std::iter::once((String::new(), "Outcome (when closing)".to_string())).chain(
                state
                    .settings
                    .followup_outcomes
                    .iter()
                    .map(|o| (o.to_string(), o.replace('_', " "))),
            ),
            "",
        ),
        notice,
        first,
        last,
        prev_href: (q.page > 1).then(|| page_href(q.page - 1)),
        next_href: more.then(|| page_href(q.page + 1)),
        since: stamp(since),
        filtered: q.filtered(),
        live_href: format!("/app/followups/live?{}", live.finish()),
        view_label,
        tabs,
        saved,
        rows,
        qs,
        q,
    };
    Ok(html(StatusCode::OK, page.render()))
}

/// `GET /app/followups/live?<query>&since=<t>`: how many matching tasks were created after `t`.
pub async fn live(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: Signed,
) -> Result<HttpResponse, PageError> {
    let json = |status: StatusCode, body: serde_json::Value| {
        HttpResponse::build(status)
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(body)
    };
    let q = match InboxQuery::parse(req.query_string()) {
        Ok(q) => q,
        Err(PageError::BadRequest(m)) => {
            return Ok(json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": m}),
            ))
        }
        Err(e) => return Err(e),
    };
    let since = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "since")
        .map(|(_, v)| v.to_string());
    let Some(since) =
        since.and_then(|s| NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M:%S%.f").ok())
    else {
        return Ok(json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "The parameter “since” must be a time like 2026-01-31T12:00:00.000000 (UTC)."}),
        ));
    };
    let t = now();
    let n = match q.filter(&signed.member().email) {
        Some(mut f) => {
            f.created_after = Some(since);
            state.db.run(move |conn| inbox::count(conn, &f)).await?
        }
        None => 0,
    };
    Ok(json(
        StatusCode::OK,
        serde_json::json!({"new": n, "since": stamp(t)}),
    ))
}

/// Why a change was refused, in words.
fn why(e: &AppError) -> String {
    match e {
        AppError::Conflict { message, .. } => message.clone(),
        AppError::NotFound(w) => format!("no such {w}"),
        AppError::BadRequest(m) => m.clone(),
        AppError::Forbidden(m) => m.clone(),
        AppError::Validation { fields, .. } => fields
            .iter()
            .map(|(k, v)| format!("{k} {}", v.join("; ")))
            .collect::<Vec<_>>()
            .join(". "),
        _ => "it could not be saved; try again".into(),
    }
}

fn back(ret: &str, notice: &str) -> HttpResponse {
    let mut s = url::form_urlencoded::Serializer::new(ret.to_string());
    s.append_pair("notice", notice);
    see_other(&format!("/app/followups?{}", s.finish()))
}

/// A return query string from a form: re-parsed, so only a valid inbox query goes back.
fn return_query(raw: Option<&str>) -> String {
    raw.and_then(|r| InboxQuery::parse(r).ok())
        .map(|q| q.encode())
        .unwrap_or_default()
}

/// `POST /app/followups/bulk`: assign and/or change the status of the selected tasks.
pub async fn bulk(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: Signed,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let mut fields: HashMap<String, String> = HashMap::new();
    let mut ids: Vec<String> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(&body) {
        if k == "id" {
            let v = v.trim().to_string();
            if !v.is_empty() && !ids.contains(&v) {
                ids.push(v);
            }
        } else {
            fields.insert(k.into_owned(), v.into_owned());
        }
    }
    signed.check_csrf(&req, fields.get("csrf_token").map(String::as_str))?;
    signed.require(Role::Agent)?;
    let ret = return_query(fields.get("return").map(String::as_str));
    let get = |k: &str| fields.get(k).and_then(|v| nonempty(v));
    if ids.is_empty() {
        return Ok(back(&ret, "Nothing changed: select at least one task."));
    }
    if ids.len() > BULK_MAX {
        return Err(PageError::BadRequest(format!(
            "At most {BULK_MAX} tasks can be changed at once; {} were selected.",
            ids.len()
        )));
    }
    let me = signed.member();
    let assignee = match get("assignee").map(|a| a.to_lowercase()).as_deref() {
        None => None,
        Some("me") => Some(Some(me.email.clone())),
        Some("none") => Some(None),
        Some(email) => {
            let members = crate::members::active(&state).await?;
            if !members
                .iter()
                .any(|m| m.email == email && m.role >= Role::Agent)
            {
                return Err(PageError::BadRequest(format!(
                    "The parameter “assignee” must be me, none or an active agent's email; {email} is not one."
                )));
            }
            Some(Some(email.to_string()))
        }
    };
    let status = get("status");
    if let Some(s) = &status {
        if !transitions::STATUSES.contains(&s.as_str()) {
            return Err(PageError::BadRequest(format!(
                "The parameter “status” must be one of {}.",
                transitions::STATUSES.join(", ")
            )));
        }
    }
    let closing = matches!(status.as_deref(), Some("resolved" | "dismissed"));
    let outcome = get("outcome").filter(|_| closing);
    if let Some(o) = &outcome {
        let known = &state.settings.followup_outcomes;
        if !known.contains(o) {
            return Err(PageError::BadRequest(format!(
                "The parameter “outcome” must be one of {}.",
                known.join(", ")
            )));
        }
    }
    if assignee.is_none() && status.is_none() {
        return Ok(back(
            &ret,
            "Nothing changed: choose an assignee or a status for the selected tasks.",
        ));
    }
    let actor = me.actor();
    let t0 = now();
    let (mut changed, mut same) = (0usize, 0usize);
    let mut refused: Vec<String> = Vec::new();
    for id in &ids {
        let c = Change {
            note: None,
            status: status.clone(),
            assignee: assignee.clone(),
            outcome: outcome.clone(),
        };
        match crate::followups::change(&state, id, c, &actor).await {
            Ok(row) if row.updated_at < t0 => same += 1,
            Ok(_) => changed += 1,
            Err(e @ AppError::Unavailable(_)) => return Err(e.into()),
            Err(e) => refused.push(format!("{id} {}", why(&e))),
        }
    }
    let mut msg = format!("{changed} changed");
    if same > 0 {
        msg.push_str(&format!(", {same} already so"));
    }
    if !refused.is_empty() {
        msg.push_str(&format!("; {} not: {}", refused.len(), refused.join("; ")));
    }
    msg.push('.');
    Ok(back(&ret, &msg))
}

#[derive(Debug, serde::Deserialize)]
pub struct SaveForm {
    csrf_token: Option<String>,
    name: Option<String>,
    query: Option<String>,
}

/// `POST /app/views`: saves the current filters under a name (replacing one of that name).
pub async fn save_view(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: Signed,
    form: web::Form<SaveForm>,
) -> Result<HttpResponse, PageError> {
    signed.check_csrf(&req, form.csrf_token.as_deref())?;
    let query = InboxQuery::parse(form.query.as_deref().unwrap_or(""))?;
    let mut query = query;
    query.page = 1;
    let ret = query.encode();
    let name = form.name.as_deref().map(str::trim).unwrap_or("");
    if name.is_empty() || name.chars().count() > 60 || name.chars().any(char::is_control) {
        return Ok(back(
            &ret,
            "The view was not saved: give it a name of 1 to 60 characters.",
        ));
    }
    let count = {
        let uid = signed.member().id.clone();
        state
            .db
            .run(move |conn| crate::store::users::saved_views_of(conn, &uid))
            .await?
            .len()
    };
    if count >= 50 {
        return Ok(back(
            &ret,
            "The view was not saved: you have 50 saved views; delete one first.",
        ));
    }
    let row = SavedViewRow {
        id: new_id(IdPrefix::SavedView),
        user_id: signed.member().id.clone(),
        name: name.to_string(),
        query: ret.clone(),
        created_at: now(),
    };
    let saved_name = row.name.clone();
    state
        .db
        .write(move |conn| crate::store::users::save_view(conn, &row))
        .await?;
    Ok(back(&ret, &format!("Saved the view “{saved_name}”.")))
}

#[derive(Debug, serde::Deserialize)]
pub struct DeleteForm {
    csrf_token: Option<String>,
    #[serde(rename = "return")]
    ret: Option<String>,
}

/// `POST /app/views/{id}/delete`.
pub async fn delete_view(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: Signed,
    path: web::Path<String>,
    form: web::Form<DeleteForm>,
) -> Result<HttpResponse, PageError> {
    signed.check_csrf(&req, form.csrf_token.as_deref())?;
    let (uid, id) = (signed.member().id.clone(), path.into_inner());
    let gone = state
        .db
        .write(move |conn| crate::store::users::delete_view(conn, &uid, &id))
        .await?;
    if !gone {
        return Err(PageError::NotFound("saved view"));
    }
    Ok(back(
        &return_query(form.ret.as_deref()),
        "Deleted the saved view.",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_round_trip_and_name_bad_parameters() {
        let q = InboxQuery::parse("view=mine&q=late+delivery&prop=plan:enterprise&sort=due_at")
            .unwrap();
        assert_eq!(
            q.encode(),
            "view=mine&prop_key=plan&prop_value=enterprise&q=late+delivery&sort=due_at"
        );
        assert_eq!(InboxQuery::parse(&q.encode()).unwrap(), q);
        assert_eq!(InboxQuery::parse("").unwrap().encode(), "");
        for (raw, param) in [
            ("view=nope", "view"),
            ("min_score=x", "min_score"),
            ("from=2026-13-01", "from"),
            ("sort=score", "sort"),
            ("page=0", "page"),
            ("prop_key=a%27b&prop_value=1", "prop_key"),
            ("min_score=7&max_score=3", "min_score"),
        ] {
            match InboxQuery::parse(raw) {
                Err(PageError::BadRequest(m)) => assert!(m.contains(param), "{raw}: {m}"),
                other => panic!("{raw}: {other:?}"),
            }
        }
    }

    #[test]
    fn spans_and_money() {
        assert_eq!(span(TimeDelta::minutes(5)), "5 min");
        assert_eq!(span(TimeDelta::hours(3)), "3 h");
        assert_eq!(span(TimeDelta::days(3)), "3 d");
        assert_eq!(money(120000.0), "120,000");
        assert_eq!(money(12.5), "12.50");
    }
}
