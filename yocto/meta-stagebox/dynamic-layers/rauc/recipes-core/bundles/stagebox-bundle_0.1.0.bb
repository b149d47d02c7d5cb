SUMMARY = "stagebox update bundle"
DESCRIPTION = "A signed verity-format RAUC bundle of stagebox-image, for the stations' A/B updates. Publish it with a manifest from stagebox-release (README, Publishing an update)."
HOMEPAGE = "https://stagebox.invalid"
SECTION = "images"
LICENSE = "MIT"
CVE_PRODUCT = "stagebox"
# A bundle is made from the image; it has no sources of its own.
SRC_URI = ""

inherit bundle

RAUC_BUNDLE_COMPATIBLE = "stagebox-${MACHINE}"
RAUC_BUNDLE_FORMAT = "verity"
RAUC_BUNDLE_VERSION = "${PV}"
RAUC_BUNDLE_SLOTS = "rootfs"
RAUC_SLOT_rootfs = "stagebox-image"
RAUC_SLOT_rootfs[fstype] = "ext4"

# The release key: never in the layer. Point these at your key and certificate (or a
# PKCS#11 URI for RAUC_KEY_FILE) in local.conf or your distribution's configuration.
RAUC_KEY_FILE ??= ""
RAUC_CERT_FILE ??= ""
