//! WebTransport stream framing: arbitrary bytes in arbitrary chunks never panic and
//! never hold more than a record's worth; what is encoded decodes back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mixnet_core::framing::{Decoder, Record, encode, encode_close};

fuzz_target!(|data: &[u8]| {
    let mut d = Decoder::new();
    let mut i = 0;
    while i < data.len() {
        let n = 1 + usize::from(data[i]) * 7 % 4096;
        d.push(&data[i..(i + n).min(data.len())]);
        i += n;
        while d.next_record().is_some() {}
        assert!(d.pending() <= 65_537 + 4096, "decoder holds {} B", d.pending());
    }
    if let Ok(framed) = encode(data) {
        let mut d = Decoder::new();
        d.push(&framed);
        assert_eq!(d.next_record(), Some(Record::Message(data.to_vec())));
    }
    let reason = String::from_utf8_lossy(data);
    let mut d = Decoder::new();
    d.push(&encode_close(4001, &reason));
    assert!(matches!(d.next_record(), Some(Record::Close { .. })));
});
