"""The deterministic simulator: one seeded event queue driving sans-IO cores."""

from .config import ClientConfig as ClientConfig
from .config import DiskConfig as DiskConfig
from .config import FaultEvent as FaultEvent
from .config import LinkLatency as LinkLatency
from .config import NetworkConfig as NetworkConfig
from .config import SimConfig as SimConfig
from .config import load_scenario as load_scenario
from .config import parse_scenario as parse_scenario
from .engine import SafetyViolation as SafetyViolation
from .engine import SimResult as SimResult
from .engine import Simulation as Simulation
from .engine import simulate as simulate
from .engine import workload_for as workload_for
from .latency import Latency as Latency
