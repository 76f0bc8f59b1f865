//! Queries of the `contacts` table: upsert by external id or email, lists, unsubscribe and
//! clearing personal data.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::{Map, Value};

use super::models::ContactRow;
use super::schema::{contact_activities, contacts, invitations};
use super::DbConnection;
use crate::domain::Page;
use crate::domain::{new_id, now, Email, IdPrefix};
use crate::error::AppError;

/// A contact as the caller describes it; at least one of `email` and `external_id` is set.
#[derive(Debug, Clone)]
pub struct ContactInput {
    pub email: Option<Email>,
    pub name: Option<String>,
    pub external_id: Option<String>,
    pub properties: Option<Map<String, Value>>,
}

/// `properties.value` (yearly revenue or lifetime value) as a number, for follow-up priority.
pub fn value_of(properties: &Map<String, Value>) -> Option<f64> {
    properties.get("value").and_then(Value::as_f64)
}

/// Inserts or updates a contact matched by `external_id` first, then by email. Properties are
/// merged key by key (a `null` value removes a key), as Delighted does. Returns the row and
/// whether it was created. A conflict (the email belongs to another contact than the
/// external id) is a 409.
pub fn upsert(
    conn: &mut DbConnection,
    input: &ContactInput,
) -> Result<(ContactRow, bool), AppError> {
    // Two concurrent upserts of a new contact race on the unique index: the loser retries and
    // then finds the winner's row.
    match conn.transaction(|conn| upsert_once(conn, input)) {
        Err(AppError::Conflict {
            code: "conflict", ..
        }) => conn.transaction(|conn| upsert_once(conn, input)),
        other => other,
    }
}

fn find_live(
    conn: &mut DbConnection,
    email: Option<&Email>,
    external_id: Option<&str>,
) -> Result<(Option<ContactRow>, Option<ContactRow>), AppError> {
    let by_ext = match external_id {
        Some(ext) => contacts::table
            .filter(contacts::external_id.eq(ext))
            .select(ContactRow::as_select())
            .first(conn)
            .optional()?,
        None => None,
    };
    let by_email = match email {
        Some(e) => contacts::table
            .filter(contacts::email.eq(e.as_str()))
            .select(ContactRow::as_select())
            .first(conn)
            .optional()?,
        None => None,
    };
    Ok((by_ext, by_email))
}

fn upsert_once(
    conn: &mut DbConnection,
    input: &ContactInput,
) -> Result<(ContactRow, bool), AppError> {
    let (by_ext, by_email) = find_live(conn, input.email.as_ref(), input.external_id.as_deref())?;
    let existing = match (by_ext, by_email) {
        (Some(a), Some(b)) if a.id != b.id => {
            return Err(AppError::conflict(
                "contact_conflict",
                format!(
                    "external_id {:?} belongs to contact {} but email {} belongs to contact {}",
                    input.external_id.as_deref().unwrap_or_default(),
                    a.id,
                    input.email.as_ref().map(Email::as_str).unwrap_or_default(),
                    b.id
                ),
            ))
        }
        (Some(a), _) => Some(a),
        (None, b) => b,
    };
    let t = now();
    match existing {
        None => {
            let props = input.properties.clone().unwrap_or_default();
            let props: Map<String, Value> =
                props.into_iter().filter(|(_, v)| !v.is_null()).collect();
            let row = ContactRow {
                id: new_id(IdPrefix::Contact),
                email: input.email.as_ref().map(|e| e.as_str().to_string()),
                name: input.name.clone(),
                external_id: input.external_id.clone(),
                value: value_of(&props),
                properties: super::to_json_text(&Value::Object(props)),
                last_surveyed_at: None,
                last_responded_at: None,
                unsubscribed_at: None,
                erased_at: None,
                created_at: t,
                updated_at: t,
            };
            diesel::insert_into(contacts::table)
                .values(&row)
                .execute(conn)?;
            Ok((row, true))
        }
        Some(row) => {
            // Lock the row first (a no-op update takes the row lock on PostgreSQL), then read
            // it again, so concurrent merges of properties never lose one another's keys.
            diesel::update(contacts::table.find(&row.id))
                .set(contacts::updated_at.eq(t))
                .execute(conn)?;
            let mut row: ContactRow = contacts::table
                .find(&row.id)
                .select(ContactRow::as_select())
                .first(conn)?;
            let mut props: Map<String, Value> =
                serde_json::from_str(&row.properties).unwrap_or_default();
            if let Some(new_props) = &input.properties {
                for (k, v) in new_props {
                    if v.is_null() {
                        props.remove(k);
                    } else {
                        props.insert(k.clone(), v.clone());
                    }
                }
            }
            if let Some(e) = &input.email {
                row.email = Some(e.as_str().to_string());
            }
            if let Some(n) = &input.name {
                row.name = Some(n.clone());
            }
            if let Some(x) = &input.external_id {
                row.external_id = Some(x.clone());
            }
            row.value = value_of(&props);
            row.properties = super::to_json_text(&Value::Object(props));
            row.updated_at = t;
            diesel::update(contacts::table.find(&row.id))
                .set((
                    contacts::email.eq(&row.email),
                    contacts::name.eq(&row.name),
                    contacts::external_id.eq(&row.external_id),
                    contacts::properties.eq(&row.properties),
                    contacts::value.eq(row.value),
                    contacts::updated_at.eq(t),
                ))
                .execute(conn)?;
            Ok((row, false))
        }
    }
}

