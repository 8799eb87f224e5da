#!/usr/bin/env python
"""Robustness benchmark: edits x hashes x the match policy, on a folder of images. See docs/robustness.md.

    .venv/bin/python scripts/bench_robustness.py ../shared/corpus

A thin shell over `hashsvc.bench.robustness_cli` (which `hashsvc bench robustness DIR` calls too).
"""

import sys

from hashsvc.bench.robustness_cli import main

if __name__ == "__main__":
    sys.exit(main())
