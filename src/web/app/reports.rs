//! The dashboards: `GET /app/reports?kind=nps|csat` (every survey of a kind) and
//! `GET /app/surveys/{id}` (one survey), plus `GET /app/reports/responses.csv` (the CSV
//! export with the dashboard's filters, for a session). Any signed-in role may view them.
//!
//! - The headline, the trend, the distribution, response rate and time to answer per bucket
//!   and the segment comparison all come from one call of the report use case
//!   (`reports::survey_report` / `reports::kind_report`), the same as
//!   `GET /api/v1/surveys/{id}/report` and `GET /api/v1/reports`: the page's numbers are the
//!   API's for the same range (the key numbers carry `data-*` attributes, and the range the
//!   page used is on `#dashboard` as `data-from`/`data-to`, dates the API accepts).
//! - Close-the-loop metrics: `reports::loop_metrics`. Comments feed: `reports::feed`.
//! - Charts: inline SVG drawn by the template from geometry computed in `charts` (no chart
//!   JavaScript).
//!
//! Query parameters (all optional; the address is shareable):
//! - `period`: `7d`, `30d` (default), `90d`, `this_month`, `last_month` or `custom` with
//!   `from` and `to` (dates, both included). Days are UTC; "last 30 days" ends today
//!   (included). It is compared with the period of the same length just before.
//! - `interval`: `day`, `week` or `month` (default: by the period's length); `segment`: a
//!   contact property to compare (e.g. `plan`).
//! - Comments feed: `category`, `survey` (on `/app/reports`), `prop_key` + `prop_value` (a
//!   contact property), `q` (text in the comment), `page` (20 per page).
//! - A bad parameter is a 422 page that names it.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::{Datelike, NaiveDate, NaiveDateTime, TimeDelta};

use super::charts::{self, BarInput, Bars, SegmentInput, Segments, Table, Trend, TrendInput};
use super::inbox::{span, tone, Opt};
use super::page::{html, Layout, PageError};
use super::Signed;
use crate::context::AppState;
use crate::domain::{now, SurveyKind};
use crate::reports::loop_metrics::{loop_metrics, LoopStats};
use crate::reports::recovery::RecoveryCounts;
use crate::reports::{self, feed, Range, Report, Summary};
use crate::store::reports::Scope;
use crate::store::responses::ResponseFilter;

/// Comments per page of the feed.
pub const FEED_PAGE: i64 = 20;

const PERIODS: [(&str, &str); 6] = [
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("90d", "Last 90 days"),
    ("this_month", "This month"),
    ("last_month", "Last month"),
    ("custom", "Custom"),
];

/// A dashboard's query, parsed and checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DashQuery {
    pub kind: Option<SurveyKind>,
    pub period: String,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub interval: Option<String>,
    pub segment: Option<String>,
    pub category: Option<String>,
    pub survey: Option<String>,
    pub prop_key: Option<String>,
    pub prop_value: Option<String>,
    pub q: Option<String>,
    pub page: i64,
}

fn bad(param: &str, why: &str) -> PageError {
    PageError::Unprocessable(format!(
        "The dashboard parameter “{param}” {why}. Fix it in the address, or pick the period again from the dashboard."
    ))
}

