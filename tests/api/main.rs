//! Black-box tests over HTTP against a real server on a random port.

mod helpers;
mod smtp;

mod api_keys;
mod bad_input;
mod cli;
mod contacts;
mod faults;
mod followups;
mod invitations;
mod layers;
mod openapi;
mod ops;
mod pages;
mod queues;
mod reports;
mod spec;
mod surveys;
mod webhooks;
