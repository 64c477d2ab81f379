//! URL parsing and redirect resolution on arbitrary strings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mixfetch::url::Url;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (a, b) = text.split_at(text.char_indices().nth(text.chars().count() / 2).map_or(text.len(), |(i, _)| i));
    if let Ok(u) = Url::parse(a) {
        // what we print parses back to the same URL
        assert_eq!(Url::parse(&u.to_string()).as_ref(), Ok(&u), "{a:?}");
        if let Ok(j) = u.join(b) {
            let _ = (j.authority(), j.scheme(), j.same_origin(&u));
        }
    }
    let _ = Url::parse(text);
});