fn nonempty(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

fn first_of_month(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

impl DashQuery {
    /// Parses a query string; `Err` (a 422 page) names the bad parameter. Unknown keys are
    /// ignored.
    pub fn parse(raw: &str) -> Result<DashQuery, PageError> {
        let mut q = DashQuery {
            period: "30d".into(),
            page: 1,
            ..Default::default()
        };
        for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
            let v = v.as_ref();
            if v.contains('\0') {
                return Err(bad(&k, "must not contain a NUL character"));
            }
            match k.as_ref() {
                "kind" => {
                    q.kind = match nonempty(v) {
                        None => None,
                        Some(s) => Some(
                            SurveyKind::parse(&s)
                                .ok_or_else(|| bad("kind", "must be nps or csat"))?,
                        ),
                    }
                }
                "period" => {
                    if !PERIODS.iter().any(|(p, _)| *p == v) {
                        return Err(bad(
                            "period",
                            "must be one of 7d, 30d, 90d, this_month, last_month, custom",
                        ));
                    }
                    q.period = v.to_string();
                }
                "from" | "to" => {
                    let d = match nonempty(v) {
                        None => None,
                        Some(s) => Some(
                            NaiveDate::parse_from_str(&s, "%Y-%m-%d")
                                .map_err(|_| bad(&k, "must be a date like 2026-10-31"))?,
                        ),
                    };
                    if k == "from" {
                        q.from = d;
                    } else {
                        q.to = d;
                    }
                }
                "interval" => {
                    q.interval = nonempty(v);
                    if q.interval
                        .as_deref()
                        .is_some_and(|i| !matches!(i, "day" | "week" | "month"))
                    {
                        return Err(bad("interval", "must be day, week or month"));
                    }
                }
                "segment" => {
                    q.segment = nonempty(v);
                    if q.segment
                        .as_deref()
                        .is_some_and(|s| !crate::store::followups::is_property_key(s))
                    {
                        return Err(bad(
                            "segment",
                            "must be a property name of letters, digits, _ or - (1 to 100)",
                        ));
                    }
                }
                "category" => {
                    q.category = nonempty(v);
                    if q.category.as_deref().is_some_and(|c| {
                        !matches!(
                            c,
                            "promoter"
                                | "passive"
                                | "detractor"
                                | "satisfied"
                                | "neutral"
                                | "unsatisfied"
                        )
                    }) {
                        return Err(bad(
                            "category",
                            "must be promoter, passive, detractor, satisfied, neutral or unsatisfied",
                        ));
                    }
                }
                "survey" => {
                    q.survey = nonempty(v);
                    if q.survey
                        .as_deref()
                        .is_some_and(|s| !s.starts_with("srv_") || s.len() > 64)
                    {
                        return Err(bad("survey", "is not a survey id"));
                    }
                }
                "prop_key" => q.prop_key = nonempty(v),
                "prop_value" => q.prop_value = nonempty(v),
                "q" => {
                    q.q = nonempty(v);
                    if q.q.as_deref().is_some_and(|s| s.chars().count() > 200) {
                        return Err(bad("q", "is longer than 200 characters"));
                    }
                }
                "page" => {
                    q.page = match v.trim().parse::<i64>() {
                        Ok(n) if (1..=10_000).contains(&n) => n,
                        _ => return Err(bad("page", "must be a whole number from 1")),
                    };
                }
                _ => {}
            }
        }
        match (&q.prop_key, &q.prop_value) {
            (Some(k), _) if !crate::store::followups::is_property_key(k) => {
                return Err(bad(
                    "prop_key",
                    "must be a property name of letters, digits, _ or - (1 to 100)",
                ))
            }
            (Some(_), None) => {
                return Err(bad(
                    "prop_value",
                    "is missing: give the value of the property",
                ))
            }
            (None, Some(_)) => {
                return Err(bad(
                    "prop_key",
                    "is missing: give the property's name, e.g. plan",
                ))
            }
            _ => {}
        }
        if q.prop_value
            .as_deref()
            .is_some_and(|v| v.chars().count() > 200)
        {
            return Err(bad("prop_value", "is longer than 200 characters"));
        }
        if q.period == "custom" {
            match (q.from, q.to) {
                (Some(a), Some(b)) if a > b => return Err(bad("from", "is after to")),
                (Some(_), Some(_)) => {}
                _ => return Err(bad("from", "and “to” are both needed for a custom period")),
            }
        }
        Ok(q)
    }

    /// The period as whole UTC days: `[from, to)` (the end exclusive), given today.
    pub fn days(&self, today: NaiveDate) -> (NaiveDate, NaiveDate) {
        let tomorrow = today + TimeDelta::days(1);
        match self.period.as_str() {
            "7d" => (today - TimeDelta::days(6), tomorrow),
            "90d" => (today - TimeDelta::days(89), tomorrow),
            "this_month" => (first_of_month(today), tomorrow),
            "last_month" => {
                let this = first_of_month(today);
                (first_of_month(this - TimeDelta::days(1)), this)
            }
            "custom" => match (self.from, self.to) {
                (Some(a), Some(b)) => (a, b + TimeDelta::days(1)),
                _ => (today - TimeDelta::days(29), tomorrow),
            },
            _ => (today - TimeDelta::days(29), tomorrow),
        }
    }

    /// The checked report range of this query.
    fn range(&self, today: NaiveDate) -> Result<Range, PageError> {
        let (a, b) = self.days(today);
        let at = |d: NaiveDate| crate::domain::utc(d.and_hms_opt(0, 0, 0).unwrap_or_default());
        Range::check(
            Some(at(a)),
            Some(at(b)),
            self.interval.as_deref(),
            self.segment.as_deref(),
        )
        .map_err(|e| match PageError::from(e) {
            PageError::BadRequest(m) => PageError::Unprocessable(format!(
                "The dashboard cannot show this: {m}. Pick a shorter period or a longer interval."
            )),
            other => other,
        })
    }

    /// The query string with these values (defaults left out), for links and forms.
    fn encode_with(&self, page: i64, feed: bool) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        let mut opt = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                s.append_pair(k, &v);
            }
        };
        opt("kind", self.kind.map(|k| k.as_str().to_string()));
        opt(
            "period",
            (self.period != "30d").then(|| self.period.clone()),
        );
        if self.period == "custom" {
            opt("from", self.from.map(|d| d.to_string()));
            opt("to", self.to.map(|d| d.to_string()));
        }
        opt("interval", self.interval.clone());
        opt("segment", self.segment.clone());
        if feed {
            opt("category", self.category.clone());
            opt("survey", self.survey.clone());
            opt("prop_key", self.prop_key.clone());
            opt("prop_value", self.prop_value.clone());
            opt("q", self.q.clone());
        }
        opt("page", (page > 1).then(|| page.to_string()));
        s.finish()
    }

    fn feed_filtered(&self) -> bool {
        self.category.is_some()
            || self.survey.is_some()
            || self.prop_key.is_some()
            || self.q.is_some()
    }

    /// The responses the feed and the CSV export show, in `[from, to)`.
    fn response_filter(
        &self,
        scope: &Scope,
        from: NaiveDateTime,
        to: NaiveDateTime,
    ) -> ResponseFilter {
        let (survey_id, survey_kind) = match scope {
            Scope::Survey(id) => (Some(id.clone()), None),
            Scope::Kind(k) => (self.survey.clone(), Some(k.clone())),
        };
        ResponseFilter {
            survey_id,
            survey_kind,
            category: self.category.clone(),
            since: Some(from),
            until: Some(to),
            property: self.prop_key.clone().zip(self.prop_value.clone()),
            q: self.q.clone(),
            ..Default::default()
        }
    }
}

