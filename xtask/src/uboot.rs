//! U-Boot for the SD image, built from Debian's own source package (bookworm's 2023.01) for
//! a board's defconfig with the appliance's configuration fragment (the environment in two
//! redundant files on the boot partition) and patches (`appliance/u-boot/`). Debian's
//! prebuilt `u-boot-qemu` keeps its environment in flash, without redundancy, and cannot save
//! it under this qemu; building ours from the same source costs a minute.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::sh::run;

const WORK: &str = "target/image/u-boot";
const DEB_SRC: &str = "/etc/apt/sources.list.d/stagebox-src.sources";

/// What a board's U-Boot is made from.
#[derive(Debug, Clone, Copy)]
pub struct Recipe {
    /// U-Boot's defconfig, e.g. `qemu_arm64`.
    pub defconfig: &'static str,
    /// The appliance's fragment, e.g. `appliance/u-boot/qemu_arm64.cfg`.
    pub fragment: &'static str,
}

/// What the build gives.
#[derive(Debug, Clone)]
pub struct Built {
    pub bin: PathBuf,
    /// The default environment as text (`make u-boot-initial-env`): the image's environment
    /// files start from it.
    pub initial_env: PathBuf,
}

/// Debian's source of U-Boot, unpacked with Debian's patches and ours; returns its directory.
fn source() -> Result<PathBuf> {
    let work = Path::new(WORK);
    fs::create_dir_all(work)?;
    let ready = work.join("source-ready");
    if let Ok(dir) = fs::read_to_string(&ready) {
        return Ok(PathBuf::from(dir.trim()));
    }
    if !Path::new(DEB_SRC).exists() {
        // Source packages come from the same archive as the binary ones.
        fs::write(
            DEB_SRC,
            "Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n\
             Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
        )
        .with_context(|| DEB_SRC.to_string())?;
        run(Command::new("apt-get").args(["update", "-qq"]))?;
    }
    run(Command::new("apt-get")
        .current_dir(work)
        .args(["source", "-qq", "u-boot"]))?;
    let dir = fs::read_dir(work)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("u-boot-"))
        })
        .context("apt-get source u-boot unpacked nothing")?;
    let dir = fs::canonicalize(dir)?;
    let mut patches: Vec<PathBuf> = fs::read_dir("appliance/u-boot/patches")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    patches.sort();
    for patch in patches {
        let patch = fs::canonicalize(patch)?;
        run(Command::new("patch")
            .current_dir(&dir)
            .args(["-p1", "--forward", "--quiet", "-i"])
            .arg(&patch))?;
    }
    fs::write(&ready, dir.display().to_string())?;
    Ok(dir)
}

/// What building U-Boot from Debian's source runs.
pub const TOOLS: &[&str] = &[
    "dpkg-dev",
    "bison",
    "flex",
    "bc",
    "libssl-dev",
    "libgnutls28-dev",
    "gcc-aarch64-linux-gnu",
    "u-boot-tools",
];

/// Builds U-Boot for `recipe` (again only when its fragment changed).
pub fn build(recipe: Recipe) -> Result<Built> {
    crate::setup::ensure_packages(TOOLS)?;
    let src = source()?;
    let out = fs::canonicalize(WORK)?.join(recipe.defconfig);
    let built = Built {
        bin: out.join("u-boot.bin"),
        initial_env: out.join("u-boot-initial-env"),
    };
    let fragment = fs::read_to_string(recipe.fragment).context(recipe.fragment)?;
    let stamp = out.join("stagebox-fragment");
    if built.bin.exists()
        && built.initial_env.exists()
        && fs::read_to_string(&stamp).is_ok_and(|s| s == fragment)
    {
        return Ok(built);
    }
    fs::create_dir_all(&out)?;
    let make = || {
        let mut c = Command::new("make");
        c.current_dir(&src)
            .arg(format!("O={}", out.display()))
            .env("CROSS_COMPILE", "aarch64-linux-gnu-");
        c
    };
    run(make().arg(format!("{}_defconfig", recipe.defconfig)))?;
    run(Command::new(src.join("scripts/kconfig/merge_config.sh"))
        .current_dir(&src)
        .args(["-m", "-O"])
        .arg(&out)
        .arg(out.join(".config"))
        .arg(fs::canonicalize(recipe.fragment)?))?;
    run(make().arg("olddefconfig"))?;
    // Every line of the fragment must have survived Kconfig (a misspelt or unmet option is
    // dropped silently otherwise).
    let config = fs::read_to_string(out.join(".config"))?;
    for line in fragment.lines().filter(|l| l.starts_with("CONFIG_")) {
        if !config.lines().any(|c| c == line) {
            bail!(
                "U-Boot's configuration for {} lost {line}",
                recipe.defconfig
            );
        }
    }
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    run(make().arg(format!("-j{jobs}")).arg("-s"))?;
    run(make().arg("u-boot-initial-env").arg("-s"))?;
    if fs::metadata(&built.bin).map_or(true, |m| m.len() == 0) {
        bail!("U-Boot's build left no {}", built.bin.display());
    }
    fs::write(&stamp, fragment)?;
    Ok(built)
}
