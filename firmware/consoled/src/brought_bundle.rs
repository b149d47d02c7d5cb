//! A bundle pushed over the console line is held to the update agent's checks before RAUC
//! installs it: RAUC checks its signature and reads its version (`rauc info`), and
//! `stagebox_core::update::check_brought_bundle` — the agent's own rule — decides: only a
//! newer version than the one running, never one that already failed its trial here, unless
//! the technician named that very version (`update install downgrade VERSION`), which the
//! log records. Anyone holding the PIN can reach this command; the PIN alone does not buy a
//! downgrade by mistake or on the quiet.

use std::path::{Path, PathBuf};
use std::time::Duration;

use stagebox_core::update::{
    BroughtBundle, DEFAULT_UPDATE_DIR, DEFAULT_VERSION_FILE, FAILED_VERSION_FILE, Version,
    check_brought_bundle,
};

use crate::system;

/// How long `rauc info` may take (it checks the bundle's signature and, for a verity
/// bundle, reads its manifest).
const INFO_LIMIT: Duration = Duration::from_secs(120);

/// Where the station keeps what the checks need, from its configuration's `[update]`.
#[derive(Debug, Clone)]
pub struct UpdateFiles {
    /// The running version (`MAJOR.MINOR.PATCH`).
    pub version_file: PathBuf,
    /// The agent's state; `failed-version` names the last version that failed its trial.
    pub dir: PathBuf,
}

impl UpdateFiles {
    /// The daemon's defaults, overridden by the configuration's `[update]` keys.
    pub fn from_config(doc: Option<&toml_edit::DocumentMut>) -> UpdateFiles {
        let key = |name: &str, default: &str| {
            PathBuf::from(
                doc.and_then(|d| d.get("update")?.get(name)?.as_str())
                    .unwrap_or(default),
            )
        };
        UpdateFiles {
            version_file: key("version_file", DEFAULT_VERSION_FILE),
            dir: key("dir", DEFAULT_UPDATE_DIR),
        }
    }

    /// The running version: the version file, else this build's own (the console and the
    /// daemon are built and installed together).
    fn running(&self) -> Result<Version, String> {
        let text = std::fs::read_to_string(&self.version_file)
            .unwrap_or_else(|_| env!("CARGO_PKG_VERSION").to_string());
        Version::parse(text.trim()).ok_or_else(|| {
            format!(
                "{} does not hold a version ({:?})",
                self.version_file.display(),
                text.trim()
            )
        })
    }

    fn failed(&self) -> Option<Version> {
        std::fs::read_to_string(self.dir.join(FAILED_VERSION_FILE))
            .ok()
            .and_then(|s| Version::parse(s.trim()))
    }
}

/// What the checks allowed: the bundle's version, and whether it is a named downgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub version: Version,
    pub running: Version,
    pub kind: BroughtBundle,
}

/// Checks `bundle` for installation: its signature and version as RAUC reads them, then the
/// agent's version rule. `downgrade_to` is the version the technician named, if any.
pub async fn vet(
    bundle: &Path,
    files: &UpdateFiles,
    downgrade_to: Option<&str>,
) -> Result<Allowed, String> {
    let named = match downgrade_to {
        None => None,
        Some(v) => Some(
            Version::parse(v)
                .ok_or_else(|| format!("{v:?} is not a version (MAJOR.MINOR.PATCH)"))?,
        ),
    };
    let path = bundle.display().to_string();
    let info = system::run("rauc", &["info", "--output-format=json", &path], INFO_LIMIT)
        .await
        .map_err(|e| format!("refused: RAUC does not accept the bundle: {e}"))?;
    let version = bundle_version(&info)?;
    let running = files.running()?;
    let kind = check_brought_bundle(version, running, files.failed(), named)
        .map_err(|r| format!("refused: {r}"))?;
    Ok(Allowed {
        version,
        running,
        kind,
    })
}

/// The `version` in `rauc info --output-format=json`'s answer.
fn bundle_version(info: &str) -> Result<Version, String> {
    let v: serde_json::Value = serde_json::from_str(info.trim())
        .map_err(|e| format!("refused: RAUC's description of the bundle: {e}"))?;
    let text = v["version"].as_str().unwrap_or_default();
    Version::parse(text).ok_or_else(|| {
        format!(
            "refused: the bundle's version \"{}\" is not MAJOR.MINOR.PATCH",
            stagebox_logging::Untrusted(text)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundles_version_is_read_from_raucs_description() {
        let info = r#"{"compatible":"stagebox-qemu","version":"0.1.7","description":null}"#;
        assert_eq!(bundle_version(info), Ok(Version(0, 1, 7)));
        assert!(bundle_version(r#"{"version":"latest"}"#).is_err());
        assert!(bundle_version("not json").is_err());
    }

    #[test]
    fn the_files_follow_the_configuration() {
        let doc: toml_edit::DocumentMut = "[update]\ndir = \"/data/update\"\n".parse().unwrap();
        let files = UpdateFiles::from_config(Some(&doc));
        assert_eq!(files.dir, PathBuf::from("/data/update"));
        assert_eq!(files.version_file, PathBuf::from("/etc/stagebox/version"));
    }
}
