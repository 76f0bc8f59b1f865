//! The feedback loop: every unhappy answer (NPS 0–6, CSAT 1–2) becomes a follow-up task, in
//! the same transaction as the answer, exactly once per response.
//!
//! - Priority: the most valuable contact first (`properties.value`, 0 when unknown), then
//!   the lower score, then the older answer.
//! - Due: `FOLLOWUP_SLA_HOURS` after the answer (default 48), counted in business hours
//!   (Monday–Friday, UTC) when `FOLLOWUP_SLA_BUSINESS_DAYS=true`.
//! - A changed answer is logged on the task. Raised out of the unhappy range, the task is
//!   resolved with outcome `score_raised` (unless `FOLLOWUP_RESOLVE_ON_RAISE=false`);
//!   lowered into it again, a closed task is reopened. Nothing is deleted.
//! - Assignment rule: a survey's `followup_assignee` gets new tasks and their alert email;
//!   otherwise the alert goes to `TEAM_EMAIL` (when set).
//! - Slack: a new task is also posted to the survey's `slack_webhook_url` or
//!   `SLACK_WEBHOOK_URL`, after the same grace period (see `webhooks::slack`).
//! - Emails to the team (the alert, the `followup_assigned` email when someone is given a
//!   task, the daily overdue digest) name the customer (name, email, company, value), the
//!   survey, the score and the comment, and link to the task's page
//!   `{PUBLIC_URL}/app/followups/{id}`. They are multipart: `Label: value` text lines and
//!   HTML in a proportional font, customer text escaped.

pub mod transitions;
mod triage;

pub use triage::{add_note, change, reply, Change};

use chrono::{Datelike, NaiveDateTime, TimeDelta, Weekday};
use serde_json::json;

use crate::config::Settings;
use crate::domain::{new_id, now, Category, IdPrefix, SurveyKind};
use crate::email::message::escape_html as esc;
use crate::error::AppError;
use crate::store::followups::{
    self, FollowupChanges, InboxFilter, Sort, TaskListItem, OPEN_STATUSES,
};
use crate::store::models::{ContactRow, EmailRow, FollowupRow, ResponseRow, SurveyRow};
use crate::store::DbConnection;

/// The settings the feedback loop needs inside a transaction.
#[derive(Debug, Clone)]
pub struct Rules {
    pub sla_hours: u32,
    pub business_days: bool,
    pub resolve_on_raise: bool,
    pub team_email: Option<String>,
    pub public_url: String,
    /// Grace period before a new (or reopened) task's alert goes out.
    pub alert_delay: TimeDelta,
    /// `SLACK_WEBHOOK_URL`: where new tasks are posted when their survey names no URL.
    pub slack_webhook_url: Option<String>,
}

impl Rules {
    pub fn from_settings(s: &Settings) -> Rules {
        Rules {
            sla_hours: s.followup_sla_hours,
            business_days: s.followup_sla_business_days,
            resolve_on_raise: s.followup_resolve_on_raise,
            team_email: s.team_email.as_ref().map(|m| m.email.to_string()),
            public_url: s.public_url.as_str().trim_end_matches('/').to_string(),
            alert_delay: TimeDelta::seconds(s.alert_delay_seconds as i64),
            slack_webhook_url: s.slack_webhook_url.clone(),
        }
    }
}

/// A task that was created or changed, for webhooks.
#[derive(Debug, Clone)]
pub enum TaskEvent {
    Created(FollowupRow),
    /// The task after the change, and its status before it.
    Updated(FollowupRow, String),
}

/// When a task answered at `start` is due.
pub fn due_at(start: NaiveDateTime, hours: u32, business_days: bool) -> NaiveDateTime {
    let mut remaining = TimeDelta::hours(hours as i64);
    if !business_days {
        return start + remaining;
    }
    let mut t = start;
    loop {
        while matches!(t.weekday(), Weekday::Sat | Weekday::Sun) {
            t = (t.date() + TimeDelta::days(1))
                .and_hms_opt(0, 0, 0)
                .unwrap_or(t);
        }
        let midnight = (t.date() + TimeDelta::days(1))
            .and_hms_opt(0, 0, 0)
            .unwrap_or(t);
        let left_today = midnight - t;
        if remaining <= left_today {
            return t + remaining;
        }
        remaining -= left_today;
        t = midnight;
    }
}

