//! MixFetch's HTTP/1.1 response reader on whatever a server (or the path) sends, in
//! any chunking, then the end of the connection.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mixfetch::http::{Parsed, ResponseReader};

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let mut r = ResponseReader::new(first & 1 == 1);
    let chunk = 1 + usize::from(first >> 1);
    let mut body = 0usize;
    for part in rest.chunks(chunk) {
        match r.feed(part) {
            Ok(parsed) => {
                for p in parsed {
                    if let Parsed::Data(b) = p {
                        body += b.len();
                    }
                }
            }
            Err(_) => return,
        }
    }
    let _ = r.eof();
    assert!(body <= rest.len(), "more body than bytes");
});
