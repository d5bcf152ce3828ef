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

"""Health checks of GPUs read from nvidia-smi, the kernel log and sysfs.

The functions here are pure: they take parsed tool output and the resolved
step arguments, and return findings. A finding is a dict with ``severity``
(``fault`` fails the step, ``warning`` is reported only), ``check``,
``gpu`` (index, or None for the node), ``bus_id``, ``serial`` and
``message``.
"""

FAULT = 'fault'
WARNING = 'warning'

FABRIC_HEALTHY_STATE = 'completed'
FABRIC_HEALTHY_STATUS = 'success'


def finding(severity, check, message, gpu=None):
    """Build a finding about ``gpu`` (a GPU record) or the node (None)."""
    return {
        'severity': severity,
        'check': check,
        'gpu': None if gpu is None else gpu['index'],
        'bus_id': None if gpu is None else gpu['bus_id'],
        'serial': None if gpu is None else gpu['serial'],
        'message': message,
    }


def _version_tuple(version):
    return tuple(int(part) for part in version.split('.') if part.isdigit())


def check_inventory(gpus, settings, sysfs_gpu_count=None):
    """Compare the GPU count and model with the expected values.

    The count is also compared with the NVIDIA GPUs on the PCI bus, which
    catches GPUs that the driver did not initialise.
    """
    findings = []
    expected = settings.get('expected_gpu_count')
    if expected and len(gpus) != expected:
        findings.append(finding(
            FAULT, 'gpu_count', 'nvidia-smi lists %d GPUs, expected %d'
            % (len(gpus), expected)))
    if sysfs_gpu_count and len(gpus) < sysfs_gpu_count:
        findings.append(finding(
            FAULT, 'gpu_count', 'the PCI bus has %d NVIDIA GPUs but '
            'nvidia-smi lists %d, so the driver did not initialise %d'
            % (sysfs_gpu_count, len(gpus), sysfs_gpu_count - len(gpus))))
    model = settings.get('expected_gpu_model')
    if model:
        for gpu in gpus:
            name = gpu['product_name'] or ''
            if model.lower() not in name.lower():
                findings.append(finding(
                    FAULT, 'gpu_model', 'model is "%s", expected "%s"'
                    % (name, model), gpu))
    return findings


def check_driver(driver_version, settings):
    """Check the driver version against the allowed list and minimum."""
    findings = []
    allowed = settings.get('allowed_driver_versions') or []
    minimum = settings.get('min_driver_version')
    if driver_version is None:
        if allowed or minimum:
            findings.append(finding(
                FAULT, 'driver_version',
                'nvidia-smi did not report a driver version'))
        return findings
    if allowed and driver_version not in allowed:
        findings.append(finding(
            FAULT, 'driver_version', 'driver %s is not in the allowed list '
            '(%s)' % (driver_version, ', '.join(allowed))))
    if minimum and _version_tuple(driver_version) < _version_tuple(minimum):
        findings.append(finding(
            FAULT, 'driver_version', 'driver %s is older than the minimum %s'
            % (driver_version, minimum)))
    return findings


def _check_persistence(gpu, settings):
    mode = settings.get('persistence_mode', 'warn')
    if mode == 'ignore' or gpu['persistence_mode'] is not False:
        return []
    severity = FAULT if mode == 'require' else WARNING
    return [finding(severity, 'persistence_mode',
                    'persistence mode is disabled (policy: %s)' % mode, gpu)]


def _check_ecc(gpu, settings):
    findings = []
    if settings.get('require_ecc', True) and gpu['ecc_mode'] is False:
        findings.append(finding(
            FAULT, 'ecc_mode', 'ECC mode is disabled (threshold: enabled)',
            gpu))
    limit = settings.get('max_volatile_uncorrectable_ecc', 0)
    count = gpu['ecc_volatile_uncorrectable']
    if count is not None and count > limit:
        findings.append(finding(
            FAULT, 'ecc_errors', '%d volatile uncorrectable ECC errors '
            '(threshold: %d)' % (count, limit), gpu))
    return findings


