//! Slack alerts: each new follow-up is posted to a Slack incoming webhook (or anything that
//! speaks its format, such as Mattermost or Rocket.Chat) as a Block Kit message.
//!
//! - Where: the survey's `slack_webhook_url`, else `SLACK_WEBHOOK_URL`; neither: nothing.
//! - When: after the same grace period as the team alert (`ALERT_DELAY_SECONDS`), so the
//!   comment is in it. The message is queued, in the transaction that creates the task, as a
//!   row of the webhook delivery outbox (`kind = 'slack'`, the URL in `target_url`, no webhook,
//!   so it is not listed under any webhook) and the worker sends it like a webhook delivery:
//!   claimed with a lease, retried with backoff on timeouts, connection errors, 408, 429 and
//!   5xx (honouring `Retry-After`), up to `WEBHOOK_MAX_ATTEMPTS`; other answers fail it. It is
//!   not signed (Slack does not check signatures; the URL is the credential). It goes through
//!   the SSRF guard like a webhook.
//! - What: the body is written when it is sent, from the task as it stands then: score and
//!   category, customer (name and email), company and value when known, survey, comment and
//!   a button to the task page `{PUBLIC_URL}/app/followups/{id}`, plus a plain `text`
//!   fallback for notifications. Customer text is escaped for Slack's mrkdwn (`&`, `<`, `>`).
//!   The body is kept in the delivery row, as sent.
//! - A task closed before its message is due (the customer raised the score, or the team
//!   already handled it) is not posted, as its team alert is not: the delivery ends `failed`
//!   with `last_error` [`CANCELLED`] and no attempt.
//!
//! Slack messages carry personal data (the customer's name, email, comment): the Slack
//! workspace becomes a processor of it.

use serde_json::{json, Value};

use crate::domain::{new_id, now, IdPrefix, Score, SurveyKind};
use crate::error::AppError;
use crate::store::followups::{self, TaskListItem, OPEN_STATUSES};
use crate::store::models::FollowupRow;
use crate::store::webhooks::{self as store, SlackDeliveryRow, SLACK};
use crate::store::DbConnection;

/// `event` of a Slack delivery.
pub const EVENT: &str = "followup.created";

/// `last_error` of a Slack message whose task was closed before it was due.
pub const CANCELLED: &str = "not sent: the task was closed before the message was due";

/// Longest comment put in a message (a section's text holds 3000 characters).
const MAX_COMMENT_CHARS: usize = 2500;

/// Queues the Slack message about new task `task` to `url`, due at `due` (after the grace
/// period), inside the caller's transaction.
pub fn enqueue(
    conn: &mut DbConnection,
    task: &FollowupRow,
    url: &str,
    due: chrono::NaiveDateTime,
) -> Result<(), AppError> {
    store::insert_slack(
        conn,
        &SlackDeliveryRow {
            id: new_id(IdPrefix::Delivery),
            kind: SLACK.into(),
            target_url: url.to_string(),
            followup_id: task.id.clone(),
            event: EVENT.into(),
            // Written when it is sent.
            payload: "{}".into(),
            status: "pending".into(),
            attempts: 0,
            next_attempt_at: due,
            created_at: now(),
        },
    )
}

/// The body to send now for delivery `delivery_id` about task `followup_id`, stored in the
/// delivery; `None` when the task is closed (the message is dropped, see [`CANCELLED`]).
pub fn prepare(
    conn: &mut DbConnection,
    delivery_id: &str,
    followup_id: &str,
    public_url: &str,
) -> Result<Option<String>, AppError> {
    let item = followups::item(conn, followup_id)?;
    if !OPEN_STATUSES.contains(&item.task.status.as_str()) {
        return Ok(None);
    }
    let body = message(&item, public_url).to_string();
    store::set_payload(conn, delivery_id, &body)?;
    Ok(Some(body))
}

/// Escapes text for Slack's mrkdwn: `&`, `<` and `>` (Slack's own rule), so customer text
/// cannot make links, mentions (`<!channel>`) or formatting of its own.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The customer as a message names them.
fn customer(item: &TaskListItem) -> String {
    if item.task.contact_id.is_none() {
        return "an anonymous customer".into();
    }
    if item.contact_erased {
        return "an erased contact".into();
    }
    match (&item.contact_name, &item.contact_email) {
        (Some(n), Some(e)) => format!("{n} ({e})"),
        (None, Some(e)) => e.clone(),
        (Some(n), None) => n.clone(),
        (None, None) => "a contact without name or email".into(),
    }
}

