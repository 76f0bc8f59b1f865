//! Reports: NPS/CSAT with 95 % intervals, counts per score, a time series, a breakdown by a
//! contact property, response rate, time to answer, the change against the previous period
//! and the follow-up backlog.
//!
//! Everything is aggregated inside the database (one `GROUP BY day, score` query over a
//! covering index feeds the totals and every series interval), so a report over a million
//! answers reads counts, not rows. Time buckets are UTC: days start at 00:00, weeks on
//! Monday 00:00, months on the 1st; a bucket is reported even when it has no answers.

pub mod stats;

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate, NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Integer, Nullable, Text, Timestamp};

use crate::api::error::ApiError;
use crate::db::DbConnection;
use stats::Counts;

/// Which answers a report covers.
#[derive(Debug, Clone)]
pub enum Scope {
    Survey(String),
    /// Every survey of a kind (`nps` or `csat`).
    Kind(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Day,
    Week,
    Month,
}

impl Interval {
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
        }
    }

    /// The start of the bucket holding `day`.
    pub fn bucket(self, day: NaiveDate) -> NaiveDate {
        match self {
            Interval::Day => day,
            Interval::Week => day - TimeDelta::days(day.weekday().num_days_from_monday() as i64),
            Interval::Month => day.with_day(1).unwrap_or(day),
        }
    }

    pub fn next(self, start: NaiveDate) -> NaiveDate {
        match self {
            Interval::Day => start + TimeDelta::days(1),
            Interval::Week => start + TimeDelta::days(7),
            Interval::Month => {
                let (y, m) = if start.month() == 12 {
                    (start.year() + 1, 1)
                } else {
                    (start.year(), start.month() + 1)
                };
                NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(start + TimeDelta::days(31))
            }
        }
    }
}