/// A contact that has not been erased.
pub fn get(conn: &mut DbConnection, id: &str) -> Result<ContactRow, AppError> {
    contacts::table
        .find(id)
        .filter(contacts::erased_at.is_null())
        .select(ContactRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound("contact"))
}

#[derive(Debug, Default, Clone)]
pub struct ContactFilter {
    /// Exact (emails are stored lower-cased).
    pub email: Option<String>,
    /// Exact.
    pub external_id: Option<String>,
    /// Text found, ignoring case, in the email, name or external id.
    pub q: Option<String>,
    /// A property and its value (see [`super::filter_property`]); the key must pass
    /// [`super::followups::is_property_key`].
    pub property: Option<(String, String)>,
}

pub fn list(
    conn: &mut DbConnection,
    filter: &ContactFilter,
    page: &Page,
) -> Result<Vec<ContactRow>, AppError> {
    let mut q = contacts::table
        .filter(contacts::erased_at.is_null())
        .select(ContactRow::as_select())
        .order(contacts::id.desc())
        .into_boxed();
    if let Some(e) = &filter.email {
        q = q.filter(contacts::email.eq(e.clone()));
    }
    if let Some(x) = &filter.external_id {
        q = q.filter(contacts::external_id.eq(x.clone()));
    }
    if let Some(text) = filter.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        use diesel::dsl::sql;
        use diesel::sql_types::{Bool, Text};
        let p = super::contains_pattern(text);
        q = q.filter(
            sql::<Bool>("(LOWER(contacts.email) LIKE ")
                .bind::<Text, _>(p.clone())
                .sql(" ESCAPE '\\' OR LOWER(contacts.name) LIKE ")
                .bind::<Text, _>(p.clone())
                .sql(" ESCAPE '\\' OR LOWER(contacts.external_id) LIKE ")
                .bind::<Text, _>(p)
                .sql(" ESCAPE '\\')"),
        );
    }
    if let Some((key, value)) = &filter.property {
        if !super::followups::is_property_key(key) {
            return Err(AppError::field(
                "property",
                "must be 1 to 100 letters, digits, _ or -",
            ));
        }
        let pg = matches!(conn, DbConnection::Postgres(_));
        super::filter_property!(q, key.clone(), value.clone(), pg);
    }
    if let Some(c) = &page.cursor {
        q = q.filter(contacts::id.lt(c.clone()));
    }
    Ok(q.limit(page.limit + 1).load(conn)?)
}

/// Clears a contact's personal data (email, name, external id, properties, value) and
/// marks it erased.
pub fn clear_personal_data(
    conn: &mut DbConnection,
    id: &str,
    t: NaiveDateTime,
) -> Result<(), AppError> {
    diesel::update(contacts::table.find(id))
        .set((
            contacts::email.eq(None::<String>),
            contacts::name.eq(None::<String>),
            contacts::external_id.eq(None::<String>),
            contacts::properties.eq("{}"),
            contacts::value.eq(None::<f64>),
            contacts::erased_at.eq(Some(t)),
            contacts::updated_at.eq(t),
        ))
        .execute(conn)?;
    Ok(())
}

/// Unsubscribes a contact (once; repeating is harmless) and suppresses their scheduled
/// email invitations. Returns whether this call unsubscribed them (false: they already
/// were), decided by the conditional update itself, so two concurrent calls cannot both
/// see `true`.
pub fn unsubscribe(conn: &mut DbConnection, id: &str) -> Result<bool, AppError> {
    conn.transaction(|conn| {
        let t = now();
        let changed = diesel::update(
            contacts::table
                .find(id)
                .filter(contacts::unsubscribed_at.is_null()),
        )
        .set((
            contacts::unsubscribed_at.eq(Some(t)),
            contacts::updated_at.eq(t),
        ))
        .execute(conn)?;
        diesel::update(
            invitations::table
                .filter(invitations::contact_id.eq(id))
                .filter(invitations::channel.eq("email"))
                .filter(invitations::status.eq("scheduled")),
        )
        .set((
            invitations::status.eq("suppressed"),
            invitations::reason.eq(Some("unsubscribed")),
            invitations::updated_at.eq(t),
        ))
        .execute(conn)?;
        Ok(changed == 1)
    })
}

