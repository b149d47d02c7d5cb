//! Moderators' accounts for the web console: a JSON file in the server's data (see
//! `[console] accounts`), written by `stage-server user add` and read at each login, so an
//! account added or removed takes effect without a restart. Passwords are kept only as
//! Argon2id hashes (PHC strings, OWASP's parameters: 19 MiB, 2 passes).

use std::collections::BTreeMap;
use std::path::Path;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The shortest password `user add` takes.
pub const MIN_PASSWORD_LEN: usize = 10;
/// The longest account name.
pub const MAX_NAME_LEN: usize = 64;
/// Longer passwords are refused before hashing (hashing is the expensive part of a login).
pub const MAX_PASSWORD_LEN: usize = 256;

#[derive(Debug, Error)]
pub enum AccountError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not an accounts file: {source}")]
    Format {
        path: String,
        source: serde_json::Error,
    },
    #[error("an account name is 1 to {MAX_NAME_LEN} letters, digits, '.', '_', '-' or '@'")]
    BadName,
    #[error("a password has {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters")]
    BadPassword,
    #[error("password hashing: {0}")]
    Hash(String),
}

/// The file: account name → password hash.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accounts {
    pub moderators: BTreeMap<String, String>,
}

/// What a login attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    Invalid,
}

impl Accounts {
    /// The accounts in `path`; none if the file does not exist yet.
    pub fn load(path: &Path) -> Result<Accounts, AccountError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Accounts::default()),
            Err(source) => {
                return Err(AccountError::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        serde_json::from_str(&text).map_err(|source| AccountError::Format {
            path: path.display().to_string(),
            source,
        })
    }

    /// Writes the file whole (a new file renamed over the old one, readable by its owner
    /// only).
    pub fn save(&self, path: &Path) -> Result<(), AccountError> {
        let io = |source| AccountError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let text = serde_json::to_string_pretty(self).map_err(|source| AccountError::Format {
            path: path.display().to_string(),
            source,
        })?;
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io)?;
            f.write_all(text.as_bytes()).map_err(io)?;
            f.write_all(b"\n").map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Adds `name`, or sets its password if it exists; `salt` is 16 random bytes.
    pub fn set(&mut self, name: &str, password: &str, salt: &[u8; 16]) -> Result<(), AccountError> {
        if !valid_name(name) {
            return Err(AccountError::BadName);
        }
        let chars = password.chars().count();
        if !(MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&chars) {
            return Err(AccountError::BadPassword);
        }
        let hash = hash(password, salt)?;
        self.moderators.insert(name.to_string(), hash);
        Ok(())
    }

    /// Checks `password` for `name`. An unknown name costs as long as a wrong password (a
    /// hash is checked either way), so timing does not tell which names exist.
    pub fn verify(&self, name: &str, password: &str) -> Verdict {
        if password.len() > MAX_PASSWORD_LEN * 4 {
            return Verdict::Invalid;
        }
        static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let stored = self.moderators.get(name);
        let phc = match stored {
            Some(h) => h.as_str(),
            None => DECOY.get_or_init(|| hash("decoy password", &[0u8; 16]).unwrap_or_default()),
        };
        let matches = PasswordHash::new(phc).is_ok_and(|parsed| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        });
        if matches && stored.is_some() {
            Verdict::Valid
        } else {
            Verdict::Invalid
        }
    }
}

/// A name the console shows and logs as is: plain characters only.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

fn hash(password: &str, salt: &[u8; 16]) -> Result<String, AccountError> {
    let salt = SaltString::encode_b64(salt).map_err(|e| AccountError::Hash(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_kept_as_argon2id_hashes_and_checked() {
        let dir = std::env::temp_dir().join(format!("stagebox-accounts-{}", std::process::id()));
        let path = dir.join("accounts.json");
        let mut a = Accounts::load(&path).unwrap();
        assert!(a.moderators.is_empty(), "no file yet: no accounts");
        a.set("ana", "correct horse battery", &[7; 16]).unwrap();
        a.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("$argon2id$"));
        assert!(!text.contains("correct horse"), "no password in the file");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let b = Accounts::load(&path).unwrap();
        assert_eq!(b.verify("ana", "correct horse battery"), Verdict::Valid);
        assert_eq!(b.verify("ana", "correct horse batterY"), Verdict::Invalid);
        assert_eq!(b.verify("bo", "correct horse battery"), Verdict::Invalid);
        assert_eq!(b.verify("ana", &"x".repeat(5000)), Verdict::Invalid);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_and_passwords_are_checked_before_anything_is_stored() {
        let mut a = Accounts::default();
        for bad in ["", "a b", "<script>", "ana\n", &"x".repeat(65)] {
            assert!(matches!(
                a.set(bad, "long enough password", &[1; 16]),
                Err(AccountError::BadName)
            ));
        }
        assert!(matches!(
            a.set("ana", "short", &[1; 16]),
            Err(AccountError::BadPassword)
        ));
        assert!(a.moderators.is_empty());
        assert!(matches!(
            Accounts::load(Path::new("/proc/self/status")),
            Err(AccountError::Format { .. })
        ));
    }
}
