//! The model behind `acp top`: the last report of every daemon, the update rates measured
//! between two reports, and the session rows as sorted and filtered.
//!
//! Pure data: the poller feeds it [`Snapshot`]s, keys change its sort and filter, the view reads
//! [`Top::rows`], [`Top::totals`] and [`Top::notes`]. A session is known by its daemon's name and
//! its id; a rate needs the same session in two consecutive reports of its daemon.

use std::collections::HashMap;
use std::time::Instant;

use super::row::{compare, Row, SortKey};
use crate::acp::status::{self, Cost, Status};

/// What one refresh found: every daemon in the acp directory, in name order.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub daemons: Vec<DaemonReport>,
}

/// One daemon's answer (or why there is none).
#[derive(Debug, Clone)]
pub struct DaemonReport {
    /// The endpoint name: the container's (`local-<dir>` for a local runtime).
    pub name: String,
    /// When the answer came: rates are measured between two of these.
    pub at: Instant,
    pub status: Result<Status, String>,
}

/// Sums over the daemons shown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub daemons: usize,
    /// Daemons that gave no report (counted in `daemons`).
    pub unreachable: usize,
    pub connections: usize,
    pub sessions: usize,
    pub agents: usize,
    /// Cost per currency.
    pub cost: Vec<Cost>,
}

/// A line about a daemon that has no session row: unreachable, or serving no session.
#[derive(Debug, Clone, PartialEq)]
pub struct Note<'a> {
    pub name: &'a str,
    pub text: String,
    /// Whether it reports a problem (shown as one) rather than an idle daemon.
    pub problem: bool,
}

/// The state of the view.
#[derive(Debug, Default)]
pub struct Top {
    snapshot: Option<Snapshot>,
    /// Rates by (daemon, session id), measured when the snapshot came.
    rates: HashMap<(String, String), f64>,
    pub sort: SortKey,
    /// The one container shown, or all when `None`.
    pub filter: Option<String>,
}

impl Top {
    pub fn new() -> Top {
        Top::default()
    }

    /// Whether a first snapshot came.
    pub fn has_snapshot(&self) -> bool {
        self.snapshot.is_some()
    }

    /// Takes a new snapshot, measuring each session's rate against the previous one.
    pub fn update(&mut self, snapshot: Snapshot) {
        let mut before: HashMap<(&str, &str), (u64, Instant)> = HashMap::new();
        for daemon in self.snapshot.iter().flat_map(|s| &s.daemons) {
            if let Ok(status) = &daemon.status {
                for session in &status.sessions {
                    before.insert((&daemon.name, &session.id), (session.updates, daemon.at));
                }
            }
        }
        let mut rates = HashMap::new();
        for daemon in &snapshot.daemons {
            let Ok(status) = &daemon.status else { continue };
            for session in &status.sessions {
                let Some(&(updates, at)) = before.get(&(&daemon.name[..], &session.id[..])) else {
                    continue;
                };
                let secs = daemon.at.saturating_duration_since(at).as_secs_f64();
                if secs > 0.0 && session.updates >= updates {
                    let rate = (session.updates - updates) as f64 / secs;
                    rates.insert((daemon.name.clone(), session.id.clone()), rate);
                }
            }
        }
        self.rates = rates;
        self.snapshot = Some(snapshot);
    }

    pub fn cycle_sort(&mut self) {
        self.sort = self.sort.next();
    }

    /// All, then each container in name order, then all again. A filter on a container that
    /// has gone moves on to the next name after it.
    pub fn cycle_filter(&mut self) {
        let names = self
            .snapshot
            .iter()
            .flat_map(|s| &s.daemons)
            .map(|d| &d.name);
        let next = match &self.filter {
            None => names.min(),
            Some(current) => names.filter(|n| *n > current).min(),
        };
        self.filter = next.cloned();
    }

