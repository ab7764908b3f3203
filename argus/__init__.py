"""Argus: city-scale security video analytics (shared, thin package).

Stage logic lives in ``pipelines/`` and ``services/``; this package holds the
settings, clients, metrics, logging, the embedded stack and the CLI.
"""

__version__ = "0.1.0"
