//! Segment snapshots: the values of the contact properties a survey reports on
//! (`surveys.report_segments`), copied onto each answer when it is recorded
//! (`response_segments`) and counted per (survey, property, day, value, score) in the
//! `segment_daily` rollup through [`Tally`], in the answer's transaction. An answer therefore
//! counts under the value its customer had when they answered, and a `segment=` report over a
//! year reads a few thousand counts.
//!
//! The rollup always equals `response_segments` joined to the answers' day and score
//! (`rollups::rebuild` recomputes it so): a changed score moves the answer's counts under the
//! values snapshotted with it, a backfill adds rows and counts together, and erasing a
//! contact moves their answers' counts to "no value" as it clears the values.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::{Map, Value};

use super::models::ResponseRow;
use super::rollups::{day, Tally};
use super::schema::{contacts, response_segments, responses, segment_backfills, surveys};
use super::DbConnection;
use crate::error::AppError;

/// The property names of a survey's `report_segments` column (a JSON array).
pub fn names(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

/// A property's value as a segment: strings as they are, numbers and booleans as their JSON
/// text, `null` or a missing property as no value, arrays and objects as their JSON text.
pub fn value_of(properties: &Map<String, Value>, name: &str) -> Option<String> {
    match properties.get(name)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn parse_properties(properties: Option<&str>) -> Map<String, Value> {
    properties
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_default()
}

/// The survey's `report_segments`, read inside the caller's transaction (so an answer
/// recorded after a change of the setting commits with the new names).
pub fn survey_names(conn: &mut DbConnection, survey_id: &str) -> Result<Vec<String>, AppError> {
    let json: String = surveys::table
        .find(survey_id)
        .select(surveys::report_segments)
        .first(conn)?;
    Ok(names(&json))
}

/// A contact's properties (JSON text), if the contact exists.
pub fn contact_properties(
    conn: &mut DbConnection,
    contact_id: &str,
) -> Result<Option<String>, AppError> {
    Ok(contacts::table
        .find(contact_id)
        .select(contacts::properties)
        .first(conn)
        .optional()?)
}

fn insert_values(
    conn: &mut DbConnection,
    rows: &[(String, String, Option<String>)],
) -> Result<(), AppError> {
    // One multi-row insert per chunk (3 parameters a row, well under both engines' limits).
    for chunk in rows.chunks(1000) {
        let values: Vec<_> = chunk
            .iter()
            .map(|(id, name, value)| {
                (
                    response_segments::response_id.eq(id),
                    response_segments::name.eq(name),
                    response_segments::value.eq(value.as_deref()),
                )
            })
            .collect();
        let insert = diesel::insert_into(response_segments::table).values(&values);
        match conn {
            DbConnection::Postgres(pg) => insert.execute(pg)?,
            DbConnection::Sqlite(lite) => insert.execute(lite)?,
        };
    }
    Ok(())
}

/// Snapshots a new answer's values of `names` from its contact's `properties` (none for an
/// anonymous answer: every name gets no value) and counts them in `tally`.
pub fn snapshot(
    conn: &mut DbConnection,
    response: &ResponseRow,
    names: &[String],
    properties: Option<&str>,
    tally: &mut Tally,
) -> Result<(), AppError> {
    if names.is_empty() {
        return Ok(());
    }
    let props = parse_properties(properties);
    let d = day(response.created_at);
    let rows: Vec<(String, String, Option<String>)> = names
        .iter()
        .map(|n| (response.id.clone(), n.clone(), value_of(&props, n)))
        .collect();
    for (_, name, value) in &rows {
        tally.segment(
            &response.survey_id,
            name,
            &d,
            value.as_deref(),
            response.score,
            1,
        );
    }
    insert_values(conn, &rows)
}

/// A changed score: the answer's counts move from the old score to the new one, under the
/// values snapshotted with it (whatever the contact's properties are now).
pub fn move_score(
    conn: &mut DbConnection,
    before: &ResponseRow,
    new_score: i32,
    tally: &mut Tally,
) -> Result<(), AppError> {
    let rows: Vec<(String, Option<String>)> = response_segments::table
        .filter(response_segments::response_id.eq(&before.id))
        .select((response_segments::name, response_segments::value))
        .load(conn)?;
    let d = day(before.created_at);
    for (name, value) in rows {
        let v = value.as_deref();
        tally.segment(&before.survey_id, &name, &d, v, before.score, -1);
        tally.segment(&before.survey_id, &name, &d, v, new_score, 1);
    }
    Ok(())
}

/// Queues the backfill of `names` for a survey's earlier answers (inside the transaction
/// that adds them to `report_segments`). A name already queued starts again from the
/// beginning: answers it already gave a value keep it.
pub fn start_backfill(
    conn: &mut DbConnection,
    survey_id: &str,
    names: &[String],
    t: NaiveDateTime,
) -> Result<(), AppError> {
    let epoch = chrono::DateTime::UNIX_EPOCH.naive_utc();
    for name in names {
        diesel::delete(
            segment_backfills::table
                .filter(segment_backfills::survey_id.eq(survey_id))
                .filter(segment_backfills::name.eq(name)),
        )
        .execute(conn)?;
        diesel::insert_into(segment_backfills::table)
            .values((
                segment_backfills::survey_id.eq(survey_id),
                segment_backfills::name.eq(name),
                segment_backfills::next_from.eq(epoch),
                segment_backfills::created_at.eq(t),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// What one backfill batch did.
#[derive(Debug, Clone)]
pub struct BackfillStep {
    pub survey_id: String,
    pub name: String,
    /// Answers given a value in this batch.
    pub filled: usize,
    /// Whether the property is now complete for the survey.
    pub finished: bool,
}

/// One batch of a queued backfill, in its own transaction: up to `limit` of the survey's
/// answers without a value for the property, oldest first, get the value their contact has
/// now (anonymous answers and contacts without it: no value), counted in the rollup. `None`
/// when no backfill is queued (or, on PostgreSQL, every queued one is being worked on by
/// another process: the queue row is locked `FOR UPDATE SKIP LOCKED`).
pub fn backfill_step(
    conn: &mut DbConnection,
    limit: i64,
) -> Result<Option<BackfillStep>, AppError> {
    conn.transaction(|conn| {
        let q = segment_backfills::table
            .order((segment_backfills::created_at, segment_backfills::survey_id))
            .select((
                segment_backfills::survey_id,
                segment_backfills::name,
                segment_backfills::next_from,
            ))
            .limit(1);
        let job: Option<(String, String, NaiveDateTime)> = match conn {
            DbConnection::Postgres(pg) => q.for_update().skip_locked().first(pg).optional()?,
            DbConnection::Sqlite(lite) => q.first(lite).optional()?,
        };
        let Some((survey_id, name, next_from)) = job else {
            return Ok(None);
        };
        let rows: Vec<(String, NaiveDateTime, i32, Option<String>)> = responses::table
            .left_join(contacts::table)
            .filter(responses::survey_id.eq(&survey_id))
            .filter(responses::created_at.ge(next_from))
            .filter(diesel::dsl::not(diesel::dsl::exists(
                response_segments::table
                    .filter(response_segments::response_id.eq(responses::id))
                    .filter(response_segments::name.eq(&name)),
            )))
            .order(responses::created_at)
            .limit(limit)
            .select((
                responses::id,
                responses::created_at,
                responses::score,
                contacts::properties.nullable(),
            ))
            .load(conn)?;
        let mut tally = Tally::default();
        let mut values = Vec::with_capacity(rows.len());
        for (id, created_at, score, properties) in &rows {
            let value = value_of(&parse_properties(properties.as_deref()), &name);
            tally.segment(
                &survey_id,
                &name,
                &day(*created_at),
                value.as_deref(),
                *score,
                1,
            );
            values.push((id.clone(), name.clone(), value));
        }
        insert_values(conn, &values)?;
        let finished = (rows.len() as i64) < limit;
        let this = segment_backfills::table
            .filter(segment_backfills::survey_id.eq(&survey_id))
            .filter(segment_backfills::name.eq(&name));
        if finished {
            diesel::delete(this).execute(conn)?;
        } else if let Some((_, last, _, _)) = rows.last() {
            diesel::update(this)
                .set(segment_backfills::next_from.eq(*last))
                .execute(conn)?;
        }
        // Counters last (see `Tally`).
        tally.flush(conn)?;
        Ok(Some(BackfillStep {
            survey_id,
            name,
            filled: rows.len(),
            finished,
        }))
    })
}

/// The properties of surveys whose backfill is still queued: (survey, name).
pub fn pending(conn: &mut DbConnection) -> Result<Vec<(String, String)>, AppError> {
    Ok(segment_backfills::table
        .select((segment_backfills::survey_id, segment_backfills::name))
        .load(conn)?)
}

/// Erasure: the contact's answers lose their snapshotted values (they count under "no
/// value" from now on, in the rollups too). Returns how many values were cleared.
pub fn neutralise_contact(conn: &mut DbConnection, contact_id: &str) -> Result<usize, AppError> {
    let rows: Vec<(String, String, NaiveDateTime, i32, String, Option<String>)> =
        response_segments::table
            .inner_join(responses::table)
            .filter(responses::contact_id.eq(contact_id))
            .filter(response_segments::value.is_not_null())
            .select((
                responses::id,
                responses::survey_id,
                responses::created_at,
                responses::score,
                response_segments::name,
                response_segments::value,
            ))
            .load(conn)?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut tally = Tally::default();
    let mut ids: BTreeMap<String, ()> = BTreeMap::new();
    for (id, survey_id, created_at, score, name, value) in &rows {
        let d = day(*created_at);
        tally.segment(survey_id, name, &d, value.as_deref(), *score, -1);
        tally.segment(survey_id, name, &d, None, *score, 1);
        ids.insert(id.clone(), ());
    }
    let ids: Vec<String> = ids.into_keys().collect();
    for chunk in ids.chunks(500) {
        diesel::update(
            response_segments::table.filter(response_segments::response_id.eq_any(chunk)),
        )
        .set(response_segments::value.eq(None::<String>))
        .execute(conn)?;
    }
    tally.flush(conn)?;
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_values_become_segment_text() {
        let props: Map<String, Value> = serde_json::from_str(
            r#"{"plan": "pro", "seats": 12, "trial": true, "none": null, "tags": ["a"]}"#,
        )
        .unwrap();
        assert_eq!(value_of(&props, "plan").as_deref(), Some("pro"));
        assert_eq!(value_of(&props, "seats").as_deref(), Some("12"));
        assert_eq!(value_of(&props, "trial").as_deref(), Some("true"));
        assert_eq!(value_of(&props, "none"), None);
        assert_eq!(value_of(&props, "missing"), None);
        assert_eq!(value_of(&props, "tags").as_deref(), Some("[\"a\"]"));
    }

    #[test]
    fn names_come_from_a_json_array() {
        assert_eq!(names(r#"["plan","region"]"#), vec!["plan", "region"]);
        assert!(names("[]").is_empty());
        assert!(names("not json").is_empty());
    }
}
