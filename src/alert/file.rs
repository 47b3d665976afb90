//! The file notifier: one RFC 5322 `.eml` file per message into a folder. The demo's default: open the files
//! with any mail client or `cat`.

use std::path::PathBuf;

use lettre::message::Mailbox;

use super::Message;
use super::config::FileConfig;
use super::smtp::build_email;

/// Writes messages as `.eml` files.
pub struct FileNotifier {
    dir: PathBuf,
    from: String,
    to: Vec<String>,
}

impl FileNotifier {
    /// A notifier writing into `c.path`.
    pub fn new(c: &FileConfig) -> FileNotifier {
        FileNotifier {
            dir: c.path.clone(),
            from: c.from.clone(),
            to: c.to.clone(),
        }
    }

    /// Writes `<time>-<id>.eml` atomically (temporary file, then rename), so readers never see half a file
    /// and a retry overwrites rather than duplicates.
    pub async fn deliver(&self, message: &Message) -> Result<(), String> {
        let from: Mailbox = self
            .from
            .parse()
            .map_err(|e| format!("from {:?}: {e}", self.from))?;
        let to = self
            .to
            .iter()
            .map(|t| t.parse().map_err(|e| format!("to {t:?}: {e}")))
            .collect::<Result<Vec<Mailbox>, String>>()?;
        let bytes = build_email(message, &from, &to)?.formatted();
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        let stamp = humantime::format_rfc3339_seconds(message.created_at)
            .to_string()
            .replace(':', "");
        let name = format!("{stamp}-{:06}.eml", message.id);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let path = self.dir.join(&name);
        tokio::fs::write(&tmp, &bytes)
            .await
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| format!("cannot rename to {}: {e}", path.display()))
    }
}
