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

"""Nova PCI alias definitions, read from the ``[pci] alias`` option."""

from oslo_config import cfg
from oslo_log import log as logging
from oslo_serialization import jsonutils

LOG = logging.getLogger(__name__)


class PciAliasSpec:
    """One device description of a PCI alias."""

    def __init__(self, name, vendor_id=None, product_id=None,
                 resource_class=None):
        self.name = name
        self.vendor_id = (vendor_id or '').lower() or None
        self.product_id = (product_id or '').lower() or None
        self.resource_class = resource_class

    def __repr__(self):
        return 'PciAliasSpec(%s, %s:%s, %s)' % (
            self.name, self.vendor_id, self.product_id, self.resource_class)


def parse_aliases(alias_strings):
    """Parse Nova's ``[pci] alias`` JSON strings.

    :param alias_strings: the option's values, each a JSON object or a JSON
        list of objects with at least a ``name`` key.
    :returns: a dict of alias name to a list of :class:`PciAliasSpec`.
        Invalid strings are logged and skipped, because Nova rejects them
        too.
    """
    aliases = {}
    for text in alias_strings or []:
        try:
            parsed = jsonutils.loads(text)
        except ValueError as error:
            LOG.error('Invalid [pci] alias %r: %s. Accelerator usage of '
                      'flavors that use it is not recorded.', text, error)
            continue

        entries = parsed if isinstance(parsed, list) else [parsed]
        for entry in entries:
            if not isinstance(entry, dict) or not entry.get('name'):
                LOG.error('Invalid [pci] alias %r: each entry must be a '
                          'JSON object with a "name" key.', text)
                continue

            spec = PciAliasSpec(entry['name'],
                                vendor_id=entry.get('vendor_id'),
                                product_id=entry.get('product_id'),
                                resource_class=entry.get('resource_class'))
            aliases.setdefault(spec.name, []).append(spec)
    return aliases


def load_aliases(conf):
    """Return the PCI aliases that ``conf`` defines for Nova.

    Nova services register ``[pci] alias`` themselves. Elsewhere (the
    command line, tests) the option is registered from Nova's own module
    when Nova is installed, and no alias is known otherwise.
    """
    try:
        return parse_aliases(conf.pci.alias)
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError):
        pass

    try:
        from nova.conf import pci as nova_pci_conf
    except ImportError:
        LOG.warning('Nova is not installed and [pci] alias is not '
                    'registered, so no PCI alias is known.')
        return {}

    nova_pci_conf.register_opts(conf)
    return parse_aliases(conf.pci.alias)
