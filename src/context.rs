//! What every use case and front door can reach: the store, the settings, the metrics, the
//! mail transport and the bells that wake the background workers after a commit.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::Settings;
use crate::email::Mailer;
use crate::store::Db;
use crate::telemetry::Metrics;

/// What every use case and handler can reach.
pub struct AppState {
    pub db: Db,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    pub mailer: Mailer,
    /// Wakes the email dispatcher when invitations are queued.
    pub wake_dispatcher: Arc<Notify>,
    /// Wakes the webhook worker when deliveries are queued (after the commit).
    pub wake_webhooks: Arc<Notify>,
    /// This process's name on its queue claims (see `Settings::instance_id`).
    pub instance_id: Arc<str>,
}
