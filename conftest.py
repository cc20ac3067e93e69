"""Settings shared by every test folder (``tests/`` and each ``providers/*/tests/``).

Hypothesis: no per-example deadline and no "data generation too slow" health check. Both time the
machine, not the code: on a loaded 2-core CI machine (three pytest-xdist workers, the services,
other jobs) an example of the Squad record readers that takes 0.35 ms took 2 s once, and Hypothesis
failed the test ("Unreliable test timings"). Every property is still checked on every example;
a test that hangs is ended by pytest-timeout (pyproject.toml) and tests/conftest.py's watchdog.
A test's own ``@settings`` still wins.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile("smsgate", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("smsgate")
