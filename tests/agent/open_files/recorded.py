"""Outputs of the real tools, in the format each prints (macOS 14 Sonoma for
tmutil/df/mount/mount_apfs, LVM2 2.03 and util-linux 2.38 for Linux).

They are transcribed from the tools' documented and observed output, not
captured by this project on those systems (this machine has neither macOS
nor device-mapper); docs/open-files.md says so.
"""

MAC_DF_DATA = """\
Filesystem    512-blocks      Used Available Capacity  Mounted on
/dev/disk3s5   965595304 612345678 331234567    65%    /System/Volumes/Data
"""
MAC_DF_USB = """\
Filesystem  512-blocks    Used Available Capacity  Mounted on
/dev/disk5s1  61536192 1234567  60301625     3%    /Volumes/USB STICK
"""
MAC_MOUNT = """\
/dev/disk3s1s1 on / (apfs, sealed, local, read-only, journaled)
devfs on /dev (devfs, local, nobrowse)
/dev/disk3s6 on /System/Volumes/VM (apfs, local, noexec, journaled, noatime, nobrowse)
/dev/disk3s2 on /System/Volumes/Preboot (apfs, local, journaled, nobrowse)
/dev/disk3s4 on /System/Volumes/Update (apfs, local, journaled, nobrowse)
/dev/disk1s2 on /System/Volumes/xarts (apfs, local, noexec, journaled, noatime, nobrowse)
/dev/disk1s1 on /System/Volumes/iSCPreboot (apfs, local, journaled, nobrowse)
/dev/disk1s3 on /System/Volumes/Hardware (apfs, local, journaled, nobrowse)
/dev/disk3s5 on /System/Volumes/Data (apfs, local, journaled, nobrowse, protect, root data)
map auto_home on /System/Volumes/Data/home (autofs, automounted, nobrowse)
/dev/disk5s1 on /Volumes/USB STICK (msdos, local, nodev, nosuid, noowners, noatime, fskit)
"""
TMUTIL_LOCALSNAPSHOT = """\
NOTE: local snapshots are considered purgeable and may be removed at any time by deleted(8).
Created local snapshot with date: 2026-11-28-094501
"""
TMUTIL_LIST = """\
Snapshots for disk /System/Volumes/Data:
com.apple.TimeMachine.2026-11-27-101502.local
com.apple.TimeMachine.2026-11-28-094501.local
"""
TMUTIL_DELETED = "Deleted local snapshot '2026-11-28-094501'\n"
MOUNT_APFS_NO_FDA = "mount_apfs: volume could not be mounted: Operation not permitted\n"
TMUTIL_NO_FDA = "Failed to create local snapshot: Operation not permitted\n"

# findmnt -n -J -o TARGET,SOURCE,FSTYPE -T <path>
FINDMNT_LVM_HOME = """\
{
   "filesystems": [
      {
         "target": "/home",
         "source": "/dev/mapper/vg0-home",
         "fstype": "ext4"
      }
   ]
}
"""
FINDMNT_PLAIN = """\
{
   "filesystems": [
      {
         "target": "/srv",
         "source": "/dev/nvme0n1p3",
         "fstype": "ext4"
      }
   ]
}
"""
# lvs --reportformat json --units b --nosuffix -o vg_name,lv_name,lv_size,lv_attr,vg_free <dev>
LVS_HOME = """\
  {
      "report": [
          {
              "lv": [
                  {"vg_name":"vg0", "lv_name":"home", "lv_size":"107374182400", "lv_attr":"-wi-ao----", "vg_free":"21474836480"}
              ]
          }
      ]
  }
"""
LVS_HOME_FULL_VG = LVS_HOME.replace('"vg_free":"21474836480"', '"vg_free":"134217728"')
LVS_NOT_LV = '  Failed to find logical volume "/dev/nvme0n1p3"\n'
LVS_NO_DM = """\
  /dev/mapper/control: open failed: No such file or directory
  Failure to communicate with kernel device-mapper driver.
  Check that device-mapper is available in the kernel.
"""
LVCREATE_OK = '  Logical volume "{name}" created.\n'
LVS_ATTR_OK = "  sri-aos---\n"
LVS_ATTR_INVALID = "  sri-Ios---\n"
LVREMOVE_OK = '  Logical volume "{name}" successfully removed.\n'
UMOUNT_NOT_MOUNTED = "umount: {mnt}: not mounted.\n"
