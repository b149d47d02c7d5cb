# RAUC's system.conf for stagebox: the one the Debian image installs too
# (appliance/rauc/system.conf.in), with this machine's compatible string and slots.
FILESEXTRAPATHS:prepend:stagebox := "${STAGEBOX_APPLIANCE_DIR}/rauc:"

SRC_URI:append:stagebox = " file://system.conf.in"

do_install:append:stagebox() {
    sed -e 's|@COMPATIBLE@|stagebox-${MACHINE}|' \
        -e 's|@SLOT_A@|${STAGEBOX_SLOT_A}|' \
        -e 's|@SLOT_B@|${STAGEBOX_SLOT_B}|' \
        ${WORKDIR}/system.conf.in > ${D}${sysconfdir}/rauc/system.conf
}
