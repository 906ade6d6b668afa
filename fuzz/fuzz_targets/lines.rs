//! `LineReader`: splitting must not depend on how the stream is chunked.
//!
//! Input: `[max, k, size_1..size_k, data...]`. The data is fed through a reader that returns
//! at most `size_i` bytes per read (cycling), and the lines that come out must equal a plain
//! reference split of the whole data: complete lines lose their `\n` and one trailing `\r`,
//! an unterminated tail is kept as is, and any line longer than `max` is reported as overlong
//! (with a length over `max`) instead of being returned.

#![no_main]

use std::pin::Pin;
use std::task::{Context, Poll};

use libfuzzer_sys::fuzz_target;
use terok_executor::acp::lines::{Line, LineReader};
use tokio::io::{AsyncRead, ReadBuf};

struct Chunked<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    turn: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let size = self.sizes[self.turn % self.sizes.len()];
        self.turn += 1;
        let n = size.min(self.data.len()).min(buf.remaining());
        let (now, rest) = self.data.split_at(n);
        buf.put_slice(now);
        self.data = rest;
        Poll::Ready(Ok(()))
    }
}

#[derive(Debug, PartialEq)]
enum Expected {
    Frame(Vec<u8>),
    Overlong,
}

fn reference(data: &[u8], max: usize) -> Vec<Expected> {
    let mut out = Vec::new();
    let mut parts: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let tail = parts.pop().unwrap_or_default();
    for line in parts {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.push(if line.len() > max {
            Expected::Overlong
        } else {
            Expected::Frame(line.to_vec())
        });
    }
    if !tail.is_empty() {
        out.push(if tail.len() > max {
            Expected::Overlong
        } else {
            Expected::Frame(tail.to_vec())
        });
    }
    out
}

fuzz_target!(|input: &[u8]| {
    let [max, k, rest @ ..] = input else { return };
    let max = usize::from(*max % 48);
    let k = usize::from(*k % 8).min(rest.len());
    let (sizes, data) = rest.split_at(k);
    let mut sizes: Vec<usize> = sizes.iter().map(|s| usize::from(s % 32) + 1).collect();
    if sizes.is_empty() {
        sizes.push(data.len().max(1));
    }
    let mut reader = LineReader::new(
        Chunked {
            data,
            sizes,
            turn: 0,
        },
        max,
    );
    let mut got = Vec::new();
    while let Some(line) =
        futures::executor::block_on(reader.next_line()).expect("reading memory cannot fail")
    {
        got.push(match line {
            Line::Frame(bytes) => {
                assert!(bytes.len() <= max, "a frame over the limit came through");
                Expected::Frame(bytes.to_vec())
            }
            Line::Overlong(len) => {
                assert!(len > max, "overlong line of {len} bytes, limit {max}");
                Expected::Overlong
            }
        });
        assert!(got.len() <= data.len() + 1, "more lines than bytes");
    }
    assert_eq!(got, reference(data, max));
});