def _check_memory_repair(gpu, settings):
    findings = []
    rows = gpu['remapped_rows']
    pending_fails = settings.get('fail_on_pending_repair', True)
    if rows['pending'] and pending_fails:
        findings.append(finding(
            FAULT, 'row_remapping', 'a row remapping is pending, so the GPU '
            'needs a reset (threshold: none pending)', gpu))
    if rows['failure']:
        findings.append(finding(
            FAULT, 'row_remapping', 'row remapping failed: no spare rows are '
            'left (threshold: no failure)', gpu))
    limit = settings.get('max_uncorrectable_remapped_rows', 0)
    if rows['uncorrectable'] is not None and rows['uncorrectable'] > limit:
        findings.append(finding(
            FAULT, 'row_remapping', '%d rows remapped after uncorrectable '
            'errors (threshold: %d)' % (rows['uncorrectable'], limit), gpu))

    pages = gpu['retired_pages']
    if pages['pending'] and pending_fails:
        findings.append(finding(
            FAULT, 'retired_pages', 'a page retirement is pending, so the '
            'GPU needs a reset (threshold: none pending)', gpu))
    retired = [count for count in (pages['single_bit'], pages['double_bit'])
               if count is not None]
    limit = settings.get('max_retired_pages', 0)
    if retired and sum(retired) > limit:
        findings.append(finding(
            FAULT, 'retired_pages', '%d retired pages (threshold: %d)'
            % (sum(retired), limit), gpu))
    return findings


def _check_pcie(gpu, settings):
    findings = []
    pcie = gpu['pcie']
    replays = pcie['replays']
    replay_limit = settings.get('pcie_replay_warning', 1000)
    if replays is not None and replays > replay_limit:
        findings.append(finding(
            WARNING, 'pcie_replays', '%d PCIe replays since reset (warning '
            'threshold: %d)' % (replays, replay_limit), gpu))
    if not settings.get('check_pcie_link', True):
        return findings

    below = []
    if None not in (pcie['gen_current'], pcie['gen_max']) and (
            pcie['gen_current'] < pcie['gen_max']):
        below.append('Gen%d of Gen%d' % (pcie['gen_current'],
                                         pcie['gen_max']))
    if None not in (pcie['width_current'], pcie['width_max']) and (
            pcie['width_current'] < pcie['width_max']):
        below.append('x%d of x%d' % (pcie['width_current'],
                                     pcie['width_max']))
    if not below:
        return findings
    if gpu['clocks_event_reasons'].get('gpu_idle'):
        findings.append(finding(
            WARNING, 'pcie_link', 'PCIe link runs at %s while idle; '
            'burnin_gpus checks it under load' % ' and '.join(below), gpu))
    else:
        findings.append(finding(
            FAULT, 'pcie_link', 'PCIe link runs at %s while not idle '
            '(threshold: the maximum)' % ' and '.join(below), gpu))
    return findings


def _check_slowdown(gpu, settings):
    findings = []
    failing = set(settings.get('fail_slowdown_reasons') or [])
    reasons = gpu['clocks_event_reasons']
    for reason in ('hw_slowdown', 'hw_thermal_slowdown',
                   'hw_power_brake_slowdown', 'sw_thermal_slowdown',
                   'sw_power_cap'):
        if not reasons.get(reason):
            continue
        if reason in failing:
            findings.append(finding(
                FAULT, 'clocks_event_reasons', 'clocks event reason %s is '
                'active (failing reasons: %s)'
                % (reason, ', '.join(sorted(failing))), gpu))
        elif reason != 'sw_power_cap':
            findings.append(finding(
                WARNING, 'clocks_event_reasons', 'clocks event reason %s is '
                'active with no load applied; burnin_gpus checks it under '
                'load' % reason, gpu))
    return findings


def _check_reset(gpu):
    if gpu['reset_required']:
        return [finding(FAULT, 'reset_required',
                        'nvidia-smi reports that the GPU needs a reset', gpu)]
    return []


def check_gpu(gpu, settings):
    """Run the per-GPU checks of one GPU record."""
    findings = []
    findings.extend(_check_persistence(gpu, settings))
    findings.extend(_check_ecc(gpu, settings))
    findings.extend(_check_memory_repair(gpu, settings))
    findings.extend(_check_pcie(gpu, settings))
    findings.extend(_check_slowdown(gpu, settings))
    findings.extend(_check_reset(gpu))
    return findings


def check_fabric(gpus, nvswitch_count, fabric_manager_running):
    """Check the NVSwitch fabric on nodes that have NVSwitches.

    Hopper and later GPUs report the fabric state themselves; it must be
    Completed with status Success. Older GPUs report N/A, and then the
    fabric manager process must run.
    """
    if not nvswitch_count:
        return []
    findings = []
    reported = False
    for gpu in gpus:
        state = (gpu['fabric']['state'] or '').lower()
        status = (gpu['fabric']['status'] or '').lower()
        if state in ('', 'n/a'):
            continue
        reported = True
        if state != FABRIC_HEALTHY_STATE or status != FABRIC_HEALTHY_STATUS:
            findings.append(finding(
                FAULT, 'fabric', 'NVSwitch fabric state is %s, status %s '
                '(threshold: Completed, Success)'
                % (gpu['fabric']['state'], gpu['fabric']['status']), gpu))
    if not reported and not fabric_manager_running:
        findings.append(finding(
            FAULT, 'fabric', 'the node has %d NVSwitches but no '
            'nvidia-fabricmanager process runs' % nvswitch_count))
    return findings


