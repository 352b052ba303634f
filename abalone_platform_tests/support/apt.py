"""Debian packages a test set-up needs (chromium, postgresql), installed with apt when missing:
CI's machine starts without them, and browser or database downloads do not work here."""

from __future__ import annotations

import os
import subprocess

import pytest


def apt_install(*packages: str) -> None:
    """``apt-get install`` ``packages`` (as root; otherwise the test fails saying what to run)."""
    if os.geteuid() != 0:
        pytest.fail(
            f"{', '.join(packages)} missing and installing needs root: run "
            f"`apt-get update && apt-get install -y {' '.join(packages)}`"
        )
    apt = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", *packages],
    ):
        done = subprocess.run(command, env=apt, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr}")
