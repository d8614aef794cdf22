//! What both emulators share: a lock that ignores poison, and the set of tasks an emulator
//! runs (calls, conversations, accept loops), stopped together at shutdown.

use std::future::Future;
use std::sync::{Mutex, MutexGuard};

use tokio::runtime::Handle;
use tokio::task::JoinSet;

/// Locks ignoring poison: state stays consistent because no code panics while holding a lock,
/// and an emulator must keep answering regardless.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The emulator's tasks, on the runtime it was started in.
pub(crate) struct Tasks {
    runtime: Handle,
    /// `None` once shut down: no new tasks.
    set: Mutex<Option<JoinSet<()>>>,
}

impl Tasks {
    pub(crate) fn new(runtime: Handle) -> Self {
        Self {
            runtime,
            set: Mutex::new(Some(JoinSet::new())),
        }
    }

    /// Runs `task` on the emulator's runtime; returns false after shutdown.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) -> bool {
        let mut tasks = lock(&self.set);
        match tasks.as_mut() {
            Some(set) => {
                // Reap finished tasks so the set stays as small as the live ones.
                while set.try_join_next().is_some() {}
                set.spawn_on(task, &self.runtime);
                true
            }
            None => false,
        }
    }

    /// Aborts every task and waits until they are gone; later spawns are refused.
    pub(crate) async fn shutdown(&self) {
        let set = lock(&self.set).take();
        if let Some(mut set) = set {
            set.shutdown().await;
        }
    }

    /// Aborts every task without waiting (for `Drop`); later spawns are refused.
    pub(crate) fn abort_now(&self) {
        // Dropping a JoinSet aborts its tasks.
        drop(lock(&self.set).take());
    }
}
