"""Where a run ran: Python, the machine (CPU, GPU), every package the matrix can use, the git
revision of the code.

Package versions come from the installed distributions' metadata (:mod:`importlib.metadata`),
so nothing is imported to learn them; a package that is not installed reads ``not installed``.
A GPU is looked up only through a framework the run already imported (PyTorch's CUDA, JAX's
devices), never by importing one. The git revision is that of the checkout the running
``xentropy`` package is imported from (an editable install), with ``(dirty)`` where
``git status --porcelain`` lists anything; a wheel outside a checkout has none.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

# name shown -> distributions that provide it, the first one installed wins
PACKAGES: dict[str, tuple[str, ...]] = {
    "xentropy": ("xentropy-array", "xentropy"),
    "numpy": ("numpy",),
    "scipy": ("scipy",),
    "mpmath": ("mpmath",),
    "torch": ("torch",),
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly"),
    "jax": ("jax",),
    "jaxlib": ("jaxlib",),
    "optax": ("optax",),
    "keras": ("keras",),
    "dask": ("dask",),
    "cupy": ("cupy", "cupy-cuda12x", "cupy-cuda11x"),
    "array-api-strict": ("array-api-strict", "array_api_strict"),
    "array-api-compat": ("array-api-compat", "array_api_compat"),
    "array-api-extra": ("array-api-extra", "array_api_extra"),
    "matplotlib": ("matplotlib",),
}
NOT_INSTALLED = "not installed"
SYSTEM_KEYS = ("python", "platform", "cpu", "gpu (torch)", "gpu (jax)", "git")


def package_version(names: tuple[str, ...]) -> str:
    """The version of the first installed distribution of ``names``."""
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return NOT_INSTALLED


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux) and its number of logical cores."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or "unknown"
    return f"{model} ({os.cpu_count() or '?'} logical cores)"


def gpu_names() -> dict[str, str]:
    """``{"gpu (torch)": names, "gpu (jax)": names}`` of the GPUs that an already imported
    PyTorch or JAX sees (a key per framework, so that the environments of worker processes
    that imported different frameworks merge); empty where neither sees one."""
    names: dict[str, list[str]] = {}
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available():
            count = torch.cuda.device_count()
            names["torch"] = [torch.cuda.get_device_name(k) for k in range(count)]
    except Exception:  # a broken CUDA runtime is not this report's failure
        pass
    jax = sys.modules.get("jax")
    try:
        if jax is not None:
            names["jax"] = [d.device_kind for d in jax.devices() if d.platform in ("gpu", "cuda")]
    except Exception:  # jax.devices() raises where no backend initialises
        pass
    return {f"gpu ({framework})": ", ".join(gpus) for framework, gpus in names.items() if gpus}


def _git(directory: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_revision(directory: Path | None = None) -> str | None:
    """``git rev-parse HEAD`` of the checkout that holds ``directory`` (default: the imported
    ``xentropy`` package), ``" (dirty)"`` appended when ``git status --porcelain`` lists
    anything; None outside a checkout or where the package's files are not tracked there (a
    wheel installed into a virtual environment that lives inside some checkout)."""
    if directory is None:
        module = sys.modules.get("xentropy")
        origin = getattr(module, "__file__", None) if module is not None else None
        if origin is None:
            return None
        directory = Path(origin).resolve().parent
    if not _git(directory, "ls-files", "--", "__init__.py"):
        return None
    revision = _git(directory, "rev-parse", "HEAD")
    if not revision:
        return None
    status = _git(directory, "status", "--porcelain")
    return f"{revision} (dirty)" if status else revision


def collect() -> dict[str, str]:
    """The environment as ``name -> text``: :data:`SYSTEM_KEYS` (the GPUs and ``git`` only
    where known), then every package of :data:`PACKAGES`."""
    import xentropy  # noqa: F401  (the checkout whose revision is reported)

    found: dict[str, str | None] = {
        "python": f"{sys.version.split()[0]} ({platform.python_implementation()})",
        "platform": platform.platform(),
        "cpu": cpu_model(),
        **gpu_names(),
        "git": git_revision(),
    }
    environment = {key: value for key, value in found.items() if value is not None}
    environment.update({name: package_version(dists) for name, dists in PACKAGES.items()})
    return environment
