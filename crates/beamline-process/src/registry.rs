//! [`Registry`]: processes found by name, with names freed when their process exits.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use crate::exit::ExitReason;
use crate::process::{Addr, Pid, ProcessId, Watcher, next_key};

/// Why [`Registry::register`] refused a name.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError<K> {
    /// Another live process holds the name.
    #[error("the name {name:?} is already registered to process {holder}")]
    Taken {
        /// The name asked for.
        name: K,
        /// The process holding it.
        holder: ProcessId,
    },
    /// The process to register has already exited.
    #[error("cannot register {name:?}: the process already exited ({reason})")]
    Exited {
        /// The name asked for.
        name: K,
        /// The process's exit reason.
        reason: ExitReason,
    },
}

struct Entry<M> {
    addr: Addr<M>,
    /// The exit hook on the process that frees the name; removed on `unregister`.
    hook: u64,
}

struct Names<M, K> {
    map: Mutex<HashMap<K, Entry<M>>>,
}

impl<M, K> Names<M, K> {
    fn lock(&self) -> MutexGuard<'_, HashMap<K, Entry<M>>> {
        // Only map operations run under this lock.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A name → process table: register a process under a name, look it up, and the name is
/// freed the moment the process exits (before anyone waiting on that exit is told).
///
/// There is no global registry: create one and share it (it is a cheap clone). `K` is the
/// name type (default `String`); all processes in one registry take messages of type `M`.
///
/// # Examples
/// ```
/// use beamline_process::{spawn, Registry};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// // Rooms take `u64` messages and are named by `String` (the default name type).
/// let rooms: Registry<u64> = Registry::new();
/// let lobby = spawn(|mut ctx| async move { loop { ctx.recv().await; } });
/// rooms.register("lobby".to_string(), &lobby).unwrap();
/// assert_eq!(rooms.lookup("lobby"), Some(lobby.clone()));
/// lobby.kill();
/// lobby.exited().await;
/// assert_eq!(rooms.lookup("lobby"), None); // freed on exit
/// # }
/// ```
pub struct Registry<M, K = String> {
    names: Arc<Names<M, K>>,
}

impl<M, K> Clone for Registry<M, K> {
    fn clone(&self) -> Self {
        Self {
            names: self.names.clone(),
        }
    }
}

impl<M, K> Default for Registry<M, K>
where
    M: Send + 'static,
    K: Hash + Eq + Clone + Send + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<M, K> Registry<M, K>
where
    M: Send + 'static,
    K: Hash + Eq + Clone + Send + 'static,
{
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            names: Arc::new(Names {
                map: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Registers `addr` under `name`. A process may hold several names.
    ///
    /// # Errors
    /// - [`RegisterError::Taken`] if a live process holds `name` (it keeps it);
    /// - [`RegisterError::Exited`] if `addr`'s process already exited.
    pub fn register(&self, name: K, addr: &Addr<M>) -> Result<(), RegisterError<K>> {
        let mut map = self.names.lock();
        if let Some(held) = map.get(&name)
            && held.addr.is_alive()
        {
            return Err(RegisterError::Taken {
                name,
                holder: held.addr.id(),
            });
        }
        let hook = next_key();
        let names: Weak<Names<M, K>> = Arc::downgrade(&self.names);
        let key = name.clone();
        let watcher = Watcher::Hook(Box::new(move |pid: &Pid, _: &ExitReason| {
            if let Some(names) = names.upgrade() {
                let mut map = names.lock();
                if map.get(&key).is_some_and(|e| e.addr.id() == pid.id()) {
                    map.remove(&key);
                }
            }
        }));
        if let Err((_, reason)) = addr.pid().0.add_watcher(hook, watcher) {
            return Err(RegisterError::Exited { name, reason });
        }
        if let Some(previous) = map.insert(
            name,
            Entry {
                addr: addr.clone(),
                hook,
            },
        ) {
            // A holder that is exiting right now: its own hook will find the name reassigned.
            previous.addr.pid().0.remove_watcher(previous.hook);
        }
        Ok(())
    }

    /// Removes `name` and returns the process that held it.
    pub fn unregister<Q>(&self, name: &Q) -> Option<Addr<M>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entry = self.names.lock().remove(name)?;
        entry.addr.pid().0.remove_watcher(entry.hook);
        Some(entry.addr)
    }

    /// The live process registered under `name`.
    pub fn lookup<Q>(&self, name: &Q) -> Option<Addr<M>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.names
            .lock()
            .get(name)
            .map(|e| e.addr.clone())
            .filter(Addr::is_alive)
    }

    /// Every registered name.
    pub fn names(&self) -> Vec<K> {
        self.names.lock().keys().cloned().collect()
    }

    /// How many names are registered.
    pub fn len(&self) -> usize {
        self.names.lock().len()
    }

    /// True if no name is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<M, K> fmt::Debug for Registry<M, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("names", &self.names.lock().len())
            .finish()
    }
}
