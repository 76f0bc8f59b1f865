//! Daily rollups for reports: answers per (survey, day, score), deliveries per (survey, day)
//! and a histogram of time-to-answer per (survey, day). They are updated in the same
//! transaction as what they count, so a report over a year reads at most a few thousand
//! rows however many answers there are. `rebuild` recomputes them from the source tables.
//! Answers per snapshotted segment value (`segment_daily`, see `segments`) are kept the same
//! way and rebuilt from `response_segments`.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamp};

use crate::error::AppError;
use crate::store::DbConnection;

/// The UTC day of a time, as stored in the rollups.
pub fn day(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// Histogram bucket of a delay: floor(20·ln(1 + seconds)), buckets about 5 % wide.
pub fn delay_bucket(seconds: f64) -> i32 {
    ((1.0 + seconds.max(0.0)).ln() * 20.0).floor() as i32
}

/// The value a bucket stands for (its geometric middle).
pub fn bucket_value(bucket: i32) -> f64 {
    ((bucket as f64 + 0.5) / 20.0).exp() - 1.0
}

/// Counter rows per key; a random one takes each transaction's increments (see the
/// migration).
const SHARDS: i32 = 8;

fn shard() -> i32 {
    rand::random_range(0..SHARDS)
}

/// `?` placeholders as each engine wants them.
fn placeholders(sql: &str, pg: bool) -> String {
    if !pg {
        return sql.to_string();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

macro_rules! run_both {
    ($conn:expr, $sql:expr, $($ty:ty => $val:expr),* $(,)?) => {{
        // Kept prepared (`Cached`): these upserts run with every answer and delivery.
        match $conn {
            DbConnection::Postgres(pg) => $crate::store::Cached(diesel::sql_query(placeholders($sql, true))
                $(.bind::<$ty, _>($val))*)
                .execute(pg),
            DbConnection::Sqlite(lite) => $crate::store::Cached(diesel::sql_query($sql)
                $(.bind::<$ty, _>($val))*)
                .execute(lite),
        }
    }};
}

/// The counter increments of one transaction, written by [`Tally::flush`] at its end: one
/// upsert per counter row, all on one shard, tables and keys in a fixed order. Two
/// transactions therefore always lock counter rows in the same order and cannot deadlock on
/// them (incrementing random shards one by one did: batch A took shard 3 then 5 while
/// batch B took 5 then 3). Flush last, after every other write of the transaction, so a
/// transaction holding counter rows never waits for anything but other counter rows.
#[derive(Debug, Default)]
pub struct Tally {
    answers: BTreeMap<(String, String, i32), i64>,
    deliveries: BTreeMap<(String, String), (i64, i64)>,
    delays: BTreeMap<(String, String, i32), i64>,
    /// (survey, property name, day, value, score) → answers.
    segments: BTreeMap<SegmentKey, i64>,
}

type SegmentKey = (String, String, String, Option<String>, i32);

impl Tally {
    /// Adds `other`'s increments to these.
    pub fn merge(&mut self, other: Tally) {
        for (k, n) in other.answers {
            *self.answers.entry(k).or_default() += n;
        }
        for (k, (d, a)) in other.deliveries {
            let e = self.deliveries.entry(k).or_default();
            e.0 += d;
            e.1 += a;
        }
        for (k, n) in other.delays {
            *self.delays.entry(k).or_default() += n;
        }
        for (k, n) in other.segments {
            *self.segments.entry(k).or_default() += n;
        }
    }

    /// `n` more answers with `score` on `day` (negative when an answer changes its score).
    pub fn answer(&mut self, survey_id: &str, day: &str, score: i32, n: i64) {
        *self
            .answers
            .entry((survey_id.into(), day.into(), score))
            .or_default() += n;
    }

    /// Delivered and answered invitations, counted on their delivery day.
    pub fn delivery(&mut self, survey_id: &str, day: &str, delivered: i64, answered: i64) {
        let e = self
            .deliveries
            .entry((survey_id.into(), day.into()))
            .or_default();
        e.0 += delivered;
        e.1 += answered;
    }

    /// `n` more answers that took about `bucket` (see [`delay_bucket`]) on `day`.
    pub fn delay(&mut self, survey_id: &str, day: &str, bucket: i32, n: i64) {
        *self
            .delays
            .entry((survey_id.into(), day.into(), bucket))
            .or_default() += n;
    }

    /// `n` more answers with `score` on `day` whose snapshot of property `name` is `value`
    /// (`None`: no value).
    pub fn segment(
        &mut self,
        survey_id: &str,
        name: &str,
        day: &str,
        value: Option<&str>,
        score: i32,
        n: i64,
    ) {
        *self
            .segments
            .entry((
                survey_id.into(),
                name.into(),
                day.into(),
                value.map(str::to_string),
                score,
            ))
            .or_default() += n;
    }

    /// A first answer to an invitation delivered at `sent_at`: one more answered delivery on
    /// the delivery day, and its delay.
    pub fn first_answer(
        &mut self,
        survey_id: &str,
        sent_at: NaiveDateTime,
        answered_at: NaiveDateTime,
    ) {
        self.delivery(survey_id, &day(sent_at), 0, 1);
        let secs = (answered_at - sent_at).num_milliseconds() as f64 / 1000.0;
        self.delay(survey_id, &day(answered_at), delay_bucket(secs), 1);
    }

    /// Writes the counts (a random shard for all of them) and empties the tally.
    pub fn flush(&mut self, conn: &mut DbConnection) -> Result<(), AppError> {
        self.flush_to(conn, shard())
    }

    fn flush_to(&mut self, conn: &mut DbConnection, shard: i32) -> Result<(), AppError> {
        for ((survey, day, score), n) in std::mem::take(&mut self.answers) {
            if n != 0 {
                add_answer(conn, &survey, &day, score, shard, n)?;
            }
        }
        for ((survey, day), (delivered, answered)) in std::mem::take(&mut self.deliveries) {
            if (delivered, answered) != (0, 0) {
                add_delivery(conn, &survey, &day, shard, delivered, answered)?;
            }
        }
        for ((survey, day, bucket), n) in std::mem::take(&mut self.delays) {
            if n != 0 {
                add_delay(conn, &survey, &day, bucket, shard, n)?;
            }
        }
        for ((survey, name, day, value, score), n) in std::mem::take(&mut self.segments) {
            if n != 0 {
                add_segment(
                    conn,
                    &survey,
                    &name,
                    &day,
                    value.as_deref(),
                    score,
                    shard,
                    n,
                )?;
            }
        }
        Ok(())
    }
}

fn add_answer(
    conn: &mut DbConnection,
    survey_id: &str,
    day: &str,
    score: i32,
    shard: i32,
    n: i64,
) -> Result<(), AppError> {
    run_both!(
        conn,
        "INSERT INTO response_daily (survey_id, day, score, shard, n) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (survey_id, day, score, shard) DO UPDATE SET n = response_daily.n + excluded.n",
        Text => survey_id,
        Text => day,
        Integer => score,
        Integer => shard,
        BigInt => n,
    )?;
    Ok(())
}

fn add_delivery(
    conn: &mut DbConnection,
    survey_id: &str,
    day: &str,
    shard: i32,
    delivered: i64,
    answered: i64,
) -> Result<(), AppError> {
    run_both!(
        conn,
        "INSERT INTO delivery_daily (survey_id, day, shard, delivered, answered) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (survey_id, day, shard) DO UPDATE SET delivered = delivery_daily.delivered + excluded.delivered, \
         answered = delivery_daily.answered + excluded.answered",
        Text => survey_id,
        Text => day,
        Integer => shard,
        BigInt => delivered,
        BigInt => answered,
    )?;
    Ok(())
}

fn add_delay(
    conn: &mut DbConnection,
    survey_id: &str,
    day: &str,
    bucket: i32,
    shard: i32,
    n: i64,
) -> Result<(), AppError> {
    run_both!(
        conn,
        "INSERT INTO answer_delay_daily (survey_id, day, bucket, shard, n) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (survey_id, day, bucket, shard) DO UPDATE SET n = answer_delay_daily.n + excluded.n",
        Text => survey_id,
        Text => day,
        Integer => bucket,
        Integer => shard,
        BigInt => n,
    )?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn add_segment(
    conn: &mut DbConnection,
    survey_id: &str,
    name: &str,
    day: &str,
    value: Option<&str>,
    score: i32,
    shard: i32,
    n: i64,
) -> Result<(), AppError> {
    run_both!(
        conn,
        "INSERT INTO segment_daily (survey_id, name, day, has_value, value, score, shard, n) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (survey_id, name, day, has_value, value, score, shard) \
         DO UPDATE SET n = segment_daily.n + excluded.n",
        Text => survey_id,
        Text => name,
        Text => day,
        Integer => i32::from(value.is_some()),
        Text => value.unwrap_or(""),
        Integer => score,
        Integer => shard,
        BigInt => n,
    )?;
    Ok(())
}

#[derive(QueryableByName)]
struct DelayRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    survey_id: String,
    #[diesel(sql_type = Timestamp)]
    answered: NaiveDateTime,
    #[diesel(sql_type = Nullable<Timestamp>)]
    sent: Option<NaiveDateTime>,
}

/// Recomputes every rollup from responses and invitations, in one transaction.
pub fn rebuild(conn: &mut DbConnection) -> Result<(), AppError> {
    conn.transaction(|conn| {
        let pg = matches!(conn, DbConnection::Postgres(_));
        let d = |col: &str| {
            if pg {
                format!("to_char({col}, 'YYYY-MM-DD')")
            } else {
                format!("substr({col}, 1, 10)")
            }
        };
        conn.batch_execute(&format!(
            "DELETE FROM response_daily; DELETE FROM delivery_daily; DELETE FROM answer_delay_daily;
             INSERT INTO response_daily (survey_id, day, score, shard, n)
               SELECT survey_id, {rd}, score, 0, COUNT(*) FROM responses GROUP BY 1, 2, 3;
             INSERT INTO delivery_daily (survey_id, day, shard, delivered, answered)
               SELECT survey_id, {sd}, 0, COUNT(*), COUNT(responded_at) FROM invitations
               WHERE status IN ('sent', 'responded') AND sent_at IS NOT NULL GROUP BY 1, 2;
             DELETE FROM segment_daily;
             INSERT INTO segment_daily (survey_id, name, day, has_value, value, score, shard, n)
               SELECT r.survey_id, s.name, {srd}, CASE WHEN s.value IS NULL THEN 0 ELSE 1 END,
               COALESCE(s.value, ''), r.score, 0, COUNT(*)
               FROM response_segments s JOIN responses r ON r.id = s.response_id
               GROUP BY 1, 2, 3, 4, 5, 6;",
            rd = d("created_at"),
            sd = d("sent_at"),
            srd = d("r.created_at"),
        ))?;
        // The delay histogram needs a logarithm that SQLite may lack: bucket in Rust, a page
        // of rows at a time.
        let mut hist: HashMap<(String, String, i32), i64> = HashMap::new();
        let mut after = String::new();
        loop {
            let sql = placeholders(
                "SELECT r.survey_id, r.created_at AS answered, i.sent_at AS sent, r.id FROM responses r \
                 JOIN invitations i ON i.id = r.invitation_id WHERE r.id > ? AND i.sent_at IS NOT NULL \
                 ORDER BY r.id LIMIT 5000",
                pg,
            );
            let rows: Vec<DelayRow> = match conn {
                DbConnection::Postgres(c) => diesel::sql_query(sql).bind::<Text, _>(&after).load(c)?,
                DbConnection::Sqlite(c) => diesel::sql_query(sql).bind::<Text, _>(&after).load(c)?,
            };
            let Some(last) = rows.last() else { break };
            after = last.id.clone();
            for p in rows {
                if let Some(sent) = p.sent {
                    let secs = (p.answered - sent).num_milliseconds() as f64 / 1000.0;
                    *hist
                        .entry((p.survey_id, day(p.answered), delay_bucket(secs)))
                        .or_default() += 1;
                }
            }
        }
        let mut tally = Tally::default();
        for ((survey, d, bucket), n) in hist {
            tally.delay(&survey, &d, bucket, n);
        }
        tally.flush_to(conn, 0)
    })
}

/// Rebuilds the rollups when they are empty but answers exist (first start after the
/// migration that added them, or data loaded by hand).
pub fn rebuild_if_empty(conn: &mut DbConnection) -> Result<bool, AppError> {
    use crate::store::schema::responses;
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let rollup: Count = match conn {
        DbConnection::Postgres(c) => {
            diesel::sql_query("SELECT COUNT(*) AS n FROM (SELECT 1 FROM response_daily LIMIT 1) x")
                .get_result(c)?
        }
        DbConnection::Sqlite(c) => {
            diesel::sql_query("SELECT COUNT(*) AS n FROM (SELECT 1 FROM response_daily LIMIT 1) x")
                .get_result(c)?
        }
    };
    if rollup.n > 0 {
        return Ok(false);
    }
    let any: Option<String> = responses::table
        .select(responses::id)
        .first(conn)
        .optional()?;
    if any.is_none() {
        return Ok(false);
    }
    rebuild(conn)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_buckets_are_about_five_percent_wide() {
        for secs in [1.0, 59.0, 1800.0, 86_400.0, 2_000_000.0] {
            let v = bucket_value(delay_bucket(secs));
            assert!((v - secs).abs() / secs < 0.05, "{secs} → {v}");
        }
        assert_eq!(delay_bucket(-5.0), 0);
    }

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(placeholders("a = ? AND b = ?", true), "a = $1 AND b = $2");
        assert_eq!(placeholders("a = ?", false), "a = ?");
    }
}
