#!/usr/bin/env python3
"""Reference values for the distributed discrete Gaussian's accounting, computed
independently of the Swift code, in 50-digit arithmetic (mpmath), straight from the
paper's statements:

  Kairouz, Liu & Steinke, "The Distributed Discrete Gaussian Mechanism for Federated
  Learning with Secure Aggregation", ICML 2021, arXiv:2102.06387 (KLS21)

  - Theorem 1: tau = 10 * sum_{k=1}^{n-1} exp(-2 pi^2 sigma^2 k/(k+1))
  - Proposition 14 / Eq. 17: RDP(alpha) = min(alpha/2 (D2/s)^2 + tau d,
        alpha/2 ((D2/s)^2 + 2 tau D1/s + tau^2 d), alpha/2 (D2/s + tau sqrt(d))^2),
    s^2 = n sigma^2
  - Theorem 23 / Prop. 22: D2 = min(c + sqrt(d),
        sqrt(c^2 + d/4 + sqrt(2 ln(1/beta)) (c + sqrt(d)/2))), D1 = D2 min(sqrt(d), D2)
  - (eps, delta) from RDP: Canonne, Kamath & Steinke 2020, Prop. 12:
        eps = rdp + ln(1 - 1/alpha) - (ln delta + ln alpha)/(alpha - 1), min over alpha

Run once with `python3 ddg_reference.py`; the printed values are pasted into
DistributedGaussianTests.swift. The tau tail beyond k = 1000 is summed exactly here
(the Swift code bounds it from above), so points with n > 1001 are compared with a
tolerance that the bound may only exceed.
"""
from mpmath import mp, mpf, exp, log, sqrt, pi

mp.dps = 50


def tau(sigma, n):
    return 10 * sum(exp(-2 * pi**2 * sigma**2 * mpf(k) / (k + 1)) for k in range(1, n))


def l2_bound(c, beta, d):
    first = c + sqrt(d)
    if beta == 0:
        return first
    second = sqrt(c**2 + mpf(d) / 4 + sqrt(2 * log(1 / beta)) * (c + sqrt(d) / 2))
    return min(first, second)


def rdp(alpha, c_grid, beta, d, sigma, n):
    d2 = l2_bound(c_grid, beta, d)
    d1 = d2 * min(sqrt(d), d2)
    s = sqrt(n) * sigma
    t = tau(sigma, n)
    a = alpha / mpf(2)
    return min(a * (d2 / s)**2 + t * d,
               a * ((d2 / s)**2 + 2 * t * d1 / s + t**2 * d),
               a * (d2 / s + t * sqrt(d))**2)


def orders():
    return [1 + mpf(x) / 10 for x in range(1, 100)] + [mpf(x) for x in range(11, 64)] + [mpf(128), mpf(256), mpf(512), mpf(1024)]


def epsilon(c_grid, beta, d, sigma, n, rounds, delta):
    best = None
    for a in orders():
        r = rounds * rdp(a, c_grid, beta, d, sigma, n)
        if a <= mpf('1.01'):
            continue
        e = r + log(1 - 1 / a) - (log(delta) + log(a)) / (a - 1)
        best = e if best is None or e < best else best
    return max(best, 0)


points = [
    # (c/gamma, beta, d', sigma', parties, rounds, delta)
    (mpf(100), 0, 1024, mpf(2), 10, 1, mpf('1e-5')),
    (mpf(100), exp(mpf(-0.5)), 1024, mpf(2), 10, 1, mpf('1e-5')),
    (mpf(1000), exp(mpf(-0.5)), 65536, mpf(30), 100, 5, mpf('1e-6')),
    (mpf(50), exp(mpf(-0.5)), 256, mpf('0.6'), 3, 1, mpf('1e-5')),
    (mpf(100), exp(mpf(-0.5)), 1024, mpf(60), 10, 1, mpf('1e-5')),
    (mpf(1), exp(mpf(-0.5)), 16, mpf('0.6'), 3, 1, mpf('1e-5')),
    (mpf(20), exp(mpf(-0.5)), 64, mpf('0.5'), 2000, 3, mpf('1e-6')),
]
for c, beta, d, sigma, n, rounds, delta in points:
    print(f"c={c} beta={float(beta)!r} d={d} sigma={sigma} n={n} rounds={rounds} delta={delta}")
    print("  l2 bound", mp.nstr(l2_bound(c, beta, d), 17))
    print("  tau", mp.nstr(tau(sigma, n), 17))
    print("  rdp(2)", mp.nstr(rdp(mpf(2), c, beta, d, sigma, n), 17), "rdp(32)", mp.nstr(rdp(mpf(32), c, beta, d, sigma, n), 17))
    print("  epsilon", mp.nstr(epsilon(c, beta, d, sigma, n, rounds, delta), 17))
