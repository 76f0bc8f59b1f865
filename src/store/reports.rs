//! Report queries: answers per day and score, deliveries, time to answer, segments and the
//! follow-up backlog, aggregated in the database. The report itself is built in `reports`.
//!
//! Everything is aggregated inside the database: whole days come from daily rollups kept in
//! the same transaction as each answer and delivery (see `rollups`), partial days at the edges
//! of the range from a `GROUP BY day, score` over a covering index, so a report over a million
//! answers reads a few thousand counts, not a million rows. Segments (any contact property)
//! are a `GROUP BY` over the answers joined to their contacts. Time buckets are UTC: days start at 00:00, weeks on
//! Monday 00:00, months on the 1st; a bucket is reported even when it has no answers.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate, NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamp};

use crate::domain::stats::Counts;
use crate::error::AppError;
use crate::store::DbConnection;

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

/// Whole UTC days `[d1, d2)`, if any, and the partial ranges around them.
type Split = (
    Option<(NaiveDate, NaiveDate)>,
    Vec<(NaiveDateTime, NaiveDateTime)>,
);

/// Splits `[from, to)` into whole UTC days `[d1, d2)` and the partial ranges around them.
fn split(from: NaiveDateTime, to: NaiveDateTime) -> Split {
    let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).unwrap_or(from);
    let d1 = if from == midnight(from.date()) {
        from.date()
    } else {
        from.date() + TimeDelta::days(1)
    };
    let d2 = to.date();
    if d1 >= d2 {
        return (None, vec![(from, to)]);
    }
    let mut partial = Vec::new();
    if from < midnight(d1) {
        partial.push((from, midnight(d1)));
    }
    if to > midnight(d2) {
        partial.push((midnight(d2), to));
    }
    (Some((d1, d2)), partial)
}

fn scope_value(scope: &Scope) -> String {
    match scope {
        Scope::Survey(id) => id.clone(),
        Scope::Kind(k) => k.clone(),
    }
}

