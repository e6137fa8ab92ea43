"""Brian2 bridge tests (skipped where brian2 is not installed).

Compiled (cython) Brian2 code is cached on disk by Brian2 (``~/.cython/brian_extensions``),
so only the first run of the suite pays for compilation (about 10–20 s per model); the cython
tests use the ``fused`` layout (one compiled state updater per model) and few distinct models.
"""
import pytest

pytest.importorskip("brian2")