#[derive(QueryableByName)]
struct DayScore {
    #[diesel(sql_type = Text)]
    day: String,
    #[diesel(sql_type = Integer)]
    score: i32,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct SegmentScore {
    #[diesel(sql_type = Nullable<Text>)]
    value: Option<String>,
    #[diesel(sql_type = Integer)]
    score: i32,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Two {
    #[diesel(sql_type = BigInt)]
    a: i64,
    #[diesel(sql_type = BigInt)]
    b: i64,
}

#[derive(QueryableByName)]
struct Seconds {
    #[diesel(sql_type = Nullable<Double>)]
    secs: Option<f64>,
}

#[derive(QueryableByName)]
struct Three {
    #[diesel(sql_type = BigInt)]
    a: i64,
    #[diesel(sql_type = BigInt)]
    b: i64,
    #[diesel(sql_type = BigInt)]
    c: i64,
}

/// The `WHERE` part choosing the scope's answers of table alias `t`, with its one bound text.
fn scope_sql(scope: &Scope, alias: &str, pg: bool, n: usize) -> (String, String) {
    let p = if pg { format!("${n}") } else { "?".to_string() };
    match scope {
        Scope::Survey(id) => (format!("{alias}.survey_id = {p}"), id.clone()),
        Scope::Kind(kind) => (
            format!("{alias}.survey_id IN (SELECT id FROM surveys WHERE kind = {p})"),
            kind.clone(),
        ),
    }
}

/// Answers per UTC day and score in `[from, to)`.
pub fn day_counts(
    conn: &mut DbConnection,
    scope: &Scope,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Result<BTreeMap<NaiveDate, Counts>, ApiError> {
    let rows: Vec<DayScore> = match conn {
        DbConnection::Postgres(pg) => {
            let (w, v) = scope_sql(scope, "r", true, 1);
            diesel::sql_query(format!(
                "SELECT to_char(r.created_at, 'YYYY-MM-DD') AS day, r.score, COUNT(*) AS n FROM responses r \
                 WHERE {w} AND r.created_at >= $2 AND r.created_at < $3 GROUP BY 1, 2"
            ))
            .bind::<Text, _>(v)
            .bind::<Timestamp, _>(from)
            .bind::<Timestamp, _>(to)
            .load(pg)?
        }
        DbConnection::Sqlite(lite) => {
            let (w, v) = scope_sql(scope, "r", false, 1);
            diesel::sql_query(format!(
                "SELECT substr(r.created_at, 1, 10) AS day, r.score, COUNT(*) AS n FROM responses r \
                 WHERE {w} AND r.created_at >= ? AND r.created_at < ? GROUP BY 1, 2"
            ))
            .bind::<Text, _>(v)
            .bind::<Timestamp, _>(from)
            .bind::<Timestamp, _>(to)
            .load(lite)?
        }
    };
    let mut out: BTreeMap<NaiveDate, Counts> = BTreeMap::new();
    for r in rows {
        if let Ok(day) = NaiveDate::parse_from_str(&r.day, "%Y-%m-%d") {
            out.entry(day).or_default().add(r.score, r.n);
        }
    }
    Ok(out)
}

/// Answers per value of contact property `key` and score (anonymous answers and contacts
/// without the property under `None`).
pub fn segment_counts(
    conn: &mut DbConnection,
    scope: &Scope,
    from: NaiveDateTime,
    to: NaiveDateTime,
    key: &str,
) -> Result<Vec<(Option<String>, Counts)>, ApiError> {
    let rows: Vec<SegmentScore> = match conn {
        DbConnection::Postgres(pg) => {
            let (w, v) = scope_sql(scope, "r", true, 1);
            diesel::sql_query(format!(
                "SELECT (c.properties::jsonb ->> $4) AS value, r.score, COUNT(*) AS n FROM responses r \
                 LEFT JOIN contacts c ON c.id = r.contact_id \
                 WHERE {w} AND r.created_at >= $2 AND r.created_at < $3 GROUP BY 1, 2"
            ))
            .bind::<Text, _>(v)
            .bind::<Timestamp, _>(from)
            .bind::<Timestamp, _>(to)
            .bind::<Text, _>(key)
            .load(pg)?
        }
        DbConnection::Sqlite(lite) => {
            let (w, v) = scope_sql(scope, "r", false, 2);
            diesel::sql_query(format!(
                "SELECT CAST(json_extract(c.properties, ?) AS TEXT) AS value, r.score, COUNT(*) AS n FROM responses r \
                 LEFT JOIN contacts c ON c.id = r.contact_id \
                 WHERE {w} AND r.created_at >= ? AND r.created_at < ? GROUP BY 1, 2"
            ))
            .bind::<Text, _>(format!("$.\"{key}\""))
            .bind::<Text, _>(v)
            .bind::<Timestamp, _>(from)
            .bind::<Timestamp, _>(to)
            .load(lite)?
        }
    };
    let mut out: BTreeMap<Option<String>, Counts> = BTreeMap::new();
    for r in rows {
        out.entry(r.value).or_default().add(r.score, r.n);
    }
    Ok(out.into_iter().collect())
}

/// Invitations delivered in `[from, to)` (email sent, or link made) and how many of them
/// were answered.
pub fn delivery(
    conn: &mut DbConnection,
    scope: &Scope,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Result<(i64, i64), ApiError> {
    let sql = |pg: bool| {
        let (w, _) = scope_sql(scope, "i", pg, 1);
        let (a, b) = if pg { ("$2", "$3") } else { ("?", "?") };
        format!(
            "SELECT COUNT(*) AS a, COUNT(i.responded_at) AS b FROM invitations i \
             WHERE {w} AND i.sent_at >= {a} AND i.sent_at < {b} AND i.status IN ('sent', 'responded')"
        )
    };
    let v = match scope {
        Scope::Survey(id) => id.clone(),
        Scope::Kind(k) => k.clone(),
    };
    let row: Two = match conn {
        DbConnection::Postgres(pg) => diesel::sql_query(sql(true))
            .bind::<Text, _>(v)
            .bind::<Timestamp, _>(from)
            .bind::<Timestamp, _>(to)
            .get_result(pg)?,
        DbConnection::Sqlite(lite) => diesel::sql_query(sql(false))
            .bind::<Text, _>(v)
            .bind::<Timestamp, _>(from)
            .bind::<Timestamp, _>(to)
            .get_result(lite)?,
    };
    Ok((row.a, row.b))
}

/// The median time in seconds from sending an invitation to its answer, for answers in
/// `[from, to)`.
pub fn median_seconds_to_answer(
    conn: &mut DbConnection,
    scope: &Scope,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Result<Option<f64>, ApiError> {
    let v = match scope {
        Scope::Survey(id) => id.clone(),
        Scope::Kind(k) => k.clone(),
    };
    match conn {
        DbConnection::Postgres(pg) => {
            let (w, _) = scope_sql(scope, "r", true, 1);
            let row: Seconds = diesel::sql_query(format!(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM (r.created_at - i.sent_at)))::float8 AS secs \
                 FROM responses r JOIN invitations i ON i.id = r.invitation_id \
                 WHERE {w} AND r.created_at >= $2 AND r.created_at < $3 AND i.sent_at IS NOT NULL"
            ))
            .bind::<Text, _>(v)
            .bind::<Timestamp, _>(from)
            .bind::<Timestamp, _>(to)
            .get_result(pg)?;
            Ok(row.secs.map(|s| s.max(0.0)))
        }
        DbConnection::Sqlite(lite) => {
            // SQLite has no percentile function: count, then read the middle one or two.
            let (w, _) = scope_sql(scope, "r", false, 1);
            let base = format!(
                "FROM responses r JOIN invitations i ON i.id = r.invitation_id \
                 WHERE {w} AND r.created_at >= ? AND r.created_at < ? AND i.sent_at IS NOT NULL"
            );
            let count: Two = diesel::sql_query(format!("SELECT COUNT(*) AS a, 0 AS b {base}"))
                .bind::<Text, _>(v.clone())
                .bind::<Timestamp, _>(from)
                .bind::<Timestamp, _>(to)
                .get_result(lite)?;
            let n = count.a;
            if n == 0 {
                return Ok(None);
            }
            let middle: Vec<Seconds> = diesel::sql_query(format!(
                "SELECT (julianday(r.created_at) - julianday(i.sent_at)) * 86400.0 AS secs {base} \
                 ORDER BY secs LIMIT ? OFFSET ?"
            ))
            .bind::<Text, _>(v)
            .bind::<Timestamp, _>(from)
            .bind::<Timestamp, _>(to)
            .bind::<BigInt, _>(if n % 2 == 0 { 2 } else { 1 })
            .bind::<BigInt, _>((n - 1) / 2)
            .load(lite)?;
            let vals: Vec<f64> = middle.into_iter().filter_map(|s| s.secs).collect();
            Ok((!vals.is_empty()).then(|| (vals.iter().sum::<f64>() / vals.len() as f64).max(0.0)))
        }
    }
}

/// The follow-up backlog now: (open, in progress, overdue).
pub fn backlog(
    conn: &mut DbConnection,
    scope: &Scope,
    now: NaiveDateTime,
) -> Result<(i64, i64, i64), ApiError> {
    let v = match scope {
        Scope::Survey(id) => id.clone(),
        Scope::Kind(k) => k.clone(),
    };
    let sql = |pg: bool| {
        let (w, _) = scope_sql(scope, "f", pg, 1);
        let p = if pg { "$2" } else { "?" };
        format!(
            "SELECT COALESCE(SUM(CASE WHEN f.status = 'open' THEN 1 ELSE 0 END), 0) AS a, \
             COALESCE(SUM(CASE WHEN f.status = 'in_progress' THEN 1 ELSE 0 END), 0) AS b, \
             COALESCE(SUM(CASE WHEN f.due_at < {p} THEN 1 ELSE 0 END), 0) AS c \
             FROM followups f WHERE {w} AND f.status IN ('open', 'in_progress')"
        )
    };
    let row: Three = match conn {
        DbConnection::Postgres(pg) => diesel::sql_query(sql(true))
            .bind::<Text, _>(v)
            .bind::<Timestamp, _>(now)
            .get_result(pg)?,
        // Positional parameters: the due time comes first in the text.
        DbConnection::Sqlite(lite) => diesel::sql_query(sql(false))
            .bind::<Timestamp, _>(now)
            .bind::<Text, _>(v)
            .get_result(lite)?,
    };
    Ok((row.a, row.b, row.c))
}

/// Folds daily counts into the buckets of `interval` that cover `[from, to)`, empty ones
/// included, in order.
pub fn series(
    days: &BTreeMap<NaiveDate, Counts>,
    interval: Interval,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Vec<(NaiveDate, NaiveDate, Counts)> {
    let mut out = Vec::new();
    let last_day = (to - TimeDelta::microseconds(1)).date();
    let mut start = interval.bucket(from.date());
    while start <= last_day {
        let end = interval.next(start);
        let mut c = Counts::default();
        for (_, counts) in days.range(start..end) {
            c.merge(counts);
        }
        out.push((start, end, c));
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn buckets_start_on_utc_days_mondays_and_firsts() {
        assert_eq!(
            Interval::Week.bucket(d(2026, 11, 29)),
            d(2026, 11, 23),
            "Sunday → its Monday"
        );
        assert_eq!(Interval::Week.bucket(d(2026, 11, 23)), d(2026, 11, 23));
        assert_eq!(Interval::Month.bucket(d(2026, 11, 29)), d(2026, 11, 1));
        assert_eq!(Interval::Month.next(d(2026, 12, 1)), d(2027, 1, 1));
    }

    #[test]
    fn series_covers_the_range_with_empty_buckets() {
        let mut days = BTreeMap::new();
        let mut c = Counts::default();
        c.add(10, 2);
        days.insert(d(2026, 11, 2), c.clone());
        days.insert(d(2026, 11, 16), c);
        let from = d(2026, 11, 1).and_hms_opt(0, 0, 0).unwrap();
        let to = d(2026, 11, 20).and_hms_opt(0, 0, 0).unwrap();
        let weeks = series(&days, Interval::Week, from, to);
        let starts: Vec<NaiveDate> = weeks.iter().map(|w| w.0).collect();
        assert_eq!(
            starts,
            vec![
                d(2026, 10, 26),
                d(2026, 11, 2),
                d(2026, 11, 9),
                d(2026, 11, 16)
            ]
        );
        let totals: Vec<i64> = weeks.iter().map(|w| w.2.total()).collect();
        assert_eq!(totals, vec![0, 2, 0, 2]);
    }
}
