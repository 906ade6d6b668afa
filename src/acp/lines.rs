//! NDJSON line splitting with a hard length limit.
//!
//! Every peer of the proxy speaks one JSON value per `\n`-terminated line. [`LineReader`] reads
//! from any `AsyncRead` into one growing buffer and hands out complete lines as zero-copy
//! [`Bytes`] slices of it. A line longer than the limit is skipped up to its newline and reported
//! once as [`Line::Overlong`], so one bad frame never desynchronises the stream or exhausts
//! memory. [`LineReader::fill`] is cancel safe: it only awaits `read_buf`, which reads nothing
//! when its future is dropped, so it can sit in a `select!`.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Default limit for one frame: large enough for images, embedded files and `session/load`
/// replays, small enough that a runaway peer cannot exhaust memory.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// How much to ask the kernel for per read.
const READ_CHUNK: usize = 64 * 1024;

/// One item split off the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line without its terminating `\n` (and without a trailing `\r`).
    Frame(Bytes),
    /// A line longer than the limit was dropped; carries its length as far as it was seen.
    Overlong(usize),
}

/// Splits a byte stream into lines of at most `max` bytes.
pub struct LineReader<R> {
    reader: R,
    buf: BytesMut,
    /// Bytes at the front of `buf` already searched for a newline.
    scanned: usize,
    max: usize,
    /// Set while skipping the rest of an overlong line; counts what was skipped.
    skipping: Option<usize>,
    eof: bool,
    /// How much room a read is given: it starts small (an idle client costs little) and
    /// doubles, up to [`READ_CHUNK`], each time a read fills all the room it had.
    chunk: usize,
    /// Whether lines have been handed out of the current allocation. After a large read the
    /// next read then goes to a fresh one: the lines handed out share the old one's reference
    /// count, which the thread that drops them would otherwise contend for with this reader's
    /// next lines. (After a small read the room left is reused: a fresh allocation would cost
    /// more than the little sharing.)
    handed_out: bool,
    /// How many bytes the latest read brought.
    last_read: usize,
}

/// A read at least this large is followed by a fresh allocation (see `handed_out`).
const LARGE_READ: usize = 16 * 1024;

