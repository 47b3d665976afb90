//! What an HTTP check sends its requests through: the [`Transport`] a fresh connection (`fresh.rs`) and the
//! shared pool (`pooled.rs`) both implement, the [`Head`] of an answer, the [`Capped`] body, and the
//! [`CheckerError`] building their clients can fail with. Uses only `phase.rs` and `tls.rs` of its siblings.

use reqwest::header::HeaderMap;
use reqwest::{Method, Url};

use super::phase::{Down, Partial};
use super::tls;

/// Errors building a [`Checker`].
#[derive(Debug, thiserror::Error)]
pub enum CheckerError {
    /// The `ca_file` could not be read.
    #[error("cannot read the CA file {path}")]
    CaFile {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TLS trust could not be set up.
    #[error(transparent)]
    Tls(#[from] tls::TlsSetupError),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    Http(#[source] reqwest::Error),
}

/// The answer to one request: its status, its `Location` and the rest of it (the body, unread).
pub(super) struct Head<R> {
    pub(super) status: u16,
    pub(super) location: Option<String>,
    pub(super) rest: R,
}

/// How an HTTP check sends its requests: a fresh connection each, or the shared pool.
pub(super) trait Transport {
    /// The unread rest of a response.
    type Rest;

    /// Sends one request and waits for the response headers (the stopwatch is at DNS on entry).
    async fn send(
        &self,
        method: &Method,
        url: &Url,
        headers: Option<&HeaderMap>,
        partial: &mut Partial,
    ) -> Result<Head<Self::Rest>, Down>;

    /// Reads the body: at most `cap` bytes are kept; true when more came (the rest is not read).
    async fn body(
        &self,
        rest: Self::Rest,
        cap: usize,
        partial: &mut Partial,
    ) -> Result<(Vec<u8>, bool), Down>;
}

/// A body read up to a cap: keeps the first `cap` bytes and notes whether more came.
pub(super) struct Capped {
    body: Vec<u8>,
    cap: usize,
    more: bool,
}

impl Capped {
    pub(super) fn new(cap: usize) -> Capped {
        Capped {
            body: Vec::new(),
            cap,
            more: false,
        }
    }

    /// Adds a chunk; false once more than `cap` bytes came (stop reading).
    pub(super) fn push(&mut self, chunk: &[u8]) -> bool {
        let room = self.cap - self.body.len();
        if chunk.len() > room {
            self.body.extend_from_slice(&chunk[..room]);
            self.more = true;
            return false;
        }
        self.body.extend_from_slice(chunk);
        true
    }

    pub(super) fn finish(self) -> (Vec<u8>, bool) {
        (self.body, self.more)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capped_body_keeps_the_first_bytes_and_notes_the_rest() {
        let mut c = Capped::new(4);
        assert!(c.push(b"ab"));
        assert!(c.push(b"cd"), "exactly full is not yet truncated");
        assert_eq!(c.finish(), (b"abcd".to_vec(), false));
        let mut c = Capped::new(4);
        assert!(c.push(b"abcd"));
        assert!(!c.push(b"e"));
        assert_eq!(c.finish(), (b"abcd".to_vec(), true));
    }
}
