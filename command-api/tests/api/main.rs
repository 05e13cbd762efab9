//! Black-box tests of the command API: the real server on port 0, over HTTP.

mod baskets;
mod billing;
mod errors;
mod helpers;
mod hostile;
mod idempotency;
mod identities;
mod openapi;
mod partners;
mod security;
mod subscriptions;
