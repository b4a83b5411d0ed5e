"""Linearizability checking of client histories (Wing–Gong / Lowe search, P-compositional).

``check(history, model, budget)`` answers ``linearizable``, ``not
linearizable`` (with a readable counterexample) or ``unknown`` (budget spent).
``partition`` exposes the split into independent per-key pieces; the readers
turn Jepsen/Knossos EDN and ``jepsen.util`` logs into operations.
"""

from ._budget import Budget as Budget
from ._check import Explanation as Explanation
from ._check import check as check
from ._check import explain as explain
from ._check import partition as partition
from ._search import SearchResult as SearchResult
from ._search import search as search
from .counterexample import Counterexample as Counterexample
from .counterexample import render_timeline as render_timeline
from .formats import FORMATS as FORMATS
from .formats import parse_edn_history as parse_edn_history
from .formats import parse_history as parse_history
from .formats import parse_jepsen_log as parse_jepsen_log
from .formats import read_history as read_history
from .generate import generate_history as generate_history
from .models import ABSENT as ABSENT
from .models import MODELS as MODELS
from .models import UNKNOWN as UNKNOWN
from .models import CounterModel as CounterModel
from .models import KVModel as KVModel
from .models import Model as Model
from .models import OrderModel as OrderModel
from .models import RegisterModel as RegisterModel
from .models import WriteOnceModel as WriteOnceModel
from .models import make_model as make_model
from .verdict import Status as Status
from .verdict import Verdict as Verdict
