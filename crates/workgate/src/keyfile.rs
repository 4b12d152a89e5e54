//! The key file: the server's master key (256 random bits, 64 hexadecimal digits), kept outside
//! the database so that a copy of the database alone opens no secret. Every key the server uses is
//! derived from it (`workgate_domain::keys`). Created on first start, readable by its owner only.

use std::io::Write;
use std::path::{Path, PathBuf};
use workgate_domain::keys::{ServerKeys, format_master, parse_master};

/// The key file as read (or created) at start.
pub struct KeyFile {
    pub path: PathBuf,
    /// Whether this start created it (there was none).
    pub created: bool,
    pub keys: ServerKeys,
}

/// Reads the key file at `path`, or creates it (mode 0600) with a new random key when there is
/// none. Several processes starting at once agree on one key: the file appears whole, and only
/// once (a link to a finished temporary file, which fails if another process linked first).
pub fn load_or_create(path: &Path) -> anyhow::Result<KeyFile> {
    match std::fs::read_to_string(path) {
        Ok(text) => return parse(path, &text, false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!("cannot read the key file {}: {e}", path.display()),
    }
    let master = ServerKeys::generate_master();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "workgate.key".into());
    let temp =
        dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), workgate_domain::secret::random_lower_alnum(8)));
    let create_failed = |e: std::io::Error| anyhow::anyhow!("cannot create the key file {}: {e}", path.display());
    let written = write_private(&temp, format_master(&master).as_bytes());
    let linked = written.and_then(|()| std::fs::hard_link(&temp, path));
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => {
            sync_dir(&dir);
            tracing::warn!(
                key_file = %path.display(),
                "created a new key file: back it up apart from the database; without it the codes, messages and answers the database keeps cannot be read"
            );
            Ok(KeyFile { path: path.to_path_buf(), created: true, keys: ServerKeys::from_master(&master) })
        }
        // Another process starting at the same time created it first: use that one.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read the key file {}: {e}", path.display()))?;
            parse(path, &text, false)
        }
        Err(e) => Err(create_failed(e)),
    }
}

fn parse(path: &Path, text: &str, created: bool) -> anyhow::Result<KeyFile> {
    let master = parse_master(text).ok_or_else(|| {
        anyhow::anyhow!(
            "the key file {} is malformed: it must hold the 64 hexadecimal digits that workgate wrote into it; \
             restore it from a backup (a new key cannot read what the database keeps)",
            path.display()
        )
    })?;
    warn_if_shared(path);
    Ok(KeyFile { path: path.to_path_buf(), created, keys: ServerKeys::from_master(&master) })
}

/// Writes a new file readable and writable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Makes the new directory entry durable (best effort: not every platform can open a directory).
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(key_file = %path.display(), "the key file can be read by other users; make it readable by workgate's user only (chmod 600)");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_created_once_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("workgate.key");
        let first = load_or_create(&path).unwrap();
        assert!(first.created);
        let again = load_or_create(&path).unwrap();
        assert!(!again.created);
        assert_eq!(first.keys.check(), again.keys.check());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left");
        std::fs::write(&path, "not a key").unwrap();
        let err = load_or_create(&path).err().unwrap().to_string();
        assert!(err.contains("malformed"), "{err}");
    }
}
