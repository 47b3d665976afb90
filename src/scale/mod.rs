//! Scaling: the pure policy (`policy`) and what it learns from the load as it runs (`forecast`).

pub mod demand;
pub mod forecast;
pub mod policy;
