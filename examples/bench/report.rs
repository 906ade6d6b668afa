//! The markdown table: one row per figure, with the floor, the proxy, their ratio and the target.

use std::time::Duration;

/// What a row is judged against.
pub enum Target {
    None,
    /// The proxy must reach this fraction of the floor's rate.
    AtLeastRatio(f64),
    /// The same against a floor that is not the raw pipe (named).
    AtLeastRatioOf(f64, &'static str),
    /// The proxy may be at most this many milliseconds slower than the floor.
    WithinOfFloor(f64),
    /// The proxy must take at most this many milliseconds.
    AtMost(f64),
}

struct Row {
    figure: String,
    raw: String,
    proxy: String,
    ratio: String,
    target: String,
    met: Option<bool>,
}

pub struct Report {
    rows: Vec<Row>,
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The `q` quantile (0..=1) of `samples`, nearest rank.
pub fn percentile(samples: &mut [Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort();
    let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

fn rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M", r / 1e6)
    } else {
        format!("{:.0} k", r / 1e3)
    }
}

impl Report {
    pub fn new() -> Report {
        Report { rows: Vec::new() }
    }

    /// A throughput row: higher is better.
    pub fn rate(&mut self, figure: &str, [raw, proxy]: [f64; 2], target: Target) {
        let ratio = proxy / raw;
        let (target, met) = match target {
            Target::AtLeastRatio(min) => {
                (format!("≥ {:.0}% of raw", min * 100.0), Some(ratio >= min))
            }
            Target::AtLeastRatioOf(min, floor) => (
                format!("≥ {:.0}% of {floor}", min * 100.0),
                Some(ratio >= min),
            ),
            _ => (String::new(), None),
        };
        self.rows.push(Row {
            figure: figure.into(),
            raw: rate(raw),
            proxy: rate(proxy),
            ratio: format!("{:.0}%", ratio * 100.0),
            target,
            met,
        });
    }

    /// A latency row: lower is better.
    pub fn latency(&mut self, figure: &str, [raw, proxy]: [Duration; 2], target: Target) {
        let (r, p) = (ms(raw), ms(proxy));
        let (target, met) = match target {
            Target::WithinOfFloor(slack) => (format!("≤ raw + {slack} ms"), Some(p <= r + slack)),
            Target::AtMost(max) => (format!("≤ {max} ms"), Some(p <= max)),
            _ => (String::new(), None),
        };
        self.rows.push(Row {
            figure: figure.into(),
            raw: format!("{r:.3} ms"),
            proxy: format!("{p:.3} ms"),
            ratio: if r > 0.0 {
                format!("{:.2}×", p / r)
            } else {
                "–".into()
            },
            target,
            met,
        });
    }

    /// A row for the proxy alone.
    pub fn single(&mut self, figure: &str, proxy: String, met: bool, target: &str) {
        self.rows.push(Row {
            figure: figure.into(),
            raw: "–".into(),
            proxy,
            ratio: "–".into(),
            target: target.into(),
            met: Some(met),
        });
    }

    /// A row without a target.
    pub fn info(&mut self, figure: &str, raw: String, proxy: String, ratio: String) {
        self.rows.push(Row {
            figure: figure.into(),
            raw,
            proxy,
            ratio,
            target: String::new(),
            met: None,
        });
    }

    pub fn failed(&self) -> usize {
        self.rows.iter().filter(|r| r.met == Some(false)).count()
    }

    pub fn print(&self) {
        println!("| figure | raw pipe | proxy | proxy/raw | target | met |");
        println!("|---|---:|---:|---:|---|:-:|");
        for row in &self.rows {
            let met = match row.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            };
            println!(
                "| {} | {} | {} | {} | {} | {} |",
                row.figure, row.raw, row.proxy, row.ratio, row.target, met
            );
        }
    }
}
