//! Closeloop: self-hosted NPS and CSAT surveys with a closed feedback loop.

pub mod api;
pub mod config;
pub mod db;
pub mod domain;
pub mod email;
pub mod followup;
pub mod i18n;
pub mod pages;
pub mod reports;
pub mod startup;
pub mod telemetry;
pub mod webhooks;
