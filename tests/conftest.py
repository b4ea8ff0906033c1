"""Hypothesis profiles for the whole suite, chosen by ``HYPOTHESIS_PROFILE``.

- ``default``: what every run uses: hypothesis' 100 examples per property, but no deadline
  (a per-example time limit is a timed assertion, and a loaded machine misses it at random;
  speed is measured in bench/).
- ``deep``: thousands of examples per property, no deadline (the machine may be loaded);
  run by ``bench/fuzz_deep.py``. A test that pins ``max_examples`` itself keeps its number.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

DEEP_EXAMPLES = int(os.environ.get("HYPOTHESIS_DEEP_EXAMPLES", "4000"))

settings.register_profile("default", deadline=None)
settings.register_profile("deep", max_examples=DEEP_EXAMPLES, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
