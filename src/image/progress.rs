//! Build output for people: a redrawn status line on a terminal, plain lines otherwise.
//!
//! The builder's output is a stream of text chunks. Lines of the form `STEP n/m: <instruction>`
//! (Podman) or `Step n/m : <instruction>` (Docker) start a step; everything else is the step's
//! output. On a terminal only the status line is shown (stage, step n/m, elapsed time, current
//! instruction) and the last lines of output are kept, so a failed step can show its tail. Off a
//! terminal every line is written as it comes.

use std::collections::VecDeque;
use std::io::Write;
use std::time::{Duration, Instant};

/// Lines of step output kept for the failure report.
const TAIL_LINES: usize = 25;
/// Widest status line drawn on a terminal.
const STATUS_WIDTH: usize = 110;

/// A step header: number, total, instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub n: u32,
    pub total: u32,
    pub instruction: String,
}

/// Parses `STEP 3/12: RUN x` or `Step 3/12 : RUN x`.
pub fn parse_step(line: &str) -> Option<Step> {
    let rest = line
        .strip_prefix("STEP ")
        .or_else(|| line.strip_prefix("Step "))?;
    let (counts, instruction) = rest.split_once(':')?;
    let (n, total) = counts.trim().split_once('/')?;
    Some(Step {
        n: n.parse().ok()?,
        total: total.parse().ok()?,
        instruction: instruction.trim().to_owned(),
    })
}

/// How output is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// One status line redrawn in place.
    Status,
    /// Every line as it comes.
    Lines,
}

/// The display of one image build.
pub struct Progress<W: Write> {
    out: W,
    display: Display,
    stage: String,
    started: Instant,
    step: Option<Step>,
    tail: VecDeque<String>,
    partial: String,
    /// The status line last drawn (identical lines are not drawn again).
    drawn: String,
}

impl<W: Write> Progress<W> {
    pub fn new(out: W, display: Display, stage: impl Into<String>) -> Self {
        let mut p = Progress {
            out,
            display,
            stage: stage.into(),
            started: Instant::now(),
            step: None,
            tail: VecDeque::new(),
            partial: String::new(),
            drawn: String::new(),
        };
        if display == Display::Lines {
            let _ = writeln!(p.out, "building {}", p.stage);
        } else {
            p.redraw();
        }
        p
    }

    /// Feeds a chunk of builder output (it may end mid-line).
    pub fn feed(&mut self, chunk: &str) {
        self.partial.push_str(chunk);
        while let Some(pos) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=pos).collect();
            self.line(line.trim_end_matches(['\n', '\r']));
        }
    }

    fn line(&mut self, line: &str) {
        if let Some(step) = parse_step(line) {
            self.step = Some(step);
            self.tail.clear();
        } else {
            if self.tail.len() == TAIL_LINES {
                self.tail.pop_front();
            }
            self.tail.push_back(line.to_owned());
        }
        match self.display {
            Display::Lines => {
                let _ = writeln!(self.out, "{line}");
            }
            Display::Status => self.redraw(),
        }
    }

    /// Redraws the status line (a no-op off a terminal); call it now and then for the clock.
    pub fn tick(&mut self) {
        if self.display == Display::Status {
            self.redraw();
        }
    }

    /// The status text: `<stage>  step n/m  12s  <instruction>`.
    pub fn status(&self) -> String {
        let elapsed = format_elapsed(self.started.elapsed());
        let text = match &self.step {
            Some(s) => format!(
                "{}  step {}/{}  {elapsed}  {}",
                self.stage, s.n, s.total, s.instruction
            ),
            None => format!("{}  {elapsed}  starting", self.stage),
        };
        let one_line = text.replace(['\n', '\r', '\t'], " ");
        match one_line.char_indices().nth(STATUS_WIDTH) {
            Some((cut, _)) => format!("{}…", &one_line[..cut]),
            None => one_line,
        }
    }

    fn redraw(&mut self) {
        let status = self.status();
        if status == self.drawn {
            return;
        }
        let _ = write!(self.out, "\r\x1b[2K{status}");
        let _ = self.out.flush();
        self.drawn = status;
    }

    fn flush_partial(&mut self) {
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.line(&rest);
        }
    }

    /// Ends the display after a successful build.
    pub fn succeeded(mut self, tag: &str) {
        self.flush_partial();
        let elapsed = format_elapsed(self.started.elapsed());
        if self.display == Display::Status {
            let _ = write!(self.out, "\r\x1b[2K");
        }
        let _ = writeln!(self.out, "built {tag} ({elapsed})");
    }

    /// Ends the display after a failure: the failed step and the tail of its output.
    pub fn failed(mut self, message: &str) {
        self.flush_partial();
        if self.display == Display::Status {
            let _ = writeln!(self.out);
            if !self.tail.is_empty() {
                let _ = writeln!(self.out, "last output lines:");
                for line in &self.tail {
                    let _ = writeln!(self.out, "  | {line}");
                }
            }
        }
        match &self.step {
            Some(s) => {
                let _ = writeln!(
                    self.out,
                    "{}: step {}/{} failed: {}\n  {message}",
                    self.stage, s.n, s.total, s.instruction
                );
            }
            None => {
                let _ = writeln!(self.out, "{}: {message}", self.stage);
            }
        }
    }
}

