//! Integration tests of the server with real clients over real sockets.

mod api;
mod big_file;
mod files;
mod groups;
mod support;
mod threats;
