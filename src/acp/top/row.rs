//! A session as a row of `acp top`, what its cells say, and how two rows compare under each
//! sort.

use std::cmp::Ordering;

use crate::acp::status::{Cost, Session, SessionState};

/// The column the rows are sorted by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortKey {
    #[default]
    Container,
    Session,
    Agent,
    Model,
    State,
    Rate,
    Cost,
    Context,
}

impl SortKey {
    /// The order `s` cycles through.
    pub const ALL: [SortKey; 8] = [
        SortKey::Container,
        SortKey::Session,
        SortKey::Agent,
        SortKey::Model,
        SortKey::State,
        SortKey::Rate,
        SortKey::Cost,
        SortKey::Context,
    ];

    pub fn next(self) -> SortKey {
        let at = SortKey::ALL.iter().position(|k| *k == self).unwrap_or(0);
        SortKey::ALL[(at + 1) % SortKey::ALL.len()]
    }

    pub fn label(self) -> &'static str {
        match self {
            SortKey::Container => "container",
            SortKey::Session => "session",
            SortKey::Agent => "agent",
            SortKey::Model => "model",
            SortKey::State => "state",
            SortKey::Rate => "updates/s",
            SortKey::Cost => "cost",
            SortKey::Context => "context",
        }
    }
}

/// One session, as a row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub container: &'a str,
    pub session: &'a Session,
    /// `session/update`s per second since its daemon's previous report; `None` until the
    /// session was in two reports (or when its counter went back: a restarted daemon).
    pub rate: Option<f64>,
}

impl Row<'_> {
    /// The state as shown; a detached session whose turn still runs is told apart.
    pub fn state_label(&self) -> &'static str {
        match (self.session.state, self.session.turn_running) {
            (SessionState::Detached, true) => "detached+run",
            (state, _) => state.as_str(),
        }
    }

    /// Most active first: what the state sort orders by.
    fn state_rank(&self) -> u8 {
        match (self.session.state, self.session.turn_running) {
            (SessionState::Running, _) => 0,
            (SessionState::Detached, true) => 1,
            (SessionState::Binding, _) => 2,
            (SessionState::Bound, _) => 3,
            (SessionState::Detached, false) => 4,
            (SessionState::Unbound, _) => 5,
        }
    }

    /// The model without its `agent:` prefix when the agent column already says it.
    pub fn model_label(&self) -> &str {
        let model = &self.session.model[..];
        self.session
            .agent
            .as_deref()
            .and_then(|agent| model.strip_prefix(agent)?.strip_prefix(':'))
            .unwrap_or(model)
    }

    /// The session id without the proxy's `terok-` prefix, cut to 8 characters (the ids are
    /// random hex, so 8 tell them apart).
    pub fn short_id(&self) -> &str {
        let id = &self.session.id[..];
        let id = id.strip_prefix("terok-").unwrap_or(id);
        match id.char_indices().nth(8) {
            Some((at, _)) => &id[..at],
            None => id,
        }
    }

    /// How full the context window is, in percent, when the agent said both.
    pub fn context_percent(&self) -> Option<f64> {
        let usage = &self.session.usage;
        match (usage.context_used, usage.context_size) {
            (Some(used), Some(size)) if size > 0 => Some(used as f64 * 100.0 / size as f64),
            _ => None,
        }
    }

    fn cost(&self) -> Option<&Cost> {
        self.session.usage.cost.as_ref()
    }
}

/// How `a` and `b` compare under `key`: names ascending; states most active first; numbers
/// largest first, unknown last. Ties are the caller's to break.
pub fn compare(key: SortKey, a: &Row<'_>, b: &Row<'_>) -> Ordering {
    match key {
        SortKey::Container => a.container.cmp(b.container),
        SortKey::Session => a.session.id.cmp(&b.session.id),
        SortKey::Agent => a.session.agent.cmp(&b.session.agent),
        SortKey::Model => a.model_label().cmp(b.model_label()),
        SortKey::State => a.state_rank().cmp(&b.state_rank()),
        SortKey::Rate => descending(a.rate, b.rate),
        SortKey::Cost => descending(a.cost().map(|c| c.amount), b.cost().map(|c| c.amount))
            .then_with(|| {
                let currency = |r: &Row<'_>| r.cost().map(|c| c.currency.clone());
                currency(a).cmp(&currency(b))
            }),
        SortKey::Context => descending(a.context_percent(), b.context_percent()),
    }
}

fn descending(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => b.total_cmp(&a),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_cycle_back_to_the_first() {
        let mut key = SortKey::default();
        assert_eq!(key, SortKey::Container);
        for _ in 0..SortKey::ALL.len() {
            key = key.next();
        }
        assert_eq!(key, SortKey::Container);
        assert_eq!(key.next(), SortKey::Session);
    }

    #[test]
    fn labels_shorten_ids_and_models_and_tell_a_detached_turn_apart() {
        let mut s = Session {
            id: "terok-0123456789abcdef".into(),
            agent: Some("claude".into()),
            model: "claude:opus".into(),
            state: SessionState::Detached,
            ..Session::default()
        };
        fn row(session: &Session) -> Row<'_> {
            Row {
                container: "c",
                session,
                rate: None,
            }
        }
        assert_eq!(row(&s).short_id(), "01234567");
        assert_eq!(row(&s).model_label(), "opus");
        assert_eq!(row(&s).state_label(), "detached");
        s.turn_running = true;
        assert_eq!(row(&s).state_label(), "detached+run");
        // A pick that is not the bound agent's, and an id of another shape, stay whole.
        s.model = "codex:o3".into();
        s.id = "sess-1".into();
        assert_eq!(row(&s).model_label(), "codex:o3");
        assert_eq!(row(&s).short_id(), "sess-1");
        s.usage.context_used = Some(50);
        assert_eq!(row(&s).context_percent(), None, "no size, no percent");
        s.usage.context_size = Some(200);
        assert_eq!(row(&s).context_percent(), Some(25.0));
    }
}