/// A link of the kind switch.
pub struct Tab {
    pub label: &'static str,
    pub href: String,
    pub current: bool,
}

/// The headline numbers, as text, with the raw values for `data-*` attributes.
pub struct Headline {
    pub measure: &'static str,
    pub score: String,
    /// The API's value (`null` as empty).
    pub score_raw: String,
    pub ci: String,
    pub ci_lo: String,
    pub ci_hi: String,
    pub change: String,
    pub change_raw: String,
    /// `up`, `down` or `flat`.
    pub change_dir: &'static str,
    /// `Some(true)`: significant; `None`: cannot say.
    pub significant: Option<bool>,
    pub responses: i64,
    pub previous_responses: i64,
    pub response_rate: String,
    pub response_rate_raw: String,
    pub delivered: i64,
    pub median_time: String,
    pub open: i64,
    pub in_progress: i64,
    pub overdue: i64,
}

/// A row of the close-the-loop table.
pub struct LoopRow {
    pub who: String,
    pub opened: i64,
    pub closed: i64,
    pub sla: String,
    pub first_action: String,
    pub to_close: String,
    pub backlog: i64,
    pub overdue: i64,
}

impl LoopRow {
    fn of(who: String, s: &LoopStats) -> LoopRow {
        let dur = |v: Option<f64>| v.map(charts::duration).unwrap_or_else(|| "–".into());
        LoopRow {
            who,
            opened: s.opened,
            closed: s.closed,
            sla: s
                .within_sla_pct
                .map(|p| format!("{} %", charts::num(p)))
                .unwrap_or_else(|| "–".into()),
            first_action: dur(s.median_seconds_to_first_action),
            to_close: dur(s.median_seconds_to_close),
            backlog: s.backlog,
            overdue: s.overdue,
        }
    }
}

/// A row of the recovery tables: the funnel of one group of resolved tasks.
pub struct RecoveryRow {
    pub who: String,
    pub followed_up: i64,
    pub resurveyed: i64,
    pub answered: i64,
    pub recovered: i64,
    /// "66.67 %", or "–" when nobody answered.
    pub share: String,
    /// "20.77–93.85 %", or empty.
    pub ci: String,
    /// "+2.33", or "–".
    pub change: String,
    /// The raw share, for tests (`data-share`); empty when none.
    pub share_raw: String,
}

impl RecoveryRow {
    fn of(who: String, c: &RecoveryCounts) -> RecoveryRow {
        RecoveryRow {
            who,
            followed_up: c.followed_up,
            resurveyed: c.resurveyed,
            answered: c.answered,
            recovered: c.recovered,
            share: c
                .recovered_share
                .map(|p| format!("{} %", charts::num(p)))
                .unwrap_or_else(|| "–".into()),
            ci: c
                .recovered_ci95
                .map(|[lo, hi]| format!("{}–{} %", charts::num(lo), charts::num(hi)))
                .unwrap_or_default(),
            change: c
                .average_score_change
                .map(|d| {
                    let sign = if d > 0.0 { "+" } else { "" };
                    format!("{sign}{}", charts::num(d))
                })
                .unwrap_or_else(|| "–".into()),
            share_raw: c.recovered_share.map(|p| p.to_string()).unwrap_or_default(),
        }
    }
}

