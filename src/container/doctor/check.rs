//! One check's outcome, and the report of all of them.

use serde::Serialize;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    /// Works, but something is off or missing that may matter.
    Warn,
    Fail,
    /// Does not apply here (no vault, no container given).
    Skip,
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub detail: String,
    /// What to do about it (empty when nothing).
    pub fix: String,
}

impl Check {
    pub(crate) fn new(name: &'static str, verdict: Verdict, detail: impl Into<String>) -> Check {
        Check {
            name,
            verdict,
            detail: detail.into(),
            fix: String::new(),
        }
    }

    pub(crate) fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = fix.into();
        self
    }
}

/// The summary line and whether anything failed.
pub fn summary(checks: &[Check]) -> (String, bool) {
    let count = |v: Verdict| checks.iter().filter(|c| c.verdict == v).count();
    let failed = count(Verdict::Fail) > 0;
    (
        format!(
            "{} ok, {} warnings, {} failed, {} skipped",
            count(Verdict::Ok),
            count(Verdict::Warn),
            count(Verdict::Fail),
            count(Verdict::Skip)
        ),
        failed,
    )
}

/// The checks as lines: verdict, name, detail, and the fix under it.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let mark = match c.verdict {
            Verdict::Ok => "ok  ",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "skip",
        };
        out.push_str(&format!("{mark}  {:<14} {}\n", c.name, c.detail));
        if !c.fix.is_empty() && c.verdict != Verdict::Ok {
            out.push_str(&format!("      {:<14} fix: {}\n", "", c.fix));
        }
    }
    out
}
