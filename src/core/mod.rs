//! The shared leaf: small types every component uses and that import no component.
//!
//! Nothing here does I/O beyond reading the host name once; nothing here imports anything else of tend. A part
//! that needs a duration parsed, a secret kept, an event named, a value shell-quoted, a median or an error
//! printed with its causes takes it from here, so there is one implementation of each.

pub mod duration;
pub mod error;
pub mod event;
pub mod host;
pub mod invalid;
pub mod level;
pub mod secret;
pub mod stats;
pub mod table;
pub mod template;
pub mod time;

pub use error::chain;
pub use event::Event;
pub use invalid::Invalid;
pub use level::Level;
pub use secret::Secret;
