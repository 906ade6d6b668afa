//! The real vault's test helpers: terok-sandbox's Python (from the venv `.ci/run` makes) and a
//! stand-in for a vendor's API.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The Python with terok-sandbox 0.6.0 named by `TEROK_TEST_SANDBOX_PY`; `None` (skip) without
/// it, a panic under CI.
pub fn sandbox_python() -> Option<PathBuf> {
    match std::env::var_os("TEROK_TEST_SANDBOX_PY") {
        Some(p) if Path::new(&p).is_file() => Some(PathBuf::from(p)),
        _ if std::env::var_os("CI").is_some() => panic!(
            "TEROK_TEST_SANDBOX_PY does not name a Python with terok-sandbox 0.6.0 (.ci/run makes it)"
        ),
        _ => {
            eprintln!("skipping: set TEROK_TEST_SANDBOX_PY to a Python with terok-sandbox 0.6.0");
            None
        }
    }
}

/// The header lines of each request an upstream received, in order.
pub type Seen = Arc<Mutex<Vec<Vec<String>>>>;

/// A stand-in for a vendor's API on 127.0.0.1: answers 200 with `{}` and keeps each request's
/// header lines, then its body (when it has a `Content-Length`) as one last line `body: ...`.
/// Returns its port.
pub fn mock_upstream() -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut lines = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                lines.push(line.trim_end().to_owned());
            }
            let length = lines.iter().find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())
                    .flatten()
            });
            if let Some(length) = length {
                let mut body = vec![0; length];
                if std::io::Read::read_exact(&mut reader, &mut body).is_ok() {
                    lines.push(format!("body: {}", String::from_utf8_lossy(&body)));
                }
            }
            record.lock().unwrap().push(lines);
            let mut stream = stream;
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
            );
        }
    });
    (port, seen)
}
