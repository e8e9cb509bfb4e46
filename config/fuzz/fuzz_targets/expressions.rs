//! Arbitrary text as a sample expression (fetch and converters) and as a log-format
//! string, for logs and for rules: each compiler refuses or accepts, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use percore_config::rules::logformat::LogFormat;
use percore_config::rules::sample::Sample;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let no_files = |f: &str| -> Result<String, String> { Err(format!("no file {f}")) };
    let _ = Sample::parse(&text, &no_files);
    let _ = LogFormat::parse_log(&text, &no_files);
    let _ = LogFormat::parse(&text, &no_files);
});
