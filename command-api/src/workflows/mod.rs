//! Commands that span several streams, each in a module of its own that
//! reads every stream once and returns what its callers answer with. The
//! handlers in [`crate::routes`] parse the request, call a workflow and
//! render what it returns.
//!
//! * [`subscribe`] — subscribing (a person, or a partner for its customer)
//!   and changing a subscription's status: the subscription's stream, the
//!   user's reservation and the partner's revenue share.

pub mod subscribe;
