"""Host metric collectors: one class per family, psutil at the edge, OpenTelemetry names.

Each collector takes its psutil calls as constructor arguments, so a test can feed fixed values
and the arithmetic (CPU deltas, filesystem states) stays in plain functions.
"""

from infragent.agent.collectors.cpu import CpuCollector, SystemCollector, cpu_utilization
from infragent.agent.collectors.devices import DiskCollector, NetworkCollector
from infragent.agent.collectors.filesystem import FilesystemCollector
from infragent.agent.collectors.host import HostCollector, collect_once, resource_attributes
from infragent.agent.collectors.memory import MemoryCollector
from infragent.agent.collectors.point import Collector, MetricPoint, counter, gauge, updown

__all__ = [
    "Collector",
    "CpuCollector",
    "DiskCollector",
    "FilesystemCollector",
    "HostCollector",
    "MemoryCollector",
    "MetricPoint",
    "NetworkCollector",
    "SystemCollector",
    "collect_once",
    "counter",
    "cpu_utilization",
    "gauge",
    "resource_attributes",
    "updown",
]