/// A comment of the feed.
pub struct CommentView {
    pub id: String,
    pub href: Option<String>,
    pub link_text: &'static str,
    pub score: i32,
    pub tone: &'static str,
    pub category: &'static str,
    pub survey: String,
    pub who: String,
    pub when: String,
    pub age: String,
    pub comment: String,
}

#[derive(Template)]
#[template(path = "app/reports.html")]
struct DashPage {
    l: Layout,
    heading: String,
    action: String,
    survey_id: Option<String>,
    kind_tabs: Vec<Tab>,
    q: DashQuery,
    periods: Vec<Opt>,
    intervals: Vec<Opt>,
    custom_from: String,
    custom_to: String,
    range_text: String,
    api_from: String,
    api_to: String,
    interval: String,
    property_keys: Vec<String>,
    /// (key, href) of the first property names, to compare by with one click.
    segment_links: Vec<(String, String)>,
    h: Headline,
    trend: Trend,
    dist: Bars,
    rate: Bars,
    timing: Bars,
    segments: Option<Segments>,
    loop_total: LoopRow,
    loop_rows: Vec<LoopRow>,
    outcomes: Vec<(String, i64)>,
    recovery_total: RecoveryRow,
    recovery_by_outcome: Vec<RecoveryRow>,
    recovery_by_assignee: Vec<RecoveryRow>,
    /// The lowest re-survey score that counts as recovered (7 NPS, 4 CSAT).
    recovered_from: i32,
    comments: Vec<CommentView>,
    feed_first: i64,
    more_href: Option<String>,
    prev_href: Option<String>,
    categories: Vec<Opt>,
    surveys: Vec<Opt>,
    feed_filtered: bool,
    base_qs: String,
    csv_href: String,
}

fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{} %", charts::num(v)))
        .unwrap_or_else(|| "–".into())
}

fn raw(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The score of a summary and its interval: NPS or CSAT %.
fn score_of(s: &Summary) -> (Option<f64>, Option<[f64; 2]>) {
    match (&s.nps, &s.csat) {
        (Some(v), _) => (*v, s.nps_ci95.flatten()),
        (_, Some(v)) => (*v, s.csat_ci95.flatten()),
        _ => (None, None),
    }
}

fn headline(r: &Report) -> Headline {
    let nps = matches!(r.kind, SurveyKind::Nps);
    let (score, ci) = score_of(&r.summary);
    let change = if nps {
        r.change.nps.flatten()
    } else {
        r.change.csat.flatten()
    };
    let unit = if nps { "" } else { " %" };
    let signed = |v: f64| {
        if v > 0.0 {
            format!("+{}", charts::num(v))
        } else if v < 0.0 {
            format!("−{}", charts::num(-v))
        } else {
            "±0".into()
        }
    };
    Headline {
        measure: if nps { "NPS" } else { "CSAT" },
        score: score
            .map(|v| format!("{}{unit}", charts::num(v)))
            .unwrap_or_else(|| "–".into()),
        score_raw: raw(score),
        ci: ci
            .map(|[a, b]| format!("{} to {}{unit}", charts::num(a), charts::num(b)))
            .unwrap_or_else(|| "no answers yet".into()),
        ci_lo: raw(ci.map(|c| c[0])),
        ci_hi: raw(ci.map(|c| c[1])),
        change: change
            .map(|v| format!("{}{}", signed(v), if nps { " pts" } else { " pp" }))
            .unwrap_or_else(|| "–".into()),
        change_raw: raw(change),
        change_dir: match change {
            Some(v) if v > 0.0 => "up",
            Some(v) if v < 0.0 => "down",
            _ => "flat",
        },
        significant: r.change.nps_significant.flatten(),
        responses: r.summary.responses,
        previous_responses: r.previous.summary.responses,
        response_rate: pct(r.response_rate),
        response_rate_raw: raw(r.response_rate),
        delivered: r.invitations_delivered,
        median_time: r
            .median_seconds_to_answer
            .map(charts::duration)
            .unwrap_or_else(|| "–".into()),
        open: r.followups.open,
        in_progress: r.followups.in_progress,
        overdue: r.followups.overdue,
    }
}

fn categories_of(kind: SurveyKind, score: i32) -> &'static str {
    tone(kind.as_str(), score).0
}