/// The Block Kit message about an open task.
pub fn message(item: &TaskListItem, public_url: &str) -> Value {
    let t = &item.task;
    let kind = SurveyKind::parse(&item.survey_kind).unwrap_or(SurveyKind::Nps);
    let max = kind.range().1;
    let category = Score::parse(kind, t.score as i64)
        .map(|s| s.category().as_str())
        .unwrap_or("unhappy");
    let score = format!("{}/{max} ({category})", t.score);
    let who = customer(item);
    let link = format!(
        "{}/app/followups/{}",
        public_url.trim_end_matches('/'),
        t.id
    );
    let comment: Option<String> = t
        .comment
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| {
            let mut c: String = c.chars().take(MAX_COMMENT_CHARS).collect();
            if t.comment
                .as_deref()
                .is_some_and(|all| all.trim().chars().count() > MAX_COMMENT_CHARS)
            {
                c.push('…');
            }
            c
        });
    let mut facts = vec![
        format!("*Score:* {}", escape(&score)),
        format!("*Customer:* {}", escape(&who)),
    ];
    if let Some(c) = &item.company {
        facts.push(format!("*Company:* {}", escape(c)));
    }
    if let Some(v) = item.value {
        facts.push(format!("*Value:* {}", escape(&v.to_string())));
    }
    facts.push(format!("*Survey:* {}", escape(&item.survey_name)));
    let quoted = match &comment {
        Some(c) => c
            .lines()
            .map(|l| format!(">{}", escape(l)))
            .collect::<Vec<_>>()
            .join("\n"),
        None => "_No comment._".into(),
    };
    let headline = format!("Unhappy customer: {score}");
    let text = format!(
        "{headline} from {who}, survey {survey}{comment}. Open the task: {link}",
        who = escape(&who),
        survey = escape(&item.survey_name),
        comment = match &comment {
            Some(c) => format!(": \"{}\"", escape(&c.chars().take(300).collect::<String>())),
            None => String::new(),
        },
    );
    json!({
        "text": text,
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": headline, "emoji": false}
            },
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": facts.join("\n")}
            },
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": format!("*Comment:*\n{quoted}")}
            },
            {
                "type": "actions",
                "elements": [{
                    "type": "button",
                    "action_id": "open_task",
                    "style": "primary",
                    "text": {"type": "plain_text", "text": "Open the task"},
                    "url": link
                }]
            }
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(comment: Option<&str>) -> TaskListItem {
        let t = chrono::NaiveDate::from_ymd_opt(2026, 11, 28)
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap();
        TaskListItem {
            task: FollowupRow {
                id: "fup_1".into(),
                response_id: "rsp_1".into(),
                survey_id: "srv_1".into(),
                contact_id: Some("cnt_1".into()),
                score: 3,
                comment: comment.map(str::to_string),
                status: "open".into(),
                contact_value: Some(1200.0),
                assignee: None,
                outcome: None,
                due_at: t,
                answered_at: t,
                resolved_at: None,
                created_at: t,
                updated_at: t,
                resurvey_invitation_id: None,
            },
            contact_name: Some("Ada <Lovelace>".into()),
            contact_email: Some("ada@example.com".into()),
            contact_erased: false,
            company: None,
            plan: None,
            value: Some(1200.0),
            survey_name: "Q&A NPS".into(),
            survey_kind: "nps".into(),
        }
    }

    #[test]
    fn the_message_has_the_facts_a_button_and_escaped_customer_text() {
        let m = message(
            &item(Some("Slow <!channel> & \"bad\"\nsecond line")),
            "https://cl.example.com/",
        );
        let blocks = m["blocks"].as_array().unwrap();
        let facts = blocks[1]["text"]["text"].as_str().unwrap();
        assert!(facts.contains("*Score:* 3/10 (detractor)"), "{facts}");
        assert!(
            facts.contains("Ada &lt;Lovelace&gt; (ada@example.com)"),
            "{facts}"
        );
        assert!(facts.contains("*Value:* 1200"), "{facts}");
        assert!(facts.contains("*Survey:* Q&amp;A NPS"), "{facts}");
        let comment = blocks[2]["text"]["text"].as_str().unwrap();
        assert_eq!(
            comment,
            "*Comment:*\n>Slow &lt;!channel&gt; &amp; \"bad\"\n>second line"
        );
        assert_eq!(
            blocks[3]["elements"][0]["url"],
            "https://cl.example.com/app/followups/fup_1"
        );
        let text = m["text"].as_str().unwrap();
        assert!(!text.contains('<') && text.contains("3/10"), "{text}");
    }

    #[test]
    fn csat_scores_and_missing_comments_read_well() {
        let mut i = item(None);
        i.task.score = 2;
        i.survey_kind = "csat".into();
        let m = message(&i, "http://x");
        let facts = m["blocks"][1]["text"]["text"].as_str().unwrap();
        assert!(facts.contains("2/5 (unsatisfied)"), "{facts}");
        assert_eq!(m["blocks"][2]["text"]["text"], "*Comment:*\n_No comment._");
    }
}
