//! The `file` provider, for development and tests: each message becomes one JSON line
//!
//! ```json
//! {"to":"+8613800138000","body":"123456 is your Workgate verification code. …","sent_at":"2026-11-25T09:24:06.123Z",
//!  "id":"sms_…","kind":"login_code","params":{"code":"123456","minutes":"10"}}
//! ```
//!
//! (one line in the file). `kind` and `params` are what a template gateway would send: the kind
//! of message and its parameters.
//!
//! appended to a file. Each line is written with one `write` call on a file opened in append
//! mode, under a mutex, then flushed to disk (`sync_data`) before `send` returns: concurrent sends
//! never interleave and a reader sees whole lines. The file is opened for every message, so a test
//! or a developer may delete or truncate it at any time.

use crate::http;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use workgate_domain::sms::{SendError, SmsMessage, SmsProvider};

/// `[sms.file]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The JSON-lines file. Missing directories are created.
    pub path: PathBuf,
}

/// One line of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMessage {
    pub to: String,
    pub body: String,
    /// RFC 3339, UTC, milliseconds.
    pub sent_at: String,
    /// The outbox id (`message_id` of [`SmsProvider::send`]).
    pub id: String,
    /// The kind of message (`login_code`, `invitation`, `phone_changed`); absent for a message
    /// queued as bare text by an earlier version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The message's parameters, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
}

impl FileMessage {
    /// The line for `message` to `to`, sent now.
    pub fn new(message_id: &str, to: &str, message: &SmsMessage) -> FileMessage {
        let content = message.content.as_ref();
        FileMessage {
            to: to.into(),
            body: message.text.clone(),
            sent_at: http::now().1,
            id: message_id.into(),
            kind: content.map(|c| c.purpose().as_str().to_owned()),
            params: content
                .map(|c| c.params().into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                .unwrap_or_default(),
        }
    }
}

pub struct FileProvider {
    path: PathBuf,
    /// Held while a line is written, so lines from concurrent sends never interleave.
    lock: Arc<Mutex<()>>,
}

impl FileProvider {
    /// Creates the file's directory now, so a path that cannot work fails at start-up.
    pub fn new(config: FileConfig) -> Result<Self, String> {
        if config.path.as_os_str().is_empty() {
            return Err("sms.file.path must not be empty".into());
        }
        create_parent(&config.path)?;
        Ok(FileProvider { path: config.path, lock: Arc::new(Mutex::new(())) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl SmsProvider for FileProvider {
    fn name(&self) -> &'static str {
        "file"
    }

    async fn send(&self, message_id: &str, to: &str, message: &SmsMessage) -> Result<(), SendError> {
        let mut line = serde_json::to_vec(&FileMessage::new(message_id, to, message))
            .map_err(|e| SendError::Permanent(format!("file: cannot encode the message: {e}")))?;
        line.push(b'\n');
        let path = self.path.clone();
        let lock = self.lock.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave a half-written line behind that matters
            // to the next writer (each line is one write), so a poisoned lock is still usable.
            let _guard = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            append_line(&path, &line)
        })
        .await
        .map_err(|e| SendError::Retryable(format!("file: the writing task failed: {e}")))?
        .map_err(|e| SendError::Retryable(format!("file: cannot append to {}: {e}", self.path.display())))
    }
}

fn create_parent(path: &Path) -> Result<(), String> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the directory {} for SMS messages: {e}", dir.display())),
        _ => Ok(()),
    }
}

fn append_line(path: &Path, line: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    // `write_all` is one `write` for a regular file unless the disk is full or a signal lands.
    file.write_all(line)?;
    file.flush()?;
    file.sync_data()
}

/// The messages in a `file` provider's file, oldest first. A missing file gives no messages; a
/// line that is not a message (a partial last line after a crash, say) is skipped.
pub fn read_messages(path: impl AsRef<Path>) -> Vec<FileMessage> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect()
}
