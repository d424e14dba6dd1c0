"""M/M/c written out once more from the textbook, independently of analysis.capacity.queueing.

Why: a pod model tabulated from the module's own Erlang C would agree with whatever that
function computes. Tests take their expected values from these sums instead.

    C(c, A) = (A^c / c!) (c / (c - A)) / (sum_{k<c} A^k / k! + (A^c / c!) (c / (c - A)))
    L = A + C(c, A) A / (c - A)          (requests in system; Lq = C rho / (1 - rho))
"""

from __future__ import annotations

import math


def erlang_c_sum(c: int, offered: float) -> float:
    tail = offered**c / math.factorial(c) * c / (c - offered)
    return tail / (sum(offered**k / math.factorial(k) for k in range(c)) + tail)


def mmc_in_system(c: int, service_s: float, rate: float) -> float:
    """Mean number in an M/M/c system (waiting + in service)."""
    offered = rate * service_s
    return offered + erlang_c_sum(c, offered) * offered / (c - offered)
