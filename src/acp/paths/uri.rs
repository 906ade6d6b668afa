//! `file:` URIs: the path in the middle, decoded, and the parts around it kept verbatim.
//!
//! Accepted forms are `file:///p`, `file://localhost/p` and `file:/p` (RFC 8089), scheme and
//! host in any case. A query or fragment (`#L10:20` in editors' mentions) is kept as it was. The
//! path is percent-decoded to UTF-8 before mapping and re-encoded minimally afterwards: only bytes
//! that may not stand in a URI path segment are escaped.

/// What a URI string turned out to be.
pub(super) enum Parsed<'a> {
    /// Not a `file:` URI; it passes through translation untouched.
    Other,
    /// A `file:` URI this module cannot read: bad escapes, non-UTF-8 bytes, a remote host.
    Malformed,
    File(FileUri<'a>),
}

/// A `file:` URI split around its path.
pub(super) struct FileUri<'a> {
    /// `file://` plus the authority, or `file:` alone, as written.
    prefix: &'a str,
    /// The decoded path.
    pub path: String,
    /// `?query#fragment`, as written; often empty.
    suffix: &'a str,
}

impl<'a> FileUri<'a> {
    pub fn parse(uri: &'a str) -> Parsed<'a> {
        let is_file = uri
            .get(..5)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("file:"));
        if !is_file {
            return Parsed::Other;
        }
        let after_scheme = &uri[5..];
        let prefix_len = if let Some(after_slashes) = after_scheme.strip_prefix("//") {
            let authority_len = after_slashes.find('/').unwrap_or(after_slashes.len());
            let authority = &after_slashes[..authority_len];
            if !(authority.is_empty() || authority.eq_ignore_ascii_case("localhost")) {
                return Parsed::Malformed;
            }
            5 + 2 + authority_len
        } else {
            5
        };
        let (prefix, rest) = uri.split_at(prefix_len);
        if !rest.starts_with('/') {
            return Parsed::Malformed;
        }
        let path_len = rest.find(['?', '#']).unwrap_or(rest.len());
        let (raw_path, suffix) = rest.split_at(path_len);
        match decode(raw_path) {
            Some(path) => Parsed::File(FileUri {
                prefix,
                path,
                suffix,
            }),
            None => Parsed::Malformed,
        }
    }

    /// The same URI around another path.
    pub fn with_path(&self, path: &str) -> String {
        let mut out = String::with_capacity(self.prefix.len() + path.len() + self.suffix.len() + 8);
        out.push_str(self.prefix);
        encode_into(path, &mut out);
        out.push_str(self.suffix);
        out
    }
}

