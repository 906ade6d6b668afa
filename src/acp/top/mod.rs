//! `acp top`: a live view of every daemon whose socket is in the acp directory, one row per
//! session, refreshed every interval.
//!
//! [`model`] holds what the daemons reported and the rates, sort and filter; [`row`] is a
//! session as a row and how rows compare; [`columns`] and [`view`] draw them; [`poll`] asks the
//! daemons; [`keys`] maps keys to commands; [`terminal`] owns raw mode and the alternate screen.
//! The loop here waits on keys, snapshots and signals at once. Every way out restores the terminal: `q`, Esc and Ctrl-C (a key in raw mode), a
//! SIGINT, SIGTERM or SIGHUP from outside (the exit code is then 128 plus the signal's number,
//! as a shell reports a killed program), an error, and a panic.

pub mod columns;
pub mod keys;
pub mod model;
pub mod poll;
pub mod row;
pub mod terminal;
pub mod view;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use crossterm::event::{Event, EventStream};
use futures::StreamExt;
use nix::sys::signal::Signal;
use tokio::signal::unix::{signal, SignalKind};

use keys::Command;
use model::Top;
use terminal::Screen;

/// What `acp top` watches, and how often.
#[derive(Debug, Clone)]
pub struct Options {
    pub acp_dir: PathBuf,
    pub interval: Duration,
}

/// The shortest and longest refresh intervals `--interval` takes.
const INTERVALS: (f64, f64) = (0.1, 3600.0);

/// `--interval SECS`: seconds, fractions allowed, from 0.1 to an hour.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    let (min, max) = INTERVALS;
    if !(min..=max).contains(&secs) {
        return Err(format!("the interval must be {min} to {max} seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Runs the view until a quit key or a signal.
pub async fn run(options: Options) -> anyhow::Result<ExitCode> {
    if !std::io::stdout().is_terminal() {
        anyhow::bail!(
            "acp top draws on a terminal, and stdout is none; `acp status --json` gives a \
             daemon's report to read or parse"
        );
    }
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut snapshots = poll::spawn(options.acp_dir.clone(), options.interval);
    let source = view::Source {
        acp_dir: options.acp_dir.display().to_string(),
        interval: options.interval,
    };
    let mut top = Top::new();

    let mut screen = Screen::enter().context("cannot set up the terminal")?;
    let mut events = EventStream::new();
    let signalled = loop {
        screen
            .terminal
            .draw(|frame| view::draw(frame, &top, &source))
            .context("cannot draw on the terminal")?;
        tokio::select! {
            _ = interrupt.recv() => break Some(Signal::SIGINT),
            _ = terminate.recv() => break Some(Signal::SIGTERM),
            _ = hangup.recv() => break Some(Signal::SIGHUP),
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) => match keys::command(&key) {
                    Some(Command::Quit) => break None,
                    Some(Command::CycleSort) => top.cycle_sort(),
                    Some(Command::CycleFilter) => top.cycle_filter(),
                    None => {}
                },
                // A resize (or anything else) only asks for the redraw above.
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).context("cannot read the terminal"),
                None => break None,
            },
            snapshot = snapshots.recv() => match snapshot {
                Some(snapshot) => top.update(snapshot),
                None => anyhow::bail!("the refresh stopped"),
            },
        }
    };
    drop(screen);
    Ok(match signalled {
        None => ExitCode::SUCCESS,
        Some(signal) => ExitCode::from(128 + signal as u8),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_seconds_within_bounds() {
        assert_eq!(parse_interval("1"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("0.25"), Ok(Duration::from_millis(250)));
        for bad in ["0", "0.05", "-1", "nan", "inf", "4000", "soon", ""] {
            assert!(parse_interval(bad).is_err(), "{bad:?}");
        }
    }
}
