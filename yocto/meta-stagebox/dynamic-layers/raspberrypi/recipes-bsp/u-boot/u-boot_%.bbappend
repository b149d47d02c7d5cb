# U-Boot for a stagebox station on a Raspberry Pi: the shared boot script (A/B slots with
# boot counting for RAUC) and the environment in two redundant files on the boot partition.
DEPENDS:append:stagebox = " u-boot-mkimage-native"

FILESEXTRAPATHS:prepend:stagebox := "${STAGEBOX_APPLIANCE_DIR}/u-boot:"

SRC_URI:append:stagebox = " \
    file://boot.cmd \
    file://rpi_arm64.cfg \
"

do_compile:append:stagebox() {
    uboot-mkimage -A arm64 -O linux -T script -C none -d ${WORKDIR}/boot.cmd ${B}/boot.scr
}

do_deploy:append:stagebox() {
    install -m 0644 ${B}/boot.scr ${DEPLOYDIR}/boot.scr
}
