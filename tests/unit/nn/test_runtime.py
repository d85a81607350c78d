"""The CPU allocator settings: applied once on glibc, left alone where the environment configures malloc."""

from __future__ import annotations

import platform

import contrast.nn.runtime as runtime


def test_tune_cpu_allocator_is_idempotent(monkeypatch):
    monkeypatch.setattr(runtime, "_applied", None)
    first = runtime.tune_cpu_allocator()
    assert first == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
    assert runtime.tune_cpu_allocator() is first


def test_respects_the_environment(monkeypatch):
    monkeypatch.setattr(runtime, "_applied", None)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000")
    assert runtime.tune_cpu_allocator() is False
    monkeypatch.setattr(runtime, "_applied", None)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/libjemalloc.so.2")
    assert runtime.tune_cpu_allocator() is False