    /// The daemons the filter lets through.
    fn shown(&self) -> impl Iterator<Item = &DaemonReport> {
        self.snapshot
            .iter()
            .flat_map(|s| &s.daemons)
            .filter(|d| self.filter.as_ref().is_none_or(|f| *f == d.name))
    }

    /// The session rows, filtered and sorted; ties go by container, then session id.
    pub fn rows(&self) -> Vec<Row<'_>> {
        let mut rows: Vec<Row<'_>> = self
            .shown()
            .filter_map(|d| Some((&d.name, d.status.as_ref().ok()?)))
            .flat_map(|(name, status)| {
                status.sessions.iter().map(move |session| Row {
                    container: name,
                    session,
                    rate: self.rates.get(&(name.clone(), session.id.clone())).copied(),
                })
            })
            .collect();
        rows.sort_by(|a, b| {
            compare(self.sort, a, b)
                .then_with(|| a.container.cmp(b.container))
                .then_with(|| a.session.id.cmp(&b.session.id))
        });
        rows
    }

    pub fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        for daemon in self.shown() {
            totals.daemons += 1;
            let Ok(status) = &daemon.status else {
                totals.unreachable += 1;
                continue;
            };
            totals.connections += status.connections.len();
            totals.sessions += status.sessions.len();
            totals.agents += status.agents.len();
            for cost in status.sessions.iter().filter_map(|s| s.usage.cost.as_ref()) {
                status::add_cost(&mut totals.cost, cost);
            }
        }
        totals
    }

    /// A line for each daemon shown that has no row: why it gave no report, or that it serves
    /// no session.
    pub fn notes(&self) -> Vec<Note<'_>> {
        self.shown()
            .filter_map(|daemon| match &daemon.status {
                Err(reason) => Some(Note {
                    name: &daemon.name,
                    text: format!("unreachable: {reason}"),
                    problem: true,
                }),
                Ok(status) if status.sessions.is_empty() => Some(Note {
                    name: &daemon.name,
                    text: format!(
                        "no sessions (up {}, {} connection(s), {} agent process(es))",
                        status::human_secs(status.daemon.uptime_secs),
                        status.connections.len(),
                        status.agents.len()
                    ),
                    problem: false,
                }),
                Ok(_) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::acp::status::{Session, SessionState, Usage};

    fn session(id: &str, agent: Option<&str>, updates: u64) -> Session {
        Session {
            id: id.into(),
            agent: agent.map(str::to_owned),
            model: agent.map_or("".into(), |a| format!("{a}:m1")),
            state: if agent.is_some() {
                SessionState::Bound
            } else {
                SessionState::Unbound
            },
            updates,
            ..Session::default()
        }
    }

    fn daemon(name: &str, at: Instant, sessions: Vec<Session>) -> DaemonReport {
        DaemonReport {
            name: name.into(),
            at,
            status: Ok(Status {
                sessions,
                ..Status::default()
            }),
        }
    }

    fn ids(top: &Top) -> Vec<String> {
        top.rows().iter().map(|r| r.session.id.clone()).collect()
    }

    fn priced(mut s: Session, amount: f64, currency: &str) -> Session {
        s.usage.cost = Some(Cost {
            amount,
            currency: currency.into(),
        });
        s
    }

    #[test]
    fn a_rate_is_the_update_difference_over_the_time_between_two_reports() {
        let t0 = Instant::now();
        let mut top = Top::new();
        top.update(Snapshot {
            daemons: vec![daemon("alpha", t0, vec![session("s1", Some("a"), 100)])],
        });
        assert_eq!(top.rows()[0].rate, None, "one report gives no rate");
        top.update(Snapshot {
            daemons: vec![daemon(
                "alpha",
                t0 + Duration::from_millis(500),
                vec![session("s1", Some("a"), 150), session("s2", None, 7)],
            )],
        });
        let rows = top.rows();
        assert_eq!(rows[0].rate, Some(100.0));
        assert_eq!(
            rows[1].rate, None,
            "a session new in this report has no rate yet"
        );
    }

    #[test]
    fn a_rate_is_measured_per_daemon_even_for_equal_session_ids() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(2);
        let mut top = Top::new();
        top.update(Snapshot {
            daemons: vec![
                daemon("alpha", t0, vec![session("s", Some("a"), 10)]),
                daemon("beta", t0, vec![session("s", Some("b"), 10)]),
            ],
        });
        top.update(Snapshot {
            daemons: vec![
                daemon("alpha", t1, vec![session("s", Some("a"), 30)]),
                daemon("beta", t1, vec![session("s", Some("b"), 10)]),
            ],
        });
        let rates: Vec<_> = top.rows().iter().map(|r| (r.container, r.rate)).collect();
        assert_eq!(rates, [("alpha", Some(10.0)), ("beta", Some(0.0))]);
    }

    #[test]
    fn a_counter_that_went_back_or_a_report_missed_gives_no_rate() {
        let t0 = Instant::now();
        let report = |secs, updates| Snapshot {
            daemons: vec![daemon(
                "alpha",
                t0 + Duration::from_secs(secs),
                vec![session("s", Some("a"), updates)],
            )],
        };
        let mut top = Top::new();
        top.update(report(0, 50));
        // The daemon restarted: its counters start again.
        top.update(report(1, 3));
        assert_eq!(top.rows()[0].rate, None);
        // Unreachable once: the next report has nothing to compare with.
        top.update(Snapshot {
            daemons: vec![DaemonReport {
                name: "alpha".into(),
                at: t0 + Duration::from_secs(2),
                status: Err("cannot connect".into()),
            }],
        });
        top.update(report(3, 9));
        assert_eq!(top.rows()[0].rate, None);
        // Reachable twice in a row again: measured.
        top.update(report(4, 19));
        assert_eq!(top.rows()[0].rate, Some(10.0));
    }

    #[test]
    fn each_sort_key_orders_the_rows_and_ties_go_by_container_then_id() {
        let t0 = Instant::now();
        let mut running = priced(session("terok-b1", Some("bert"), 0), 0.5, "USD");
        running.state = SessionState::Running;
        running.model = "bert:zeta".into();
        let mut detached = session("terok-a2", Some("anna"), 0);
        detached.state = SessionState::Detached;
        detached.turn_running = true;
        detached.usage = Usage {
            context_used: Some(150_000),
            context_size: Some(200_000),
            ..Usage::default()
        };
        let cheap = priced(session("terok-a1", Some("anna"), 0), 0.25, "USD");
        let unbound = session("terok-c1", None, 0);
        let mut top = Top::new();
        let report = |at| Snapshot {
            daemons: vec![
                daemon("beta", at, vec![running.clone(), unbound.clone()]),
                daemon("alpha", at, vec![cheap.clone(), detached.clone()]),
            ],
        };
        top.update(report(t0));
        // Only the running session streamed between the two reports.
        let mut later = report(t0 + Duration::from_secs(1));
        if let Ok(status) = &mut later.daemons[0].status {
            status.sessions[0].updates = 40;
        }
        top.update(later);

        let expected = [
            (SortKey::Container, ["a1", "a2", "b1", "c1"]),
            (SortKey::Session, ["a1", "a2", "b1", "c1"]),
            // No agent sorts first.
            (SortKey::Agent, ["c1", "a1", "a2", "b1"]),
            (SortKey::Model, ["c1", "a1", "a2", "b1"]),
            (SortKey::State, ["b1", "a2", "a1", "c1"]),
            (SortKey::Rate, ["b1", "a1", "a2", "c1"]),
            (SortKey::Cost, ["b1", "a1", "a2", "c1"]),
            (SortKey::Context, ["a2", "a1", "b1", "c1"]),
        ];
        assert_eq!(expected.map(|(key, _)| key), SortKey::ALL);
        for (key, order) in expected {
            top.sort = key;
            let rows = top.rows();
            let shown: Vec<&str> = rows.iter().map(|r| r.short_id()).collect();
            assert_eq!(shown, order, "sorted by {key:?}");
        }
    }

    #[test]
    fn the_filter_cycles_all_then_each_container_then_all() {
        let t0 = Instant::now();
        let mut top = Top::new();
        top.cycle_filter();
        assert_eq!(top.filter, None, "nothing to filter on before a report");
        top.update(Snapshot {
            daemons: vec![
                daemon("beta", t0, vec![session("b", Some("x"), 0)]),
                daemon("alpha", t0, vec![session("a", Some("x"), 0)]),
            ],
        });
        let mut cycle = Vec::new();
        for _ in 0..4 {
            top.cycle_filter();
            cycle.push((top.filter.clone(), ids(&top)));
        }
        assert_eq!(
            cycle,
            [
                (Some("alpha".to_owned()), vec!["a".to_owned()]),
                (Some("beta".to_owned()), vec!["b".to_owned()]),
                (None, vec!["a".to_owned(), "b".to_owned()]),
                (Some("alpha".to_owned()), vec!["a".to_owned()]),
            ]
        );
    }

    #[test]
    fn a_filter_on_a_container_that_went_away_moves_to_the_next_name() {
        let t0 = Instant::now();
        let mut top = Top::new();
        top.filter = Some("beta".into());
        top.update(Snapshot {
            daemons: vec![
                daemon("alpha", t0, vec![]),
                daemon("gamma", t0, vec![session("g", None, 0)]),
            ],
        });
        assert!(top.rows().is_empty());
        assert_eq!(top.totals().daemons, 0);
        top.cycle_filter();
        assert_eq!(top.filter.as_deref(), Some("gamma"));
        top.cycle_filter();
        assert_eq!(top.filter, None);
    }

    #[test]
    fn totals_and_notes_cover_the_daemons_shown() {
        let t0 = Instant::now();
        let mut alpha = daemon(
            "alpha",
            t0,
            vec![
                priced(session("a1", Some("x"), 0), 0.25, "USD"),
                priced(session("a2", Some("x"), 0), 0.5, "USD"),
                priced(session("a3", Some("x"), 0), 1.0, "EUR"),
            ],
        );
        if let Ok(status) = &mut alpha.status {
            status.connections = vec![Default::default(); 2];
            status.agents = vec![Default::default()];
        }
        let mut idle = daemon("beta", t0, vec![]);
        if let Ok(status) = &mut idle.status {
            status.daemon.uptime_secs = 185.0;
        }
        let down = DaemonReport {
            name: "gamma".into(),
            at: t0,
            status: Err("cannot connect: Connection refused".into()),
        };
        let mut top = Top::new();
        top.update(Snapshot {
            daemons: vec![alpha, idle, down],
        });
        let totals = top.totals();
        assert_eq!(
            (
                totals.daemons,
                totals.unreachable,
                totals.connections,
                totals.sessions,
                totals.agents
            ),
            (3, 1, 2, 3, 1)
        );
        let cost: Vec<_> = totals
            .cost
            .iter()
            .map(|c| (c.amount, &c.currency[..]))
            .collect();
        assert_eq!(cost, [(0.75, "USD"), (1.0, "EUR")]);
        assert_eq!(
            top.notes(),
            [
                Note {
                    name: "beta",
                    text: "no sessions (up 3m05s, 0 connection(s), 0 agent process(es))".into(),
                    problem: false
                },
                Note {
                    name: "gamma",
                    text: "unreachable: cannot connect: Connection refused".into(),
                    problem: true
                },
            ]
        );
        top.filter = Some("gamma".into());
        assert_eq!(top.totals().daemons, 1);
        assert_eq!(top.notes().len(), 1);
    }
}