def check_inforom(gpus, warning_bus_ids, exit_status):
    """Fail the GPUs that nvidia-smi reports a corrupted infoROM for."""
    findings = []
    by_bus = {gpu['bus_id']: gpu for gpu in gpus}
    for bus_id in warning_bus_ids:
        gpu = by_bus.get(bus_id)
        message = 'the infoROM is corrupted (threshold: no infoROM warning)'
        if gpu is None:
            message = 'the infoROM of GPU %s is corrupted' % bus_id
        findings.append(finding(FAULT, 'inforom', message, gpu))
    # nvidia-smi exits 14 for an infoROM warning.
    if exit_status == 14 and not warning_bus_ids:
        findings.append(finding(
            FAULT, 'inforom', 'nvidia-smi exited 14, which reports an '
            'infoROM warning'))
    return findings


def check_nvlink(gpus, nvlink, settings, nvswitch_count=0):
    """Check that NVLink links are active.

    A GPU whose links are all inactive fails only when the node has
    NVSwitches or another GPU has active links; PCIe cards have no links.
    """
    if not nvlink:
        return []
    findings = []
    limit = settings.get('max_inactive_nvlinks', 0)
    by_index = {gpu['index']: gpu for gpu in gpus}
    any_active = any(speed for entry in nvlink['gpus']
                     for speed in entry['links'].values())
    for entry in nvlink['gpus']:
        gpu = by_index.get(entry['index'])
        inactive = sorted(number for number, speed in entry['links'].items()
                          if speed is None)
        if len(inactive) > limit:
            findings.append(finding(
                FAULT, 'nvlink', '%d NVLink links inactive (links %s; '
                'threshold: %d)' % (len(inactive),
                                    ', '.join(map(str, inactive)), limit),
                gpu))
        if entry['all_inactive'] and (nvswitch_count or any_active):
            findings.append(finding(
                FAULT, 'nvlink', 'all NVLink links are inactive '
                '(threshold: %d inactive)' % limit, gpu))
    if nvlink.get('all_inactive') and (nvswitch_count or any_active):
        findings.append(finding(
            FAULT, 'nvlink', 'nvidia-smi reports that all NVLink links are '
            'inactive'))
    return findings


def check_xids(gpus, events, critical_xids, during_run=False):
    """Fail the GPUs named by critical Xid events in the kernel log."""
    findings = []
    critical = set(critical_xids or [])
    by_bus = {gpu['bus_id']: gpu for gpu in gpus}
    seen = set()
    for event in events:
        if event['xid'] not in critical:
            continue
        key = (event['bus_id'], event['xid'])
        if key in seen:
            continue
        seen.add(key)
        count = sum(1 for other in events
                    if (other['bus_id'], other['xid']) == key)
        when = 'during the run' if during_run else 'since boot'
        gpu = by_bus.get(event['bus_id'])
        message = 'Xid %d logged %d time(s) %s: %s (critical Xids: %s)' % (
            event['xid'], count, when, event['message'][:120],
            ', '.join(str(xid) for xid in sorted(critical)))
        if gpu is None:
            message = 'GPU %s: %s' % (event['bus_id'], message)
        findings.append(finding(FAULT, 'xid', message, gpu))
    return findings


def validate(inventory, settings):
    """Run every validate_gpus check on the collected inventory.

    :param inventory: a dict with ``query`` (smi_xml/smi_text parse result),
        ``inforom_warnings``, ``smi_exit_status``, ``nvlink`` (or None),
        ``xids``, ``nvswitch_count``, ``fabric_manager_running`` and
        ``sysfs_gpu_count``.
    :param settings: the resolved step arguments.
    :returns: a list of findings.
    """
    gpus = inventory['query']['gpus']
    findings = []
    findings.extend(check_inventory(
        gpus, settings, inventory.get('sysfs_gpu_count')))
    findings.extend(check_driver(
        inventory['query']['driver_version'], settings))
    for gpu in gpus:
        findings.extend(check_gpu(gpu, settings))
    if settings.get('check_fabric', True):
        findings.extend(check_fabric(
            gpus, inventory.get('nvswitch_count', 0),
            inventory.get('fabric_manager_running', False)))
    if settings.get('check_inforom', True):
        findings.extend(check_inforom(
            gpus, inventory.get('inforom_warnings', []),
            inventory.get('smi_exit_status')))
    findings.extend(check_nvlink(
        gpus, inventory.get('nvlink'), settings,
        inventory.get('nvswitch_count', 0)))
    findings.extend(check_xids(
        gpus, inventory.get('xids', []), settings.get('critical_xids')))
    return findings
