//! Close-the-loop metrics of a period: how the follow-up tasks of a survey (or of every survey
//! of a kind) were handled, overall and per assignee.
//!
//! Definitions (all times UTC, the period is `[from, to)`):
//! - **opened**: tasks created in the period;
//! - **closed**: tasks resolved or dismissed in the period (`resolved_at` in it);
//! - **% within SLA**: of the closed ones, those closed at or before their due time
//!   (`due_at`, set from `FOLLOWUP_SLA_HOURS` when the task was made, see `followups`);
//! - **median time to first action**: for the tasks opened in the period that someone acted
//!   on, from creation to the first activity by a person (an assignment, note, reply or status
//!   change; not the system's, an assignment rule's or the customer's);
//! - **median time to close**: for the closed ones, from creation to closing;
//! - **backlog**: open or in progress now (and of those, past due), whatever the period;
//! - **outcomes**: the closed tasks per outcome: every configured `FOLLOWUP_OUTCOMES` (also
//!   at 0), then any other recorded outcome (e.g. `score_raised`), then `none`.
//!
//! Per assignee: a task counts for its current assignee (`None`: unassigned).

use std::collections::BTreeMap;

use chrono::NaiveDateTime;

use crate::context::AppState;
use crate::domain::now;
use crate::domain::stats::round2;
use crate::error::AppError;
use crate::store::reports::{self as rep, LoopTask, Scope};

/// The metrics of one group of tasks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoopStats {
    pub opened: i64,
    pub closed: i64,
    pub closed_within_sla: i64,
    /// closed within SLA ÷ closed, in percent; `None` when nothing was closed.
    pub within_sla_pct: Option<f64>,
    pub median_seconds_to_first_action: Option<f64>,
    pub median_seconds_to_close: Option<f64>,
    pub backlog: i64,
    pub overdue: i64,
}

