//! Integration tests of the server with real clients over real sockets.

mod api;
mod groups;
mod support;
mod threats;