fn charts_of(r: &Report) -> (Trend, Bars, Bars, Bars, Option<Segments>) {
    let nps = matches!(r.kind, SurveyKind::Nps);
    let measure = if nps { "NPS" } else { "CSAT %" };
    let domain = if nps { (-100.0, 100.0) } else { (0.0, 100.0) };
    let unit = match r.interval.as_str() {
        "week" => "week",
        "month" => "month",
        _ => "day",
    };
    let points: Vec<TrendInput> = r
        .series
        .iter()
        .map(|p| {
            let (value, ci) = score_of(&p.summary);
            TrendInput {
                start: p.start,
                n: p.summary.responses,
                value,
                ci,
            }
        })
        .collect();
    let empty = points.iter().filter(|p| p.n == 0).count();
    let trend = charts::trend(
        format!("{measure} per {unit}, with its 95 % interval"),
        format!(
            "{} {}s from {} to {}; {} without answers, shown as gaps. The shaded band is the 95 % interval.",
            points.len(),
            unit,
            r.from.format("%Y-%m-%d"),
            (r.to - TimeDelta::days(1)).format("%Y-%m-%d"),
            empty
        ),
        measure,
        &points,
        domain,
        &r.interval,
    );
    let total = r.summary.responses.max(1) as f64;
    let max_count = r.summary.counts.iter().map(|c| c.n).max().unwrap_or(0) as f64;
    let dist_items: Vec<BarInput> = r
        .summary
        .counts
        .iter()
        .map(|c| BarInput {
            label: c.score.to_string(),
            value: Some(c.n as f64),
            class: match categories_of(r.kind, c.score) {
                "bad" => "c-bad",
                "mid" => "c-mid",
                _ => "c-good",
            },
            text: c.n.to_string(),
        })
        .collect();
    let (bad, mid, good) = if nps {
        ("Detractors", "Passives", "Promoters")
    } else {
        ("Unsatisfied", "Neutral", "Satisfied")
    };
    let dist = charts::bars(
        "dist",
        format!("Answers per score ({} in all)", r.summary.responses),
        format!(
            "How many answers gave each score, coloured by category: {bad} red, {mid} grey, {good} green."
        ),
        &dist_items,
        max_count,
        &|v| charts::num(v.round()),
        vec![
            ("c-bad", bad.to_string()),
            ("c-mid", mid.to_string()),
            ("c-good", good.to_string()),
        ],
        Table {
            head: vec!["Score".into(), "Answers".into(), "Share".into()],
            rows: r
                .summary
                .counts
                .iter()
                .map(|c| {
                    vec![
                        c.score.to_string(),
                        c.n.to_string(),
                        format!("{} %", charts::num(c.n as f64 / total * 100.0)),
                    ]
                })
                .collect(),
        },
    );
    let label = |p: &crate::reports::SeriesPoint| charts::bucket_label(p.start, &r.interval);
    let rate_items: Vec<BarInput> = r
        .series
        .iter()
        .map(|p| BarInput {
            label: label(p),
            value: p.response_rate,
            class: "c-rate",
            // Whole percents on the bars; the data table has the exact figure.
            text: p
                .response_rate
                .map(|v| format!("{v:.0} %"))
                .unwrap_or_default(),
        })
        .collect();
    let bucket_table = Table {
        head: vec![
            "Bucket".into(),
            "Delivered".into(),
            "Answered".into(),
            "Response rate".into(),
            "Median time to answer".into(),
        ],
        rows: r
            .series
            .iter()
            .map(|p| {
                vec![
                    label(p),
                    p.invitations_delivered.to_string(),
                    p.invitations_answered.to_string(),
                    pct(p.response_rate),
                    p.median_seconds_to_answer
                        .map(charts::duration)
                        .unwrap_or_else(|| "–".into()),
                ]
            })
            .collect(),
    };
    let rate = charts::bars(
        "rate",
        format!("Response rate per {unit}"),
        format!("Share of the invitations delivered in each {unit} that were answered; no bar where nothing was delivered."),
        &rate_items,
        100.0,
        &|v| format!("{} %", charts::num(v)),
        Vec::new(),
        bucket_table,
    );
    // The unit of the time axis: whatever keeps the numbers readable.
    let max_secs = r
        .series
        .iter()
        .filter_map(|p| p.median_seconds_to_answer)
        .fold(0.0, f64::max);
    let (per, unit_name) = if max_secs >= 2.0 * 86400.0 {
        (86400.0, "d")
    } else if max_secs >= 2.0 * 3600.0 {
        (3600.0, "h")
    } else if max_secs >= 120.0 {
        (60.0, "min")
    } else {
        (1.0, "s")
    };
    let times: Vec<BarInput> = r
        .series
        .iter()
        .map(|p| BarInput {
            label: label(p),
            value: p.median_seconds_to_answer.map(|s| s / per),
            class: "c-time",
            text: p
                .median_seconds_to_answer
                .map(charts::duration)
                .unwrap_or_default(),
        })
        .collect();
    let timing = charts::bars(
        "timing",
        format!("Median time to answer per {unit}"),
        format!("Median time from sending to answering, for the answers of each {unit}; no bar where there were none."),
        &times,
        (max_secs / per).max(1.0),
        &|v| format!("{} {unit_name}", charts::num(v)),
        Vec::new(),
        Table {
            head: vec!["Bucket".into(), "Median time to answer".into()],
            rows: r
                .series
                .iter()
                .map(|p| {
                    vec![
                        label(p),
                        p.median_seconds_to_answer
                            .map(charts::duration)
                            .unwrap_or_else(|| "–".into()),
                    ]
                })
                .collect(),
        },
    );
    let segments = r.segment.as_ref().map(|key| {
        // Unhappiest first (segments without a score last), so the one to act on is on top.
        let mut rows: Vec<SegmentInput> = r
            .segments
            .iter()
            .map(|s| {
                let (value, ci) = score_of(&s.summary);
                SegmentInput {
                    label: s.value.clone().unwrap_or_else(|| "(not set)".into()),
                    n: s.summary.responses,
                    value,
                    ci,
                }
            })
            .collect();
        rows.sort_by(|a, b| match (a.value, b.value) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.label.cmp(&b.label),
        });
        charts::segments(
            format!("{measure} by {key}"),
            format!(
                "{measure} for each value of the contact property {key} ({}), lowest first, with the number of answers; fewer than {} answers is flagged as a small sample.",
                match r.segment_source {
                    Some(crate::reports::SegmentSource::AnswerTime) =>
                        "as each customer had it when they answered",
                    _ => "as each contact has it now",
                },
                charts::SMALL_N
            ),
            measure,
            &rows,
            domain,
        )
    });
    (trend, dist, rate, timing, segments)
}

