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

"""GPU model names of PCI vendor and product ids.

The names follow the pci.ids database (https://pci-ids.ucw.cz/), as
packaged by Debian in pci.ids 0.0~2023.04.11. Products released after
that snapshot, such as the H200 and the L40S, are missing: map them with
the ``[sovereign_ai_notifications] model_names`` option.
"""

NVIDIA_VENDOR_ID = '10de'

#: Product id (lower-case hexadecimal) to model name of NVIDIA data centre
#: GPUs.
NVIDIA_MODELS = {
    '1db1': 'V100-SXM2-16GB',
    '1db4': 'V100-PCIE-16GB',
    '1db5': 'V100-SXM2-32GB',
    '1db6': 'V100-PCIE-32GB',
    '1df6': 'V100S-PCIE-32GB',
    '1eb8': 'T4',
    '20b0': 'A100-SXM4-40GB',
    '20b2': 'A100-SXM4-80GB',
    '20b5': 'A100-PCIE-80GB',
    '20b7': 'A30',
    '20f1': 'A100-PCIE-40GB',
    '20f3': 'A800-SXM4-80GB',
    '20f5': 'A800-PCIE-80GB',
    '2230': 'RTX-A6000',
    '2235': 'A40',
    '2236': 'A10',
    '2237': 'A10G',
    '2322': 'H800-PCIE',
    '2324': 'H800',
    '2330': 'H100-SXM5-80GB',
    '2331': 'H100-PCIE',
    '25b6': 'A2-A16',
    '26b5': 'L40',
    '27b8': 'L4',
}


def model_name(vendor_id, product_id, overrides):
    """Return the model name of a PCI device, or None when unknown.

    :param vendor_id: PCI vendor id, hexadecimal without 0x.
    :param product_id: PCI product id, hexadecimal without 0x.
    :param overrides: operator mapping keyed by "<vendor>:<product>".
    """
    vendor_id = (vendor_id or '').lower()
    product_id = (product_id or '').lower()

    name = overrides.get('%s:%s' % (vendor_id, product_id))
    if name:
        return name

    if vendor_id == NVIDIA_VENDOR_ID:
        return NVIDIA_MODELS.get(product_id)
    return None
