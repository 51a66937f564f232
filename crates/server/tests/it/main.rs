//! Integration tests of the server with real clients over real sockets.

mod api;
mod files;
mod groups;
mod support;
mod threats;
