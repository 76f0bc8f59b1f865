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

pub mod transitions;
mod triage;

pub use triage::{add_note, change, reply, Change};

use chrono::{Datelike, NaiveDateTime, TimeDelta, Weekday};
use serde_json::json;

use crate::config::Settings;
use crate::domain::{new_id, now, Category, IdPrefix, SurveyKind};
use crate::error::AppError;
use crate::store::followups::{self, FollowupChanges, OPEN_STATUSES};
use crate::store::models::{ContactRow, FollowupRow, ResponseRow, SurveyRow};
use crate::store::DbConnection;

/// The settings the feedback loop needs inside a transaction.
#[derive(Debug, Clone)]
pub struct Rules {
    pub sla_hours: u32,
    pub business_days: bool,
    pub resolve_on_raise: bool,
    pub team_email: Option<String>,
    pub public_url: String,
}

impl Rules {
    pub fn from_settings(s: &Settings) -> Rules {
        Rules {
            sla_hours: s.followup_sla_hours,
            business_days: s.followup_sla_business_days,
            resolve_on_raise: s.followup_resolve_on_raise,
            team_email: s.team_email.as_ref().map(|m| m.email.to_string()),
            public_url: s.public_url.as_str().trim_end_matches('/').to_string(),
        }
    }
}

/// A task that was created or changed, for webhooks.
#[derive(Debug, Clone)]
pub enum TaskEvent {
    Created(FollowupRow),
    Updated(FollowupRow),
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
    } else if !score_changed && before.comment == response.comment {
        return Ok(Vec::new());
    }
    Ok(vec![TaskEvent::Updated(followups::update(
        conn, &task.id, &changes,
    )?)])
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
    let to = row.assignee.clone().or_else(|| rules.team_email.clone());
    if let Some(to) = to {
        let (subject, body) = alert_text(rules, survey, response, contact.as_ref(), &row);
        crate::store::emails::enqueue(
            conn,
            crate::store::emails::NewEmail {
                kind: "followup_alert",
                to: &to,
                subject: &subject,
                body_text: &body,
                in_reply_to: None,
                followup_id: Some(&row.id),
                from_name: None,
                reply_to: None,
            },
        )?;
    }
    Ok(row)
}

/// The alert to the team about a new task.
fn alert_text(
    rules: &Rules,
    survey: &SurveyRow,
    response: &ResponseRow,
    contact: Option<&ContactRow>,
    task: &FollowupRow,
) -> (String, String) {
    let who = match contact {
        Some(c) => match (&c.name, &c.email) {
            (Some(n), Some(e)) => format!("{n} <{e}>"),
            (None, Some(e)) => e.clone(),
            (Some(n), None) => n.clone(),
            (None, None) => c.external_id.clone().unwrap_or_else(|| c.id.clone()),
        },
        None => "an anonymous customer".into(),
    };
    let max = scale(&survey.kind);
    let subject = format!(
        "[Closeloop] {} {}/{max} from {who} ({})",
        if max == 10 {
            "Detractor"
        } else {
            "Unsatisfied"
        },
        response.score,
        survey.name
    );
    let mut body = String::new();
    body.push_str("A customer is unhappy and needs a follow-up.\n\n");
    body.push_str(&format!(
        "Score:    {}/{max} ({})\n",
        response.score, response.category
    ));
    body.push_str(&format!(
        "Comment:  {}\n",
        response
            .comment
            .as_deref()
            .map(|c| format!("\"{c}\""))
            .unwrap_or_else(|| "(none)".into())
    ));
    body.push_str(&format!("Customer: {who}\n"));
    if let Some(c) = contact {
        if let Some(v) = c.value {
            body.push_str(&format!("Value:    {v}\n"));
        }
        if let Ok(serde_json::Value::Object(props)) =
            serde_json::from_str::<serde_json::Value>(&c.properties)
        {
            for (k, v) in props.iter().filter(|(k, _)| k.as_str() != "value") {
                body.push_str(&format!(
                    "{k}: {}\n",
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                ));
            }
        }
    }
    body.push_str(&format!("Survey:   {}\n", survey.name));
    body.push_str(&format!(
        "Due:      {} UTC\n",
        task.due_at.format("%Y-%m-%d %H:%M")
    ));
    if let Some(a) = &task.assignee {
        body.push_str(&format!("Assignee: {a}\n"));
    }
    body.push_str(&format!(
        "\nTask: {}/api/v1/followups/{}\n",
        rules.public_url, task.id
    ));
    (subject, body)
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
        let overdue = followups::overdue(conn, 200)?;
        if overdue.is_empty() {
            return Ok(false);
        }
        let mut body = format!("{} follow-up task(s) are overdue:\n\n", overdue.len());
        for f in &overdue {
            body.push_str(&format!(
                "- score {} ({}), due {} UTC, {}: {}/api/v1/followups/{}\n",
                f.score,
                f.status,
                f.due_at.format("%Y-%m-%d %H:%M"),
                f.assignee.as_deref().unwrap_or("unassigned"),
                rules.public_url,
                f.id
            ));
        }
        crate::store::emails::enqueue(
            conn,
            crate::store::emails::NewEmail {
                kind: "overdue_digest",
                to: &to,
                subject: &format!("[Closeloop] {} overdue follow-up task(s)", overdue.len()),
                body_text: &body,
                in_reply_to: None,
                followup_id: None,
                from_name: None,
                reply_to: None,
            },
        )?;
        Ok(true)
    })
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
