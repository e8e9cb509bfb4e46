//! Feeds arbitrary text to the configuration parser: it must refuse or accept, never
//! panic. Run with `cargo +nightly fuzz run parse` from `config/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let env = |name: &str| (name == "PORT").then(|| "8080".to_string());
    let _ = percore_config::parse_str(std::path::Path::new("fuzz.cfg"), &text, &env);
});
