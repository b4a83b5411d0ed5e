"""Workloads: client operation generators that drive any backend."""

from .base import Workload as Workload
from .base import make_workload as make_workload
from .base import register_workload as register_workload
from .base import workload_names as workload_names
from .counter import CounterWorkload as CounterWorkload
from .kv import KVWorkload as KVWorkload
