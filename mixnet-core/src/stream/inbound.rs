//! One direction of a stream put back in order.

use std::collections::BTreeMap;

/// Reorders one direction of a stream, holding at most `max_bytes` out of order.
#[derive(Debug)]
pub(crate) struct Inbound {
    next: u64,
    pending: BTreeMap<u64, Vec<u8>>,
    bytes: usize,
    max_bytes: usize,
    close: Option<(u64, Option<String>)>,
    finished: bool,
}

/// In-order output of [`Inbound`].
pub(crate) enum Ordered {
    Data(Vec<u8>),
    End(Option<String>),
}

impl Inbound {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self { next: 0, pending: BTreeMap::new(), bytes: 0, max_bytes, close: None, finished: false }
    }

    /// Bytes held out of order.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether the direction ended (its `Close` and every message before it arrived).
    pub(crate) fn finished(&self) -> bool {
        self.finished
    }

    /// Adds a data message; returns what can now be delivered in order.
    pub(crate) fn data(&mut self, seq: u64, data: Vec<u8>) -> Result<Vec<Ordered>, &'static str> {
        if seq >= self.next && !self.finished && !self.pending.contains_key(&seq) {
            if self.close.as_ref().is_some_and(|(end, _)| seq >= *end) {
                return Err("data after the end of the stream");
            }
            // in-order data leaves at once; only what waits for a gap counts
            if seq > self.next && self.bytes + data.len() > self.max_bytes {
                return Err("too much out-of-order data");
            }
            self.bytes += data.len();
            self.pending.insert(seq, data);
        }
        Ok(self.drain())
    }

    pub(crate) fn close(&mut self, seq: u64, error: Option<String>) -> Vec<Ordered> {
        if self.close.is_none() && !self.finished {
            self.close = Some((seq, error));
        }
        self.drain()
    }

    fn drain(&mut self) -> Vec<Ordered> {
        let mut out = Vec::new();
        while let Some(d) = self.pending.remove(&self.next) {
            self.next += 1;
            self.bytes -= d.len();
            out.push(Ordered::Data(d));
        }
        if let Some((seq, _)) = &self.close
            && *seq <= self.next
            && !self.finished
        {
            self.finished = true;
            self.pending.clear();
            self.bytes = 0;
            out.push(Ordered::End(self.close.take().and_then(|c| c.1)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn texts(out: Vec<Ordered>) -> Vec<String> {
        out.into_iter()
            .map(|o| match o {
                Ordered::Data(d) => String::from_utf8(d).unwrap(),
                Ordered::End(_) => "END".into(),
            })
            .collect()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn inbound_reorders_ends_after_the_last_data_and_bounds_what_it_holds() {
        let mut i = Inbound::new(2);
        assert!(i.close(3, None).is_empty());
        assert!(i.data(2, b"c".to_vec()).unwrap().is_empty());
        assert!(i.data(2, b"c".to_vec()).unwrap().is_empty(), "a duplicate is not counted twice");
        assert!(i.data(1, b"b".to_vec()).unwrap().is_empty());
        assert_eq!(i.bytes(), 2);
        assert_eq!(i.data(5, b"x".to_vec()).err(), Some("data after the end of the stream"));
        assert_eq!(texts(i.data(0, b"a".to_vec()).unwrap()), ["a", "b", "c", "END"]);
        assert_eq!(i.bytes(), 0);
        // duplicates after the end are ignored
        assert!(i.data(1, b"b".to_vec()).unwrap().is_empty());
        let mut j = Inbound::new(3);
        j.data(1, b"xx".to_vec()).unwrap();
        assert_eq!(j.data(2, b"yy".to_vec()).err(), Some("too much out-of-order data"));
    }
}
