SUMMARY = "stagebox appliance units"
DESCRIPTION = "What makes a stagebox root an appliance, shared with the Debian image (appliance/ in the stagebox repository): the station daemon may ask for a reboot, a daemon that keeps failing reboots the station so a broken update falls back, the data partition grows to fill the card, the Wi-Fi network and time zone come from the owner's stagebox.toml, only root and the daemon may drive RAUC (SSH is the distribution builder's choice; the Debian image's key-only setup is in appliance/ssh)."
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
           file://systemd/stagebox-settings.service.in \
           file://systemd/wpa_supplicant-stagebox.conf \
           file://dbus/stagebox-rauc.conf \
"

S = "${WORKDIR}"

inherit allarch systemd

# The card's whole disk and its data partition, as the machine names them.
STAGEBOX_DISK ??= "/dev/mmcblk0"
STAGEBOX_DATA_PART ??= "/dev/mmcblk0p4"
# The owner's configuration (the daemon's), and where the boot-time check reports on it.
STAGEBOX_CONFIG ??= "${sysconfdir}/stagebox/station.toml"
STAGEBOX_REPORT ??= "/run/stagebox-settings/stagebox-report.txt"

SYSTEMD_SERVICE:${PN} = "stagebox-reboot.path stagebox-grow-data.service stagebox-settings.service"

do_install() {
    install -d ${D}${systemd_system_unitdir}/stagebox-stationd.service.d \
        ${D}${systemd_system_unitdir}/wpa_supplicant@wlan0.service.d \
        ${D}${systemd_system_unitdir}/sys-subsystem-net-devices-wlan0.device.wants \
        ${D}${sysconfdir}/dbus-1/system.d ${D}${sysconfdir}/wpa_supplicant
    install -m 0644 ${S}/systemd/stagebox-reboot.path ${S}/systemd/stagebox-reboot.service \
        ${D}${systemd_system_unitdir}/
    sed -e 's|@DISK@|${STAGEBOX_DISK}|' -e 's|@DATA@|${STAGEBOX_DATA_PART}|' \
        ${S}/systemd/stagebox-grow-data.service.in > ${D}${systemd_system_unitdir}/stagebox-grow-data.service
    install -m 0644 ${S}/systemd/stagebox-stationd-appliance.conf \
        ${D}${systemd_system_unitdir}/stagebox-stationd.service.d/appliance.conf
    install -m 0644 ${S}/dbus/stagebox-rauc.conf ${D}${sysconfdir}/dbus-1/system.d/
    sed -e 's|@CONFIG@|${STAGEBOX_CONFIG}|g' -e 's|@REPORT@|${STAGEBOX_REPORT}|g' \
        ${S}/systemd/stagebox-settings.service.in \
        > ${D}${systemd_system_unitdir}/stagebox-settings.service
    install -m 0644 ${S}/systemd/wpa_supplicant-stagebox.conf \
        ${D}${systemd_system_unitdir}/wpa_supplicant@wlan0.service.d/stagebox.conf
    ln -sf ${systemd_system_unitdir}/wpa_supplicant@.service \
        ${D}${systemd_system_unitdir}/sys-subsystem-net-devices-wlan0.device.wants/wpa_supplicant@wlan0.service
    # The Wi-Fi network is the owner's, from the configuration at boot (the image links
    # /etc/localtime the same way).
    ln -sf /run/stagebox-settings/wpa_supplicant-wlan0.conf ${D}${sysconfdir}/wpa_supplicant/wpa_supplicant-wlan0.conf
}

FILES:${PN} += "${systemd_system_unitdir} ${sysconfdir}/dbus-1 ${sysconfdir}/wpa_supplicant"
RDEPENDS:${PN} = "cloud-utils-growpart e2fsprogs-resize2fs tzdata wpa-supplicant"