fn category_of(r: &ResponseRow) -> Category {
    serde_json::from_value(serde_json::Value::String(r.category.clone()))
        .unwrap_or(Category::Passive)
}

fn scale(kind: &str) -> i32 {
    match SurveyKind::parse(kind) {
        Some(SurveyKind::Csat) => 5,
        _ => 10,
    }
}

/// Reacts to a recorded answer (`before` is absent for a new one) inside its transaction;
/// returns the tasks it touched.
pub fn on_response(
    conn: &mut DbConnection,
    rules: &Rules,
    survey: &SurveyRow,
    before: Option<&ResponseRow>,
    response: &ResponseRow,
) -> Result<Vec<TaskEvent>, AppError> {
    let unhappy = category_of(response).needs_followup();
    let existing = match before {
        None => None,
        Some(_) => followups::for_response(conn, &response.id)?,
    };
    let Some(task) = existing else {
        if !unhappy {
            return Ok(Vec::new());
        }
        return Ok(vec![TaskEvent::Created(create(
            conn, rules, survey, response,
        )?)]);
    };
    let Some(before) = before else {
        return Ok(Vec::new());
    };
    let t = now();
    let mut changes = FollowupChanges {
        score: Some(response.score),
        comment: Some(response.comment.clone()),
        updated_at: Some(t),
        ..Default::default()
    };
    let score_changed = before.score != response.score;
    if score_changed {
        followups::log(
            conn,
            &task.id,
            "score_changed",
            "customer",
            None,
            Some(
                json!({"from": before.score, "to": response.score, "category": response.category}),
            ),
        )?;
    } else if before.comment != response.comment {
        followups::log(
            conn,
            &task.id,
            "comment_changed",
            "customer",
            response.comment.as_deref(),
            None,
        )?;
    }
    let open = OPEN_STATUSES.contains(&task.status.as_str());
    if !unhappy && open && rules.resolve_on_raise {
        changes.status = Some("resolved".into());
        changes.outcome = Some(Some("score_raised".into()));
        changes.resolved_at = Some(Some(t));
        followups::log(
            conn,
            &task.id,
            "status_changed",
            "system",
            None,
            Some(json!({"from": task.status, "to": "resolved", "outcome": "score_raised"})),
        )?;
    } else if unhappy && !open && score_changed {
        changes.status = Some("open".into());
        changes.outcome = Some(None);
        changes.resolved_at = Some(None);
        followups::log(
            conn,
            &task.id,
            "status_changed",
            "system",
            None,
            Some(json!({"from": task.status, "to": "open", "reason": "score_lowered"})),
        )?;
        // Reopened by the customer: the team hears about it again (after the grace period).
        queue_alert(conn, rules, &task)?;
    } else if !score_changed && before.comment == response.comment {
        return Ok(Vec::new());
    }
    Ok(vec![TaskEvent::Updated(
        followups::update(conn, &task.id, &changes)?,
        task.status.clone(),
    )])
}

