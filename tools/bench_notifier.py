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

"""Benchmark of the accelerator_usage notification driver.

Measures in one run against a local RabbitMQ (SOVEREIGN_AI_RABBIT_URL,
by default rabbit://guest:guest@127.0.0.1:5672/):

* the time a Nova thread spends in ``Notifier.info`` with ``messagingv2``
  alone and with ``messagingv2`` plus ``accelerator_usage``, alternating,
  for a GPU instance.create.end and for an event the driver ignores;
* the sender's throughput: usage records per second from the first
  notify call to the last record received by a listener;
* the spool's drain rate after a broker outage made with a TCP proxy, and
  the counts of sent, received, duplicate and missing records.

Usage: python tools/bench_notifier.py [--calls N] [--outage-records N]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid

from oslo_config import cfg
import oslo_messaging

from sovereign_ai.conf import notifications as notifications_conf
from sovereign_ai.notifications import driver
from sovereign_ai.notifications import pci_alias
from sovereign_ai.notifications import spool
from sovereign_ai.notifications import usage
from sovereign_ai.tests.functional.notifications import base
from sovereign_ai.tests.unit.notifications import samples

GROUP = notifications_conf.GROUP.name


class Bench:
    """Brokers objects of one run, all named after a random run id."""

    def __init__(self):
        self.run_id = uuid.uuid4().hex[:12]
        self.exchange = 'sai-bench-%s' % self.run_id
        self.usage_topic = 'sai-bench-usage-%s' % self.run_id
        self.versioned_topic = 'sai-bench-versioned-%s' % self.run_id
        self.tempdir = tempfile.mkdtemp(prefix='sai-bench-')
        self.cleanups = []

    def conf(self, spool_name, sender_url, phase):
        conf = cfg.ConfigOpts()
        conf([], project='sovereign-ai-bench')
        notifications_conf.register_opts(conf)
        # Loading a transport registers [DEFAULT] control_exchange.
        oslo_messaging.get_notification_transport(conf, url='fake:/')
        conf.set_override('control_exchange', self.exchange)
        for name, value in (
                ('topics', [self.topic(phase)]),
                ('exchange', self.exchange),
                ('source_topics', [self.versioned_topic]),
                ('spool_path', os.path.join(self.tempdir, spool_name)),
                ('transport_url', sender_url),
                ('retry_interval', 0.05),
                ('retry_max_interval', 0.5)):
            conf.set_override(name, value, group=GROUP)
        from nova.conf import pci as nova_pci_conf
        nova_pci_conf.register_opts(conf)
        conf.set_override('alias', samples.PCI_ALIASES, group='pci')
        return conf

    def notifier(self, conf, drivers):
        # As in nova.conf: [oslo_messaging_notifications] driver lists
        # every driver of the notifier.
        conf.set_override('driver', drivers,
                          group='oslo_messaging_notifications')
        transport = oslo_messaging.get_notification_transport(
            conf, url=base.rabbit_url())
        self.cleanups.append(transport.cleanup)
        return oslo_messaging.Notifier(
            transport, publisher_id='nova-compute:bench',
            topics=[self.versioned_topic])

    def topic(self, phase):
        """Return the usage topic of a phase of the benchmark."""
        # Listeners of one topic without a pool share its queue, so each
        # phase has a topic of its own.
        return '%s-%s' % (self.usage_topic, phase)

    def listener(self, phase):
        transport = oslo_messaging.get_notification_transport(
            cfg.ConfigOpts(), url=base.rabbit_url())
        collector = base.Collector()
        listener = oslo_messaging.get_notification_listener(
            transport, [oslo_messaging.Target(topic=self.topic(phase),
                                              exchange=self.exchange)],
            [collector], executor='threading')
        listener.start()

        def stop():
            listener.stop()
            listener.wait()
            transport.cleanup()

        self.cleanups.append(stop)
        return collector

    def close(self):
        driver.stop_senders()
        for cleanup in reversed(self.cleanups):
            cleanup()
        import kombu
        url = base.rabbit_url().replace('rabbit://', 'amqp://', 1)
        with kombu.Connection(url, connect_timeout=5) as connection:
            channel = connection.channel()
            for topic in (self.topic('calls'), self.topic('throughput'),
                          self.topic('outage'), self.versioned_topic):
                channel.queue_delete('%s.info' % topic)
            channel.exchange_delete(self.exchange)


def payload(index, event_type='instance.create.end'):
    return base.gpu_message(index, event_type=event_type)['payload']


def call_times(bench, calls, rounds):
    """Return per-call microseconds of both notifiers, alternating."""
    plain = bench.notifier(
        bench.conf('unused.sqlite', base.rabbit_url(), 'calls'),
        ['messagingv2'])
    tagged = bench.notifier(
        bench.conf('calls.sqlite', base.rabbit_url(), 'calls'),
        ['messagingv2', 'accelerator_usage'])
    results = {}
    for event_type in ('instance.create.end', 'instance.update'):
        times = {'messagingv2': [], 'with accelerator_usage': []}
        for round_index in range(rounds):
            for name, notifier in (('messagingv2', plain),
                                   ('with accelerator_usage', tagged)):
                for index in range(calls):
                    body = payload(round_index * calls + index, event_type)
                    start = time.perf_counter()
                    notifier.info({}, event_type, body)
                    times[name].append(time.perf_counter() - start)
        results[event_type] = {
            name: (statistics.median(values) * 1e6,
                   sorted(values)[int(len(values) * 0.99)] * 1e6)
            for name, values in times.items()}
    return results


def driver_work(bench, calls):
    """Return microseconds of extraction plus spool append, no threads."""
    conf = bench.conf('work.sqlite', base.rabbit_url(), 'calls')
    options = conf[GROUP]
    extractor = usage.Extractor(
        pci_alias.load_aliases(conf), options.gpu_resource_classes,
        options.gpu_vendor_ids, options.model_names)
    work_spool = spool.Spool(options.spool_path, options.spool_max_records)
    messages = [samples.as_message(samples.own_sample())
                for _index in range(calls)]
    times = []
    for message in messages:
        start = time.perf_counter()
        work_spool.append(extractor.records(message, []))
        times.append(time.perf_counter() - start)
    work_spool.close()
    return statistics.median(times) * 1e6


def wait_for(collector, instance_ids, timeout):
    collector.wait_for_instances(instance_ids, timeout)
    return time.monotonic()


def throughput(bench, records):
    """Return records per second from first notify to last received."""
    collector = bench.listener('throughput')
    conf = bench.conf('throughput.sqlite', base.rabbit_url(), 'throughput')
    notifier = bench.notifier(conf, ['accelerator_usage'])
    start = time.monotonic()
    for index in range(records):
        notifier.info({}, 'instance.create.end', payload(index))
    end = wait_for(collector, base.instance_ids(records), 120)
    return records / (end - start)


def outage(bench, records):
    """Spool records during an outage, then time the drain."""
    proxy = base.TcpProxy(base.rabbit_address())
    proxy.start()
    bench.cleanups.append(proxy.stop)
    collector = bench.listener('outage')
    conf = bench.conf('outage.sqlite', base.with_address(
        base.rabbit_url(), '127.0.0.1', proxy.port), 'outage')
    notifier = bench.notifier(conf, ['accelerator_usage'])
    first = 10 ** 6

    # Records sent while the link is up, then cut halfway through.
    for index in range(first, first + records):
        if index == first + records // 2:
            proxy.cut()
        notifier.info({}, 'instance.create.end', payload(index))
    usage_sender = driver.get_sender(conf, conf[GROUP])
    spooled = usage_sender.spool.size()

    start = time.monotonic()
    proxy.restore()
    expected = base.instance_ids(first + records)[first:]
    end = wait_for(collector, expected, 120)
    counts = base.delivery_counts(collector, expected)
    counts['spooled'] = spooled
    counts['drain_per_second'] = spooled / (end - start)
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--calls', type=int, default=500,
                        help='Notifications per notifier and round.')
    parser.add_argument('--rounds', type=int, default=3,
                        help='Alternating rounds per notifier.')
    parser.add_argument('--records', type=int, default=3000,
                        help='Records of the throughput run.')
    parser.add_argument('--outage-records', type=int, default=3000,
                        help='Records of the outage run.')
    args = parser.parse_args(argv)

    bench = Bench()
    try:
        calls = call_times(bench, args.calls, args.rounds)
        work = driver_work(bench, args.calls)
        rate = throughput(bench, args.records)
        outage_counts = outage(bench, args.outage_records)
    finally:
        bench.close()

    print('Notifier.info call time, microseconds, %d calls x %d rounds '
          'alternating:' % (args.calls, args.rounds))
    print('%-22s %14s %14s %8s' % ('event', 'messagingv2', '+ accel_usage',
                                   'ratio'))
    for event_type, values in calls.items():
        plain = values['messagingv2']
        tagged = values['with accelerator_usage']
        print('%-22s %7.0f (%5.0f) %7.0f (%5.0f) %7.2fx' % (
            event_type, plain[0], plain[1], tagged[0], tagged[1],
            tagged[0] / plain[0]))
    print('(median, with the 99th percentile in brackets)')
    print('Driver work alone (extract + spool append, no sender thread): '
          '%.0f microseconds median' % work)
    print('Sender throughput: %.0f records/s over %d records'
          % (rate, args.records))
    print('Outage: %(sent)d sent, %(spooled)d spooled when the link came '
          'back, %(received)d received, %(duplicates)d duplicates, '
          '%(missing)d missing; drained %(drain_per_second).0f records/s'
          % outage_counts)
    return 1 if outage_counts['missing'] else 0


if __name__ == '__main__':
    sys.exit(main())
