//! What a delivery task reports back to the alert thread's loop: the [`Outcome`] of one attempt. A leaf of
//! `alert/`: `deliver.rs` starts the tasks and records their outcomes, `service.rs` holds the channel they come
//! back on.

use std::time::Duration;

use super::error::DeliveryError;

/// A delivery attempt's result, from its task back to the loop.
pub(super) struct Outcome {
    pub(super) message: i64,
    pub(super) notifier: String,
    pub(super) attempts: u32,
    pub(super) claim: String,
    pub(super) result: Attempt,
}

/// What became of one delivery attempt.
pub(super) enum Attempt {
    /// The notifier took it (`coordinated`: under this replica's claim).
    Delivered { coordinated: bool },
    /// The notifier refused or failed: retried with backoff.
    Failed(DeliveryError),
    /// Another replica delivered it.
    ByPeer(String),
    /// Another replica is delivering it (or the claim could not be asked yet): ask again later.
    Deferred(Duration),
}