fn create(
    conn: &mut DbConnection,
    rules: &Rules,
    survey: &SurveyRow,
    response: &ResponseRow,
) -> Result<FollowupRow, AppError> {
    let contact: Option<ContactRow> = match &response.contact_id {
        Some(id) => crate::store::contacts::get(conn, id).ok(),
        None => None,
    };
    let t = now();
    let row = FollowupRow {
        id: new_id(IdPrefix::Followup),
        response_id: response.id.clone(),
        survey_id: survey.id.clone(),
        contact_id: response.contact_id.clone(),
        score: response.score,
        comment: response.comment.clone(),
        status: "open".into(),
        contact_value: Some(contact.as_ref().and_then(|c| c.value).unwrap_or(0.0)),
        assignee: survey.followup_assignee.clone(),
        outcome: None,
        due_at: due_at(response.created_at, rules.sla_hours, rules.business_days),
        answered_at: response.created_at,
        resolved_at: None,
        created_at: t,
        updated_at: t,
        resurvey_invitation_id: None,
    };
    followups::insert(conn, &row)?;
    followups::log(
        conn,
        &row.id,
        "created",
        "system",
        None,
        Some(json!({"score": row.score, "category": response.category})),
    )?;
    if let Some(assignee) = &row.assignee {
        followups::log(
            conn,
            &row.id,
            "assigned",
            "rule",
            None,
            Some(json!({"from": null, "to": assignee})),
        )?;
    }
    queue_alert(conn, rules, &row)?;
    // Slack: the survey's URL, else the global one; after the same grace period.
    if let Some(url) = survey
        .slack_webhook_url
        .as_deref()
        .or(rules.slack_webhook_url.as_deref())
    {
        crate::webhooks::slack::enqueue(conn, &row, url, now() + rules.alert_delay)?;
    }
    Ok(row)
}

/// Queues the alert about `task` to its assignee or `TEAM_EMAIL`, due after the grace period
/// (`ALERT_DELAY_SECONDS`), unless one is already waiting. Its text is written again when it
/// goes out (`prepare_alerts`), so it carries the answer as it stands then.
fn queue_alert(conn: &mut DbConnection, rules: &Rules, task: &FollowupRow) -> Result<(), AppError> {
    let Some(to) = task.assignee.clone().or_else(|| rules.team_email.clone()) else {
        return Ok(());
    };
    if crate::store::emails::alert_pending(conn, &task.id)? {
        return Ok(());
    }
    let item = followups::item(conn, &task.id)?;
    let alert = alert_content(rules, &item);
    crate::store::emails::enqueue(
        conn,
        crate::store::emails::NewEmail {
            kind: "followup_alert",
            to: &to,
            subject: &alert.subject,
            body_text: &alert.text,
            in_reply_to: None,
            followup_id: Some(&task.id),
            from_name: None,
            reply_to: None,
            body_html: Some(&alert.html),
            send_at: Some(now() + rules.alert_delay),
        },
    )?;
    Ok(())
}

/// Queues the `followup_assigned` email telling `to` that `actor` gave them task `task_id`
/// (sent by the dispatcher, retried like every email).
fn queue_assignment(
    conn: &mut DbConnection,
    rules: &Rules,
    task_id: &str,
    to: &str,
    actor: &str,
) -> Result<(), AppError> {
    let item = followups::item(conn, task_id)?;
    let mail = assignment_content(rules, &item, actor);
    crate::store::emails::enqueue(
        conn,
        crate::store::emails::NewEmail {
            kind: "followup_assigned",
            to,
            subject: &mail.subject,
            body_text: &mail.text,
            in_reply_to: None,
            followup_id: Some(task_id),
            from_name: None,
            reply_to: None,
            body_html: Some(&mail.html),
            send_at: None,
        },
    )?;
    Ok(())
}

/// Writes each claimed alert again from its task as it stands now (score, comment, customer),
/// just before it is sent. An alert whose task was closed in the meantime (the customer
/// raised the score, or the team already handled it) is returned with the reason to cancel
/// it. Other emails pass unchanged; an alert that cannot be rewritten keeps its text.
pub fn prepare_alerts(
    conn: &mut DbConnection,
    rules: &Rules,
    rows: Vec<EmailRow>,
) -> Vec<(EmailRow, Option<String>)> {
    rows.into_iter()
        .map(|mut row| {
            let Some(task_id) = row.followup_id.clone().filter(|_| row.kind == "followup_alert")
            else {
                return (row, None);
            };
            match current_alert(conn, rules, &task_id) {
                Ok(Some(alert)) => {
                    if let Err(e) = crate::store::emails::set_content(
                        conn,
                        &row.id,
                        &alert.subject,
                        &alert.text,
                        Some(&alert.html),
                    ) {
                        tracing::warn!(email = %row.id, error = %e, "cannot store the alert's final text");
                    }
                    row.subject = alert.subject;
                    row.body_text = alert.text;
                    row.body_html = Some(alert.html);
                    (row, None)
                }
                Ok(None) => (
                    row,
                    Some("the task was closed before the alert was due".into()),
                ),
                Err(e) => {
                    tracing::warn!(email = %row.id, error = %e, "cannot rewrite the alert; sending it as queued");
                    (row, None)
                }
            }
        })
        .collect()
}

