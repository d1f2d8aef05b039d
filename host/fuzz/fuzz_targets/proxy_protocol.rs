//! The PROXY protocol parser on arbitrary bytes: never panics, and every
//! header it accepts survives re-encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    bascule::l4::proxy_protocol::check_round_trip(bytes);
});
