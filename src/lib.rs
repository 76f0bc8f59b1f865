//! Closeloop: self-hosted NPS and CSAT surveys with a closed feedback loop.
//!
//! Layers, whose imports point one way (a test in `tests/api/layers.rs` enforces it):
//! `startup` → `web` → use cases → `store` → `domain`, `error`, `config`, `telemetry`,
//! `i18n`. The use cases are `answers`, `invitations`, `followups`, `webhooks`, `reports`,
//! `contacts`, `members` (the workspace's team and sign-in), `housekeeping` (the daily retention prune) and `email`, with `context` (what they all reach) and `views` (the JSON shapes
//! shared by the API and webhook payloads). `demo` (the data of `closeloop demo`) calls the
//! use cases from beside `web`.

pub mod answers;
pub mod config;
pub mod contacts;
pub mod context;
pub mod demo;
pub mod domain;
pub mod email;
pub mod error;
pub mod followups;
pub mod housekeeping;
pub mod i18n;
pub mod invitations;
pub mod members;
pub mod queues;
pub mod reports;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod views;
pub mod web;
pub mod webhooks;
