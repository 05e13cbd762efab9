//! Response bodies, one `Serialize` + `ToSchema` struct per shape, built
//! from domain state on the command side and from rows on the query side.
