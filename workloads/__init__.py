"""Workloads: client operation generators with their own invariants, driving any backend."""

from .base import Workload as Workload
from .base import make_workload as make_workload
from .base import register_workload as register_workload
from .base import workload_names as workload_names
from .calls import CallsWorkload as CallsWorkload
from .counter import CounterWorkload as CounterWorkload
from .keys import KeyChooser as KeyChooser
from .kv import KVWorkload as KVWorkload
from .orders import OrderWorkload as OrderWorkload
from .user_of_the_day import UserOfTheDayWorkload as UserOfTheDayWorkload
