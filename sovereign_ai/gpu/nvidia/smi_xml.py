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

"""Parse ``nvidia-smi -q -x`` XML (DTD versions 11 to 13).

Driver 535 renamed ``clocks_throttle_reasons`` to ``clocks_event_reasons``
and DTD v12 moved the power readings to ``gpu_power_readings``; both names
are read.
"""

# defusedxml rejects entity declarations and external references.
from defusedxml import ElementTree

from sovereign_ai.gpu.nvidia import common

SOURCE = 'nvidia-smi -q -x'


def _text(element, path):
    if element is None:
        return None
    found = element.find(path)
    if found is None or found.text is None:
        return None
    return found.text.strip()


def _first_text(element, *paths):
    for path in paths:
        value = _text(element, path)
        if value is not None:
            return value
    return None


def _volatile_uncorrectable(gpu):
    volatile = gpu.find('ecc_errors/volatile')
    if volatile is None:
        return None

    # DTD v10 and older nest the counters under single_bit/double_bit.
    double_bit = volatile.find('double_bit')
    if double_bit is not None:
        return common.to_int(_text(double_bit, 'total'))

    values = [common.to_int(child.text) for child in volatile
              if 'uncorrectable' in child.tag]
    values = [value for value in values if value is not None]
    if not values:
        return None
    return sum(values)


def _clocks_event_reasons(gpu):
    reasons = dict.fromkeys(common.CLOCKS_EVENT_REASONS)
    for section, prefix in (('clocks_event_reasons', 'clocks_event_reason_'),
                            ('clocks_throttle_reasons',
                             'clocks_throttle_reason_')):
        element = gpu.find(section)
        if element is None:
            continue
        for child in element:
            name = child.tag[len(prefix):]
            if child.tag.startswith(prefix) and name in reasons:
                reasons[name] = common.to_bool(child.text)
    return reasons


def _parse_gpu(index, gpu, driver_version):
    record = common.new_gpu_record(index)
    record['bus_id'] = common.normalize_bus_id(
        gpu.get('id') or _text(gpu, 'pci/pci_bus_id'))
    record['product_name'] = _text(gpu, 'product_name')
    record['serial'] = _text(gpu, 'serial')
    record['uuid'] = _text(gpu, 'uuid')
    record['driver_version'] = driver_version
    record['persistence_mode'] = common.to_bool(
        _text(gpu, 'persistence_mode'))
    record['mig_mode'] = common.to_bool(_text(gpu, 'mig_mode/current_mig'))
    record['ecc_mode'] = common.to_bool(_text(gpu, 'ecc_mode/current_ecc'))
    record['ecc_mode_pending'] = common.to_bool(
        _text(gpu, 'ecc_mode/pending_ecc'))
    record['ecc_volatile_uncorrectable'] = _volatile_uncorrectable(gpu)

    retired = gpu.find('retired_pages')
    record['retired_pages'] = {
        'single_bit': common.to_int(_text(
            retired, 'multiple_single_bit_retirement/retired_count')),
        'double_bit': common.to_int(_text(
            retired, 'double_bit_retirement/retired_count')),
        'pending': common.to_bool(_first_text(
            retired, 'pending_retirement', 'pending_blacklist')),
    }

    remapped = gpu.find('remapped_rows')
    record['remapped_rows'] = {
        'correctable': common.to_int(_text(remapped, 'remapped_row_corr')),
        'uncorrectable': common.to_int(_text(remapped, 'remapped_row_unc')),
        'pending': common.to_bool(_text(remapped, 'remapped_row_pending')),
        'failure': common.to_bool(_text(remapped, 'remapped_row_failure')),
    }

    link = gpu.find('pci/pci_gpu_link_info')
    record['pcie'] = {
        'gen_max': common.to_int(_text(link, 'pcie_gen/max_link_gen')),
        'gen_current': common.to_int(
            _text(link, 'pcie_gen/current_link_gen')),
        'width_max': common.to_int(
            _text(link, 'link_widths/max_link_width')),
        'width_current': common.to_int(
            _text(link, 'link_widths/current_link_width')),
        'replays': common.to_int(_text(gpu, 'pci/replay_counter')),
    }

    record['clocks_event_reasons'] = _clocks_event_reasons(gpu)
    record['fabric'] = {
        'state': _text(gpu, 'fabric/state'),
        'status': _text(gpu, 'fabric/status'),
    }
    record['reset_required'] = common.to_bool(
        _text(gpu, 'gpu_reset_status/reset_required'))
    record['performance_state'] = _text(gpu, 'performance_state')
    record['temperature'] = common.to_float(
        _text(gpu, 'temperature/gpu_temp'))
    record['power_draw'] = common.to_float(_first_text(
        gpu, 'gpu_power_readings/power_draw', 'power_readings/power_draw'))
    record['inforom_image_version'] = _text(gpu, 'inforom_version/img_version')
    return record


def parse(text, source=SOURCE):
    """Parse ``nvidia-smi -q -x`` output into a list of GPU records.

    :param text: the XML document.
    :param source: the command or file name used in error messages.
    :returns: a dict with ``driver_version``, ``cuda_version``,
        ``attached_gpus`` and ``gpus`` (records from
        :func:`common.new_gpu_record`, in output order).
    :raises: ParseError when the output is empty, truncated or not the
        nvidia-smi schema.
    """
    common.check_text(text, source)
    try:
        root = ElementTree.fromstring(text.strip())
    except ElementTree.ParseError as error:
        raise common.ParseError(
            source, 'the XML is truncated or malformed (%s)' % error)
    except ValueError as error:
        # defusedxml raises ValueError subclasses for entity declarations.
        raise common.ParseError(
            source, 'the XML has a forbidden construct (%s)' % error)
    if root.tag != 'nvidia_smi_log':
        raise common.ParseError(
            source, 'the root element is <%s>, expected <nvidia_smi_log>'
            % root.tag)

    driver_version = _text(root, 'driver_version')
    gpus = [_parse_gpu(index, gpu, driver_version)
            for index, gpu in enumerate(root.findall('gpu'))]
    return {
        'driver_version': driver_version,
        'cuda_version': _text(root, 'cuda_version'),
        'attached_gpus': common.to_int(_text(root, 'attached_gpus')),
        'gpus': gpus,
    }