/// A contact, erased or not (the unsubscribe page of an erased person still works).
pub fn find_any(conn: &mut DbConnection, id: &str) -> Result<Option<ContactRow>, AppError> {
    Ok(contacts::table
        .find(id)
        .select(ContactRow::as_select())
        .first(conn)
        .optional()?)
}

/// Clears `unsubscribed_at`: the contact may be surveyed again. Invitations suppressed
/// while unsubscribed stay suppressed.
pub fn resubscribe(conn: &mut DbConnection, id: &str) -> Result<(), AppError> {
    let t = now();
    diesel::update(contacts::table.find(id))
        .set((
            contacts::unsubscribed_at.eq(None::<NaiveDateTime>),
            contacts::updated_at.eq(t),
        ))
        .execute(conn)?;
    Ok(())
}

/// Sets when a contact was last surveyed (what throttling counts from).
pub fn set_last_surveyed(
    conn: &mut DbConnection,
    id: &str,
    at: NaiveDateTime,
) -> Result<(), AppError> {
    diesel::update(contacts::table.find(id))
        .set(contacts::last_surveyed_at.eq(Some(at)))
        .execute(conn)?;
    Ok(())
}

/// Records that the contact answered at `t` (an answer captured without an invitation).
pub fn mark_responded(
    conn: &mut DbConnection,
    id: &str,
    t: chrono::NaiveDateTime,
) -> Result<(), AppError> {
    diesel::update(contacts::table.find(id))
        .set(contacts::last_responded_at.eq(Some(t)))
        .execute(conn)?;
    Ok(())
}

/// A change of a contact's subscription: `unsubscribed` or `resubscribed`, and who did it.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = contact_activities)]
pub struct ContactActivityRow {
    pub id: String,
    pub contact_id: String,
    pub kind: String,
    /// `customer`, `user:<email>` or `api-key:<name>`.
    pub actor: Option<String>,
    pub created_at: NaiveDateTime,
}

/// Records that `actor` did `kind` to contact `id`.
pub fn log(conn: &mut DbConnection, id: &str, kind: &str, actor: &str) -> Result<(), AppError> {
    diesel::insert_into(contact_activities::table)
        .values(&ContactActivityRow {
            id: new_id(IdPrefix::Activity),
            contact_id: id.to_string(),
            kind: kind.to_string(),
            actor: Some(actor.to_string()),
            created_at: now(),
        })
        .execute(conn)?;
    Ok(())
}

/// A contact's recorded changes, newest first (up to `limit`).
pub fn activities(
    conn: &mut DbConnection,
    id: &str,
    limit: i64,
) -> Result<Vec<ContactActivityRow>, AppError> {
    Ok(contact_activities::table
        .filter(contact_activities::contact_id.eq(id))
        .order(contact_activities::id.desc())
        .limit(limit)
        .select(ContactActivityRow::as_select())
        .load(conn)?)
}

/// Whether the table has any row (`closeloop demo` refuses a database with data).
pub fn any(conn: &mut DbConnection) -> Result<bool, AppError> {
    Ok(super::schema::contacts::table
        .select(super::schema::contacts::id)
        .first::<String>(conn)
        .optional()?
        .is_some())
}

/// Property names used by the most recent 1000 contacts, alphabetical (at most 100): the
/// choices a segment picker offers.
pub fn recent_property_keys(conn: &mut DbConnection) -> Result<Vec<String>, AppError> {
    #[derive(QueryableByName)]
    struct Key {
        #[diesel(sql_type = diesel::sql_types::Text)]
        key: String,
    }
    let rows: Vec<Key> = match conn {
        DbConnection::Postgres(pg) => diesel::sql_query(
            "SELECT DISTINCT k AS key FROM (SELECT properties FROM contacts WHERE erased_at IS NULL \
             ORDER BY created_at DESC LIMIT 1000) c, jsonb_object_keys(CASE WHEN jsonb_typeof(c.properties::jsonb) = 'object' \
             THEN c.properties::jsonb ELSE '{}'::jsonb END) k ORDER BY 1 LIMIT 100",
        )
        .load(pg)?,
        DbConnection::Sqlite(lite) => diesel::sql_query(
            "SELECT DISTINCT j.key AS key FROM (SELECT properties FROM contacts WHERE erased_at IS NULL \
             ORDER BY created_at DESC LIMIT 1000) c, json_each(CASE WHEN json_valid(c.properties) AND json_type(c.properties) = 'object' \
             THEN c.properties ELSE '{}' END) j ORDER BY 1 LIMIT 100",
        )
        .load(lite)?,
    };
    Ok(rows.into_iter().map(|k| k.key).collect())
}
