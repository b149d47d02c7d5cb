SUMMARY = "stagebox technician console"
DESCRIPTION = "The field technician's serial console on the station's UART and USB gadget serial port: a human shell and machine frames for stagebox-diag on one line, behind a PIN made at first boot (docs/console.md)."
HOMEPAGE = "https://stagebox.invalid"
SECTION = "console/utils"
LICENSE = "MIT | Apache-2.0"
LIC_FILES_CHKSUM = "file://Cargo.toml;beginline=31;endline=31;md5=86b31c7756a1a7962f28b62856ed4f05"
CVE_PRODUCT = "stagebox-console"

# Built from the checkout this layer lives in; set STAGEBOX_GIT_URI and SRCREV to build
# from a published repository at a fixed revision instead.
STAGEBOX_GIT_URI ??= "git://${STAGEBOX_SOURCE_DIR};protocol=file;branch=main"
PV = "0.1.0+git"
SRC_URI = "${STAGEBOX_GIT_URI}"
# The checkout's newest commit: a local build follows the tree it sits in.
# nooelint: oelint.vars.autorev
SRCREV ??= "${AUTOREV}"

S = "${WORKDIR}/git"

inherit cargo cargo-update-recipe-crates systemd

require ${BPN}-crates.inc

CARGO_SRC_DIR = "firmware/consoled"

# The UART's instance is the machine's to enable (stagebox-console@ttyS0.service); the PIN
# is made at the first boot, and the USB gadget port's console starts when the port appears.
SYSTEMD_SERVICE:${PN} = "stagebox-console-pin.service"

do_install:append() {
    install -d ${D}${systemd_system_unitdir} ${D}${nonarch_base_libdir}/udev/rules.d \
        ${D}${libdir}/stagebox
    install -m 0644 ${S}/board/files/systemd/stagebox-console@.service \
        ${S}/board/files/systemd/stagebox-console-pin.service ${D}${systemd_system_unitdir}/
    install -m 0644 ${S}/board/files/udev/61-stagebox-console.rules ${D}${nonarch_base_libdir}/udev/rules.d/
    install -m 0755 ${S}/board/files/stagebox-factory-reset ${D}${libdir}/stagebox/factory-reset
}

FILES:${PN} += "${nonarch_base_libdir}/udev/rules.d ${libdir}/stagebox"
# Its commands ask the daemon (and `stationd --check-config`), the network tools and RAUC.
RDEPENDS:${PN} = "iproute2 iputils-ping stagebox-stationd tar"
