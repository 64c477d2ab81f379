//! The shape every variable-length message of the core shares on the wire (smoltcp's
//! `Repr`): a typed value [`Repr::parse`]d from bytes, that knows its
//! [`Repr::buffer_len`] and [`Repr::emit`]s itself into a caller's buffer of exactly
//! that length. Session frames, message contents and stream messages are `Repr`s;
//! fixed-layout packets (the Sphinx header, fragments) are checked views with named
//! field ranges instead (`sphinx::header::field`, `message::fragment::field`).

/// A message's typed form, and its wire form.
pub trait Repr: Sized {
    /// Why bytes are not this message.
    type Error;

    /// Reads the message from exactly `bytes`.
    fn parse(bytes: &[u8]) -> Result<Self, Self::Error>;

    /// The length of its wire form.
    fn buffer_len(&self) -> usize;

    /// Writes its wire form into `buf`, which is [`Self::buffer_len`] bytes long.
    ///
    /// # Panics
    /// If `buf` is shorter.
    fn emit(&self, buf: &mut [u8]);

    /// Its wire form in a new buffer (one allocation, of the exact size).
    fn to_bytes(&self) -> Vec<u8> {
        let mut buf = vec![0; self.buffer_len()];
        self.emit(&mut buf);
        buf
    }
}

/// Writes fields one after another into a buffer sized by `buffer_len`.
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, at: 0 }
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
        self
    }

    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.put(&[v])
    }

    pub(crate) fn u16(&mut self, v: u16) -> &mut Self {
        self.put(&v.to_be_bytes())
    }

    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.put(&v.to_be_bytes())
    }

    /// The unwritten rest of the buffer.
    pub(crate) fn rest(&mut self) -> &mut [u8] {
        &mut self.buf[self.at..]
    }

    /// Moves past `n` bytes written through [`Self::rest`].
    pub(crate) fn skip(&mut self, n: usize) -> &mut Self {
        self.at += n;
        self
    }
}

/// Reads fields one after another; `None` past the end.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.rest.split_at_checked(n)?;
        self.rest = rest;
        Some(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.array()?))
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}
