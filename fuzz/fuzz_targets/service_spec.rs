//! Service spec validation as the manager runs it on every create and
//! update: any protobuf a client sends decodes or not, and a decoded spec is
//! accepted or refused with a message, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use shoal_manager::spec::{validate_name, validate_service_spec};
use shoal_proto::v1::ServiceSpec;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = ServiceSpec::decode(data) else {
        return;
    };
    let verdict = validate_service_spec(&spec);
    if verdict.is_ok() {
        assert!(validate_name(&spec.name).is_ok());
    }
});
