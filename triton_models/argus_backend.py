"""What every Argus python-backend model shares: config parameters, model files, logging
and the one-response-per-request loop. Each ``<model>/1/model.py`` imports it.

It sits at the root of the model repository. Triton only looks for model *folders* there,
so this file (like ``requirements.txt``) is no model; each model.py puts the root on
``sys.path``. The embedded Triton and the NGC image (docker-compose mounts the whole
folder) see the same file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import triton_python_backend_utils as pb_utils

DEFAULT_MODEL_DIR = "/models"
"""Where model files are when ``ARGUS_MODEL_DIR`` is not set (the compose mount)."""

FETCH_HINT = "run `argus models fetch` and point ARGUS_MODEL_DIR at its models directory"


class RequestError(Exception):
    """A request answered with an error whose message starts with ``kind:``; the client
    maps the kind (``corrupt_jpeg``, ``no_model``) to a dead-letter reason."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


def corrupt_jpeg(exc: Exception, index: int, items: int) -> RequestError:
    """The error for batch item ``index`` (of ``items``) that OpenCV could not decode."""
    where = f" (batch item {index} of {items})" if items > 1 else ""
    return RequestError("corrupt_jpeg", f"{exc}{where}")


def model_dir() -> str:
    """``$ARGUS_MODEL_DIR``, else :data:`DEFAULT_MODEL_DIR`."""
    return os.environ.get("ARGUS_MODEL_DIR", DEFAULT_MODEL_DIR)


class Parameters:
    """The string ``parameters`` of one model's ``config.pbtxt``.

    ``args`` is what Triton passes to ``initialize``; ``model`` names the model in errors.
    """

    def __init__(self, model: str, args: dict[str, str]) -> None:
        self.model = model
        self._entries: dict[str, Any] = json.loads(args["model_config"]).get("parameters", {})

    def get(self, name: str, default: str | None = None) -> str:
        """The parameter's value; ``default`` when unset (no default: a ``ValueError``)."""
        entry = self._entries.get(name)
        if entry is None or entry.get("string_value", "") == "":
            if default is None:
                raise ValueError(f"{self.model}: config.pbtxt lacks the parameter {name!r}")
            return default
        return str(entry["string_value"])

    def model_file(self, name: str) -> str:
        """``$ARGUS_MODEL_DIR/<value of parameter name>``, checked to exist."""
        directory = model_dir()
        path = os.path.join(directory, self.get(name))
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{self.model}: model file {path} is missing "
                                    f"(ARGUS_MODEL_DIR={directory}): {FETCH_HINT}")
        return path


def log_info(message: str) -> None:
    """Log through Triton's logger (``pb_utils.Logger`` exists only once the stub runs the
    model, not while model.py is imported; older backends lack it)."""
    logger = getattr(pb_utils, "Logger", None)
    if logger is not None:
        logger.log_info(message)


def respond(model: str, requests: list[Any], infer: Callable[[Any], Any]) -> list[Any]:
    """One response per request: ``infer(request)``'s, or an error response that fails
    only that request of the dynamic batch. A :class:`RequestError` answers with its own
    message; anything else with ``<model>_error: <type>: <message>``."""
    responses = []
    for request in requests:
        try:
            responses.append(infer(request))
        except Exception as exc:  # one broken request must not fail the whole batch
            responses.append(error_response(model, exc))
    return responses


def error_response(model: str, exc: Exception) -> Any:
    """The error response :func:`respond` gives a request whose ``infer`` raised ``exc``."""
    if isinstance(exc, RequestError):
        return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc)))
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(
        f"{model}_error: {type(exc).__name__}: {exc}"))
