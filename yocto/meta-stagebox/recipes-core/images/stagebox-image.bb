SUMMARY = "stagebox station image"
DESCRIPTION = "A read-only root for a stagebox station: systemd, the station daemon and its technician console, time sync, Wi-Fi, and RAUC for A/B updates with the stagebox distribution. The SD card holds boot, root A, root B and data partitions (wic/stagebox-ab.wks.in)."
HOMEPAGE = "https://stagebox.invalid"
SECTION = "images"
LICENSE = "MIT"
CVE_PRODUCT = "stagebox"

inherit core-image

IMAGE_FEATURES += "read-only-rootfs"
# No default password and no remote shell unless the owner adds a key (README.md).
IMAGE_FEATURES:remove = "debug-tweaks allow-empty-password empty-root-password"

IMAGE_INSTALL:append = " \
    stagebox-stationd \
    stagebox-console \
    alsa-utils \
    wpa-supplicant \
    tzdata \
    e2fsprogs-resize2fs \
"
IMAGE_INSTALL:append:stagebox = " rauc libubootenv-bin stagebox-appliance"

WKS_FILE = "stagebox-ab.wks.in"
IMAGE_FSTYPES = "wic.bz2 wic.bmap ext4"

# The time zone is the owner's, from the configuration at boot (stagebox-settings.service).
stagebox_owner_time_zone[doc] = "Links /etc/localtime to the zone stagebox-settings.service sets at boot"
stagebox_owner_time_zone() {
    ln -sf /run/stagebox-settings/localtime ${IMAGE_ROOTFS}${sysconfdir}/localtime
}
ROOTFS_POSTPROCESS_COMMAND:append:stagebox = " stagebox_owner_time_zone"
