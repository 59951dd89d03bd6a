//! The wire: iproto constants and the packet codec. Pure; owned by nobody.

pub mod iproto_constants;
pub mod xrow;
