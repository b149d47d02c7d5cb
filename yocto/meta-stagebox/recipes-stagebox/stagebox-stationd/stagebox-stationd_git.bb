SUMMARY = "stagebox station daemon"
DESCRIPTION = "Joins a live-audio stage over WebSocket and TLS, plays it, sends the microphone as Opus over encrypted RTP while push-to-talk is held, and updates the station through RAUC without ever cutting off a speaker."
HOMEPAGE = "https://stagebox.invalid"
SECTION = "multimedia"
LICENSE = "MIT | Apache-2.0"
LIC_FILES_CHKSUM = "file://Cargo.toml;beginline=31;endline=31;md5=86b31c7756a1a7962f28b62856ed4f05"
CVE_PRODUCT = "stagebox-stationd"

DEPENDS += "alsa-lib clang-native libopus webrtc-audio-processing"

# Built from the checkout this layer lives in; set STAGEBOX_GIT_URI and SRCREV to build
# from a published repository at a fixed revision instead.
STAGEBOX_GIT_URI ??= "git://${STAGEBOX_SOURCE_DIR};protocol=file;branch=main"
PV = "0.1.0+git"
SRC_URI = "${STAGEBOX_GIT_URI}"
# The checkout's newest commit: a local build follows the tree it sits in.
# nooelint: oelint.vars.autorev
SRCREV ??= "${AUTOREV}"

S = "${WORKDIR}/git"

inherit cargo cargo-update-recipe-crates pkgconfig systemd useradd

require ${BPN}-crates.inc

# The daemon with its default features: ALSA, Raspberry Pi GPIO, GPIO character devices.
CARGO_SRC_DIR = "firmware/stationd"

USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --no-create-home --home-dir /nonexistent --shell /sbin/nologin --groups audio stagebox"

SYSTEMD_SERVICE:${PN} = "stagebox-stationd.service"

do_install:append() {
    install -d ${D}${systemd_system_unitdir} ${D}${nonarch_base_libdir}/udev/rules.d \
        ${D}${sysconfdir}/stagebox ${D}${datadir}/stagebox/boards
    install -m 0644 ${S}/board/files/systemd/stagebox-stationd.service ${D}${systemd_system_unitdir}/
    install -m 0644 ${S}/board/files/udev/60-stagebox.rules ${D}${nonarch_base_libdir}/udev/rules.d/
    install -m 0640 ${S}/firmware/stationd/station.default.toml ${D}${sysconfdir}/stagebox/station.toml
    cp -R --no-preserve=ownership ${S}/board/hats ${S}/board/socs ${S}/board/files \
        ${D}${datadir}/stagebox/boards/
}

CONFFILES:${PN} = "${sysconfdir}/stagebox/station.toml"
FILES:${PN} += "${datadir}/stagebox ${nonarch_base_libdir}/udev/rules.d"
