//! The table's columns: what each shows of a row, and how the widths give way to fit the
//! terminal.
//!
//! Every column wants the width of its widest cell (or title). When that is more than the
//! terminal has, the flexible columns (names, which an ellipsis can cut) give way first, widest
//! first, down to their minimum; then the others down to theirs. Cells are cut to their column
//! with an ellipsis, so no text runs into the next column and no line wraps.

use std::borrow::Cow;

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::row::{Row, SortKey};
use crate::acp::status::{self, Cost};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub title: &'static str,
    /// The sort this column's title marks.
    pub key: SortKey,
    pub align: Align,
    /// The narrowest it gets before the table is cut at the right edge.
    pub min: u16,
    /// Whether it gives way first (free text that an ellipsis can cut).
    pub flexible: bool,
}

const fn column(
    title: &'static str,
    key: SortKey,
    align: Align,
    min: u16,
    flexible: bool,
) -> Column {
    Column {
        title,
        key,
        align,
        min,
        flexible,
    }
}

pub const COLUMNS: [Column; 8] = [
    column("CONTAINER", SortKey::Container, Align::Left, 6, true),
    column("SESSION", SortKey::Session, Align::Left, 8, false),
    column("AGENT", SortKey::Agent, Align::Left, 5, true),
    column("MODEL", SortKey::Model, Align::Left, 5, true),
    column("STATE", SortKey::State, Align::Left, 8, false),
    column("UPD/S", SortKey::Rate, Align::Right, 5, false),
    column("COST", SortKey::Cost, Align::Right, 6, false),
    column("CTX", SortKey::Context, Align::Right, 4, false),
];

/// Columns are this far apart.
pub const SPACING: u16 = 1;

/// Whether a sort puts the largest (or most active) first.
pub fn descending(key: SortKey) -> bool {
    matches!(
        key,
        SortKey::State | SortKey::Rate | SortKey::Cost | SortKey::Context
    )
}

/// A column's title, marked when the rows are sorted by it.
pub fn title(column: &Column, sort: SortKey) -> Cow<'static, str> {
    match (column.key == sort, descending(sort)) {
        (false, _) => Cow::Borrowed(column.title),
        (true, true) => Cow::Owned(format!("{}▼", column.title)),
        (true, false) => Cow::Owned(format!("{}▲", column.title)),
    }
}

/// What each column shows of `row`.
pub fn cells(row: &Row<'_>) -> [String; COLUMNS.len()] {
    let session = row.session;
    let or_dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    [
        row.container.to_owned(),
        row.short_id().to_owned(),
        or_dash(session.agent.as_deref().unwrap_or("")),
        or_dash(row.model_label()),
        row.state_label().to_owned(),
        rate(row.rate),
        cost(session.usage.cost.as_ref()),
        row.context_percent()
            .map_or("-".to_owned(), |p| format!("{p:.0}%")),
    ]
}

/// Updates per second: one decimal below 100, none above; `-` until measured.
pub fn rate(rate: Option<f64>) -> String {
    match rate {
        None => "-".into(),
        Some(r) if r < 99.95 => format!("{r:.1}"),
        Some(r) => format!("{r:.0}"),
    }
}

pub fn cost(cost: Option<&Cost>) -> String {
    cost.map_or("-".into(), status::human_cost)
}

/// The widths of the columns for `rows` (the cells of each row) in `available` terminal
/// columns.
pub fn widths(
    rows: &[[String; COLUMNS.len()]],
    sort: SortKey,
    available: u16,
) -> [u16; COLUMNS.len()] {
    let mut natural = [0u16; COLUMNS.len()];
    for (at, column) in COLUMNS.iter().enumerate() {
        let cells = rows.iter().map(|r| r[at].width());
        let widest = cells
            .chain([title(column, sort).width()])
            .max()
            .unwrap_or(0);
        natural[at] = u16::try_from(widest).unwrap_or(u16::MAX);
    }
    fit(natural, available)
}

/// Narrows `natural` widths until they fit `available`: flexible columns first, then the
/// others, always the widest one above its minimum.
pub fn fit(mut widths: [u16; COLUMNS.len()], available: u16) -> [u16; COLUMNS.len()] {
    let spacing = SPACING * (COLUMNS.len() as u16 - 1);
    let total = |w: &[u16]| w.iter().map(|&w| u32::from(w)).sum::<u32>() + u32::from(spacing);
    for flexible_only in [true, false] {
        while total(&widths) > u32::from(available) {
            let widest = (0..COLUMNS.len())
                .filter(|&at| !flexible_only || COLUMNS[at].flexible)
                .filter(|&at| widths[at] > COLUMNS[at].min)
                .max_by_key(|&at| (widths[at], std::cmp::Reverse(at)));
            match widest {
                Some(at) => widths[at] -= 1,
                None => break,
            }
        }
    }
    widths
}

/// `text` cut to `width` terminal columns, its last column an ellipsis when cut.
pub fn ellipsize(text: &str, width: u16) -> Cow<'_, str> {
    let width = usize::from(width);
    if text.width() <= width {
        return Cow::Borrowed(text);
    }
    if width == 0 {
        return Cow::Borrowed("");
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > width - 1 {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_that_fit_stay_natural() {
        let natural = [9, 8, 5, 5, 12, 5, 10, 4];
        assert_eq!(fit(natural, 80), natural);
    }

    #[test]
    fn flexible_columns_give_way_first_widest_first() {
        // 30 + 8 + 10 + 20 + 12 + 5 + 10 + 4 = 99, plus 7 spaces: 26 too many for 80.
        let widths = fit([30, 8, 10, 20, 12, 5, 10, 4], 80);
        assert_eq!(widths, [12, 8, 10, 12, 12, 5, 10, 4]);
        assert_eq!(widths.iter().sum::<u16>() + 7, 80);
    }

    #[test]
    fn fixed_columns_give_way_once_flexible_ones_are_at_their_minimum() {
        let widths = fit([30, 8, 10, 20, 12, 5, 10, 4], 58);
        assert_eq!(widths, [6, 8, 5, 5, 9, 5, 9, 4]);
        assert_eq!(widths.iter().sum::<u16>() + 7, 58);
        // Never below the minimums: the table is then cut at the edge.
        let min: Vec<u16> = COLUMNS.iter().map(|c| c.min).collect();
        assert_eq!(fit([30, 8, 10, 20, 12, 5, 10, 4], 10).to_vec(), min);
    }

    #[test]
    fn cut_text_ends_in_an_ellipsis_within_its_width() {
        assert_eq!(ellipsize("alpha", 5), "alpha");
        assert_eq!(ellipsize("local-project", 8), "local-p…");
        assert_eq!(ellipsize("日本語モデル", 5), "日本…");
        assert_eq!(ellipsize("abc", 0), "");
        assert_eq!(ellipsize("abc", 1), "…");
    }

    #[test]
    fn rates_and_titles_read_at_a_glance() {
        assert_eq!(rate(None), "-");
        assert_eq!(rate(Some(0.0)), "0.0");
        assert_eq!(rate(Some(9.84)), "9.8");
        assert_eq!(rate(Some(99.96)), "100");
        assert_eq!(rate(Some(12345.4)), "12345");
        assert_eq!(title(&COLUMNS[0], SortKey::Container), "CONTAINER▲");
        assert_eq!(title(&COLUMNS[6], SortKey::Cost), "COST▼");
        assert_eq!(title(&COLUMNS[6], SortKey::Container), "COST");
    }
}
