//! Black-box tests over HTTP against a real server on a random port.

mod helpers;
mod smtp;

mod api_keys;
mod app_auth;
mod app_contacts;
mod app_inbox;
mod app_reports;
mod app_settings;
mod app_surveys;
mod app_task;
mod bad_input;
mod cli;
mod contacts;
mod demo;
mod faults;
mod followups;
mod hostile;
mod inbox;
mod invitations;
mod layers;
mod metrics;
mod openapi;
mod ops;
mod outage;
mod pages;
mod parallel;
mod queues;
mod recovery;
mod reports;
mod segments;
mod spec;
mod standard_webhooks;
mod surveys;
mod webhooks;
