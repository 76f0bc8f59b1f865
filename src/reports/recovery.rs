//! The `recovery` block of a report: does following up unhappy customers win them back?
//!
//! Definitions, for a report period `[from, to)`:
//! - **followed_up**: follow-up tasks whose unhappy answer (NPS 0–6, CSAT 1–2) was given in
//!   the period and that are now `resolved` (dismissed and still open tasks do not count);
//! - **resurveyed**: of those, the tasks whose re-survey invitation (`resurvey_after_days`)
//!   went out (sent; a suppressed or not yet sent one does not count);
//! - **answered**: of those, the ones the customer answered;
//! - **recovered**: of those, the answers that left the unhappy range: NPS ≥ 7, CSAT ≥ 4;
//! - **recovered_share**: recovered ÷ answered in percent, with its Wilson 95 % interval;
//! - **average_score_change**: the mean of (re-survey score − original score) over the
//!   answered ones.
//!
//! The same counts are split by the task's outcome and by its assignee.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::stats::{round2, wilson};
use crate::domain::SurveyKind;
use crate::store::reports::RecoveryRow;

/// Counts of the recovery funnel (see the `recovery` block).
#[derive(Debug, Default, Clone, PartialEq, Serialize, ToSchema)]
pub struct RecoveryCounts {
    /// Resolved follow-ups of unhappy answers given in the period.
    #[schema(example = 5)]
    pub followed_up: i64,
    /// Of those, how many customers were sent the re-survey.
    #[schema(example = 4)]
    pub resurveyed: i64,
    /// Of those, how many answered it.
    #[schema(example = 3)]
    pub answered: i64,
    /// Of those, how many answers left the unhappy range (NPS ≥ 7, CSAT ≥ 4).
    #[schema(example = 2)]
    pub recovered: i64,
    /// recovered ÷ answered, in percent (0–100); `null` when nobody answered.
    #[schema(example = 66.67)]
    pub recovered_share: Option<f64>,
    /// Wilson 95 % interval of `recovered_share`, in percent.
    #[schema(example = json!([20.77, 93.85]))]
    pub recovered_ci95: Option<[f64; 2]>,
    /// Mean of (re-survey score − original score) over the answered ones; `null` when
    /// nobody answered.
    #[schema(example = 3.67)]
    pub average_score_change: Option<f64>,
}

/// The recovery counts of the tasks closed with one outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryByOutcome {
    /// The outcome recorded when the task was resolved (`null`: none).
    #[schema(example = "resolved_issue")]
    pub outcome: Option<String>,
    #[serde(flatten)]
    pub counts: RecoveryCounts,
}

/// The recovery counts of the tasks of one assignee.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryByAssignee {
    /// The assignee's email (`null`: unassigned).
    #[schema(example = "lead@acme.test")]
    pub assignee: Option<String>,
    #[serde(flatten)]
    pub counts: RecoveryCounts,
}

/// Closing the loop, measured: of the unhappy customers whose task was resolved, how many
/// were asked again, answered, and came back out of the unhappy range.
#[derive(Debug, Serialize, ToSchema)]
pub struct Recovery {
    #[serde(flatten)]
    pub totals: RecoveryCounts,
    /// The lowest score that counts as recovered: 7 (NPS) or 4 (CSAT).
    #[schema(example = 7)]
    pub recovered_from_score: i32,
    /// The same counts per outcome, most tasks first.
    pub by_outcome: Vec<RecoveryByOutcome>,
    /// The same counts per assignee, most tasks first.
    pub by_assignee: Vec<RecoveryByAssignee>,
}

/// The lowest score outside the unhappy range (recovered).
pub fn recovered_from(kind: SurveyKind) -> i32 {
    match kind {
        SurveyKind::Nps => 7,
        SurveyKind::Csat => 4,
    }
}

/// Sums of one group, before the ratios.
#[derive(Default)]
struct Tally {
    followed_up: i64,
    resurveyed: i64,
    answered: i64,
    recovered: i64,
    change_sum: i64,
}

impl Tally {
    fn add(&mut self, r: &RecoveryRow, threshold: i32) {
        self.followed_up += 1;
        if r.resurveyed {
            self.resurveyed += 1;
        }
        if let Some(next) = r.next_score {
            self.answered += 1;
            self.change_sum += (next - r.score) as i64;
            if next >= threshold {
                self.recovered += 1;
            }
        }
    }