/// One assignee's row.
#[derive(Debug, Clone, PartialEq)]
pub struct AssigneeStats {
    /// `None`: unassigned.
    pub assignee: Option<String>,
    pub stats: LoopStats,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoopMetrics {
    pub total: LoopStats,
    /// By assignee name, unassigned last.
    pub by_assignee: Vec<AssigneeStats>,
    /// (outcome, closed tasks with it).
    pub outcomes: Vec<(String, i64)>,
}

/// The median of `v` (the mean of the two middle values for an even count).
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

fn secs(a: NaiveDateTime, b: NaiveDateTime) -> f64 {
    ((b - a).num_milliseconds() as f64 / 1000.0).max(0.0)
}

fn is_closed_in(t: &LoopTask, from: NaiveDateTime, to: NaiveDateTime) -> bool {
    matches!(t.status.as_str(), "resolved" | "dismissed")
        && t.resolved_at.is_some_and(|r| r >= from && r < to)
}

fn stats(
    tasks: &[&LoopTask],
    backlog: (i64, i64),
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> LoopStats {
    let opened: Vec<&&LoopTask> = tasks
        .iter()
        .filter(|t| t.created_at >= from && t.created_at < to)
        .collect();
    let closed: Vec<&&LoopTask> = tasks.iter().filter(|t| is_closed_in(t, from, to)).collect();
    let within = closed
        .iter()
        .filter(|t| t.resolved_at.is_some_and(|r| r <= t.due_at))
        .count() as i64;
    LoopStats {
        opened: opened.len() as i64,
        closed: closed.len() as i64,
        closed_within_sla: within,
        within_sla_pct: (!closed.is_empty())
            .then(|| round2(within as f64 / closed.len() as f64 * 100.0)),
        median_seconds_to_first_action: median(
            opened
                .iter()
                .filter_map(|t| t.first_action_at.map(|a| secs(t.created_at, a)))
                .collect(),
        ),
        median_seconds_to_close: median(
            closed
                .iter()
                .filter_map(|t| t.resolved_at.map(|r| secs(t.created_at, r)))
                .collect(),
        ),
        backlog: backlog.0,
        overdue: backlog.1,
    }
}

/// Computes the metrics of `[from, to)` from the tasks created or closed in it and the
/// backlog per assignee (open, overdue); `outcomes` is the configured outcome list.
pub fn compute(
    tasks: &[LoopTask],
    backlog: &[(Option<String>, i64, i64)],
    outcomes: &[String],
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> LoopMetrics {
    let all: Vec<&LoopTask> = tasks.iter().collect();
    let total_backlog = backlog
        .iter()
        .fold((0, 0), |(a, b), (_, n, o)| (a + n, b + o));
    let mut groups: BTreeMap<(bool, Option<String>), Vec<&LoopTask>> = BTreeMap::new();
    for t in tasks {
        groups
            .entry((t.assignee.is_none(), t.assignee.clone()))
            .or_default()
            .push(t);
    }
    for (who, _, _) in backlog {
        groups.entry((who.is_none(), who.clone())).or_default();
    }
    let by_assignee = groups
        .into_iter()
        .map(|((_, who), ts)| {
            let b = backlog
                .iter()
                .find(|(w, _, _)| *w == who)
                .map(|(_, n, o)| (*n, *o))
                .unwrap_or((0, 0));
            AssigneeStats {
                stats: stats(&ts, b, from, to),
                assignee: who,
            }
        })
        .collect();
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for t in tasks.iter().filter(|t| is_closed_in(t, from, to)) {
        *counts
            .entry(t.outcome.clone().unwrap_or_else(|| "none".into()))
            .or_default() += 1;
    }
    let mut out: Vec<(String, i64)> = outcomes
        .iter()
        .map(|o| (o.clone(), counts.remove(o).unwrap_or(0)))
        .collect();
    let none = counts.remove("none");
    out.extend(counts);
    if let Some(n) = none {
        out.push(("none".into(), n));
    }
    LoopMetrics {
        total: stats(&all, total_backlog, from, to),
        by_assignee,
        outcomes: out,
    }
}

/// The close-the-loop metrics of `scope` over `[from, to)`.
pub async fn loop_metrics(
    state: &AppState,
    scope: Scope,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Result<LoopMetrics, AppError> {
    let outcomes = state.settings.followup_outcomes.clone();
    state
        .db
        .run_replica(move |conn| {
            let tasks = rep::loop_tasks(conn, &scope, from, to)?;
            let backlog = rep::backlog_by_assignee(conn, &scope, now())?;
            Ok(compute(&tasks, &backlog, &outcomes, from, to))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(day: u32, hour: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 11, day)
            .unwrap()
            .and_hms_opt(hour, 0, 0)
            .unwrap()
    }

    fn task(
        who: Option<&str>,
        status: &str,
        created: NaiveDateTime,
        due: NaiveDateTime,
        first: Option<NaiveDateTime>,
        resolved: Option<NaiveDateTime>,
        outcome: Option<&str>,
    ) -> LoopTask {
        LoopTask {
            assignee: who.map(str::to_string),
            status: status.into(),
            outcome: outcome.map(str::to_string),
            due_at: due,
            created_at: created,
            resolved_at: resolved,
            first_action_at: first,
        }
    }

    #[test]
    fn metrics_match_a_hand_computed_fixture() {
        let (from, to) = (at(10, 0), at(20, 0));
        let tasks = vec![
            // Opened and closed in time by ann: first action after 1 h, closed after 4 h.
            task(
                Some("ann@x.co"),
                "resolved",
                at(11, 8),
                at(13, 8),
                Some(at(11, 9)),
                Some(at(11, 12)),
                Some("explained"),
            ),
            // Opened by ann, closed late: first action after 3 h, closed after 72 h.
            task(
                Some("ann@x.co"),
                "resolved",
                at(12, 8),
                at(14, 8),
                Some(at(12, 11)),
                Some(at(15, 8)),
                Some("compensated"),
            ),
            // Opened before the period, dismissed in it (no outcome), unassigned.
            task(
                None,
                "dismissed",
                at(5, 0),
                at(7, 0),
                None,
                Some(at(10, 12)),
                None,
            ),
            // Opened in the period, still open, nobody acted.
            task(None, "open", at(18, 0), at(20, 0), None, None, None),
        ];
        let backlog = vec![(None, 1, 0), (Some("bob@x.co".into()), 2, 1)];
        let outcomes = vec![
            "explained".to_string(),
            "compensated".to_string(),
            "x".into(),
        ];
        let m = compute(&tasks, &backlog, &outcomes, from, to);
        assert_eq!(m.total.opened, 3);
        assert_eq!(m.total.closed, 3);
        assert_eq!(m.total.closed_within_sla, 1);
        assert_eq!(m.total.within_sla_pct, Some(33.33));
        // First actions: 1 h and 3 h → 2 h.
        assert_eq!(m.total.median_seconds_to_first_action, Some(7200.0));
        // Closes: 4 h, 72 h, 132 h → 72 h.
        assert_eq!(m.total.median_seconds_to_close, Some(72.0 * 3600.0));
        assert_eq!((m.total.backlog, m.total.overdue), (3, 1));
        assert_eq!(
            m.outcomes,
            vec![
                ("explained".to_string(), 1),
                ("compensated".to_string(), 1),
                ("x".to_string(), 0),
                ("none".to_string(), 1)
            ]
        );
        let who: Vec<Option<&str>> = m
            .by_assignee
            .iter()
            .map(|a| a.assignee.as_deref())
            .collect();
        assert_eq!(who, vec![Some("ann@x.co"), Some("bob@x.co"), None]);
        let ann = &m.by_assignee[0].stats;
        assert_eq!((ann.opened, ann.closed, ann.closed_within_sla), (2, 2, 1));
        assert_eq!(ann.within_sla_pct, Some(50.0));
        assert_eq!(ann.median_seconds_to_close, Some(38.0 * 3600.0));
        let bob = &m.by_assignee[1].stats;
        assert_eq!((bob.opened, bob.backlog, bob.overdue), (0, 2, 1));
        let none = &m.by_assignee[2].stats;
        assert_eq!((none.opened, none.closed, none.backlog), (1, 1, 1));
        assert_eq!(none.median_seconds_to_first_action, None);
    }

    #[test]
    fn median_of_even_counts_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
