//! The file notifier: one RFC 5322 `.eml` file per message into a folder. The demo's default: open the files
//! with any mail client or `cat`.

use std::path::PathBuf;

use lettre::message::Mailbox;

use super::config::FileConfig;
use super::error::{DeliveryError, NotifierError};
use super::message::Message;
use super::smtp::{build_email, mailbox, mailboxes};

/// Writes messages as `.eml` files.
pub struct FileNotifier {
    dir: PathBuf,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl FileNotifier {
    /// A notifier writing into `c.path`.
    pub fn new(c: &FileConfig) -> Result<FileNotifier, NotifierError> {
        Ok(FileNotifier {
            dir: c.path.clone(),
            from: mailbox("from", &c.from)?,
            to: mailboxes("to", &c.to)?,
        })
    }

    /// Writes `<time>-<id>.eml` atomically (temporary file, then rename), so readers never see half a file
    /// and a retry overwrites rather than duplicates.
    pub async fn deliver(&self, message: &Message) -> Result<(), DeliveryError> {
        let bytes = build_email(message, &self.from, &self.to)?.formatted();
        let failed = |action, path: &std::path::Path| {
            let path = path.to_path_buf();
            move |source| DeliveryError::Write {
                action,
                path,
                source,
            }
        };
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(failed("create", &self.dir))?;
        let stamp = crate::core::time::rfc3339(message.created_at).replace(':', "");
        let name = format!("{stamp}-{:06}.eml", message.id);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let path = self.dir.join(&name);
        tokio::fs::write(&tmp, &bytes)
            .await
            .map_err(failed("write", &tmp))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(failed("rename to", &path))
    }
}
