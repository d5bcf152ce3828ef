# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""Find NVIDIA GPUs and NVSwitches in sysfs and running fabric managers."""

import glob
import os

NVIDIA_VENDOR = '0x10de'
# PCI class 0x03xxxx: display controllers (VGA 0x0300, 3D 0x0302).
DISPLAY_CLASS_PREFIX = '0x03'
# NVSwitch devices report class 0x0680 (other bridge).
NVSWITCH_CLASS_PREFIX = '0x0680'
FABRIC_MANAGER_NAMES = ('nv-fabricmanager', 'nvidia-fabricmanager')


def _read(path):
    try:
        with open(path) as handle:
            return handle.read().strip().lower()
    except OSError:
        return ''


def _nvidia_devices(sysfs_root, class_prefix):
    pattern = os.path.join(sysfs_root, 'bus', 'pci', 'devices', '*')
    devices = []
    for device in sorted(glob.glob(pattern)):
        if _read(os.path.join(device, 'vendor')) != NVIDIA_VENDOR:
            continue
        if _read(os.path.join(device, 'class')).startswith(class_prefix):
            devices.append(os.path.basename(device))
    return devices


def list_gpus(sysfs_root='/sys'):
    """Return the PCI addresses of NVIDIA display and 3D controllers."""
    return _nvidia_devices(sysfs_root, DISPLAY_CLASS_PREFIX)


def list_nvswitches(sysfs_root='/sys'):
    """Return the PCI addresses of NVIDIA NVSwitch devices."""
    return _nvidia_devices(sysfs_root, NVSWITCH_CLASS_PREFIX)


def fabric_manager_running(proc_root='/proc'):
    """Return True when an NVIDIA fabric manager process is running."""
    for comm in glob.glob(os.path.join(proc_root, '[0-9]*', 'comm')):
        if _read(comm) in FABRIC_MANAGER_NAMES:
            return True
    return False
