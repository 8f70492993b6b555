//! When a pass must stop writing: on shutdown, and, with a leader lease,
//! once the lease can no longer be trusted. The pass asks between any two
//! AWS calls (every call leaves the gateway in a state the next pass
//! understands), so it stops at the next safe point.
//!
//! The lease side is a deadline, not a flag set by another task: the
//! renewer moves it forward after each renewal, measured from before that
//! renewal's call, and writing stops by itself once the time has come, even
//! while the renewer is stuck in a slow call. Nothing ever clears a stop
//! another task asked for.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Until when this instance may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writes {
    /// No lease: as long as it runs.
    Always,
    /// Until this instant (the lease's own safe end).
    Until(Instant),
}

/// The stop signal of a reconciler.
#[derive(Debug)]
pub struct Stop {
    shutdown: AtomicBool,
    writes: Mutex<Writes>,
}

impl Default for Stop {
    fn default() -> Self {
        Stop {
            shutdown: AtomicBool::new(false),
            writes: Mutex::new(Writes::Always),
        }
    }
}

impl Stop {
    /// Asks the running pass (and every later one) to stop.
    pub fn shut_down(&self) {
        self.shutdown.store(true, Ordering::Relaxed);
    }

    pub fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }

    /// Under a lease: writing is allowed until `until`; `None` means not at
    /// all (the lease is another instance's).
    pub fn allow_writes_until(&self, until: Option<Instant>) {
        // Before any instant there is: no writes.
        let until = until.unwrap_or_else(|| Instant::now() - std::time::Duration::from_millis(1));
        *self.writes.lock().expect("lock") = Writes::Until(until);
    }

    /// Whether this instance may write now (shutdown aside).
    pub fn may_write(&self) -> bool {
        match *self.writes.lock().expect("lock") {
            Writes::Always => true,
            Writes::Until(t) => Instant::now() < t,
        }
    }

    /// Whether the pass must stop before its next AWS call.
    pub fn requested(&self) -> bool {
        self.shutting_down() || !self.may_write()
    }
}

/// The lease side of the stop guards every write attempt of the AWS
/// clients (`Aws::guard_writes`); a shutdown does not: a call already
/// started finishes, and the pass stops before the next.
impl crate::aws::calls::WriteGate for Stop {
    fn may_write(&self) -> bool {
        Stop::may_write(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_deadline_stops_writes_by_itself() {
        let s = Stop::default();
        assert!(!s.requested());
        s.allow_writes_until(Some(Instant::now() + Duration::from_millis(30)));
        assert!(!s.requested());
        std::thread::sleep(Duration::from_millis(40));
        assert!(s.requested(), "no renewal came: writing stops");
        s.allow_writes_until(Some(Instant::now() + Duration::from_secs(10)));
        assert!(!s.requested());
        s.allow_writes_until(None);
        assert!(s.requested());
        s.allow_writes_until(Some(Instant::now() + Duration::from_secs(10)));
        s.shut_down();
        assert!(s.requested(), "a shutdown is never cleared");
    }
}
