"""The pieces of ``scripts/gpu_check.py``: one prepared sequence of device checks.

* :mod:`gpucheck.record` - checks, their status / error line / wall time, the run's
  environment, the time budget and the output files;
* :mod:`gpucheck.sizes`  - what ``--size tiny`` and ``--size full`` run;
* :mod:`gpucheck.smoke`  - part 1: simulate, train (bf16, compile), resume, forecast on
  the device and on the CPU, torchrun and a process group;
* :mod:`gpucheck.speed`  - part 2: exported surrogates vs the simulator (frames/s);
* :mod:`gpucheck.probe`  - part 3: paper-scale optimiser steps and the measured cost of
  the paper-scale accuracy benchmark;
* :mod:`gpucheck.report` - the markdown report.

Project modules (``simulate``, ``train``, ...) are imported inside the checks, so a
missing package fails the checks that need it and the report is still written.
"""
