"""Data layer: pinned upstream files (download, mirror, checksums) and the human-labelled benchmarks built on them."""

from __future__ import annotations

from .benchmarks import (
    BENCHMARKS,
    Benchmark,
    BenchmarkFormatError,
    BenchmarkSpec,
    benchmark_names,
    llmbar_evaluator_file,
    load_benchmark,
)
from .sources import (
    ChecksumMismatchError,
    DataError,
    DataUnavailableError,
    SourceFile,
    cache_dir,
    is_offline,
    read_json,
    read_jsonl,
    resolve,
    source_file,
)

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "BenchmarkFormatError",
    "BenchmarkSpec",
    "ChecksumMismatchError",
    "DataError",
    "DataUnavailableError",
    "SourceFile",
    "benchmark_names",
    "cache_dir",
    "is_offline",
    "llmbar_evaluator_file",
    "load_benchmark",
    "read_json",
    "read_jsonl",
    "resolve",
    "source_file",
]
