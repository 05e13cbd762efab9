//! Authentication: who is calling. It belongs to the HTTP edge both APIs
//! share ([`basketry_http::auth`]); this path re-exports it.

pub use basketry_http::auth::*;
