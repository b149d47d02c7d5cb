//! What the release tool signs is what a station accepts — and nothing else: the real binary
//! makes a key and a manifest for a bundle; the station's check takes it, and refuses it for
//! another board, another key or a changed bundle.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use stagebox_core::update::{Refusal, TimeFloor, Version, check_manifest};

fn tool() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stagebox-release"))
}

#[test]
fn a_published_manifest_is_accepted_by_the_station_and_only_as_published() {
    let dir = std::env::temp_dir().join(format!("stagebox-release-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("release.pk8");
    let out = tool().args(["keygen", "--out"]).arg(&key).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let public = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut public_key = [0u8; 32];
    hex::decode_to_slice(&public, &mut public_key).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A second keygen never overwrites the key.
    assert!(
        !tool()
            .args(["keygen", "--out"])
            .arg(&key)
            .status()
            .unwrap()
            .success()
    );

    let bundle = dir.join("b.raucb");
    std::fs::write(&bundle, vec![0x5a; 100_000]).unwrap();
    let manifest = dir.join("manifest.json");
    let status = tool()
        .args(["manifest", "--key"])
        .arg(&key)
        .args(["--board", "qemu", "--version", "1.3.0", "--bundle"])
        .arg(&bundle)
        .args(["--url", "https://updates.example/b.raucb", "--out"])
        .arg(&manifest)
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(&manifest).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let offer = check_manifest(
        &bytes,
        &[public_key],
        "qemu",
        Version(1, 2, 0),
        TimeFloor::default(),
        now,
    )
    .unwrap();
    assert_eq!(offer.version, Version(1, 3, 0));
    assert_eq!(offer.bundle_size, 100_000);
    let (sha, _) = stagebox_release::digest_file(&bundle).unwrap();
    assert_eq!(offer.bundle_sha256, sha);
    assert!(offer.expires_unix > now + 29 * 86_400);
    // Only as published: another board, another trusted key, a station already on 1.3.0.
    assert!(matches!(
        check_manifest(
            &bytes,
            &[public_key],
            "pi4",
            Version(1, 2, 0),
            TimeFloor::default(),
            now
        ),
        Err(Refusal::OtherBoard(_))
    ));
    assert_eq!(
        check_manifest(
            &bytes,
            &[[9; 32]],
            "qemu",
            Version(1, 2, 0),
            TimeFloor::default(),
            now
        ),
        Err(Refusal::BadSignature)
    );
    assert!(matches!(
        check_manifest(
            &bytes,
            &[public_key],
            "qemu",
            Version(1, 3, 0),
            TimeFloor::default(),
            now
        ),
        Err(Refusal::NotNewer { .. })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}
