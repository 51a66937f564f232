//! The public MLS framing the server decodes: messages, PrivateMessage headers, GroupInfo
//! (group creation), Welcomes and key packages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use missive_server::groups;

fuzz_target!(|data: &[u8]| {
    let _ = groups::parse_message(data);
    let _ = groups::private_message_header(data);
    let _ = groups::parse_group_info(data);
    let _ = groups::GroupState::create(data);
    let _ = groups::check_welcome(data);
    // A key package checked against a certificate cut from the same input.
    let (cert, package) = data.split_at(data.len() / 3);
    let _ = groups::check_key_package(package, cert);
});
