"""Every atheris harness (``fuzz_<name>.py``) runs a few hundred inputs and leaves nothing behind.

Each run is a subprocess in a pytest temporary directory: its working directory,
its corpus, its ``-artifact_prefix`` (where libFuzzer writes ``crash-*``,
``leak-*``, ``timeout-*`` files) and its ``TMPDIR`` (where the runner writes the
token dictionary) are all in there. A clean run exits 0, writes no artifact and
removes its dictionary; the corpus is the only thing it keeps. Skipped without
atheris outside CI (the ``test`` extra installs it; with ``CI`` set a missing
atheris fails).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

if os.environ.get("CI"):
    import atheris  # noqa: F401  (in CI the test extra installs it: a missing fuzzer is a failure)
else:
    pytest.importorskip("atheris")

HERE = Path(__file__).resolve().parent
HARNESSES = sorted(p.stem.removeprefix("fuzz_") for p in HERE.glob("fuzz_*.py"))


def test_every_target_has_a_harness() -> None:
    assert len(HARNESSES) >= 11, HARNESSES


@pytest.mark.parametrize("name", HARNESSES)
def test_a_short_atheris_run_leaves_only_its_corpus(name: str, tmp_path: Path) -> None:
    work, temp, artifacts, corpus = (tmp_path / d for d in ("work", "tmp", "artifacts", "corpus"))
    for folder in (work, temp, artifacts):
        folder.mkdir()
    command = [
        sys.executable,
        str(HERE / f"fuzz_{name}.py"),
        "-runs=300",
        "-timeout=20",
        f"-artifact_prefix={artifacts}/",
        str(corpus),
    ]
    env = {**os.environ, "TMPDIR": str(temp)}
    run = subprocess.run(command, cwd=work, env=env, capture_output=True, timeout=120, check=False)
    output = run.stderr.decode(errors="replace")[-3000:]
    assert run.returncode == 0, output
    assert "Done 300 runs" in output, output
    assert any(corpus.iterdir()), "the corpus was not seeded"
    assert list(artifacts.iterdir()) == [], output
    assert list(work.iterdir()) == [], "files left in the working directory"
    assert list(temp.iterdir()) == [], "the dictionary was left behind"
