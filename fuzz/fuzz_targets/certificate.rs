//! Device certificates and signed device lists, as the server parses and verifies them
//! (registration, publishing a list) and clients do (every leaf, every list served).
#![no_main]

use libfuzzer_sys::fuzz_target;
use missive_proto::cert::DeviceCertificate;
use missive_proto::devicelist::DeviceList;

fuzz_target!(|data: &[u8]| {
    if let Ok(cert) = DeviceCertificate::from_bytes(data) {
        let _ = cert.verify();
        // What parses must serialize back to the same bytes (one encoding per certificate).
        assert_eq!(cert.to_bytes(), data);
    }
    if let Ok(list) = DeviceList::from_bytes(data) {
        let _ = list.verify();
        assert_eq!(list.to_bytes(), data);
        // Sorted, unique ids: a lookup finds every listed device.
        assert!(list.devices.iter().all(|d| list.lists(&d.device_id, &d.device_key)));
    }
});
