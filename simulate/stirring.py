"""The stirred start: a random divergence-free velocity and random density blobs on a
periodic box, drawn from a pattern number and turned by quarter turns.

Pattern ``n`` of seed ``s`` is the same arrays wherever it is drawn; the run with
``initial_turns = k`` starts from pattern ``n`` rotated by ``k`` counter-clockwise
quarter turns (:func:`simulate.symmetry.transform_fields`, exact on the grid), so the
four turns of one pattern start as exact rotations of each other.

The velocity is ``(u, v) = (d psi / dy, -d psi / dx)`` of a random stream function
``psi`` whose Fourier amplitudes fall off as ``exp(-(|k| / k_v)^2)``, scaled to rms speed
``initial_speed``; the density is ``1 + tanh(1.5 phi)`` of an independent random field
``phi`` (unit standard deviation, cut-off ``k_d``): smooth blobs between 0 and 2 (a kink,
as in ``max(0, phi)``, makes MacCormack advection gain mass), unrelated to the velocity.
"""

from __future__ import annotations

import numpy as np

from .symmetry import transform_fields

__all__ = ["stirred_start"]

#: the cut-off wavenumbers (cycles per box) of the stream function and the density
K_VELOCITY, K_DENSITY = 2.0, 3.0


def _random_field(rng: np.random.Generator, n: int, k0: float) -> np.ndarray:
    """A real periodic random field ``(n, n)`` with Gaussian spectrum of cut-off ``k0``,
    zero mean and unit standard deviation."""
    k = np.fft.fftfreq(n, 1.0 / n)
    kk = np.hypot(k[:, None], k[None, :])
    spec = (rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))) * np.exp(-(kk / k0) ** 2)
    spec[0, 0] = 0.0
    f = np.fft.ifft2(spec).real
    return f / f.std()


def stirred_start(resolution: int, seed: int, pattern: int, speed: float, turns: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(u, v, density)``, each ``(y, x)`` float64 at the cell centres: pattern
    ``pattern`` of ``seed`` (rms speed ``speed``) turned by ``turns`` quarter turns."""
    n = resolution
    rng = np.random.default_rng([seed, 7, pattern])
    psi = _random_field(rng, n, K_VELOCITY)
    k = 2j * np.pi * np.fft.fftfreq(n)           # d/d(index) in Fourier space, one cell = 1
    ph = np.fft.fft2(psi)
    u = np.fft.ifft2(ph * k[:, None]).real        # d psi / dy (rows are y)
    v = -np.fft.ifft2(ph * k[None, :]).real       # -d psi / dx (columns are x)
    rms = np.sqrt(np.mean(u ** 2 + v ** 2))
    u, v = u * (speed / rms), v * (speed / rms)
    density = 1.0 + np.tanh(1.5 * _random_field(rng, n, K_DENSITY))
    return transform_fields(u, v, density, k=turns)
