//! Arbitrary text as an image reference (`docker pull X`, `FROM X`, `docker tag A B`): parsing never
//! panics, and a reference that parses prints as text that parses back to the same reference.
#![no_main]

use image::Reference;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = Reference::parse_normalized(text) {
        let printed = r.to_string();
        let again = Reference::parse_normalized(&printed).unwrap_or_else(|e| {
            panic!("{text:?} parsed, but its printed form {printed:?} does not: {e}")
        });
        assert!(
            again == r,
            "{text:?} -> {printed:?} parses to another reference"
        );
    }
});