fn opts(items: &[(&str, &str)], current: &str) -> Vec<Opt> {
    items
        .iter()
        .map(|(v, l)| Opt {
            value: v.to_string(),
            label: l.to_string(),
            selected: *v == current,
        })
        .collect()
}

/// What the dashboard shows: one survey or every survey of a kind.
enum Subject {
    Survey { id: String, name: String },
    Kind(SurveyKind),
}

async fn dashboard(
    state: &AppState,
    signed: &Signed,
    subject: Subject,
    q: DashQuery,
) -> Result<HttpResponse, PageError> {
    let today = now().date();
    let range = q.range(today)?;
    let (from, to) = (range.from, range.to);
    let (scope, report) = match &subject {
        Subject::Survey { id, .. } => (
            Scope::Survey(id.clone()),
            reports::survey_report(state, id.clone(), range).await?,
        ),
        Subject::Kind(kind) => (
            Scope::Kind(kind.as_str().into()),
            reports::kind_report(state, *kind, range).await?,
        ),
    };
    let metrics = loop_metrics(state, scope.clone(), from, to).await?;
    let offset = (q.page - 1) * FEED_PAGE;
    let mut items = feed::comments(
        state,
        q.response_filter(&scope, from, to),
        offset,
        FEED_PAGE + 1,
    )
    .await?;
    let more = items.len() as i64 > FEED_PAGE;
    items.truncate(FEED_PAGE as usize);
    let property_keys = feed::property_keys(state).await?;
    let surveys = match subject {
        Subject::Kind(kind) => {
            let mut v = vec![Opt {
                value: String::new(),
                label: "Every survey".into(),
                selected: q.survey.is_none(),
            }];
            v.extend(
                feed::survey_names(state)
                    .await?
                    .into_iter()
                    .filter(|(_, _, k)| k == kind.as_str())
                    .map(|(id, name, _)| Opt {
                        selected: q.survey.as_deref() == Some(id.as_str()),
                        value: id,
                        label: name,
                    }),
            );
            v
        }
        Subject::Survey { .. } => Vec::new(),
    };
    let t = now();
    let comments = items
        .into_iter()
        .map(|c| {
            let (tone, category) = tone(&c.survey_kind, c.response.score);
            let (href, link_text) = match (&c.followup_id, &c.response.contact_id) {
                (Some(f), _) => (Some(format!("/app/followups/{f}")), "Open the task"),
                (None, Some(contact)) => (
                    Some(format!("/app/contacts/{contact}#{}", c.response.id)),
                    "See the answer",
                ),
                (None, None) => (None, ""),
            };
            CommentView {
                id: c.response.id.clone(),
                href,
                link_text,
                score: c.response.score,
                tone,
                category,
                survey: c.survey_name,
                who: c
                    .contact_name
                    .or(c.contact_email)
                    .unwrap_or_else(|| "Anonymous".into()),
                when: c
                    .response
                    .created_at
                    .format("%Y-%m-%d %H:%M UTC")
                    .to_string(),
                age: span(t - c.response.created_at),
                comment: c.response.comment.unwrap_or_default(),
            }
        })
        .collect();
    let h = headline(&report);
    let (trend, dist, rate, timing, segments) = charts_of(&report);
    let (heading, action, survey_id, title) = match &subject {
        Subject::Survey { id, name } => (
            name.clone(),
            format!("/app/surveys/{id}"),
            Some(id.clone()),
            name.clone(),
        ),
        Subject::Kind(kind) => {
            let k = if matches!(kind, SurveyKind::Nps) {
                "NPS"
            } else {
                "CSAT"
            };
            (
                format!("{k} across surveys"),
                "/app/reports".to_string(),
                None,
                format!("Reports · {k}"),
            )
        }
    };
    let kind_tabs = match &subject {
        Subject::Kind(kind) => [(SurveyKind::Nps, "NPS"), (SurveyKind::Csat, "CSAT")]
            .into_iter()
            .map(|(k, label)| {
                let mut other = q.clone();
                other.kind = Some(k);
                other.page = 1;
                other.survey = None;
                other.category = None;
                Tab {
                    label,
                    href: format!("/app/reports?{}", other.encode_with(1, false)),
                    current: k == *kind,
                }
            })
            .collect(),
        Subject::Survey { .. } => Vec::new(),
    };
    let section = if survey_id.is_some() {
        "surveys"
    } else {
        "reports"
    };
    let (da, db) = q.days(today);
    let nps = matches!(report.kind, SurveyKind::Nps);
    let categories = {
        let mut v = vec![("", "Every category")];
        if nps {
            v.extend([
                ("detractor", "Detractors"),
                ("passive", "Passives"),
                ("promoter", "Promoters"),
            ]);
        } else {
            v.extend([
                ("unsatisfied", "Unsatisfied"),
                ("neutral", "Neutral"),
                ("satisfied", "Satisfied"),
            ]);
        }
        opts(&v, q.category.as_deref().unwrap_or(""))
    };
    let base_qs = q.encode_with(1, false);
    let mut csv_q = url::form_urlencoded::Serializer::new(String::new());
    match &subject {
        Subject::Survey { id, .. } => csv_q.append_pair("survey", id),
        Subject::Kind(kind) => {
            csv_q.append_pair("kind", kind.as_str());
            if let Some(s) = &q.survey {
                csv_q.append_pair("survey", s);
            }
            &mut csv_q
        }
    };
    csv_q.append_pair("from", &da.to_string());
    csv_q.append_pair("to", &(db - TimeDelta::days(1)).to_string());
    for (k, v) in [
        ("category", &q.category),
        ("prop_key", &q.prop_key),
        ("prop_value", &q.prop_value),
        ("q", &q.q),
    ] {
        if let Some(v) = v {
            csv_q.append_pair(k, v);
        }
    }
    let page_href = |page: i64| format!("{action}?{}#comments", q.encode_with(page, true));
    let page = DashPage {
        l: Layout::signed(&title, signed, section),
        heading,
        survey_id,
        kind_tabs,
        periods: opts(&PERIODS, &q.period),
        intervals: opts(
            &[
                ("", "Auto"),
                ("day", "Day"),
                ("week", "Week"),
                ("month", "Month"),
            ],
            q.interval.as_deref().unwrap_or(""),
        ),
        custom_from: q.from.unwrap_or(da).to_string(),
        custom_to: q.to.unwrap_or(db - TimeDelta::days(1)).to_string(),
        range_text: format!(
            "{} – {} (UTC), compared with {} – {}",
            da.format("%b %-d, %Y"),
            (db - TimeDelta::days(1)).format("%b %-d, %Y"),
            report.previous.from.format("%b %-d"),
            (report.previous.to - TimeDelta::days(1)).format("%b %-d, %Y"),
        ),
        api_from: da.to_string(),
        api_to: db.to_string(),
        interval: report.interval.clone(),
        segment_links: property_keys
            .iter()
            .take(8)
            .map(|k| {
                let mut with = q.clone();
                with.segment = Some(k.clone());
                (
                    k.clone(),
                    format!("{action}?{}", with.encode_with(1, false)),
                )
            })
            .collect(),
        property_keys,
        h,
        trend,
        dist,
        rate,
        timing,
        segments,
        loop_total: LoopRow::of("All".into(), &metrics.total),
        loop_rows: metrics
            .by_assignee
            .iter()
            .map(|a| {
                LoopRow::of(
                    a.assignee.clone().unwrap_or_else(|| "Unassigned".into()),
                    &a.stats,
                )
            })
            .collect(),
        outcomes: metrics.outcomes.clone(),
        recovery_total: RecoveryRow::of("All".into(), &report.recovery.totals),
        recovery_by_outcome: report
            .recovery
            .by_outcome
            .iter()
            .map(|o| {
                let who = o
                    .outcome
                    .as_deref()
                    .unwrap_or("no outcome")
                    .replace('_', " ");
                RecoveryRow::of(who, &o.counts)
            })
            .collect(),
        recovery_by_assignee: report
            .recovery
            .by_assignee
            .iter()
            .map(|a| {
                let who = a.assignee.clone().unwrap_or_else(|| "Unassigned".into());
                RecoveryRow::of(who, &a.counts)
            })
            .collect(),
        recovered_from: report.recovery.recovered_from_score,
        comments,
        feed_first: offset + 1,
        more_href: more.then(|| page_href(q.page + 1)),
        prev_href: (q.page > 1).then(|| page_href(q.page - 1)),
        categories,
        surveys,
        feed_filtered: q.feed_filtered(),
        base_qs,
        csv_href: format!("/app/reports/responses.csv?{}", csv_q.finish()),
        action,
        q,
    };
    Ok(html(StatusCode::OK, page.render()))
}