#[derive(QueryableByName)]
struct BucketRow {
    #[diesel(sql_type = Text)]
    day: String,
    #[diesel(sql_type = Integer)]
    key: i32,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Rows (day, key, n) of a rollup table for whole days `[d1, d2)`.
fn rollup_rows(
    conn: &mut DbConnection,
    table: &str,
    key: &str,
    scope: &Scope,
    d1: NaiveDate,
    d2: NaiveDate,
) -> Result<Vec<BucketRow>, AppError> {
    let (a, b) = (
        d1.format("%Y-%m-%d").to_string(),
        d2.format("%Y-%m-%d").to_string(),
    );
    Ok(match conn {
        DbConnection::Postgres(pg) => {
            let (w, v) = scope_sql(scope, "x", true, 1);
            diesel::sql_query(format!(
                "SELECT x.day, x.{key} AS key, x.n FROM {table} x WHERE {w} AND x.day >= $2 AND x.day < $3"
            ))
            .bind::<Text, _>(v)
            .bind::<Text, _>(a)
            .bind::<Text, _>(b)
            .load(pg)?
        }
        DbConnection::Sqlite(lite) => {
            let (w, v) = scope_sql(scope, "x", false, 1);
            diesel::sql_query(format!(
                "SELECT x.day, x.{key} AS key, x.n FROM {table} x WHERE {w} AND x.day >= ? AND x.day < ?"
            ))
            .bind::<Text, _>(v)
            .bind::<Text, _>(a)
            .bind::<Text, _>(b)
            .load(lite)?
        }
    })
}

/// Answers per UTC day and score in `[from, to)`: whole days from the daily rollup, the
/// partial days at the edges from the answers themselves.
pub fn day_counts(
    conn: &mut DbConnection,
    scope: &Scope,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Result<BTreeMap<NaiveDate, Counts>, AppError> {
    let (days, partial) = split(from, to);
    let mut out: BTreeMap<NaiveDate, Counts> = BTreeMap::new();
    if let Some((d1, d2)) = days {
        for r in rollup_rows(conn, "response_daily", "score", scope, d1, d2)? {
            if let Ok(day) = NaiveDate::parse_from_str(&r.day, "%Y-%m-%d") {
                out.entry(day).or_default().add(r.key, r.n);
            }
        }
    }
    for (a, b) in partial {
        for (day, counts) in day_counts_raw(conn, scope, a, b)? {
            out.entry(day).or_default().merge(&counts);
        }
    }
    Ok(out)
}

/// Answers per UTC day and score in `[from, to)`, counted from the answers.
pub fn day_counts_raw(
    conn: &mut DbConnection,
    scope: &Scope,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Result<BTreeMap<NaiveDate, Counts>, AppError> {
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

/// Answers per value of contact property `key` as the contacts have it now, and score
/// (anonymous answers and contacts without the property under `None`): the live join, for
/// a property that is not snapshotted (see [`segment_counts_snapshot`]). SQLite counts per contact first (index-only) and
/// then joins; PostgreSQL's hash join is faster on the plain join (both measured, see
/// BENCHMARKS.md).
pub fn segment_counts(
    conn: &mut DbConnection,
    scope: &Scope,
    from: NaiveDateTime,
    to: NaiveDateTime,
    key: &str,
) -> Result<Vec<(Option<String>, Counts)>, AppError> {
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
                "SELECT CAST(json_extract(c.properties, ?) AS TEXT) AS value, a.score, SUM(a.n) AS n FROM \
                 (SELECT r.contact_id, r.score, COUNT(*) AS n FROM responses r \
                 WHERE {w} AND r.created_at >= ? AND r.created_at < ? GROUP BY 1, 2) a \
                 LEFT JOIN contacts c ON c.id = a.contact_id GROUP BY 1, 2"
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

#[derive(QueryableByName)]
struct SnapshotScore {
    #[diesel(sql_type = Integer)]
    has_value: i32,
    #[diesel(sql_type = Text)]
    value: String,
    #[diesel(sql_type = Integer)]
    score: i32,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Whether `segment=key` over `scope` can be read from the answer-time snapshots: every
/// survey of the scope has `key` in its `report_segments` and none is still backfilling it.
pub fn snapshot_ready(conn: &mut DbConnection, scope: &Scope, key: &str) -> Result<bool, AppError> {
    use crate::store::schema::{segment_backfills, surveys};
    let rows: Vec<(String, String)> = match scope {
        Scope::Survey(id) => surveys::table
            .filter(surveys::id.eq(id))
            .select((surveys::id, surveys::report_segments))
            .load(conn)?,
        Scope::Kind(kind) => surveys::table
            .filter(surveys::kind.eq(kind))
            .select((surveys::id, surveys::report_segments))
            .load(conn)?,
    };
    if !rows.iter().all(|(_, names)| {
        crate::store::segments::names(names)
            .iter()
            .any(|n| n == key)
    }) {
        return Ok(false);
    }
    let ids: Vec<&String> = rows.iter().map(|(id, _)| id).collect();
    let pending: i64 = segment_backfills::table
        .filter(segment_backfills::name.eq(key))
        .filter(segment_backfills::survey_id.eq_any(ids))
        .count()
        .get_result(conn)?;
    Ok(pending == 0)
}

/// Answers per snapshotted value of property `key` (taken when each answer was recorded;
/// `None`: anonymous answers and contacts without it) and score: whole days from the
/// `segment_daily` rollup, the partial days at the edges from the snapshots themselves.
pub fn segment_counts_snapshot(
    conn: &mut DbConnection,
    scope: &Scope,
    from: NaiveDateTime,
    to: NaiveDateTime,
    key: &str,
) -> Result<Vec<(Option<String>, Counts)>, AppError> {
    let (days, partial) = split(from, to);
    let mut rows: Vec<SnapshotScore> = Vec::new();
    if let Some((d1, d2)) = days {
        let (a, b) = (
            d1.format("%Y-%m-%d").to_string(),
            d2.format("%Y-%m-%d").to_string(),
        );
        rows.extend(match conn {
            DbConnection::Postgres(pg) => {
                let (w, v) = scope_sql(scope, "x", true, 1);
                diesel::sql_query(format!(
                    "SELECT x.has_value, x.value, x.score, SUM(x.n)::bigint AS n FROM segment_daily x \
                     WHERE {w} AND x.name = $2 AND x.day >= $3 AND x.day < $4 GROUP BY 1, 2, 3"
                ))
                .bind::<Text, _>(v)
                .bind::<Text, _>(key)
                .bind::<Text, _>(a)
                .bind::<Text, _>(b)
                .load::<SnapshotScore>(pg)?
            }
            DbConnection::Sqlite(lite) => {
                let (w, v) = scope_sql(scope, "x", false, 1);
                diesel::sql_query(format!(
                    "SELECT x.has_value, x.value, x.score, SUM(x.n) AS n FROM segment_daily x \
                     WHERE {w} AND x.name = ? AND x.day >= ? AND x.day < ? GROUP BY 1, 2, 3"
                ))
                .bind::<Text, _>(v)
                .bind::<Text, _>(key)
                .bind::<Text, _>(a)
                .bind::<Text, _>(b)
                .load::<SnapshotScore>(lite)?
            }
        });
    }
    for (a, b) in partial {
        let sql = |pg: bool| {
            let (w, _) = scope_sql(scope, "r", pg, 2);
            let p: Vec<String> = (1..=4)
                .map(|i| if pg { format!("${i}") } else { "?".into() })
                .collect();
            format!(
                "SELECT CASE WHEN s.value IS NULL THEN 0 ELSE 1 END AS has_value, \
                 COALESCE(s.value, '') AS value, r.score, COUNT(*) AS n FROM responses r \
                 JOIN response_segments s ON s.response_id = r.id AND s.name = {} \
                 WHERE {w} AND r.created_at >= {} AND r.created_at < {} GROUP BY 1, 2, 3",
                p[0], p[2], p[3]
            )
        };
        let v = scope_value(scope);
        rows.extend(match conn {
            DbConnection::Postgres(pg) => diesel::sql_query(sql(true))
                .bind::<Text, _>(key)
                .bind::<Text, _>(v)
                .bind::<Timestamp, _>(a)
                .bind::<Timestamp, _>(b)
                .load::<SnapshotScore>(pg)?,
            DbConnection::Sqlite(lite) => diesel::sql_query(sql(false))
                .bind::<Text, _>(key)
                .bind::<Text, _>(v)
                .bind::<Timestamp, _>(a)
                .bind::<Timestamp, _>(b)
                .load::<SnapshotScore>(lite)?,
        });
    }
    let mut out: BTreeMap<Option<String>, Counts> = BTreeMap::new();
    for r in rows {
        let value = (r.has_value != 0).then_some(r.value);
        out.entry(value).or_default().add(r.score, r.n);
    }
    Ok(out.into_iter().filter(|(_, c)| c.total() != 0).collect())
}

/// Invitations delivered in `[from, to)` (email sent, or link made) and how many of them
/// were answered: whole days from the rollup, partial days from the invitations.
pub fn delivery(
    conn: &mut DbConnection,
    scope: &Scope,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Result<(i64, i64), AppError> {
    let (days, partial) = split(from, to);
    let (mut delivered, mut answered) = (0, 0);
    if let Some((d1, d2)) = days {
        for key in ["delivered", "answered"] {
            let total: i64 = rollup_rows_sum(conn, key, scope, d1, d2)?;
            if key == "delivered" {
                delivered += total;
            } else {
                answered += total;
            }
        }
    }
    for (a, b) in partial {
        let (d, n) = delivery_raw(conn, scope, a, b)?;
        delivered += d;
        answered += n;
    }
    Ok((delivered, answered))
}

fn rollup_rows_sum(
    conn: &mut DbConnection,
    column: &str,
    scope: &Scope,
    d1: NaiveDate,
    d2: NaiveDate,
) -> Result<i64, AppError> {
    let (a, b) = (
        d1.format("%Y-%m-%d").to_string(),
        d2.format("%Y-%m-%d").to_string(),
    );
    let row: Two = match conn {
        DbConnection::Postgres(pg) => {
            let (w, v) = scope_sql(scope, "x", true, 1);
            diesel::sql_query(format!(
                "SELECT COALESCE(SUM(x.{column}), 0)::bigint AS a, 0::bigint AS b FROM delivery_daily x WHERE {w} AND x.day >= $2 AND x.day < $3"
            ))
            .bind::<Text, _>(v)
            .bind::<Text, _>(a)
            .bind::<Text, _>(b)
            .get_result(pg)?
        }
        DbConnection::Sqlite(lite) => {
            let (w, v) = scope_sql(scope, "x", false, 1);
            diesel::sql_query(format!(
                "SELECT COALESCE(SUM(x.{column}), 0) AS a, 0 AS b FROM delivery_daily x WHERE {w} AND x.day >= ? AND x.day < ?"
            ))
            .bind::<Text, _>(v)
            .bind::<Text, _>(a)
            .bind::<Text, _>(b)
            .get_result(lite)?
        }
    };
    Ok(row.a)
}

/// Deliveries and answers counted from the invitations themselves.
pub fn delivery_raw(
    conn: &mut DbConnection,
    scope: &Scope,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Result<(i64, i64), AppError> {
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

/// The median time in seconds from delivery to answer, for answers in `[from, to)`, from
/// the delay histogram (buckets about 5 % wide, so the value is within about 3 %).
pub fn median_seconds_to_answer(
    conn: &mut DbConnection,
    scope: &Scope,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Result<Option<f64>, AppError> {
    let (days, partial) = split(from, to);
    let mut hist: BTreeMap<i32, i64> = BTreeMap::new();
    if let Some((d1, d2)) = days {
        for r in rollup_rows(conn, "answer_delay_daily", "bucket", scope, d1, d2)? {
            *hist.entry(r.key).or_default() += r.n;
        }
    }
    for (a, b) in partial {
        for secs in delays_raw(conn, scope, a, b)? {
            *hist.entry(super::rollups::delay_bucket(secs)).or_default() += 1;
        }
    }
    Ok(histogram_median(&hist))
}

/// Delays (seconds) of the first answers in `[from, to)` (edge days only: few rows).
fn delays_raw(
    conn: &mut DbConnection,
    scope: &Scope,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Result<Vec<f64>, AppError> {
    #[derive(QueryableByName)]
    struct Pair {
        #[diesel(sql_type = Timestamp)]
        answered: NaiveDateTime,
        #[diesel(sql_type = Timestamp)]
        sent: NaiveDateTime,
    }
    let v = scope_value(scope);
    let rows: Vec<Pair> = match conn {
        DbConnection::Postgres(pg) => {
            let (w, _) = scope_sql(scope, "r", true, 1);
            diesel::sql_query(format!(
                "SELECT r.created_at AS answered, i.sent_at AS sent FROM responses r JOIN invitations i ON i.id = r.invitation_id \
                 WHERE {w} AND r.created_at >= $2 AND r.created_at < $3 AND i.sent_at IS NOT NULL"
            ))
            .bind::<Text, _>(v)
            .bind::<Timestamp, _>(from)
            .bind::<Timestamp, _>(to)
            .load(pg)?
        }
        DbConnection::Sqlite(lite) => {
            let (w, _) = scope_sql(scope, "r", false, 1);
            diesel::sql_query(format!(
                "SELECT r.created_at AS answered, i.sent_at AS sent FROM responses r JOIN invitations i ON i.id = r.invitation_id \
                 WHERE {w} AND r.created_at >= ? AND r.created_at < ? AND i.sent_at IS NOT NULL"
            ))
            .bind::<Text, _>(v)
            .bind::<Timestamp, _>(from)
            .bind::<Timestamp, _>(to)
            .load(lite)?
        }
    };
    Ok(rows
        .into_iter()
        .map(|p| (p.answered - p.sent).num_milliseconds() as f64 / 1000.0)
        .collect())
}

/// Invitations delivered and answered per UTC day in `[from, to)` (as [`delivery`], day by
/// day): whole days from the rollup, the partial days at the edges from the invitations.
pub fn delivery_days(
    conn: &mut DbConnection,
    scope: &Scope,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Result<BTreeMap<NaiveDate, (i64, i64)>, AppError> {
    #[derive(QueryableByName)]
    struct DayPair {
        #[diesel(sql_type = Text)]
        day: String,
        #[diesel(sql_type = BigInt)]
        a: i64,
        #[diesel(sql_type = BigInt)]
        b: i64,
    }
    let (days, partial) = split(from, to);
    let mut out: BTreeMap<NaiveDate, (i64, i64)> = BTreeMap::new();
    if let Some((d1, d2)) = days {
        let (a, b) = (
            d1.format("%Y-%m-%d").to_string(),
            d2.format("%Y-%m-%d").to_string(),
        );
        let rows: Vec<DayPair> = match conn {
            DbConnection::Postgres(pg) => {
                let (w, v) = scope_sql(scope, "x", true, 1);
                diesel::sql_query(format!(
                    "SELECT x.day, SUM(x.delivered)::bigint AS a, SUM(x.answered)::bigint AS b FROM delivery_daily x \
                     WHERE {w} AND x.day >= $2 AND x.day < $3 GROUP BY x.day"
                ))
                .bind::<Text, _>(v)
                .bind::<Text, _>(a)
                .bind::<Text, _>(b)
                .load(pg)?
            }
            DbConnection::Sqlite(lite) => {
                let (w, v) = scope_sql(scope, "x", false, 1);
                diesel::sql_query(format!(
                    "SELECT x.day, SUM(x.delivered) AS a, SUM(x.answered) AS b FROM delivery_daily x \
                     WHERE {w} AND x.day >= ? AND x.day < ? GROUP BY x.day"
                ))
                .bind::<Text, _>(v)
                .bind::<Text, _>(a)
                .bind::<Text, _>(b)
                .load(lite)?
            }
        };
        for r in rows {
            if let Ok(day) = NaiveDate::parse_from_str(&r.day, "%Y-%m-%d") {
                let e = out.entry(day).or_default();
                e.0 += r.a;
                e.1 += r.b;
            }
        }
    }
    // Each partial range lies within one day.
    for (a, b) in partial {
        let (d, n) = delivery_raw(conn, scope, a, b)?;
        let e = out.entry(a.date()).or_default();
        e.0 += d;
        e.1 += n;
    }
    Ok(out)
}

/// The time-to-answer histogram (bucket → answers) per UTC day of answering in `[from, to)`.
pub fn delay_days(
    conn: &mut DbConnection,
    scope: &Scope,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Result<BTreeMap<NaiveDate, BTreeMap<i32, i64>>, AppError> {
    let (days, partial) = split(from, to);
    let mut out: BTreeMap<NaiveDate, BTreeMap<i32, i64>> = BTreeMap::new();
    if let Some((d1, d2)) = days {
        for r in rollup_rows(conn, "answer_delay_daily", "bucket", scope, d1, d2)? {
            if let Ok(day) = NaiveDate::parse_from_str(&r.day, "%Y-%m-%d") {
                *out.entry(day).or_default().entry(r.key).or_default() += r.n;
            }
        }
    }
    for (a, b) in partial {
        let hist = out.entry(a.date()).or_default();
        for secs in delays_raw(conn, scope, a, b)? {
            *hist.entry(super::rollups::delay_bucket(secs)).or_default() += 1;
        }
    }
    Ok(out)
}

/// The median of a time-to-answer histogram, in seconds (`None` when empty).
pub fn histogram_median(hist: &BTreeMap<i32, i64>) -> Option<f64> {
    let n: i64 = hist.values().sum();
    let mut seen = 0;
    for (bucket, count) in hist {
        seen += count;
        if n > 0 && seen * 2 >= n {
            return Some(super::rollups::bucket_value(*bucket));
        }
    }
    None
}

/// The follow-up backlog now: (open, in progress, overdue).
pub fn backlog(
    conn: &mut DbConnection,
    scope: &Scope,
    now: NaiveDateTime,
) -> Result<(i64, i64, i64), AppError> {
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

/// A follow-up task as the close-the-loop metrics see it.
#[derive(Debug, Clone, QueryableByName)]
pub struct LoopTask {
    #[diesel(sql_type = Nullable<Text>)]
    pub assignee: Option<String>,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub outcome: Option<String>,
    #[diesel(sql_type = Timestamp)]
    pub due_at: NaiveDateTime,
    #[diesel(sql_type = Timestamp)]
    pub created_at: NaiveDateTime,
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub resolved_at: Option<NaiveDateTime>,
    /// The first activity by a person (not `system`, `rule` or `customer`).
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub first_action_at: Option<NaiveDateTime>,
}

/// Tasks of `scope` created in `[from, to)` or closed (resolved or dismissed) in it, each
/// with the time of its first action by a person.
pub fn loop_tasks(
    conn: &mut DbConnection,
    scope: &Scope,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Result<Vec<LoopTask>, AppError> {
    let sql = |pg: bool| {
        let (w, _) = scope_sql(scope, "f", pg, 1);
        let p: Vec<String> = (2..=5)
            .map(|i| if pg { format!("${i}") } else { "?".into() })
            .collect();
        format!(
            "SELECT f.assignee, f.status, f.outcome, f.due_at, f.created_at, f.resolved_at, \
             (SELECT MIN(a.created_at) FROM followup_activities a WHERE a.followup_id = f.id \
              AND a.actor NOT IN ('system', 'rule', 'customer')) AS first_action_at \
             FROM followups f WHERE {w} AND ((f.created_at >= {} AND f.created_at < {}) \
             OR (f.status IN ('resolved', 'dismissed') AND f.resolved_at >= {} AND f.resolved_at < {}))",
            p[0], p[1], p[2], p[3]
        )
    };
    let v = scope_value(scope);
    Ok(match conn {
        DbConnection::Postgres(pg) => diesel::sql_query(sql(true))
            .bind::<Text, _>(v)
            .bind::<Timestamp, _>(from)
            .bind::<Timestamp, _>(to)
            .bind::<Timestamp, _>(from)
            .bind::<Timestamp, _>(to)
            .load(pg)?,
        DbConnection::Sqlite(lite) => diesel::sql_query(sql(false))
            .bind::<Text, _>(v)
            .bind::<Timestamp, _>(from)
            .bind::<Timestamp, _>(to)
            .bind::<Timestamp, _>(from)
            .bind::<Timestamp, _>(to)
            .load(lite)?,
    })
}

/// The open backlog now per assignee (`None`: unassigned): (open or in progress, overdue).
pub fn backlog_by_assignee(
    conn: &mut DbConnection,
    scope: &Scope,
    now: NaiveDateTime,
) -> Result<Vec<(Option<String>, i64, i64)>, AppError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Nullable<Text>)]
        assignee: Option<String>,
        #[diesel(sql_type = BigInt)]
        a: i64,
        #[diesel(sql_type = BigInt)]
        b: i64,
    }
    let sql = |pg: bool| {
        let (w, _) = scope_sql(scope, "f", pg, 1);
        let (p, cast) = if pg { ("$2", "::bigint") } else { ("?", "") };
        format!(
            "SELECT f.assignee, COUNT(*){cast} AS a, \
             COALESCE(SUM(CASE WHEN f.due_at < {p} THEN 1 ELSE 0 END), 0){cast} AS b \
             FROM followups f WHERE {w} AND f.status IN ('open', 'in_progress') GROUP BY f.assignee"
        )
    };
    let v = scope_value(scope);
    let rows: Vec<Row> = match conn {
        DbConnection::Postgres(pg) => diesel::sql_query(sql(true))
            .bind::<Text, _>(v)
            .bind::<Timestamp, _>(now)
            .load(pg)?,
        // Positional parameters: the due time comes first in the text.
        DbConnection::Sqlite(lite) => diesel::sql_query(sql(false))
            .bind::<Timestamp, _>(now)
            .bind::<Text, _>(v)
            .load(lite)?,
    };
    Ok(rows.into_iter().map(|r| (r.assignee, r.a, r.b)).collect())
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

#[derive(QueryableByName)]
struct SurveyTwo {
    #[diesel(sql_type = Text)]
    survey_id: String,
    #[diesel(sql_type = BigInt)]
    a: i64,
    #[diesel(sql_type = BigInt)]
    b: i64,
}

/// All-time invitations delivered and answered per survey, from the daily rollup: one
/// query for every survey.
pub fn delivery_per_survey(conn: &mut DbConnection) -> Result<Vec<(String, i64, i64)>, AppError> {
    let rows: Vec<SurveyTwo> = match conn {
        DbConnection::Postgres(pg) => diesel::sql_query(
            "SELECT survey_id, COALESCE(SUM(delivered), 0)::bigint AS a, \
             COALESCE(SUM(answered), 0)::bigint AS b FROM delivery_daily GROUP BY survey_id",
        )
        .load(pg)?,
        DbConnection::Sqlite(lite) => diesel::sql_query(
            "SELECT survey_id, COALESCE(SUM(delivered), 0) AS a, \
             COALESCE(SUM(answered), 0) AS b FROM delivery_daily GROUP BY survey_id",
        )
        .load(lite)?,
    };
    Ok(rows.into_iter().map(|r| (r.survey_id, r.a, r.b)).collect())
}

#[derive(QueryableByName)]
struct SurveyScore {
    #[diesel(sql_type = Text)]
    survey_id: String,
    #[diesel(sql_type = Integer)]
    score: i32,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// All-time answers per survey and score, from the daily rollup: one query for every survey.
pub fn counts_per_survey(conn: &mut DbConnection) -> Result<BTreeMap<String, Counts>, AppError> {
    let rows: Vec<SurveyScore> = match conn {
        DbConnection::Postgres(pg) => diesel::sql_query(
            "SELECT survey_id, score, COALESCE(SUM(n), 0)::bigint AS n FROM response_daily \
             GROUP BY survey_id, score",
        )
        .load(pg)?,
        DbConnection::Sqlite(lite) => diesel::sql_query(
            "SELECT survey_id, score, COALESCE(SUM(n), 0) AS n FROM response_daily \
             GROUP BY survey_id, score",
        )
        .load(lite)?,
    };
    let mut out: BTreeMap<String, Counts> = BTreeMap::new();
    for r in rows {
        out.entry(r.survey_id).or_default().add(r.score, r.n);
    }
    Ok(out)
}

/// One resolved follow-up of the recovery block: what it was about and what came of its
/// re-survey.
#[derive(Debug, Clone)]
pub struct RecoveryRow {
    pub outcome: Option<String>,
    pub assignee: Option<String>,
    /// The unhappy answer's score.
    pub score: i32,
    /// Whether the re-survey invitation went out (`sent_at` set).
    pub resurveyed: bool,
    /// The score of the answer to the re-survey, if any.
    pub next_score: Option<i32>,
}

/// The follow-ups of the recovery block: tasks in `scope` whose unhappy answer was given in
/// `[from, to)` and that are `resolved`, each with its re-survey invitation and the answer to
/// it (both left-joined). One row per task; a few per answer period, so loaded as rows.
pub fn recovery_rows(
    conn: &mut DbConnection,
    scope: &Scope,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Result<Vec<RecoveryRow>, AppError> {
    use crate::store::schema::{followups, invitations, responses, surveys};
    let mut q = followups::table
        .left_join(
            invitations::table.on(invitations::id
                .nullable()
                .eq(followups::resurvey_invitation_id)),
        )
        .left_join(
            responses::table.on(responses::invitation_id.eq(followups::resurvey_invitation_id)),
        )
        .filter(followups::status.eq("resolved"))
        .filter(followups::answered_at.ge(from))
        .filter(followups::answered_at.lt(to))
        .select((
            followups::outcome,
            followups::assignee,
            followups::score,
            invitations::sent_at.nullable(),
            responses::score.nullable(),
        ))
        .into_boxed();
    q = match scope {
        Scope::Survey(id) => q.filter(followups::survey_id.eq(id.clone())),
        Scope::Kind(kind) => q.filter(
            followups::survey_id.eq_any(
                surveys::table
                    .filter(surveys::kind.eq(kind.clone()))
                    .select(surveys::id),
            ),
        ),
    };
    type Raw = (
        Option<String>,
        Option<String>,
        i32,
        Option<NaiveDateTime>,
        Option<i32>,
    );
    let rows: Vec<Raw> = q.load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(outcome, assignee, score, sent, next_score)| RecoveryRow {
            outcome,
            assignee,
            score,
            resurveyed: sent.is_some(),
            next_score,
        })
        .collect())
}
