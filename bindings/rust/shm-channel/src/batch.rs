//! Messages stored back to back, as the batch calls of the C library take and give them.

/// A list of messages stored back to back in one buffer, for
/// [`Producer::write_batch`](crate::Producer::write_batch) and
/// [`Consumer::read_batch`](crate::Consumer::read_batch): one call moves many messages,
/// which matters for small ones.
///
/// ```
/// use shm_channel::Batch;
///
/// let mut batch = Batch::new();
/// batch.push(b"first");
/// batch.push(b"");
/// batch.push(b"third");
/// assert_eq!(batch.len(), 3);
/// assert_eq!(batch.bytes(), b"firstthird");
/// assert_eq!(batch.iter().nth(2), Some(&b"third"[..]));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    data: Vec<u8>,
    lens: Vec<u64>,
}

impl Batch {
    /// An empty batch.
    ///
    /// ```
    /// assert!(shm_channel::Batch::new().is_empty());
    /// ```
    pub fn new() -> Batch {
        Batch::default()
    }

    /// An empty batch with room for `bytes` bytes of payload and `messages` messages.
    /// For [`Consumer::read_batch`](crate::Consumer::read_batch), the byte capacity is how
    /// much one call may read.
    ///
    /// ```
    /// let batch = shm_channel::Batch::with_capacity(1 << 16, 1024);
    /// assert!(batch.capacity() >= 1 << 16);
    /// ```
    pub fn with_capacity(bytes: usize, messages: usize) -> Batch {
        Batch {
            data: Vec::with_capacity(bytes),
            lens: Vec::with_capacity(messages),
        }
    }

    /// Appends a message.
    ///
    /// ```
    /// let mut batch = shm_channel::Batch::new();
    /// batch.push(&[1, 2, 3]);
    /// assert_eq!(batch.len(), 1);
    /// ```
    #[inline]
    pub fn push(&mut self, msg: &[u8]) {
        self.data.extend_from_slice(msg);
        self.lens.push(msg.len() as u64);
    }

    /// Number of messages.
    ///
    /// ```
    /// let batch: shm_channel::Batch = [&b"a"[..], b"b"].into_iter().collect();
    /// assert_eq!(batch.len(), 2);
    /// ```
    #[inline]
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// Whether the batch holds no message (an empty message is a message).
    ///
    /// ```
    /// let mut batch = shm_channel::Batch::new();
    /// assert!(batch.is_empty());
    /// batch.push(b"");
    /// assert!(!batch.is_empty());
    /// ```
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Byte capacity of the payload buffer.
    ///
    /// ```
    /// assert_eq!(shm_channel::Batch::new().capacity(), 0);
    /// ```
    pub fn capacity(&self) -> usize {
        self.data.capacity()
    }

    /// Removes every message, keeping the allocated space.
    ///
    /// ```
    /// let mut batch = shm_channel::Batch::with_capacity(100, 10);
    /// batch.push(b"x");
    /// batch.clear();
    /// assert!(batch.is_empty() && batch.capacity() >= 100);
    /// ```
    #[inline]
    pub fn clear(&mut self) {
        self.data.clear();
        self.lens.clear();
    }

    /// All payload bytes, back to back.
    ///
    /// ```
    /// let batch: shm_channel::Batch = [&b"ab"[..], b"cd"].into_iter().collect();
    /// assert_eq!(batch.bytes(), b"abcd");
    /// ```
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// All payload bytes, back to back, for changing messages in place (their lengths stay).
    ///
    /// ```
    /// let mut batch: shm_channel::Batch = [&[0u8; 4][..], &[0u8; 4]].into_iter().collect();
    /// for (i, msg) in batch.bytes_mut().chunks_mut(4).enumerate() {
    ///     msg.copy_from_slice(&(i as u32).to_le_bytes()); // e.g. a sequence number
    /// }
    /// assert_eq!(batch.iter().nth(1), Some(&1u32.to_le_bytes()[..]));
    /// ```
    #[inline]
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// The messages, in order.
    ///
    /// ```
    /// let batch: shm_channel::Batch = [&b"ab"[..], b"cd"].into_iter().collect();
    /// let lens: Vec<usize> = batch.iter().map(<[u8]>::len).collect();
    /// assert_eq!(lens, [2, 2]);
    /// ```
    #[inline]
    pub fn iter(&self) -> BatchIter<'_> {
        BatchIter {
            data: &self.data,
            lens: self.lens.iter(),
        }
    }

    #[inline]
    pub(crate) fn raw_lens(&self) -> &[u64] {
        &self.lens
    }

    #[inline]
    pub(crate) fn raw_parts_mut(&mut self) -> (&mut Vec<u8>, &mut Vec<u64>) {
        (&mut self.data, &mut self.lens)
    }
}

