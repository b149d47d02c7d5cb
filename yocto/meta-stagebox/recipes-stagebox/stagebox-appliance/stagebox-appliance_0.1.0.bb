SUMMARY = "stagebox appliance units"
DESCRIPTION = "What makes a stagebox root an appliance, shared with the Debian image (appliance/ in the stagebox repository): the station daemon may ask for a reboot, a daemon that keeps failing reboots the station so a broken update falls back, the data partition grows to fill the card, only root and the daemon may drive RAUC (SSH is the distribution builder's choice; the Debian image's key-only setup is in appliance/ssh)."
HOMEPAGE = "https://stagebox.invalid"
SECTION = "base"
LICENSE = "MIT"
# The files are the project's own (appliance/), under its license.
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"
CVE_PRODUCT = "stagebox-appliance"

# The files live in the repository's appliance/, beside the layer, shared with the Debian image.
# nooelint: oelint.vars.fileextrapaths, oelint.vars.outofcontext
FILESEXTRAPATHS:prepend := "${STAGEBOX_APPLIANCE_DIR}:"

SRC_URI = "file://systemd/stagebox-reboot.path \
           file://systemd/stagebox-reboot.service \
           file://systemd/stagebox-grow-data.service.in \
           file://systemd/stagebox-stationd-appliance.conf \
           file://dbus/stagebox-rauc.conf \
"

S = "${WORKDIR}"

inherit allarch systemd

# The card's whole disk and its data partition, as the machine names them.
STAGEBOX_DISK ??= "/dev/mmcblk0"
STAGEBOX_DATA_PART ??= "/dev/mmcblk0p4"

SYSTEMD_SERVICE:${PN} = "stagebox-reboot.path stagebox-grow-data.service"

do_install() {
    install -d ${D}${systemd_system_unitdir}/stagebox-stationd.service.d \
        ${D}${sysconfdir}/dbus-1/system.d
    install -m 0644 ${S}/systemd/stagebox-reboot.path ${S}/systemd/stagebox-reboot.service \
        ${D}${systemd_system_unitdir}/
    sed -e 's|@DISK@|${STAGEBOX_DISK}|' -e 's|@DATA@|${STAGEBOX_DATA_PART}|' \
        ${S}/systemd/stagebox-grow-data.service.in > ${D}${systemd_system_unitdir}/stagebox-grow-data.service
    install -m 0644 ${S}/systemd/stagebox-stationd-appliance.conf \
        ${D}${systemd_system_unitdir}/stagebox-stationd.service.d/appliance.conf
    install -m 0644 ${S}/dbus/stagebox-rauc.conf ${D}${sysconfdir}/dbus-1/system.d/
}

FILES:${PN} += "${systemd_system_unitdir} ${sysconfdir}/dbus-1"
RDEPENDS:${PN} = "cloud-utils-growpart e2fsprogs-resize2fs"