    fn counts(&self) -> RecoveryCounts {
        let answered = self.answered;
        let (share, ci) = if answered > 0 {
            let (lo, hi) = wilson(self.recovered, answered);
            (
                Some(round2(100.0 * self.recovered as f64 / answered as f64)),
                Some([round2(100.0 * lo), round2(100.0 * hi)]),
            )
        } else {
            (None, None)
        };
        RecoveryCounts {
            followed_up: self.followed_up,
            resurveyed: self.resurveyed,
            answered,
            recovered: self.recovered,
            recovered_share: share,
            recovered_ci95: ci,
            average_score_change: (answered > 0)
                .then(|| round2(self.change_sum as f64 / answered as f64)),
        }
    }
}

/// Groups by `key`, most tasks first, then by key (`null` last).
fn split(
    rows: &[RecoveryRow],
    threshold: i32,
    key: impl Fn(&RecoveryRow) -> Option<String>,
) -> Vec<(Option<String>, RecoveryCounts)> {
    let mut groups: BTreeMap<Option<String>, Tally> = BTreeMap::new();
    for r in rows {
        groups.entry(key(r)).or_default().add(r, threshold);
    }
    let mut out: Vec<_> = groups.into_iter().map(|(k, t)| (k, t.counts())).collect();
    out.sort_by(|a, b| {
        b.1.followed_up
            .cmp(&a.1.followed_up)
            .then_with(|| a.0.is_none().cmp(&b.0.is_none()))
            .then_with(|| a.0.cmp(&b.0))
    });
    out
}

/// The recovery block of a report of `kind` from its resolved follow-ups.
pub fn recovery(kind: SurveyKind, rows: &[RecoveryRow]) -> Recovery {
    let threshold = recovered_from(kind);
    let mut total = Tally::default();
    for r in rows {
        total.add(r, threshold);
    }
    Recovery {
        totals: total.counts(),
        recovered_from_score: threshold,
        by_outcome: split(rows, threshold, |r| r.outcome.clone())
            .into_iter()
            .map(|(outcome, counts)| RecoveryByOutcome { outcome, counts })
            .collect(),
        by_assignee: split(rows, threshold, |r| r.assignee.clone())
            .into_iter()
            .map(|(assignee, counts)| RecoveryByAssignee { assignee, counts })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(outcome: &str, score: i32, resurveyed: bool, next: Option<i32>) -> RecoveryRow {
        RecoveryRow {
            outcome: Some(outcome.into()),
            assignee: None,
            score,
            resurveyed,
            next_score: next,
        }
    }

    #[test]
    fn the_funnel_counts_and_the_share_match_a_hand_computation() {
        let rows = vec![
            row("explained", 2, true, Some(9)),
            row("explained", 5, true, Some(7)),
            row("compensated", 6, true, Some(4)),
            row("compensated", 3, true, None),
            row("explained", 0, false, None),
        ];
        let r = recovery(SurveyKind::Nps, &rows);
        assert_eq!(r.totals.followed_up, 5);
        assert_eq!(r.totals.resurveyed, 4);
        assert_eq!(r.totals.answered, 3);
        assert_eq!(r.totals.recovered, 2);
        assert_eq!(r.totals.recovered_share, Some(66.67));
        // Wilson, k = 2, n = 3, z = 1.96: centre 0.5731, half-width 0.3654.
        assert_eq!(r.totals.recovered_ci95, Some([20.77, 93.85]));
        // (7 + 2 − 2) / 3
        assert_eq!(r.totals.average_score_change, Some(2.33));
        assert_eq!(r.by_outcome[0].outcome.as_deref(), Some("explained"));
        assert_eq!(r.by_outcome[0].counts.recovered, 2);
        assert_eq!(r.by_outcome[1].counts.recovered_share, Some(0.0));
        assert_eq!(r.by_assignee.len(), 1);
        assert_eq!(r.by_assignee[0].counts, r.totals);
    }

    #[test]
    fn csat_recovers_from_four_and_nothing_answered_gives_no_share() {
        let r = recovery(SurveyKind::Csat, &[row("x", 1, true, Some(3))]);
        assert_eq!(r.totals.recovered, 0);
        assert_eq!(r.recovered_from_score, 4);
        let r = recovery(SurveyKind::Csat, &[row("x", 1, false, None)]);
        assert_eq!(r.totals.recovered_share, None);
        assert_eq!(r.totals.recovered_ci95, None);
    }
}