/// The alert of an open task as it stands now; `None` when the task is closed.
fn current_alert(
    conn: &mut DbConnection,
    rules: &Rules,
    task_id: &str,
) -> Result<Option<Alert>, AppError> {
    let item = followups::item(conn, task_id)?;
    if !OPEN_STATUSES.contains(&item.task.status.as_str()) {
        return Ok(None);
    }
    Ok(Some(alert_content(rules, &item)))
}

/// An alert, assignment or digest: subject, plain text and HTML.
struct Alert {
    subject: String,
    text: String,
    html: String,
}

/// How a task's customer is named in emails.
fn who(item: &TaskListItem) -> String {
    if item.task.contact_id.is_none() {
        return "an anonymous customer".into();
    }
    if item.contact_erased {
        return "an erased contact".into();
    }
    match (&item.contact_name, &item.contact_email) {
        (Some(n), Some(e)) => format!("{n} <{e}>"),
        (None, Some(e)) => e.clone(),
        (Some(n), None) => n.clone(),
        (None, None) => "a contact without name or email".into(),
    }
}

/// The task's page in the team's workspace.
fn task_link(rules: &Rules, task_id: &str) -> String {
    format!("{}/app/followups/{task_id}", rules.public_url)
}

/// `Detractor` (NPS) or `Unsatisfied` (CSAT), and the top of the scale.
fn label_and_max(item: &TaskListItem) -> (&'static str, i32) {
    let max = scale(&item.survey_kind);
    (
        if max == 10 {
            "Detractor"
        } else {
            "Unsatisfied"
        },
        max,
    )
}

fn quoted_comment(item: &TaskListItem, none: &str) -> String {
    item.task
        .comment
        .as_deref()
        .filter(|c| !c.trim().is_empty())
        .map(|c| format!("\"{c}\""))
        .unwrap_or_else(|| none.into())
}

/// What an email says about a task, as label and value: score, comment, the customer
/// (name, email, company, plan, value), survey, due time and assignee.
fn task_rows(item: &TaskListItem) -> Vec<(&'static str, String)> {
    let (label, max) = label_and_max(item);
    let t = &item.task;
    let mut rows = vec![
        (
            "Score",
            format!("{}/{max} ({})", t.score, label.to_lowercase()),
        ),
        ("Comment", quoted_comment(item, "(none)")),
    ];
    if t.contact_id.is_none() || item.contact_erased {
        rows.push(("Customer", who(item)));
    } else {
        rows.push((
            "Customer",
            item.contact_name
                .clone()
                .unwrap_or_else(|| "(no name)".into()),
        ));
        rows.push((
            "Email",
            item.contact_email
                .clone()
                .unwrap_or_else(|| "(none)".into()),
        ));
    }
    if let Some(c) = &item.company {
        rows.push(("Company", c.clone()));
    }
    if let Some(p) = &item.plan {
        rows.push(("Plan", p.clone()));
    }
    if let Some(v) = item.value {
        rows.push(("Value", v.to_string()));
    }
    rows.push(("Survey", item.survey_name.clone()));
    rows.push(("Due", format!("{} UTC", t.due_at.format("%Y-%m-%d %H:%M"))));
    rows.push((
        "Assignee",
        t.assignee.clone().unwrap_or_else(|| "nobody yet".into()),
    ));
    rows
}

