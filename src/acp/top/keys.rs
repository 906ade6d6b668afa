//! What the keys of `acp top` do. Raw mode turns Ctrl-C into a key, so it quits like `q`.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Quit,
    CycleSort,
    CycleFilter,
}

/// The command a key press stands for, if any (releases and repeats stand for nothing).
pub fn command(key: &KeyEvent) -> Option<Command> {
    if key.kind != KeyEventKind::Press {
        return None;
    }
    match key.code {
        KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => Some(Command::Quit),
        KeyCode::Char('q' | 'Q') | KeyCode::Esc => Some(Command::Quit),
        KeyCode::Char('s' | 'S') => Some(Command::CycleSort),
        KeyCode::Char('f' | 'F') => Some(Command::CycleFilter),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crossterm::event::KeyEventState;

    use super::*;

    fn press(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn quit_sort_and_filter_keys() {
        let none = KeyModifiers::NONE;
        assert_eq!(
            command(&press(KeyCode::Char('q'), none)),
            Some(Command::Quit)
        );
        assert_eq!(command(&press(KeyCode::Esc, none)), Some(Command::Quit));
        assert_eq!(
            command(&press(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Command::Quit)
        );
        assert_eq!(command(&press(KeyCode::Char('c'), none)), None);
        assert_eq!(
            command(&press(KeyCode::Char('s'), none)),
            Some(Command::CycleSort)
        );
        assert_eq!(
            command(&press(KeyCode::Char('f'), none)),
            Some(Command::CycleFilter)
        );
        assert_eq!(command(&press(KeyCode::Char('x'), none)), None);
    }

    #[test]
    fn a_key_release_is_no_second_press() {
        let release = KeyEvent {
            kind: KeyEventKind::Release,
            state: KeyEventState::NONE,
            ..KeyEvent::new(KeyCode::Char('s'), KeyModifiers::NONE)
        };
        assert_eq!(command(&release), None);
    }
}