/// The room of a reader's first reads.
const FIRST_CHUNK: usize = 4 * 1024;

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub fn new(reader: R, max: usize) -> Self {
        LineReader {
            reader,
            buf: BytesMut::new(),
            scanned: 0,
            max,
            skipping: None,
            eof: false,
            chunk: FIRST_CHUNK,
            handed_out: false,
            last_read: 0,
        }
    }

    /// Returns the next complete line already buffered, without reading.
    pub fn next_buffered(&mut self) -> Option<Line> {
        loop {
            let pos = memchr::memchr(b'\n', &self.buf[self.scanned..]).map(|p| p + self.scanned);
            match (pos, self.skipping) {
                (Some(pos), Some(skipped)) => {
                    let _ = self.buf.split_to(pos + 1);
                    self.scanned = 0;
                    self.skipping = None;
                    return Some(Line::Overlong(skipped + pos));
                }
                (Some(pos), None) => {
                    let mut line = self.buf.split_to(pos + 1);
                    self.scanned = 0;
                    self.handed_out = true;
                    line.truncate(pos);
                    if line.last() == Some(&b'\r') {
                        line.truncate(pos - 1);
                    }
                    if line.len() > self.max {
                        return Some(Line::Overlong(line.len()));
                    }
                    return Some(Line::Frame(line.freeze()));
                }
                (None, Some(skipped)) => {
                    self.skipping = Some(skipped + self.buf.len());
                    self.buf.clear();
                    self.scanned = 0;
                    return None;
                }
                (None, None) => {
                    // A partial line still loses a trailing `\r` when its newline arrives, so
                    // it is certainly overlong only past `max + 1` bytes; deciding earlier would
                    // make the outcome depend on where the peer's writes were split.
                    if self.buf.len() > self.max.saturating_add(1) {
                        self.skipping = Some(self.buf.len());
                        self.buf.clear();
                        self.scanned = 0;
                        continue;
                    }
                    self.scanned = self.buf.len();
                    return None;
                }
            }
        }
    }

    /// Reads more bytes from the peer. Returns `false` at end of stream. Cancel safe.
    pub async fn fill(&mut self) -> std::io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.handed_out && self.last_read >= LARGE_READ {
            // What is left is at most a partial line: it moves to a fresh allocation.
            let mut fresh = BytesMut::with_capacity(self.buf.len() + self.chunk);
            fresh.extend_from_slice(&self.buf);
            self.buf = fresh;
            self.handed_out = false;
        } else if self.buf.capacity() - self.buf.len() < self.chunk / 4 {
            self.buf.reserve(self.chunk);
        }
        let room = self.buf.capacity() - self.buf.len();
        let n = self.reader.read_buf(&mut self.buf).await?;
        self.last_read = n;
        self.handed_out = false;
        if n == 0 {
            self.eof = true;
        }
        if n == room && self.chunk < READ_CHUNK {
            self.chunk *= 2;
        }
        Ok(n > 0)
    }

    /// Returns the next line, reading as needed; `None` at end of stream. A final line without
    /// a newline is still returned. Cancel safe.
    pub async fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            if let Some(line) = self.next_buffered() {
                return Ok(Some(line));
            }
            if !self.fill().await? {
                return Ok(self.take_tail());
            }
        }
    }

    /// After end of stream: the unterminated last line, if any.
    pub fn take_tail(&mut self) -> Option<Line> {
        if let Some(skipped) = self.skipping.take() {
            return Some(Line::Overlong(skipped + self.buf.len()));
        }
        if self.buf.is_empty() {
            return None;
        }
        let line = self.buf.split().freeze();
        self.scanned = 0;
        if line.len() > self.max {
            return Some(Line::Overlong(line.len()));
        }
        Some(Line::Frame(line))
    }

    /// Takes the reader and what it has buffered but not handed out yet, to go on reading
    /// elsewhere with [`LineReader::resume`].
    pub fn into_parts(self) -> (R, BytesMut) {
        (self.reader, self.buf)
    }

    /// A reader that starts with `buf` (from [`LineReader::into_parts`]) before reading more.
    pub fn resume(reader: R, max: usize, buf: BytesMut) -> Self {
        LineReader {
            reader,
            buf,
            scanned: 0,
            max,
            skipping: None,
            eof: false,
            chunk: FIRST_CHUNK,
            handed_out: false,
            last_read: 0,
        }
    }

    pub fn is_eof(&self) -> bool {
        self.eof
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.reader
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_quiet_peer_gets_little_room_and_a_busy_one_the_full_chunk() {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        let mut reader = LineReader::new(rx, 1 << 20);
        tokio::io::AsyncWriteExt::write_all(&mut tx, b"{\"small\":1}\n")
            .await
            .unwrap();
        assert!(matches!(
            reader.next_line().await.unwrap(),
            Some(Line::Frame(_))
        ));
        assert!(
            reader.buf.capacity() <= FIRST_CHUNK,
            "{}",
            reader.buf.capacity()
        );
        let burst = b"0123456789abcdef\n".repeat(16 * 1024);
        tokio::io::AsyncWriteExt::write_all(&mut tx, &burst)
            .await
            .unwrap();
        drop(tx);
        let mut lines = 0;
        while let Some(line) = reader.next_line().await.unwrap() {
            assert!(matches!(line, Line::Frame(ref l) if l.len() == 16));
            lines += 1;
        }
        assert_eq!(lines, 16 * 1024);
        assert_eq!(reader.chunk, READ_CHUNK);
    }

    async fn all_lines(input: &[u8], max: usize) -> Vec<Line> {
        let mut reader = LineReader::new(input, max);
        let mut out = Vec::new();
        while let Some(line) = reader
            .next_line()
            .await
            .expect("reading a slice cannot fail")
        {
            out.push(line);
        }
        out
    }

    fn frame(s: &str) -> Line {
        Line::Frame(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[tokio::test]
    async fn splits_on_newline_and_strips_carriage_return() {
        let lines = all_lines(b"{\"a\":1}\n{\"b\":2}\r\n", 100).await;
        assert_eq!(lines, vec![frame("{\"a\":1}"), frame("{\"b\":2}")]);
    }

    #[tokio::test]
    async fn unterminated_last_line_is_returned() {
        let lines = all_lines(b"one\ntwo", 100).await;
        assert_eq!(lines, vec![frame("one"), frame("two")]);
    }

    #[tokio::test]
    async fn empty_lines_are_frames_of_length_zero() {
        let lines = all_lines(b"\n\nx\n", 100).await;
        assert_eq!(lines, vec![frame(""), frame(""), frame("x")]);
    }

    #[tokio::test]
    async fn overlong_line_is_skipped_and_stream_resyncs() {
        let mut input = vec![b'x'; 300_000];
        input.extend_from_slice(b"\nok\n");
        let lines = all_lines(&input, 1000).await;
        assert_eq!(lines, vec![Line::Overlong(300_000), frame("ok")]);
    }

    #[tokio::test]
    async fn line_of_exactly_the_limit_passes() {
        let mut input = vec![b'y'; 64];
        input.push(b'\n');
        let lines = all_lines(&input, 64).await;
        assert_eq!(lines, vec![Line::Frame(Bytes::from(vec![b'y'; 64]))]);
    }

    #[tokio::test]
    async fn crlf_line_of_exactly_the_limit_passes_when_split_before_the_newline() {
        // Found by fuzzing: `yyyy\r` arriving before its `\n` was taken for an overlong line.
        let input = tokio::io::AsyncReadExt::chain(&b"yyyy\r"[..], &b"\nz\n"[..]);
        let mut reader = LineReader::new(input, 4);
        let mut lines = Vec::new();
        while let Some(line) = reader
            .next_line()
            .await
            .expect("reading memory cannot fail")
        {
            lines.push(line);
        }
        assert_eq!(lines, vec![frame("yyyy"), frame("z")]);
    }

    #[tokio::test]
    async fn overlong_unterminated_tail_is_reported() {
        let lines = all_lines(&[b'z'; 5000], 100).await;
        assert_eq!(lines, vec![Line::Overlong(5000)]);
    }
}
