#!/usr/bin/env python3
"""Wideband PESQ (ITU-T P.862.2) of a degraded recording against its reference.

usage: pesq_wb.py REFERENCE.wav DEGRADED.wav

Both files: 16-bit mono WAV at 16 kHz (the caller resamples). Prints the MOS-LQO score.
Uses the `pesq` package from PyPI, installed by `cargo xtask setup` in target/venv.
"""
import sys
import wave

import numpy as np
from pesq import pesq


def read(path):
    with wave.open(path, "rb") as w:
        if w.getframerate() != 16000 or w.getnchannels() != 1 or w.getsampwidth() != 2:
            sys.exit(f"{path}: need 16-bit mono at 16 kHz")
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    ref, deg = read(sys.argv[1]), read(sys.argv[2])
    n = min(len(ref), len(deg))
    print(f"{pesq(16000, ref[:n], deg[:n], 'wb'):.3f}")


if __name__ == "__main__":
    main()
