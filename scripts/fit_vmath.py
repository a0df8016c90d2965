#!/usr/bin/env python3
"""fit_vmath.py - the polynomial coefficients of codegen/cpu/templates/vmath.h.

Near-minimax fits (mpmath.chebyfit, 200-bit arithmetic) of the functions the
vector math approximates, each printed with its maximum error on the
interval.  Needs mpmath (in the development venv, not in CI: the
coefficients are committed in vmath.h; this script only shows where they
come from).  Usage: /work/venv/bin/python scripts/fit_vmath.py
"""
import mpmath as mp

mp.mp.prec = 200


def fit(name, f, a, b, deg, weight=lambda t: 1):
    """Fit f on [a, b] by a polynomial of degree deg; print the coefficients
    (ascending) and the largest weighted error on a dense grid."""
    coef, _ = mp.chebyfit(f, [a, b], deg + 1, error=True)
    coef = coef[::-1]
    worst = 0
    for i in range(4001):
        t = a + (b - a) * mp.mpf(i) / 4000
        e = abs(mp.polyval(coef[::-1], t) - f(t)) * weight(t)
        worst = max(worst, e)
    print("%s: degree %d on [%s, %s], max error 2^%.1f" % (name, deg, mp.nstr(a, 6), mp.nstr(b, 6),
                                                             float(mp.log(worst, 2)) if worst else -999))
    for c in coef:
        print("    %.15g" % float(c))


ln2 = mp.log(2)
# exp: e^r = 1 + r + r^2 P(r); error weighted into the relative error of e^r
fit("exp P(r) = (e^r - 1 - r) / r^2", lambda r: (mp.exp(r) - 1 - r) / r**2 if r else mp.mpf(1) / 2,
    -ln2 / 2, ln2 / 2, 5, lambda r: r * r / mp.exp(r))
# exp2: 2^f = 1 + f Q(f)
fit("exp2 Q(f) = (2^f - 1) / f", lambda f: (mp.power(2, f) - 1) / f if f else ln2,
    mp.mpf(-0.5), mp.mpf(0.5), 6, lambda f: abs(f) / mp.power(2, f))
# tanh, |x| < 1: tanh x = x + x u P(u), u = x^2; error = relative error of tanh
fit("tanh P(u) = (tanh(x)/x - 1) / u", lambda u: (mp.tanh(mp.sqrt(u)) / mp.sqrt(u) - 1) / u if u else -mp.mpf(1) / 3,
    0, 1, 7, lambda u: u)
# erf, |x| < 1: erf x = x + x P(u)
fit("erf P(u) = erf(x)/x - 1", lambda u: mp.erf(mp.sqrt(u)) / mp.sqrt(u) - 1 if u else 2 / mp.sqrt(mp.pi) - 1,
    0, 1, 6)
# erf, 1 <= |x| < 3.92: erf x = 1 - e^Q(x); error = relative error of erfc
fit("erf Q(x) = log erfc(x)", lambda x: mp.log(mp.erfc(x)), 1, mp.mpf(3.92), 8)
