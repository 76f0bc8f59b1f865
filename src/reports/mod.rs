//! Reports: NPS/CSAT with 95 % intervals, counts per score, a time series, a breakdown by a
//! contact property, response rate, time to answer, the change against the previous period
//! and the follow-up backlog; and the CSV export of responses. The aggregates come from
//! `store::reports` (daily rollups plus the partial days at the edges).
//!
//! One convention for every ratio: a percentage from 0 to 100 (`csat`, `response_rate` and
//! their intervals and changes); the NPS is from −100 to 100. Ratios are `null` when there is
//! nothing to divide.

pub mod recovery;
pub mod segments;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::Serialize;
use tokio::sync::mpsc;
use utoipa::ToSchema;

use crate::context::AppState;
use crate::domain::stats::{round2, Counts, Z95};
use crate::domain::{now, utc, SurveyKind};
use crate::error::AppError;
use crate::store::reports::{self as rep, Interval, Scope};
use crate::store::responses::ResponseFilter;
use crate::store::{Db, DbConnection};

pub mod feed;
pub mod loop_metrics;

/// How many answers gave one score.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScoreCount {
    pub score: i32,
    pub n: i64,
}

/// Counts and scores of a set of answers. Fields of the other kind are absent; ratios are
/// percentages (0–100), `null` when there are no answers (nothing to divide).
#[derive(Debug, Serialize, ToSchema)]
pub struct Summary {
    pub responses: i64,
    /// Answers per score, in score order: 0…10 for NPS, 1…5 for CSAT (every score, also
    /// those with `n` = 0).
    pub counts: Vec<ScoreCount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promoters: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passives: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detractors: Option<i64>,
    /// −100…100 (NPS surveys).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub nps: Option<Option<f64>>,
    /// 95 % interval of the NPS (adjusted Wald: one pseudo-answer added to each of
    /// promoters, passives and detractors, so that small samples get honestly wide
    /// intervals; it always contains `nps`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<f64>>)]
    pub nps_ci95: Option<Option<[f64; 2]>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub satisfied: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub neutral: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsatisfied: Option<i64>,
    /// Percentage (0–100) of 4–5 answers (CSAT surveys).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub csat: Option<Option<f64>>,
    /// Wilson 95 % interval of the CSAT, in percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<f64>>)]
    pub csat_ci95: Option<Option<[f64; 2]>>,
    pub average_score: Option<f64>,
}