/// Percent-decodes `raw`; `None` on a malformed escape or bytes that are not UTF-8.
fn decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = hex(*bytes.get(i + 1)?)?;
            let lo = hex(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex(byte: u8) -> Option<u8> {
    char::from(byte).to_digit(16).map(|d| d as u8)
}

/// Appends `path` with every byte outside RFC 3986 `pchar` and `/` percent-encoded.
fn encode_into(path: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in path.as_bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::acp::paths::PathMap;

    fn proj() -> PathMap {
        PathMap::new([("/home/u/my proj", "/workspace")]).unwrap()
    }

    #[test]
    fn file_uri_maps_both_ways() {
        let map = PathMap::new([("/home/u/proj", "/workspace")]).unwrap();
        assert_eq!(
            map.uri_to_container("file:///home/u/proj/src/a.rs")
                .as_deref(),
            Some("file:///workspace/src/a.rs")
        );
        assert_eq!(
            map.uri_to_host("file:///workspace/src/a.rs").as_deref(),
            Some("file:///home/u/proj/src/a.rs")
        );
    }

    #[test]
    fn file_uri_with_spaces_is_decoded_and_reencoded() {
        let map = proj();
        assert_eq!(
            map.uri_to_container("file:///home/u/my%20proj/a%20b.rs")
                .as_deref(),
            Some("file:///workspace/a%20b.rs")
        );
        assert_eq!(
            map.uri_to_host("file:///workspace/a%20b.rs").as_deref(),
            Some("file:///home/u/my%20proj/a%20b.rs")
        );
    }

    #[test]
    fn file_uri_percent_encoding_round_trips_reserved_and_unicode() {
        let map = proj();
        let host = map
            .uri_to_host("file:///workspace/100%25/%C3%A9t%C3%A9/%3F%23%5B%5D.md")
            .unwrap();
        assert_eq!(
            host,
            "file:///home/u/my%20proj/100%25/%C3%A9t%C3%A9/%3F%23%5B%5D.md"
        );
        assert_eq!(
            map.uri_to_container(&host).as_deref(),
            Some("file:///workspace/100%25/%C3%A9t%C3%A9/%3F%23%5B%5D.md")
        );
    }

    #[test]
    fn file_uri_lowercase_escapes_and_raw_unicode_are_accepted() {
        let map = proj();
        assert_eq!(
            map.uri_to_host("file:///workspace/%c3%a9/ü").as_deref(),
            Some("file:///home/u/my%20proj/%C3%A9/%C3%BC")
        );
    }

    #[test]
    fn file_uri_sub_delims_stay_unencoded() {
        let map = PathMap::identity();
        assert_eq!(
            map.uri_to_host("file:///a/b+c=d,e;f@g:h!$&'()*~")
                .as_deref(),
            Some("file:///a/b+c=d,e;f@g:h!$&'()*~")
        );
    }

    #[test]
    fn file_uri_query_and_fragment_are_kept() {
        let map = PathMap::new([("/home/u/proj", "/workspace")]).unwrap();
        assert_eq!(
            map.uri_to_host("file:///workspace/a.rs#L10:20").as_deref(),
            Some("file:///home/u/proj/a.rs#L10:20")
        );
        assert_eq!(
            map.uri_to_host("file:///workspace/a.rs?symbol=main#L3")
                .as_deref(),
            Some("file:///home/u/proj/a.rs?symbol=main#L3")
        );
    }

    #[test]
    fn file_uri_localhost_and_single_slash_forms() {
        let map = PathMap::new([("/home/u/proj", "/workspace")]).unwrap();
        assert_eq!(
            map.uri_to_host("file://localhost/workspace/a").as_deref(),
            Some("file://localhost/home/u/proj/a")
        );
        assert_eq!(
            map.uri_to_host("FILE:/workspace/a").as_deref(),
            Some("FILE:/home/u/proj/a")
        );
    }

    #[test]
    fn file_uri_escape_is_refused() {
        let map = PathMap::new([("/home/u/proj", "/workspace")]).unwrap();
        assert_eq!(map.uri_to_host("file:///workspace/../etc/passwd"), None);
        assert_eq!(map.uri_to_host("file:///workspace/%2E%2E/etc/passwd"), None);
        assert_eq!(map.uri_to_host("file:///workspace2/a"), None);
    }

    #[test]
    fn malformed_file_uris_map_nowhere() {
        let map = PathMap::identity();
        for uri in [
            "file://server/share/a",
            "file:relative/a",
            "file://",
            "file:///a/%zz",
            "file:///a/%4",
            "file:///a/%ff",
            "file:///a/%00",
        ] {
            assert_eq!(map.uri_to_host(uri), None, "{uri:?}");
        }
    }

    #[test]
    fn other_schemes_pass_unchanged() {
        let map = PathMap::new([("/home/u/proj", "/workspace")]).unwrap();
        for uri in [
            "https://example.com/workspace/a",
            "zed:///agent/thread/1",
            "untitled:1",
            "",
            "é",
            "fil",
        ] {
            assert_eq!(map.uri_to_host(uri).as_deref(), Some(uri), "{uri:?}");
            assert_eq!(map.uri_to_container(uri).as_deref(), Some(uri), "{uri:?}");
        }
    }
}
