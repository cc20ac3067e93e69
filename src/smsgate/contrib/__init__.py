"""Integrations with other frameworks (each behind its own extra).

* :mod:`smsgate.contrib.celery`: campaigns dispatched by Celery workers and
  single sends queued from web requests (``pip install smsgate[celery]``).
"""
