//! This build's time, for the update agent's time floor (`stagebox_core::update::TimeFloor`):
//! a station whose clock says 1970 still knows no earlier time than its own build can be
//! now. `SOURCE_DATE_EPOCH` where the build sets it (Debian, Yocto, reproducible builds),
//! else the time of the build.

fn main() {
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let unix = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
    println!("cargo:rustc-env=STAGEBOX_BUILD_UNIX={unix}");
}