impl<'a> Extend<&'a [u8]> for Batch {
    /// Appends every message of the iterator.
    ///
    /// ```
    /// let mut batch = shm_channel::Batch::new();
    /// batch.extend([&b"x"[..], b"y"]);
    /// assert_eq!(batch.len(), 2);
    /// ```
    fn extend<I: IntoIterator<Item = &'a [u8]>>(&mut self, iter: I) {
        for msg in iter {
            self.push(msg);
        }
    }
}

impl<'a> FromIterator<&'a [u8]> for Batch {
    /// A batch of the iterator's messages.
    ///
    /// ```
    /// let batch: shm_channel::Batch = ["a", "bc"].iter().map(|s| s.as_bytes()).collect();
    /// assert_eq!(batch.bytes(), b"abc");
    /// ```
    fn from_iter<I: IntoIterator<Item = &'a [u8]>>(iter: I) -> Batch {
        let mut batch = Batch::new();
        batch.extend(iter);
        batch
    }
}

impl<'a> IntoIterator for &'a Batch {
    type Item = &'a [u8];
    type IntoIter = BatchIter<'a>;

    /// Same as [`Batch::iter`].
    ///
    /// ```
    /// let batch: shm_channel::Batch = [&b"a"[..]].into_iter().collect();
    /// for msg in &batch {
    ///     assert_eq!(msg, b"a");
    /// }
    /// ```
    fn into_iter(self) -> BatchIter<'a> {
        self.iter()
    }
}

/// Iterator over the messages of a [`Batch`].
///
/// ```
/// let batch: shm_channel::Batch = [&b"a"[..], b"b"].into_iter().collect();
/// let mut it: shm_channel::BatchIter<'_> = batch.iter();
/// assert_eq!(it.next(), Some(&b"a"[..]));
/// assert_eq!(it.len(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct BatchIter<'a> {
    data: &'a [u8],
    lens: std::slice::Iter<'a, u64>,
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let len = *self.lens.next()? as usize;
        let (msg, rest) = self.data.split_at(len);
        self.data = rest;
        Some(msg)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.lens.size_hint()
    }
}

impl ExactSizeIterator for BatchIter<'_> {}
impl std::iter::FusedIterator for BatchIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_iter_and_lens_stay_in_step() {
        let mut b = Batch::new();
        let msgs: [&[u8]; 4] = [b"", b"a", b"", b"bcd"];
        b.extend(msgs);
        assert_eq!(b.len(), 4);
        assert_eq!(b.raw_lens(), &[0, 1, 0, 3]);
        assert_eq!(b.bytes(), b"abcd");
        assert_eq!(b.iter().collect::<Vec<_>>(), msgs);
        assert_eq!(b.iter().len(), 4);
        b.clear();
        assert!(b.is_empty() && b.bytes().is_empty() && b.iter().next().is_none());
    }

    #[test]
    fn equal_batches_compare_equal() {
        let a: Batch = [&b"x"[..], b"yz"].into_iter().collect();
        let mut b = Batch::with_capacity(100, 10);
        b.push(b"x");
        b.push(b"yz");
        assert_eq!(a, b);
        b.push(b"");
        assert_ne!(a, b);
    }
}
