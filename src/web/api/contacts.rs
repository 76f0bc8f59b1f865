//! `/api/v1/contacts`: upsert, list, get, update (unsubscribe / re-subscribe), erase.

use actix_web::{delete, get, patch, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use validator::{Validate, ValidationError, ValidationErrors};

use super::extract::{check_id, Caller, PageParams, ValidJson};
use super::query::Query;
use super::utc;
use crate::context::AppState;
use crate::domain::{Email, IdPrefix, Role};
use crate::error::AppError;
use crate::store::contacts::{ContactFilter, ContactInput};
use crate::store::models::ContactRow;

/// Limits on `properties`: keys, their length, and the whole object's JSON size.
const MAX_PROPERTIES: usize = 50;
const MAX_PROPERTIES_BYTES: usize = 8 * 1024;

/// A contact as sent by the caller. Matched by `external_id` first, then by `email`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com", "name": "Ada Lovelace", "external_id": "cus_42", "properties": {"plan": "enterprise", "value": 120000}}))]
pub struct ContactFields {
    /// Normalised to lower case; unique. Give `email`, `external_id` or both.
    #[schema(format = Email, max_length = 254)]
    pub email: Option<String>,
    /// An empty name is no name. One line: no control characters.
    #[schema(max_length = 200, pattern = "ONE_LINE")]
    pub name: Option<String>,
    /// Your own id for the customer; unique when given.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub external_id: Option<String>,
    /// Free-form attributes, merged key by key into the stored ones (`null` removes a key).
    /// `value` (a number: yearly revenue or lifetime value) ranks follow-ups.
    #[schema(value_type = Option<Object>)]
    pub properties: Option<Map<String, Value>>,
}

impl ContactFields {
    /// Checks every field and turns them into the storage input, or messages per field.
    pub fn check(&self) -> Result<ContactInput, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        let mut err = |field: &'static str, msg: String| errors.push((field, msg));
        let email = match &self.email {
            Some(raw) => match Email::parse(raw) {
                Ok(e) => Some(e),
                Err(msg) => {
                    err("email", msg);
                    None
                }
            },
            None => None,
        };
        if self.name.as_ref().is_some_and(|n| n.chars().count() > 200) {
            err("name", "must be at most 200 characters long".into());
        }
        let name = self.name.as_ref().map(|n| n.trim().to_string());
        if self
            .name
            .as_ref()
            .is_some_and(|n| n.chars().any(char::is_control))
        {
            err(
                "name",
                "must be one line, without control characters (line breaks, tabs, NUL)".into(),
            );
        }
        let external_id = self.external_id.as_ref().map(|x| x.trim().to_string());
        if let Some(x) = &external_id {
            if x.is_empty()
                || self
                    .external_id
                    .as_ref()
                    .is_some_and(|x| x.chars().count() > 200)
            {
                err(
                    "external_id",
                    "must be 1 to 200 characters long, not blank".into(),
                );
            }
        }
        if self.email.is_none() && self.external_id.is_none() {
            err("email", "email or external_id is required".into());
        }
        if let Some(props) = &self.properties {
            if props.len() > MAX_PROPERTIES {
                err(
                    "properties",
                    format!("must have at most {MAX_PROPERTIES} keys"),
                );
            }
            if serde_json::to_vec(props).map(|v| v.len()).unwrap_or(0) > MAX_PROPERTIES_BYTES {
                err(
                    "properties",
                    format!("must be at most {MAX_PROPERTIES_BYTES} bytes of JSON"),
                );
            }
            if props
                .keys()
                .any(|k| k.is_empty() || k.chars().count() > 100)
            {
                err("properties", "keys must be 1 to 100 characters long".into());
            }
            match props.get("value") {
                None | Some(Value::Null) => {}
                Some(v) if v.as_f64().is_some_and(|n| n >= 0.0 && n.is_finite()) => {}
                Some(_) => err("properties.value", "must be a number of at least 0".into()),
            }
        }
        if errors.is_empty() {
            Ok(ContactInput {
                email,
                name: name.filter(|n| !n.is_empty()),
                external_id,
                properties: self.properties.clone(),
            })
        } else {
            Err(errors)
        }
    }
}

