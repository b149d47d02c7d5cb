# stagebox boot script (shared by every board; compiled to boot.scr with
#   mkimage -A arm64 -T script -C none -d boot.cmd boot.scr).
#
# U-Boot's distro boot finds this on the boot partition and sets devtype/devnum to that
# disk. Slot A is partition 2, slot B partition 3. RAUC's U-Boot backend keeps BOOT_ORDER
# (the slots in order of preference) and BOOT_A_LEFT / BOOT_B_LEFT (tries left) in the
# environment; this script takes the first slot with a try left, counts the try down, saves
# the environment and boots it. The station marks its slot good (refilling its tries) once
# per boot after its health check; a slot that keeps failing runs out of tries and the next
# slot in BOOT_ORDER boots.

test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT 3
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT 3

setenv stagebox_part
setenv stagebox_slot
for slot in ${BOOT_ORDER}; do
  if test -n "${stagebox_part}"; then
    true
  elif test "${slot}" = "A" && test ${BOOT_A_LEFT} -gt 0; then
    setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1
    setenv stagebox_part 2
    setenv stagebox_slot A
  elif test "${slot}" = "B" && test ${BOOT_B_LEFT} -gt 0; then
    setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1
    setenv stagebox_part 3
    setenv stagebox_slot B
  fi
done

if test -z "${stagebox_part}"; then
  # Every try of both slots is spent (power cuts while booting, say). Stopping at the
  # prompt would brick the station: count afresh and boot the first slot in BOOT_ORDER.
  echo "stagebox: no tries left on either slot; counting again from 3"
  setenv BOOT_A_LEFT 3
  setenv BOOT_B_LEFT 3
  for slot in ${BOOT_ORDER}; do
    if test -z "${stagebox_part}"; then
      if test "${slot}" = "B"; then
        setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1
        setenv stagebox_part 3
        setenv stagebox_slot B
      else
        setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1
        setenv stagebox_part 2
        setenv stagebox_slot A
      fi
    fi
  done
fi

echo "stagebox: booting slot ${stagebox_slot} (tries left: A ${BOOT_A_LEFT}, B ${BOOT_B_LEFT})"
# The count must be on the card before the kernel starts: a cut from here on is a try spent.
saveenv

part uuid ${devtype} ${devnum}:${stagebox_part} stagebox_partuuid
# The board's firmware device tree if it passed one (Raspberry Pi), else U-Boot's own (qemu).
test -n "${fdt_addr}" || setenv fdt_addr ${fdtcontroladdr}
# Where booti unpacks a compressed kernel (Debian's arm64 Image is not, today).
test -n "${kernel_comp_addr_r}" || setexpr kernel_comp_addr_r ${ramdisk_addr_r} + 0x4000000
setenv kernel_comp_size 0x3000000
# The root stays read-only; /var is a tmpfs (what must persist is mounted from /data).
setenv bootargs "root=PARTUUID=${stagebox_partuuid} ro rootwait systemd.volatile=state rauc.slot=${stagebox_slot} panic=10 ${stagebox_extra_bootargs}"
load ${devtype} ${devnum}:${stagebox_part} ${kernel_addr_r} /boot/vmlinuz
load ${devtype} ${devnum}:${stagebox_part} ${ramdisk_addr_r} /boot/initrd.img
booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdt_addr}
# Only reached if this slot's kernel could not be loaded: try again (a try is spent).
echo "stagebox: slot ${stagebox_slot} did not boot; resetting"
reset