/// `GET /app/reports`: every survey of a kind (`kind=nps`, the default, or `csat`).
pub async fn kind_page(
    state: web::Data<AppState>,
    signed: Signed,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let q = DashQuery::parse(req.query_string())?;
    let kind = q.kind.unwrap_or(SurveyKind::Nps);
    dashboard(&state, &signed, Subject::Kind(kind), q).await
}

/// `GET /app/surveys/{id}`: the dashboard of one survey.
pub async fn survey_page(
    state: web::Data<AppState>,
    signed: Signed,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    if !id.starts_with("srv_") || id.len() > 64 {
        return Err(PageError::NotFound("survey"));
    }
    let q = DashQuery::parse(req.query_string())?;
    let survey = feed::survey(&state, id.clone()).await?;
    dashboard(
        &state,
        &signed,
        Subject::Survey {
            id,
            name: survey.name,
        },
        q,
    )
    .await
}

/// `GET /app/reports/responses.csv?survey=…|kind=…&from=&to=&category=&prop_key=&prop_value=&q=`:
/// the CSV export (`reports::export_csv`) of the answers the dashboard shows, for a session.
pub async fn csv(
    state: web::Data<AppState>,
    _signed: Signed,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let mut q = DashQuery::parse(req.query_string())?;
    if q.from.is_some() || q.to.is_some() {
        q.period = "custom".into();
        if q.from.is_none() || q.to.is_none() {
            return Err(bad("from", "and “to” are both needed"));
        }
        if q.from > q.to {
            return Err(bad("from", "is after to"));
        }
    }
    let (scope, name) = match (&q.survey, q.kind) {
        (Some(id), None) => {
            feed::survey(&state, id.clone()).await?;
            (Scope::Survey(id.clone()), id.clone())
        }
        (_, Some(kind)) => (Scope::Kind(kind.as_str().into()), kind.as_str().to_string()),
        (None, None) => return Err(bad("survey", "or “kind” is needed")),
    };
    let (a, b) = q.days(now().date());
    let at = |d: NaiveDate| d.and_hms_opt(0, 0, 0).unwrap_or_default();
    let filter = q.response_filter(&scope, at(a), at(b));
    let rx = reports::export_csv(&state, filter);
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, actix_web::Error>(chunk), rx))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"responses-{name}-{a}-{}.csv\"",
                b - TimeDelta::days(1)
            ),
        ))
        .streaming(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn periods_are_whole_utc_days_ending_today() {
        let today = d(2026, 11, 26);
        let p = |s: &str| DashQuery::parse(s).unwrap().days(today);
        assert_eq!(p(""), (d(2026, 10, 28), d(2026, 11, 27)));
        assert_eq!(p("period=7d"), (d(2026, 11, 20), d(2026, 11, 27)));
        assert_eq!(p("period=this_month"), (d(2026, 11, 1), d(2026, 11, 27)));
        assert_eq!(p("period=last_month"), (d(2026, 10, 1), d(2026, 11, 1)));
        assert_eq!(
            p("period=custom&from=2026-10-01&to=2026-10-31"),
            (d(2026, 10, 1), d(2026, 11, 1))
        );
    }

    #[test]
    fn bad_parameters_are_refused_by_name() {
        for (raw, name) in [
            ("period=xyz", "period"),
            ("period=custom&from=2026-11-02&to=2026-11-01", "from"),
            ("period=custom&from=2026-11-02", "from"),
            ("segment=a%20b", "segment"),
            ("interval=hour", "interval"),
            ("prop_key=plan", "prop_value"),
            ("from=31.10.2026", "from"),
        ] {
            match DashQuery::parse(raw) {
                Err(PageError::Unprocessable(m)) => assert!(m.contains(name), "{raw}: {m}"),
                other => panic!("{raw}: {other:?}"),
            }
        }
    }
}