/// `42s`, `3m05s`.
pub fn format_elapsed(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_and_docker_step_lines() {
        assert_eq!(
            parse_step("STEP 3/12: RUN set -eux; \\"),
            Some(Step {
                n: 3,
                total: 12,
                instruction: "RUN set -eux; \\".into()
            })
        );
        assert_eq!(
            parse_step("Step 1/2 : FROM ubuntu:24.04"),
            Some(Step {
                n: 1,
                total: 2,
                instruction: "FROM ubuntu:24.04".into()
            })
        );
        assert_eq!(parse_step("STEP x/2: FROM a"), None);
        assert_eq!(parse_step("--> 1234abcd"), None);
        assert_eq!(parse_step("STEPS 1/2: no"), None);
    }

    #[test]
    fn lines_mode_prints_every_line_including_split_chunks() {
        let mut buf = Vec::new();
        {
            let mut p = Progress::new(&mut buf, Display::Lines, "L0 terok-l0:x");
            p.feed("STEP 1/2: FROM a\nhel");
            p.feed("lo\n");
            p.feed("STEP 2/2: RUN b\n");
            p.succeeded("terok-l0:x");
        }
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(
            text,
            "building L0 terok-l0:x\nSTEP 1/2: FROM a\nhello\nSTEP 2/2: RUN b\nbuilt terok-l0:x (0s)\n"
        );
    }

    #[test]
    fn status_mode_shows_step_and_instruction() {
        let mut buf = Vec::new();
        let mut p = Progress::new(&mut buf, Display::Status, "L1");
        p.feed("STEP 2/5: RUN make\nout\n");
        let status = p.status();
        assert!(status.starts_with("L1  step 2/5  0s  RUN make"), "{status}");
        drop(p);
        let text = String::from_utf8(buf).unwrap();
        assert!(text.contains("\r\x1b[2KL1  step 2/5"));
        assert!(
            !text.contains("\nout\n"),
            "output lines are not printed on a terminal"
        );
    }

    #[test]
    fn failure_shows_the_step_and_its_tail_only() {
        let mut buf = Vec::new();
        let mut p = Progress::new(&mut buf, Display::Status, "L1");
        p.feed("STEP 1/2: FROM a\nearlier output\nSTEP 2/2: RUN false\n");
        for i in 0..30 {
            p.feed(&format!("line {i}\n"));
        }
        p.feed("no newline at the end");
        p.failed("exit status 1");
        let text = String::from_utf8(buf).unwrap();
        assert!(
            text.contains("step 2/2 failed: RUN false\n  exit status 1"),
            "{text}"
        );
        assert!(text.contains("  | no newline at the end"));
        assert!(text.contains("  | line 29") && !text.contains("  | line 5\n"));
        assert!(!text.contains("earlier output"));
    }

    #[test]
    fn long_instructions_are_cut() {
        let mut p = Progress::new(Vec::new(), Display::Status, "L1");
        p.feed(&format!("STEP 1/1: RUN {}\n", "x".repeat(500)));
        assert!(p.status().chars().count() <= STATUS_WIDTH + 1);
        assert!(p.status().ends_with('…'));
    }

    #[test]
    fn elapsed_format() {
        assert_eq!(format_elapsed(Duration::from_secs(5)), "5s");
        assert_eq!(format_elapsed(Duration::from_secs(185)), "3m05s");
    }
}