/// An email about one task: a lead sentence, the task's rows and a link to its page. The
/// text part is `Label: value` lines (no column alignment, so it reads the same in any
/// font); the HTML part a table in the page's proportional font.
fn task_email(rules: &Rules, subject: String, lead: &str, item: &TaskListItem) -> Alert {
    let rows = task_rows(item);
    let link = task_link(rules, &item.task.id);
    let mut text = format!("{lead}\n\n");
    for (k, v) in &rows {
        text.push_str(&format!("{k}: {v}\n"));
    }
    text.push_str(&format!("\nOpen the task: {link}\n"));
    let mut html = format!(
        "<p style=\"margin:0 0 12px\">{}</p><table role=\"presentation\" style=\"border-collapse:collapse\">",
        esc(lead)
    );
    for (k, v) in &rows {
        html.push_str(&format!(
            "<tr><th scope=\"row\" style=\"text-align:left;vertical-align:top;padding:4px 12px 4px 0;font-weight:600\">{}</th><td style=\"padding:4px 0\">{}</td></tr>",
            esc(k),
            esc(v)
        ));
    }
    html.push_str(&format!(
        "</table><p style=\"margin:16px 0 0\"><a href=\"{0}\" style=\"display:inline-block;padding:8px 16px;background:#0969da;color:#ffffff;text-decoration:none;border-radius:6px;font-weight:600\">Open the task</a></p><p style=\"margin:8px 0 0;color:#57606a;font-size:14px\">{0}</p>",
        esc(&link)
    ));
    Alert {
        html: crate::email::message::team_page(&subject, &html),
        subject,
        text,
    }
}

/// The alert to the team about an open task, from the task's current score and comment.
fn alert_content(rules: &Rules, item: &TaskListItem) -> Alert {
    let (label, max) = label_and_max(item);
    let subject = format!(
        "[Closeloop] {label} {}/{max} from {} ({})",
        item.task.score,
        who(item),
        item.survey_name
    );
    task_email(
        rules,
        subject,
        "A customer is unhappy and needs a follow-up.",
        item,
    )
}

/// How an actor is named in an email: the person's email, an API key's name, else Closeloop.
fn actor_name(actor: &str) -> String {
    if let Some(email) = actor.strip_prefix("user:") {
        email.to_string()
    } else if let Some(key) = actor.strip_prefix("api-key:") {
        format!("The API key \"{key}\"")
    } else {
        "Closeloop".into()
    }
}

/// The email to a person a task was assigned to.
fn assignment_content(rules: &Rules, item: &TaskListItem, actor: &str) -> Alert {
    let (label, max) = label_and_max(item);
    let subject = format!(
        "[Closeloop] Assigned to you: {label} {}/{max} from {} ({})",
        item.task.score,
        who(item),
        item.survey_name
    );
    let lead = format!("{} assigned you a follow-up task.", actor_name(actor));
    task_email(rules, subject, &lead, item)
}

/// Once a day (from `DIGEST_HOUR_UTC`), queues one digest of overdue tasks to `TEAM_EMAIL`,
/// across replicas (a `job_runs` row per day). Returns whether a digest was queued.
pub fn daily_digest(
    conn: &mut DbConnection,
    rules: &Rules,
    hour_utc: u32,
) -> Result<bool, AppError> {
    use diesel::Connection;
    let Some(to) = rules.team_email.clone() else {
        return Ok(false);
    };
    let t = now();
    if chrono::Timelike::hour(&t) < hour_utc {
        return Ok(false);
    }
    let period = t.format("%Y-%m-%d").to_string();
    conn.transaction(|conn| {
        if !crate::store::jobs::claim_run(conn, "overdue_digest", &period, t)? {
            return Ok(false);
        }
        let filter = InboxFilter {
            overdue: Some(true),
            ..Default::default()
        };
        let overdue = followups::search(conn, &filter, Sort::DueAt, 0, 200)?;
        if overdue.is_empty() {
            return Ok(false);
        }
        let digest = digest_content(rules, &overdue);
        crate::store::emails::enqueue(
            conn,
            crate::store::emails::NewEmail {
                kind: "overdue_digest",
                to: &to,
                subject: &digest.subject,
                body_text: &digest.text,
                in_reply_to: None,
                followup_id: None,
                from_name: None,
                reply_to: None,
                body_html: Some(&digest.html),
                send_at: None,
            },
        )?;
        Ok(true)
    })
}

