//! Arbitrary text as a Dockerfile: the parser (directives, continuations, heredocs, JSON and shell forms)
//! must answer every input with a Dockerfile or an error, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = build::parser::parse(text);
    }
});
