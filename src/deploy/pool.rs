//! The rollout's SSH connections: one per host, all opened in parallel when the rollout starts (at most
//! [`PARALLEL_CONNECTS`] handshakes at once), so later batches find theirs already open and every step runs over
//! the host's multiplexed session. A host's task that needs its connection before the background opener got to
//! it opens it itself; either way each host is connected once.

use std::sync::Arc;

use tokio::sync::{OnceCell, Semaphore};
use tokio::task::JoinSet;

use super::ssh::{Connector, RemoteSession};
use super::target::Target;

/// SSH handshakes in flight at once while the pool opens.
pub const PARALLEL_CONNECTS: usize = 32;

/// One connection per host of the rollout, by host index.
pub struct Pool<C: Connector> {
    connector: Arc<C>,
    targets: Vec<Target>,
    /// `Err` holds the connection error's text (with its causes): the host fails at its `Connect` stage.
    cells: Vec<OnceCell<Result<C::Session, String>>>,
}

impl<C: Connector> Pool<C> {
    /// A pool for `targets` (nothing is opened yet).
    pub fn new(connector: Arc<C>, targets: Vec<Target>) -> Arc<Pool<C>> {
        let cells = targets.iter().map(|_| OnceCell::new()).collect();
        Arc::new(Pool {
            connector,
            targets,
            cells,
        })
    }

    /// Opens every connection in the background, [`PARALLEL_CONNECTS`] at a time; dropping (or aborting) the
    /// returned set stops what has not started.
    pub fn open_all(self: &Arc<Self>) -> JoinSet<()> {
        let limit = Arc::new(Semaphore::new(PARALLEL_CONNECTS));
        let mut set = JoinSet::new();
        for i in 0..self.targets.len() {
            let (pool, limit) = (self.clone(), limit.clone());
            set.spawn(async move {
                if pool.cells[i].initialized() {
                    return;
                }
                let Ok(_permit) = limit.acquire().await else {
                    return;
                };
                let _ = pool.get(i).await;
            });
        }
        set
    }

    /// Host `i`'s session, opening it now if the background opener has not yet.
    pub async fn get(&self, i: usize) -> Result<&C::Session, &str> {
        self.cells[i]
            .get_or_init(|| async {
                self.connector
                    .connect(&self.targets[i])
                    .await
                    .map_err(|e| crate::core::chain(&e))
            })
            .await
            .as_ref()
            .map_err(String::as_str)
    }

    /// Closes every open session, in parallel. Call once every task using the pool has ended.
    pub async fn close(pool: Arc<Self>) {
        let Some(pool) = Arc::into_inner(pool) else {
            // Still shared: the sessions close as the last user drops them.
            return;
        };
        let mut closing = JoinSet::new();
        for cell in pool.cells {
            if let Some(Ok(session)) = cell.into_inner() {
                closing.spawn(session.close());
            }
        }
        while closing.join_next().await.is_some() {}
    }
}