impl Validate for ContactFields {
    fn validate(&self) -> Result<(), ValidationErrors> {
        match self.check() {
            Ok(_) => Ok(()),
            Err(problems) => {
                let mut errors = ValidationErrors::new();
                for (field, msg) in problems {
                    let mut e = ValidationError::new("invalid");
                    e.message = Some(msg.into());
                    errors.add(field, e);
                }
                Err(errors)
            }
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Contact {
    #[schema(example = "con_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2")]
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub external_id: Option<String>,
    #[schema(value_type = Object)]
    pub properties: Value,
    pub last_surveyed_at: Option<DateTime<Utc>>,
    pub last_responded_at: Option<DateTime<Utc>>,
    pub unsubscribed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<ContactRow> for Contact {
    fn from(row: ContactRow) -> Self {
        Contact {
            properties: serde_json::from_str(&row.properties)
                .unwrap_or_else(|_| Value::Object(Map::new())),
            id: row.id,
            email: row.email,
            name: row.name,
            external_id: row.external_id,
            last_surveyed_at: row.last_surveyed_at.map(utc),
            last_responded_at: row.last_responded_at.map(utc),
            unsubscribed_at: row.unsubscribed_at.map(utc),
            created_at: utc(row.created_at),
            updated_at: utc(row.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactList {
    pub items: Vec<Contact>,
    pub next_cursor: Option<String>,
}

/// Create or update a contact
///
/// Matched by `external_id` first, then by `email`. 201 when created, 200 when updated;
/// 409 when the email belongs to a different contact than the external id.
#[utoipa::path(
    operation_id = "upsert_contact",
    tag = "contacts",
    request_body = ContactFields,
    responses(
        (status = 201, description = "Contact created", body = Contact),
        (status = 200, description = "Contact updated", body = Contact),
        (status = 409, description = "email and external_id name two different contacts", body = crate::web::error::ErrorBody)
    )
)]
#[post("/contacts")]
pub async fn upsert(
    state: web::Data<AppState>,
    caller: Caller,
    body: ValidJson<ContactFields>,
) -> Result<HttpResponse, AppError> {
    caller.require(Role::Admin)?;
    let input = body.0.check().map_err(|problems| {
        AppError::fields(
            problems
                .into_iter()
                .map(|(f, m)| (f.to_string(), vec![m]))
                .collect(),
        )
    })?;
    let (row, created) = state
        .db
        .write(move |conn| crate::store::contacts::upsert(conn, &input))
        .await?;
    let mut res = if created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(res.json(Contact::from(row)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactQuery {
    /// Exact email (compared case-insensitively).
    #[param(pattern = "^[^\\u0000]*$")]
    pub email: Option<String>,
    #[param(pattern = "^[^\\u0000]*$")]
    pub external_id: Option<String>,
    /// Text found, ignoring case, in the email, name or external id (`ada`, `example.com`).
    #[param(max_length = 200, pattern = "^[^\\u0000]*$")]
    pub q: Option<String>,
    /// A property and its value, `key:value` (`plan:enterprise`): contacts with that
    /// property at that value, ignoring case (a number as written, a boolean as
    /// `true`/`false`). The key is 1 to 100 letters, digits, `_` or `-`.
    #[param(pattern = "^[A-Za-z0-9_-]{1,100}:[^\\u0000]*$")]
    pub property: Option<String>,
    /// Items per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^con_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")]
    pub cursor: Option<String>,
}

/// List contacts
#[utoipa::path(
    operation_id = "list_contacts",
    tag = "contacts",
    params(ContactQuery),
    responses((status = 200, description = "Contacts, newest first", body = ContactList))
)]
#[get("/contacts")]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: Query<ContactQuery>,
) -> Result<web::Json<ContactList>, AppError> {
    caller.require(Role::Reader)?;
    let q = query.into_inner();
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .check(IdPrefix::Contact)?;
    if q.q.as_ref().is_some_and(|t| t.chars().count() > 200) {
        return Err(AppError::field("q", "must be at most 200 characters long"));
    }
    let property = match q.property.as_deref() {
        None => None,
        Some(raw) => Some(crate::store::followups::split_property(raw).ok_or_else(|| {
            AppError::field(
                "property",
                "must be key:value, the key 1 to 100 letters, digits, _ or - (plan:enterprise)",
            )
        })?),
    };
    let filter = ContactFilter {
        email: q.email.map(|e| e.trim().to_lowercase()),
        external_id: q.external_id.map(|x| x.trim().to_string()),
        q: q.q,
        property,
    };
    let (rows, next_cursor) = crate::contacts::search(&state, filter, page, true).await?;
    Ok(web::Json(ContactList {
        items: rows.into_iter().map(Contact::from).collect(),
        next_cursor,
    }))
}

/// Get a contact
#[utoipa::path(
    operation_id = "get_contact",
    tag = "contacts",
    params(("id" = String, Path, description = "Contact id", pattern = "^con_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
    responses(
        (status = 200, description = "The contact", body = Contact),
        (status = 404, description = "No such contact (or erased)", body = crate::web::error::ErrorBody)
    )
)]
#[get("/contacts/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<web::Json<Contact>, AppError> {
    caller.require(Role::Reader)?;
    let id = id.into_inner();
    check_id(&id, IdPrefix::Contact, "contact")?;
    let row = state
        .db
        .run(move |conn| crate::store::contacts::get(conn, &id))
        .await?;
    Ok(web::Json(row.into()))
}

/// What an admin may change on a contact by `PATCH` (the rest changes by upsert).
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"unsubscribed": false}))]
pub struct ContactUpdate {
    /// `false` re-subscribes the contact (clears `unsubscribed_at`); `true` unsubscribes it.
    /// Invitations suppressed while unsubscribed stay suppressed.
    pub unsubscribed: bool,
}

/// Unsubscribe or re-subscribe a contact
///
/// Admin only. `{"unsubscribed": false}` undoes an unsubscribe (at any time, unlike the
/// customer's own re-subscribe button, which is offered for 30 days); the change is logged
/// with the API key's name. Repeating it is harmless.
#[utoipa::path(
    operation_id = "update_contact",
    tag = "contacts",
    params(("id" = String, Path, description = "Contact id", pattern = "^con_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
    request_body = ContactUpdate,
    responses(
        (status = 200, description = "The contact after the change", body = Contact),
        (status = 403, description = "Not an admin key", body = crate::web::error::ErrorBody),
        (status = 404, description = "No such contact (or erased)", body = crate::web::error::ErrorBody)
    )
)]
#[patch("/contacts/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: ValidJson<ContactUpdate>,
) -> Result<web::Json<Contact>, AppError> {
    caller.require(Role::Admin)?;
    let id = id.into_inner();
    check_id(&id, IdPrefix::Contact, "contact")?;
    let row = crate::contacts::set_unsubscribed(&state, &id, body.0.unsubscribed, &caller.actor())
        .await?;
    Ok(web::Json(row.into()))
}

/// Erase a contact
///
/// Erases the person's data: email, name, external id, properties, their comments and the
/// follow-up notes about them; pending invitations are cancelled. Scores and counts stay as
/// anonymous aggregates. The contact then answers 404.
#[utoipa::path(
    operation_id = "erase_contact",
    tag = "contacts",
    params(("id" = String, Path, description = "Contact id", pattern = "^con_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
    responses(
        (status = 204, description = "Erased"),
        (status = 404, description = "No such contact (or already erased)", body = crate::web::error::ErrorBody)
    )
)]
#[delete("/contacts/{id}")]
pub async fn erase(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    caller.require(Role::Admin)?;
    let id = id.into_inner();
    check_id(&id, IdPrefix::Contact, "contact")?;
    crate::contacts::erase(&state, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
