//! Integration tests of the server with real clients over real sockets.

mod api;
mod big_file;
mod calls;
mod client_crashes;
mod device_lists;
mod devices;
mod faults;
mod files;
mod groups;
mod hostile;
mod journaled;
mod operator;
mod recovery;
mod support;
mod threats;
mod transparency;
mod web;
