"""The Makefile's sharing of identical files between the environments it builds (`make share-env-files`)."""

from __future__ import annotations

import os
import subprocess

from conftest import ROOT


def test_identical_files_of_finished_environments_become_one_and_an_unfinished_one_is_left_alone(tmp_path):
    blob = os.urandom(256 * 1024)
    for env, stamp in [(".venv", ".installed-dev"), (".venv-a", ".installed"), (".venv-building", None)]:
        (tmp_path / env / "lib").mkdir(parents=True)
        (tmp_path / env / "lib" / "libbig.so").write_bytes(blob)
        (tmp_path / env / "lib" / "small.py").write_bytes(b"x = 1\n")  # under the size floor: never linked
        if stamp:
            (tmp_path / env / stamp).touch()
    (tmp_path / ".venv-a" / "lib" / "other.so").write_bytes(blob[:-1] + b"!")  # same size, other content

    subprocess.run(["make", "-s", "-f", str(ROOT / "Makefile"), "-C", str(tmp_path), "share-env-files"], check=True)

    inode = {env: (tmp_path / env / "lib/libbig.so").stat().st_ino for env in (".venv", ".venv-a", ".venv-building")}
    assert inode[".venv"] == inode[".venv-a"]  # finished: one file
    assert inode[".venv-building"] != inode[".venv"]  # no stamp yet: pip may still be writing it
    assert (tmp_path / ".venv-a" / "lib" / "other.so").stat().st_nlink == 1
    assert (tmp_path / ".venv" / "lib" / "small.py").stat().st_nlink == 1
    assert (tmp_path / ".venv-a" / "lib" / "libbig.so").read_bytes() == blob
