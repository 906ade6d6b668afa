//! Per-session state: working directory, selected model and mode, and the
//! cancel signal that stops the prompt in flight.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Locks a mutex, recovering the data if another thread panicked with it held.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// A resettable cancel signal that sleeping prompts can wait on.
///
/// The atomic flag makes the check cheap on hot paths; the condition variable
/// wakes prompts that are sleeping between chunks.
#[derive(Default)]
pub struct Cancel {
    flag: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Cancel {
    /// Clears the signal before a new prompt starts.
    pub fn reset(&self) {
        let _guard = lock(&self.lock);
        self.flag.store(false, Ordering::SeqCst);
    }

    /// Raises the signal and wakes every waiter.
    pub fn cancel(&self) {
        let _guard = lock(&self.lock);
        self.flag.store(true, Ordering::SeqCst);
        self.wake.notify_all();
    }

    /// Tells whether the signal is raised.
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// Sleeps for `duration` unless cancelled first; returns true if cancelled.
    pub fn sleep(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        let mut guard = lock(&self.lock);
        loop {
            if self.flag.load(Ordering::SeqCst) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            guard = match self.wake.wait_timeout(guard, deadline - now) {
                Ok((g, _)) => g,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

/// The mutable selections of a session.
#[derive(Clone, Debug)]
pub struct Selection {
    /// The current model id.
    pub model: String,
    /// The current mode value.
    pub mode: String,
}

/// One session created by `session/new`.
pub struct Session {
    /// The session id handed to the client.
    pub id: String,
    /// The working directory given by the client.
    pub cwd: String,
    /// The current model and mode.
    pub selection: Mutex<Selection>,
    /// Stops the prompt in flight.
    pub cancel: Cancel,
}

impl Session {
    /// Creates a session with the given initial selections.
    pub fn new(id: String, cwd: String, model: String, mode: String) -> Self {
        Self {
            id,
            cwd,
            selection: Mutex::new(Selection { model, mode }),
            cancel: Cancel::default(),
        }
    }

    /// A copy of the current selections.
    pub fn selection(&self) -> Selection {
        lock(&self.selection).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn cancel_interrupts_sleep() {
        let cancel = Arc::new(Cancel::default());
        let other = Arc::clone(&cancel);
        let waiter = std::thread::spawn(move || other.sleep(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(20));
        cancel.cancel();
        assert!(waiter.join().unwrap());
        cancel.reset();
        assert!(!cancel.sleep(Duration::from_millis(1)));
    }
}
