//! Wire types shared by the Missive server and its clients: API bodies, push frames, errors with
//! stable codes, and the application payload carried inside MLS messages.
//!
//! Everything here is pure data. Binary fields travel as unpadded base64url strings ([`B64`]).

#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod b64;
pub mod cert;
pub mod devicelist;
pub mod error;
pub mod kt;

pub use b64::B64;
pub use error::{ErrorBody, ErrorCode};

/// Version of the HTTP API; every route lives under `/v1`.
pub const API_VERSION: &str = "v1";
