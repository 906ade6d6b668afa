//! Drawing `acp top`: a line of totals, the session table, a line for each daemon without a
//! row (unreachable, or serving no session), and the keys with the current sort and filter.
//!
//! Every line is cut to the terminal's width (see [`super::columns`]); nothing wraps.

use std::time::Duration;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row as TableRow, Table};
use ratatui::Frame;

use super::columns::{self, Align, COLUMNS};
use super::model::Top;
use super::row::Row;
use crate::acp::status::{self, SessionState};

/// What the view says about where it looks and how often.
#[derive(Debug, Clone)]
pub struct Source {
    /// The directory whose sockets are the daemons shown.
    pub acp_dir: String,
    pub interval: Duration,
}

pub fn draw(frame: &mut Frame<'_>, top: &Top, source: &Source) {
    let area = frame.area();
    let notes = top.notes();
    let room = area.height.saturating_sub(2);
    let notes_height = u16::try_from(notes.len()).unwrap_or(u16::MAX).min(room / 2);
    let [header, table, notes_area, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(notes_height),
        Constraint::Length(1),
    ])
    .areas(area);

    frame.render_widget(Paragraph::new(totals_line(top)), header);
    draw_table(frame, top, source, table);
    let lines: Vec<Line<'_>> = notes
        .iter()
        .map(|note| {
            let style = if note.problem {
                Style::new().fg(Color::Red)
            } else {
                Style::new().fg(Color::DarkGray)
            };
            Line::from(vec![
                Span::from(note.name).bold(),
                Span::from("  "),
                Span::styled(note.text.clone(), style),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), notes_area);
    frame.render_widget(
        Paragraph::new(footer_line(top, source)).style(Style::new().reversed()),
        footer,
    );
}

fn totals_line(top: &Top) -> Line<'static> {
    let totals = top.totals();
    let mut daemons = format!("daemons {}", totals.daemons);
    if totals.unreachable > 0 {
        daemons.push_str(&format!(" ({} down)", totals.unreachable));
    }
    let cost = if totals.cost.is_empty() {
        "-".to_owned()
    } else {
        let each: Vec<String> = totals.cost.iter().map(status::human_cost).collect();
        each.join(" + ")
    };
    let parts = [
        daemons,
        format!("connections {}", totals.connections),
        format!("sessions {}", totals.sessions),
        format!("agent procs {}", totals.agents),
        format!("cost {cost}"),
    ];
    Line::from(parts.join("  ")).bold()
}

fn footer_line(top: &Top, source: &Source) -> Line<'static> {
    let filter = top.filter.as_deref().unwrap_or("all");
    let every = source.interval.as_secs_f64();
    Line::from(format!(
        "q quit  s sort: {}  f filter: {filter}  (every {every}s)",
        top.sort.label()
    ))
}

fn draw_table(frame: &mut Frame<'_>, top: &Top, source: &Source, area: Rect) {
    let rows = top.rows();
    if rows.is_empty() {
        let message = match (&top.filter, top.has_snapshot()) {
            (_, false) => "waiting for the first report…".to_owned(),
            (Some(name), true) => format!("no sessions in {name}"),
            (None, true) if top.totals().daemons == 0 => {
                format!("no ACP daemon in {}", source.acp_dir)
            }
            (None, true) => "no sessions".to_owned(),
        };
        let [_, line] =
            Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
        frame.render_widget(Paragraph::new(message).fg(Color::DarkGray), line);
        return;
    }
    let texts: Vec<_> = rows.iter().map(columns::cells).collect();
    let widths = columns::widths(&texts, top.sort, area.width);
    let header = TableRow::new(COLUMNS.iter().zip(widths).map(|(column, width)| {
        let title = columns::title(column, top.sort);
        let cell = aligned(&title, width, column.align);
        if column.key == top.sort {
            cell.style(Style::new().add_modifier(Modifier::REVERSED))
        } else {
            cell
        }
    }))
    .style(Style::new().bold());
    let body = rows.iter().zip(&texts).map(|(row, texts)| {
        TableRow::new(
            COLUMNS
                .iter()
                .zip(widths)
                .zip(texts)
                .map(|((column, width), text)| aligned(text, width, column.align)),
        )
        .style(row_style(row))
    });
    let table = Table::new(body, widths.map(Constraint::Length))
        .header(header)
        .column_spacing(columns::SPACING);
    frame.render_widget(table, area);
}

fn aligned(text: &str, width: u16, align: Align) -> Cell<'static> {
    let line = Line::from(columns::ellipsize(text, width).into_owned());
    Cell::from(match align {
        Align::Left => line,
        Align::Right => line.right_aligned(),
    })
}