impl Summary {
    pub fn of(kind: SurveyKind, c: &Counts) -> Summary {
        let (lo, hi) = kind.range();
        let nps = matches!(kind, SurveyKind::Nps);
        let r2 = |v: [f64; 2]| [round2(v[0]), round2(v[1])];
        Summary {
            responses: c.total(),
            counts: (lo..=hi)
                .map(|s| ScoreCount {
                    score: s,
                    n: c.0[s as usize],
                })
                .collect(),
            promoters: nps.then(|| c.promoters()),
            passives: nps.then(|| c.passives()),
            detractors: nps.then(|| c.detractors()),
            nps: nps.then(|| c.nps().map(|(v, _)| round2(v))),
            nps_ci95: nps.then(|| c.nps().map(|(_, ci)| r2(ci))),
            satisfied: (!nps).then(|| c.satisfied()),
            neutral: (!nps).then(|| c.neutral()),
            unsatisfied: (!nps).then(|| c.unsatisfied()),
            csat: (!nps).then(|| c.csat().map(|(v, _)| round2(v))),
            csat_ci95: (!nps).then(|| c.csat().map(|(_, ci)| r2(ci))),
            average_score: c.average().map(round2),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesPoint {
    /// Bucket start (UTC day; weeks start on Monday, months on the 1st).
    pub start: NaiveDate,
    /// Next bucket's start (exclusive).
    pub end: NaiveDate,
    #[serde(flatten)]
    pub summary: Summary,
    /// Invitations delivered in the bucket (within the report's range).
    pub invitations_delivered: i64,
    /// Of those, how many were answered.
    pub invitations_answered: i64,
    /// answered ÷ delivered as a percentage (0–100); `null` when nothing was delivered.
    pub response_rate: Option<f64>,
    /// Median seconds from sending to answering, for the bucket's answers.
    pub median_seconds_to_answer: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentRow {
    /// The property's value; `null` for anonymous answers and contacts without it.
    pub value: Option<String>,
    #[serde(flatten)]
    pub summary: Summary,
}

/// Where a report's segment values come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SegmentSource {
    /// The values snapshotted onto each answer when it was recorded (`report_segments`),
    /// read from daily rollups: an answer counts under the value its customer had then.
    AnswerTime,
    /// The contacts' properties now, joined at query time (a property not in
    /// `report_segments`, or still being backfilled).
    Current,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    #[serde(flatten)]
    pub summary: Summary,
    /// Percentage (0–100) of the period's delivered invitations that were answered.
    pub response_rate: Option<f64>,
}

/// Current minus previous period.
#[derive(Debug, Serialize, ToSchema)]
pub struct Change {
    pub responses: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub nps: Option<Option<f64>>,
    /// Whether the NPS change is significant at 95 % (|Δ| > 1.96·sqrt(Var₁/n₁ + Var₂/n₂)).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<bool>)]
    pub nps_significant: Option<Option<bool>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub csat: Option<Option<f64>>,
    /// In percentage points.
    pub response_rate: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Backlog {
    pub open: i64,
    pub in_progress: i64,
    /// Open or in progress and past due.
    pub overdue: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Report {
    /// The survey, or absent for a report across all surveys of a kind.
    pub survey_id: Option<String>,
    pub kind: SurveyKind,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// `day`, `week` or `month`.
    pub interval: String,
    #[serde(flatten)]
    pub summary: Summary,
    /// Invitations delivered in the period (emails sent, links made).
    pub invitations_delivered: i64,
    /// Of those, how many were answered.
    pub invitations_answered: i64,
    /// answered ÷ delivered as a percentage (0–100); `null` when nothing was delivered.
    pub response_rate: Option<f64>,
    /// Median seconds from sending to answering, for answers in the period.
    pub median_seconds_to_answer: Option<f64>,
    /// The period of the same length just before `from`.
    pub previous: Period,
    pub change: Change,
    /// Follow-up tasks now (not limited to the period).
    pub followups: Backlog,
    pub series: Vec<SeriesPoint>,
    /// The property the answers are broken down by (`segment=`), if any.
    pub segment: Option<String>,
    /// Where the segment values come from (absent without `segment=`): `answer_time` when
    /// the survey (every survey of the kind) lists the property in `report_segments` and its
    /// backfill is done; otherwise `current`, the contacts' properties now (slower, and an
    /// answer counts under the value its customer has today).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment_source: Option<SegmentSource>,
    pub segments: Vec<SegmentRow>,
    /// Closing the loop, measured: of the unhappy answers of the period whose follow-up was
    /// resolved, how many customers were re-surveyed (`resurvey_after_days`), answered, and
    /// left the unhappy range; overall, per outcome and per assignee.
    pub recovery: recovery::Recovery,
}

/// A checked report range: `[from, to)`, the bucket interval and an optional segment.
#[derive(Debug, Clone)]
pub struct Range {
    pub from: chrono::NaiveDateTime,
    pub to: chrono::NaiveDateTime,
    pub interval: Interval,
    pub segment: Option<String>,
}

impl Range {
    /// Checks a requested range: defaults (the last 30 days, an interval that fits), at most
    /// 1000 buckets, a segment that is a plain property name.
    pub fn check(
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        interval: Option<&str>,
        segment: Option<&str>,
    ) -> Result<Range, AppError> {
        let to = to.map(|t| t.naive_utc()).unwrap_or_else(now);
        let from = from
            .map(|t| t.naive_utc())
            .unwrap_or(to - TimeDelta::days(30));
        if from >= to {
            return Err(AppError::field("from", "must be before to"));
        }
        let days = (to - from).num_days();
        let interval = match interval {
            None if days <= 31 => Interval::Day,
            None if days <= 182 => Interval::Week,
            None => Interval::Month,
            Some("day") => Interval::Day,
            Some("week") => Interval::Week,
            Some("month") => Interval::Month,
            Some(_) => return Err(AppError::field("interval", "must be day, week or month")),
        };
        let buckets = match interval {
            Interval::Day => days,
            Interval::Week => days / 7,
            Interval::Month => days / 28,
        };
        if buckets > 1000 {
            return Err(AppError::field(
                "interval",
                "gives more than 1000 buckets; use a longer interval or a shorter range",
            ));
        }
        if let Some(s) = segment {
            let ok = !s.is_empty()
                && s.len() <= 100
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !ok {
                return Err(AppError::field(
                    "segment",
                    "must be a property name of letters, digits, _ or - (1 to 100)",
                ));
            }
        }
        Ok(Range {
            from,
            to,
            interval,
            segment: segment.map(str::to_string),
        })
    }
}

fn rate(answered: i64, delivered: i64) -> Option<f64> {
    (delivered > 0).then(|| round2(answered as f64 / delivered as f64 * 100.0))
}

fn nps_variance(c: &Counts) -> Option<(f64, f64)> {
    let n = c.total();
    (n > 0).then(|| {
        let n = n as f64;
        let p = c.promoters() as f64 / n;
        let d = c.detractors() as f64 / n;
        (p + d - (p - d).powi(2), n)
    })
}

/// Builds a report over `scope` from the database's aggregates.
pub fn build(
    conn: &mut DbConnection,
    scope: Scope,
    kind: SurveyKind,
    c: Range,
) -> Result<Report, AppError> {
    let days = rep::day_counts(conn, &scope, c.from, c.to)?;
    let mut total = Counts::default();
    for counts in days.values() {
        total.merge(counts);
    }
    let delivery_days = rep::delivery_days(conn, &scope, c.from, c.to)?;
    let delay_days = rep::delay_days(conn, &scope, c.from, c.to)?;
    let series = rep::series(&days, c.interval, c.from, c.to)
        .into_iter()
        .map(|(start, end, counts)| {
            let (mut delivered, mut answered) = (0, 0);
            for (d, a) in delivery_days.range(start..end).map(|(_, v)| v) {
                delivered += d;
                answered += a;
            }
            let mut hist = std::collections::BTreeMap::new();
            for h in delay_days.range(start..end).map(|(_, v)| v) {
                for (b, n) in h {
                    *hist.entry(*b).or_insert(0) += n;
                }
            }
            SeriesPoint {
                start,
                end,
                summary: Summary::of(kind, &counts),
                invitations_delivered: delivered,
                invitations_answered: answered,
                response_rate: rate(answered, delivered),
                median_seconds_to_answer: rep::histogram_median(&hist).map(round2),
            }
        })
        .collect();
    let (delivered, answered) = rep::delivery(conn, &scope, c.from, c.to)?;
    let median = rep::median_seconds_to_answer(conn, &scope, c.from, c.to)?.map(round2);
    let prev_from = c.from - (c.to - c.from);
    let prev_days = rep::day_counts(conn, &scope, prev_from, c.from)?;
    let mut prev = Counts::default();
    for counts in prev_days.values() {
        prev.merge(counts);
    }
    let (prev_delivered, prev_answered) = rep::delivery(conn, &scope, prev_from, c.from)?;
    let (segments, segment_source) = match &c.segment {
        Some(key) => {
            let (rows, source) = if rep::snapshot_ready(conn, &scope, key)? {
                (
                    rep::segment_counts_snapshot(conn, &scope, c.from, c.to, key)?,
                    SegmentSource::AnswerTime,
                )
            } else {
                (
                    rep::segment_counts(conn, &scope, c.from, c.to, key)?,
                    SegmentSource::Current,
                )
            };
            let rows = rows
                .into_iter()
                .map(|(value, counts)| SegmentRow {
                    value,
                    summary: Summary::of(kind, &counts),
                })
                .collect();
            (rows, Some(source))
        }
        None => (Vec::new(), None),
    };
    let (open, in_progress, overdue) = rep::backlog(conn, &scope, now())?;
    let recovery = recovery::recovery(kind, &rep::recovery_rows(conn, &scope, c.from, c.to)?);
    let nps = matches!(kind, SurveyKind::Nps);
    let response_rate = rate(answered, delivered);
    let prev_rate = rate(prev_answered, prev_delivered);
    let change = Change {
        responses: total.total() - prev.total(),
        nps: nps.then(|| match (total.nps(), prev.nps()) {
            (Some((a, _)), Some((b, _))) => Some(round2(a - b)),
            _ => None,
        }),
        nps_significant: nps.then(|| {
            match (
                total.nps(),
                prev.nps(),
                nps_variance(&total),
                nps_variance(&prev),
            ) {
                (Some((a, _)), Some((b, _)), Some((v1, n1)), Some((v2, n2))) => {
                    Some(((a - b) / 100.0).abs() > Z95 * (v1 / n1 + v2 / n2).sqrt())
                }
                _ => None,
            }
        }),
        csat: (!nps).then(|| match (total.csat(), prev.csat()) {
            (Some((a, _)), Some((b, _))) => Some(round2(a - b)),
            _ => None,
        }),
        response_rate: match (response_rate, prev_rate) {
            (Some(a), Some(b)) => Some(round2(a - b)),
            _ => None,
        },
    };
    Ok(Report {
        survey_id: match &scope {
            Scope::Survey(id) => Some(id.clone()),
            Scope::Kind(_) => None,
        },
        kind,
        from: utc(c.from),
        to: utc(c.to),
        interval: c.interval.as_str().into(),
        summary: Summary::of(kind, &total),
        invitations_delivered: delivered,
        invitations_answered: answered,
        response_rate,
        median_seconds_to_answer: median,
        previous: Period {
            from: utc(prev_from),
            to: utc(c.from),
            summary: Summary::of(kind, &prev),
            response_rate: prev_rate,
        },
        change,
        followups: Backlog {
            open,
            in_progress,
            overdue,
        },
        series,
        segment: c.segment,
        segment_source,
        segments,
        recovery,
    })
}

/// The report of one survey (404 when there is no such survey).
pub async fn survey_report(state: &AppState, id: String, range: Range) -> Result<Report, AppError> {
    state
        .db
        .run_replica(move |conn| {
            let survey = crate::store::surveys::get(conn, &id)?;
            let kind = SurveyKind::parse(&survey.kind).unwrap_or(SurveyKind::Nps);
            build(conn, Scope::Survey(id.clone()), kind, range.clone())
        })
        .await
}

/// The report over every survey of one kind.
pub async fn kind_report(
    state: &AppState,
    kind: SurveyKind,
    range: Range,
) -> Result<Report, AppError> {
    state
        .db
        .run_replica(move |conn| {
            build(conn, Scope::Kind(kind.as_str().into()), kind, range.clone())
        })
        .await
}

/// Neutralises a cell that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab,
/// carriage return at the start) by prefixing an apostrophe.
pub fn safe_cell(value: &str) -> std::borrow::Cow<'_, str> {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{value}"))
    } else {
        std::borrow::Cow::Borrowed(value)
    }
}

const CSV_HEADER: [&str; 15] = [
    "id",
    "survey_id",
    "invitation_id",
    "contact_id",
    "email",
    "name",
    "external_id",
    "score",
    "category",
    "comment",
    "channel",
    "followup_status",
    "followup_assignee",
    "created_at",
    "updated_at",
];

/// At most this many `property.<name>` columns (the first names in alphabetical order).
pub const MAX_PROPERTY_COLUMNS: usize = 200;

/// A time as spreadsheets parse it: `YYYY-MM-DD HH:MM:SS`, UTC.
pub fn csv_time(t: chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A property value as a cell: strings as they are, `null` empty, anything else as JSON.
fn property_cell(value: Option<&serde_json::Value>) -> String {
    match value {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Streams the responses matching `filter` as CSV chunks (the first with the header and a
/// byte-order mark), read page by page on a blocking thread; the stream ends early when the
/// receiver is dropped. A first pass over the same pages collects the names of the contacts'
/// properties, so that each gets a `property.<name>` column (alphabetical, at most
/// [`MAX_PROPERTY_COLUMNS`]); memory stays bounded by one page and the set of names.
pub fn export_csv(state: &AppState, filter: ResponseFilter) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let db = state.db.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = write_csv(&db, &filter, &tx) {
            tracing::warn!(error = %e, "CSV export stopped");
        }
    });
    rx
}

fn write_csv(db: &Db, filter: &ResponseFilter, tx: &mpsc::Sender<Bytes>) -> anyhow::Result<()> {
    let mut conn = db.replica_conn()?;
    // First pass: the property names seen in the export.
    let mut names = std::collections::BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let rows = crate::store::responses::export_page(&mut conn, filter, after.as_deref(), 2000)?;
        let Some(last) = rows.last() else { break };
        after = Some(last.response.id.clone());
        for r in &rows {
            if let Some(serde_json::Value::Object(map)) = r
                .properties
                .as_deref()
                .and_then(|p| serde_json::from_str(p).ok())
            {
                names.extend(map.into_iter().map(|(k, _)| k));
            }
        }
    }
    let names: Vec<String> = names.into_iter().take(MAX_PROPERTY_COLUMNS).collect();
    let mut head = csv::Writer::from_writer(Vec::new());
    let header: Vec<String> = CSV_HEADER
        .iter()
        .map(|h| h.to_string())
        .chain(names.iter().map(|n| format!("property.{n}")))
        .collect();
    head.write_record(header.iter().map(|h| safe_cell(h).into_owned()))?;
    let mut first = "\u{feff}".as_bytes().to_vec();
    first.extend_from_slice(&head.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?);
    if tx.blocking_send(Bytes::from(first)).is_err() {
        return Ok(());
    }
    let mut after: Option<String> = None;
    loop {
        let rows = crate::store::responses::export_page(&mut conn, filter, after.as_deref(), 2000)?;
        let Some(last) = rows.last() else { break };
        after = Some(last.response.id.clone());
        let mut out = csv::Writer::from_writer(Vec::with_capacity(256 * rows.len()));
        for row in &rows {
            let r = &row.response;
            let props: serde_json::Map<String, serde_json::Value> = row
                .properties
                .as_deref()
                .and_then(|p| serde_json::from_str(p).ok())
                .unwrap_or_default();
            let mut record: Vec<String> = vec![
                r.id.clone(),
                r.survey_id.clone(),
                r.invitation_id.clone().unwrap_or_default(),
                r.contact_id.clone().unwrap_or_default(),
                safe_cell(row.email.as_deref().unwrap_or("")).into_owned(),
                safe_cell(row.name.as_deref().unwrap_or("")).into_owned(),
                safe_cell(row.external_id.as_deref().unwrap_or("")).into_owned(),
                r.score.to_string(),
                r.category.clone(),
                safe_cell(r.comment.as_deref().unwrap_or("")).into_owned(),
                r.channel.clone(),
                row.followup_status.clone().unwrap_or_default(),
                safe_cell(row.followup_assignee.as_deref().unwrap_or("")).into_owned(),
                csv_time(r.created_at),
                csv_time(r.updated_at),
            ];
            record.extend(
                names
                    .iter()
                    .map(|n| safe_cell(&property_cell(props.get(n))).into_owned()),
            );
            out.write_record(&record)?;
        }
        let chunk = out.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
        if tx.blocking_send(Bytes::from(chunk)).is_err() {
            return Ok(()); // the client went away
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::safe_cell;

    #[test]
    fn formulas_are_neutralised() {
        for v in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert!(safe_cell(v).starts_with('\''), "{v:?}");
        }
        assert_eq!(safe_cell("fine = ok"), "fine = ok");
        assert_eq!(safe_cell(""), "");
    }
}
