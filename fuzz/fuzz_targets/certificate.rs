//! Device certificates, as the server parses and verifies them at registration.
#![no_main]

use libfuzzer_sys::fuzz_target;
use missive_proto::cert::DeviceCertificate;

fuzz_target!(|data: &[u8]| {
    if let Ok(cert) = DeviceCertificate::from_bytes(data) {
        let _ = cert.verify();
        // What parses must serialize back to the same bytes (one encoding per certificate).
        assert_eq!(cert.to_bytes(), data);
    }
});