fn row_style(row: &Row<'_>) -> Style {
    match (row.session.state, row.session.turn_running) {
        (SessionState::Running, _) => Style::new().fg(Color::Green),
        (SessionState::Detached, true) => Style::new().fg(Color::Yellow),
        (SessionState::Binding, _) => Style::new().fg(Color::Cyan),
        (SessionState::Bound, _) => Style::new(),
        (SessionState::Detached, false) | (SessionState::Unbound, _) => {
            Style::new().fg(Color::DarkGray)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    use super::*;
    use crate::acp::status::{Cost, Session, Status, Usage};
    use crate::acp::top::model::{DaemonReport, Snapshot};

    fn screen(top: &Top, width: u16, height: u16) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        let source = Source {
            acp_dir: "/run/user/1000/terok/acp".into(),
            interval: Duration::from_secs(1),
        };
        terminal.draw(|f| draw(f, top, &source)).unwrap();
        let buffer = terminal.backend().buffer();
        (0..height)
            .map(|y| {
                let line: String = (0..width).map(|x| buffer[(x, y)].symbol()).collect();
                line.trim_end().to_owned()
            })
            .collect()
    }

    fn sample() -> Top {
        let at = Instant::now();
        let bound = Session {
            id: "terok-3f2a9c1e55aa".into(),
            agent: Some("claude".into()),
            model: "claude:opus".into(),
            state: SessionState::Bound,
            usage: Usage {
                context_used: Some(150),
                context_size: Some(200_000),
                cost: Some(Cost {
                    amount: 0.25,
                    currency: "USD".into(),
                }),
                ..Usage::default()
            },
            ..Session::default()
        };
        let detached = Session {
            id: "terok-77b0d4e2ffff".into(),
            agent: Some("codex".into()),
            model: "codex:gpt-5-codex-with-a-very-long-model-name".into(),
            state: SessionState::Detached,
            turn_running: true,
            ..Session::default()
        };
        let mut top = Top::new();
        top.update(Snapshot {
            daemons: vec![
                DaemonReport {
                    name: "local-a-project-with-a-long-directory-name".into(),
                    at,
                    status: Ok(Status {
                        sessions: vec![bound, detached],
                        ..Status::default()
                    }),
                },
                DaemonReport {
                    name: "gone".into(),
                    at,
                    status: Err("cannot connect: Connection refused (os error 111)".into()),
                },
            ],
        });
        top
    }

    #[test]
    fn an_80_by_24_screen_holds_every_column_and_cuts_long_names() {
        let lines = screen(&sample(), 80, 24);
        let text = lines.join("\n");
        assert_eq!(
            lines[0],
            "daemons 2 (1 down)  connections 0  sessions 2  agent procs 0  cost 0.2500 USD"
        );
        assert!(
            lines[1].starts_with("CONTAINER▲") && lines[1].ends_with("CTX"),
            "{text}"
        );
        let bound = lines.iter().find(|l| l.contains("3f2a9c1e")).expect(&text);
        for needle in [
            "local-a-pro",
            "…",
            "claude",
            "opus",
            "bound",
            "0.2500 USD",
            "0%",
        ] {
            assert!(bound.contains(needle), "{needle:?} not in {bound:?}");
        }
        let detached = lines.iter().find(|l| l.contains("77b0d4e2")).expect(&text);
        assert!(detached.contains("detached+run"), "{detached}");
        assert!(detached.contains("gpt-5-"), "{detached}");
        assert!(text.contains("gone  unreachable: cannot connect: Connection refused"));
        assert_eq!(
            lines[23],
            "q quit  s sort: container  f filter: all  (every 1s)"
        );
    }

    #[test]
    fn a_narrow_or_short_terminal_gets_a_cut_screen_not_a_crash() {
        for (width, height) in [(40, 6), (20, 3), (1, 1), (80, 2)] {
            let lines = screen(&sample(), width, height);
            assert_eq!(lines.len(), usize::from(height));
        }
        let lines = screen(&sample(), 40, 6);
        assert!(lines[5].starts_with("q quit  s sort"), "{lines:#?}");
    }

    #[test]
    fn the_empty_states_say_what_is_missing() {
        let mut top = Top::new();
        assert!(screen(&top, 80, 24)[2].contains("waiting for the first report"));
        top.update(Snapshot::default());
        assert!(screen(&top, 80, 24)[2].contains("no ACP daemon in /run/user/1000/terok/acp"));
        let mut top = sample();
        top.filter = Some("gone".into());
        let lines = screen(&top, 80, 24);
        assert!(lines[2].contains("no sessions in gone"), "{lines:#?}");
        assert!(lines[0].starts_with("daemons 1 (1 down)"), "{lines:#?}");
        assert!(lines[23].contains("f filter: gone"));
    }
}
