//! Black-box tests over HTTP against a real server on a random port.

mod helpers;
mod smtp;

mod api_keys;
mod app_inbox;
mod bad_input;
mod cli;
mod contacts;
mod faults;
mod followups;
mod hostile;
mod invitations;
mod layers;
mod openapi;
mod ops;
mod outage;
mod pages;
mod parallel;
mod queues;
mod reports;
mod spec;
mod surveys;
mod webhooks;