/// The overdue digest: each task with its customer (name, email, company, value), survey,
/// score, comment and a link to its page.
fn digest_content(rules: &Rules, overdue: &[TaskListItem]) -> Alert {
    let subject = format!("[Closeloop] {} overdue follow-up task(s)", overdue.len());
    let mut text = format!("{} follow-up task(s) are overdue:\n", overdue.len());
    let mut html = format!(
        "<p style=\"margin:0 0 12px\">{} follow-up task(s) are overdue:</p><ol style=\"padding-left:20px;margin:0\">",
        overdue.len()
    );
    for item in overdue {
        let f = &item.task;
        let customer = who(item);
        let (_, max) = label_and_max(item);
        let comment = quoted_comment(item, "(no comment)");
        let mut about: Vec<String> = Vec::new();
        if let Some(c) = &item.company {
            about.push(format!("Company: {c}"));
        }
        if let Some(v) = item.value {
            about.push(format!("Value: {v}"));
        }
        let about = about.join(", ");
        let due = format!("{} UTC", f.due_at.format("%Y-%m-%d %H:%M"));
        let assignee = f.assignee.as_deref().unwrap_or("unassigned");
        let link = task_link(rules, &f.id);
        text.push_str(&format!(
            "\n- {customer}, {}: score {}/{max}\n",
            item.survey_name, f.score
        ));
        if !about.is_empty() {
            text.push_str(&format!("  {about}\n"));
        }
        text.push_str(&format!(
            "  Comment: {comment}\n  Due {due}, {} ({assignee})\n  Open: {link}\n",
            f.status
        ));
        html.push_str(&format!(
            "<li style=\"margin:0 0 12px\"><strong>{}</strong>, {}: score <strong>{}/{max}</strong><br>{}Comment: {}<br>Due {}, {} ({})<br><a href=\"{}\">Open the task</a></li>",
            esc(&customer),
            esc(&item.survey_name),
            f.score,
            if about.is_empty() { String::new() } else { format!("{}<br>", esc(&about)) },
            esc(&comment),
            esc(&due),
            esc(&f.status),
            esc(assignee),
            esc(&link)
        ));
    }
    html.push_str("</ol>");
    Alert {
        html: crate::email::message::team_page(&subject, &html),
        subject,
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::due_at;
    use chrono::NaiveDate;

    fn at(d: u32, h: u32) -> chrono::NaiveDateTime {
        // November 2026: the 23rd is a Monday.
        NaiveDate::from_ymd_opt(2026, 11, d)
            .unwrap()
            .and_hms_opt(h, 0, 0)
            .unwrap()
    }

    #[test]
    fn clock_hours_ignore_weekends() {
        assert_eq!(due_at(at(27, 10), 48, false), at(29, 10));
    }

    #[test]
    fn business_hours_skip_weekends() {
        assert_eq!(
            due_at(at(23, 10), 48, true),
            at(25, 10),
            "Monday → Wednesday"
        );
        assert_eq!(
            due_at(at(27, 10), 48, true),
            at(1, 10).with_month_day(12, 1),
            "Friday → Tuesday"
        );
        assert_eq!(
            due_at(at(28, 15), 24, true),
            at(1, 0).with_month_day(12, 1),
            "Saturday counts from Monday 00:00"
        );
    }

    trait MonthDay {
        fn with_month_day(self, m: u32, d: u32) -> Self;
    }
    impl MonthDay for chrono::NaiveDateTime {
        fn with_month_day(self, m: u32, d: u32) -> Self {
            let t = self.time();
            NaiveDate::from_ymd_opt(2026, m, d).unwrap().and_time(t)
        }
    }
}
