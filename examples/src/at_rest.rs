//! The store key on the command line: where it comes from (a file or the environment, never
//! an argument), and the commands that make a key, encrypt a plain store and change the key.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use nabij_core::{Device, StoreKey};
use serde_json::json;

use crate::error::{CliError, Result};

/// The store key from `--key-file`, else `$NABIJ_STORE_KEY_FILE`, else `$NABIJ_STORE_KEY`
/// (64 hex digits); `None` if none is given.
pub(crate) fn store_key(key_file: Option<&Path>) -> Result<Option<StoreKey>> {
    let from_env_file = std::env::var_os("NABIJ_STORE_KEY_FILE").filter(|p| !p.is_empty());
    if let Some(file) = key_file.map(Path::to_path_buf).or(from_env_file.map(PathBuf::from)) {
        return read_key_file(&file).map(Some);
    }
    // The copy read here is zeroed when dropped (the environment's own stays: the user put it
    // there).
    match std::env::var("NABIJ_STORE_KEY").map(zeroize::Zeroizing::new) {
        Ok(hex) if !hex.is_empty() => StoreKey::from_hex(&hex)
            .map(Some)
            .map_err(|e| CliError::invalid(format!("NABIJ_STORE_KEY: {e}"))),
        _ => Ok(None),
    }
}

/// Reads a key file, refusing one that others may read (like ssh does its keys).
pub(crate) fn read_key_file(file: &Path) -> Result<StoreKey> {
    let named = |m: String| format!("key file {}: {m}", file.display());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(file).map_err(|e| CliError::invalid(named(e.to_string())))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CliError::invalid(named(format!(
                "others may read it (mode {mode:o}); make it owner-only: chmod 600 {}",
                file.display()
            ))));
        }
    }
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(file).map_err(|e| CliError::invalid(named(e.to_string())))?,
    );
    StoreKey::from_hex(&text).map_err(|e| CliError::invalid(named(e.to_string())))
}

/// `nabij key new --out FILE`.
pub(crate) fn new_key(out: &Path, json: bool) -> Result<()> {
    let key = StoreKey::generate()
        .map_err(|e| CliError::failure(format!("no randomness for a key: {e}")))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(out)
        .map_err(|e| CliError::invalid(format!("cannot create key file {}: {e}", out.display())))?;
    let mut line = key.to_hex();
    line.push('\n');
    f.write_all(line.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| CliError::storage(format!("cannot write {}: {e}", out.display())))?;
    if json {
        crate::commands::print(&format!("{}\n", json!({ "key_file": out.display().to_string() })))
    } else {
        crate::commands::print(&format!(
            "Wrote a new store key to {} (owner-only). Keep it apart from the store: whoever has \
             both reads every note.\n",
            out.display()
        ))
    }
}

/// `nabij migrate-encrypt`.
pub(crate) fn migrate_encrypt(store: &Path, key: Option<StoreKey>, json: bool) -> Result<()> {
    let key = key.ok_or_else(|| {
        CliError::invalid(
            "migrate-encrypt needs the key to encrypt with: --key-file FILE, \
             $NABIJ_STORE_KEY_FILE or $NABIJ_STORE_KEY (`nabij key new --out FILE` makes one)",
        )
    })?;
    Device::encrypt_store(store, &key)
        .map_err(|e| CliError::from(e).context(format!("store {}", store.display())))?;
    if json {
        crate::commands::print(&format!(
            "{}\n",
            json!({ "store": store.display().to_string(), "encrypted": true })
        ))
    } else {
        crate::commands::print(&format!(
            "Encrypted {}: open it with the same key from now on.\n",
            store.display()
        ))
    }
}

/// `nabij rekey --new-key-file FILE`.
pub(crate) fn rekey(dev: &Device, store: &Path, new_key_file: &Path, json: bool) -> Result<()> {
    let new = read_key_file(new_key_file)?;
    dev.change_store_key(&new)
        .map_err(|e| CliError::from(e).context(format!("store {}", store.display())))?;
    if json {
        crate::commands::print(&format!(
            "{}\n",
            json!({ "store": store.display().to_string(), "rekeyed": true })
        ))
    } else {
        crate::commands::print(&format!(
            "Re-encrypted {} under the key in {}.\n",
            store.display(),
            new_key_file.display()
        ))
    }
}
