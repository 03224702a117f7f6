#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| device_grant_fuzz::device_authorization(data));
