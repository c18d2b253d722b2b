"""Every benchmark in benchmarks/ runs once as a plain test (``--benchmark-disable``), so that none can rot.

Issue 6 (hardening), item 9. The benchmarks are kept out of the default collection (their timing rounds take
minutes); here they run in a child pytest with pytest-benchmark disabled, which calls each benchmarked function once
and times nothing. A benchmark may skip only because the offline data mirror is absent.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTEST = [sys.executable, "-m", "pytest"]


def test_every_benchmark_runs_once_as_a_plain_test(tmp_path: Path) -> None:
    files = sorted(path.name for path in (REPO / "benchmarks").glob("bench_*.py"))
    assert files, "no benchmarks found"
    report = tmp_path / "benchmarks.xml"
    run = subprocess.run(
        [*PYTEST, "benchmarks", "--benchmark-disable", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]

    cases = list(ET.parse(report).getroot().iter("testcase"))
    ran = {Path(case.get("file") or case.get("classname", "").replace(".", "/") + ".py").name for case in cases}
    assert set(files) <= ran, f"benchmarks not collected: {sorted(set(files) - ran)}"
    for case in cases:
        skipped = case.find("skipped")
        if skipped is not None:
            assert "data" in (skipped.get("message") or ""), f"{case.get('name')} skipped: {skipped.get('message')}"
