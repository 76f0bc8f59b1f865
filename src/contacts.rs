//! Contacts: erasing a person's data (the right to be forgotten), for every front door.

use diesel::Connection;

use crate::context::AppState;
use crate::domain::now;
use crate::error::AppError;
use crate::store::{contacts, emails, followups, invitations, responses};

/// Erases a person: name, email, external id and properties are cleared, their comments and
/// the follow-up notes about them are blanked, pending invitations are cancelled and queued
/// emails to them are dropped. Scores, categories and counts stay, so reports keep their
/// anonymous aggregates. The contact then answers 404.
pub async fn erase(state: &AppState, id: &str) -> Result<(), AppError> {
    let id = id.to_string();
    state
        .db
        .write(move |conn| {
            conn.transaction(|conn| {
                let row = contacts::get(conn, &id)?;
                let t = now();
                contacts::clear_personal_data(conn, &id, t)?;
                responses::clear_comments_of_contact(conn, &id)?;
                followups::clear_text_of_contact(conn, &id)?;
                invitations::cancel_scheduled_of_contact(conn, &id, "contact_erased", t)?;
                if let Some(email) = row.email {
                    emails::erase_address(conn, &email)?;
                }
                Ok(())
            })
        })
        .await
}
