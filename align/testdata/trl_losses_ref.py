"""Reference values for align/loss_trl_test.go, written independently of the Go code from the
formulas in align/LOSSES.md (each loss's source is cited there). Values are batch means in 40-digit
mpmath arithmetic; gradients are mpmath numerical derivatives of the batch mean with respect to each
pair's policy log-probs. Run: python3 align/testdata/trl_losses_ref.py (needs mpmath)."""
from mpmath import mp, mpf, log, exp, diff

mp.dps = 40

def sig(x): return 1 / (1 + exp(-x))
def logsig(x): return -log(1 + exp(-x))

# (policy chosen, ref chosen, policy rejected, ref rejected, chosen tokens, rejected tokens)
P1 = (-10, -12, -15, -12, 4, 5)
P2 = (-13, -12, -20, -12, 4, 8)
TIE = (-11, -12, -16, -12, 2, 4)
P4 = (-16, -14, -10, -10, 3, 3)

def phi(u, div, alpha):
    if div == "reverse_kl": return u
    if div == "forward_kl": return -exp(-u)
    if div == "js_divergence": return logsig(u)
    if div == "alpha_divergence": return exp((alpha - 1) * u) / (alpha - 1)

def pair_loss(name, p, q):
    pc, rc, pr, rr, nc, nr = [mpf(x) for x in p]
    beta = mpf(q.get("beta", 0))
    eps = mpf(q.get("ls", 0))
    a, b = pc - rc, pr - rr
    sa, sb = phi(a, q.get("div", "reverse_kl"), mpf(q.get("dalpha", 1))), phi(b, q.get("div", "reverse_kl"), mpf(q.get("dalpha", 1)))
    z = beta * (sa - sb)
    if name == "dpo": return -(1 - eps) * logsig(z) - eps * logsig(-z)
    if name == "hinge": return max(mpf(0), 1 - z)
    if name == "robust": return (-(1 - eps) * logsig(z) + eps * logsig(-z)) / (1 - 2 * eps)
    if name == "exo_pair":
        return sig(z) * (logsig(z) - log(1 - eps)) + sig(-z) * (logsig(-z) - log(eps))
    if name == "nca_pair":
        return -logsig(beta * sa) - logsig(-beta * sa) / 2 - logsig(-beta * sb) / 2
    if name == "bco_pair": return -logsig(beta * sa) - logsig(-beta * sb)
    if name == "sppo_hard": return (sa - 1 / (2 * beta)) ** 2 + (sb + 1 / (2 * beta)) ** 2
    if name == "apo_zero": return 1 - sig(beta * sa) + sig(beta * sb)
    if name == "apo_down": return sig(beta * sa) + 1 - sig(z)
    if name == "discopop":
        m = sig(z / mpf(q["tau"]))
        return (1 - m) * -logsig(z) + m * exp(-z)
    if name == "sigmoid_norm": return -logsig(beta * (a / nc - b / nr))
    if name == "sft": return -pc / nc
    raise ValueError(name)

def batch_loss(name, batch, q, weights=None):
    beta, eps = mpf(q.get("beta", 0)), mpf(q.get("ls", 0))
    if name in ("aot", "aot_unpaired"):
        if name == "aot":
            xs = sorted(mpf(p[0]) - mpf(p[2]) for p in batch)
            ys = sorted(mpf(p[1]) - mpf(p[3]) for p in batch)
        else:
            xs = sorted(mpf(p[0]) - mpf(p[1]) for p in batch)
            ys = sorted(mpf(p[2]) - mpf(p[3]) for p in batch)
        return sum(-(1 - eps) * logsig(beta * (x - y)) - eps * logsig(-beta * (x - y)) for x, y in zip(xs, ys)) / len(batch)
    weights = weights or [1] * len(batch)
    return sum(w * pair_loss(name, p, q) for w, p in zip(weights, batch)) / len(batch)

def case(name, batch, q):
    # WPO's weight exp(mean logp chosen + mean logp rejected) carries no gradient: held fixed.
    weights = [exp(mpf(p[0]) / p[4] + mpf(p[2]) / p[5]) for p in batch] if q.get("wpo") else None
    base = batch_loss(name, batch, q, weights)
    grads = []
    for i in range(len(batch)):
        g = []
        for side in (0, 2):
            def f(x, i=i, side=side):
                b = [list(p) for p in batch]
                b[i][side] = x
                return batch_loss(name, [tuple(p) for p in b], q, weights)
            g.append(diff(f, mpf(batch[i][side])))
        grads.append(g)
    return base, grads

CASES = [
    ("robust", [P1, P2], {"beta": 0.1, "ls": 0.1}),
    ("exo_pair", [P1, P2], {"beta": 0.1, "ls": 1e-3}),
    ("nca_pair", [P1, P2], {"beta": 0.1}),
    ("bco_pair", [P1, P2], {"beta": 0.1}),
    ("sppo_hard", [P1, P2], {"beta": 0.1}),
    ("apo_zero", [P1, P2], {"beta": 0.1}),
    ("apo_down", [P1, P2], {"beta": 0.1}),
    ("discopop", [P1, P2], {"beta": 0.1, "tau": 0.05}),
    ("discopop", [P1, P2], {"beta": 0.02, "tau": 0.05}),
    ("sigmoid_norm", [P1, P2], {"beta": 0.5}),
    ("aot", [P1, P2, TIE, P4], {"beta": 0.1}),
    ("aot", [P1, P2, TIE, P4], {"beta": 0.1, "ls": 0.1}),
    ("aot_unpaired", [P1, P2, TIE, P4], {"beta": 0.1}),
    ("sft", [P1, P2], {}),
    ("dpo", [P1, P2], {"beta": 0.1, "div": "forward_kl"}),
    ("dpo", [P1, P2], {"beta": 0.1, "div": "js_divergence"}),
    ("dpo", [P1, P2], {"beta": 0.1, "div": "alpha_divergence", "dalpha": 0.5}),
    ("hinge", [P1, P2], {"beta": 0.1, "div": "js_divergence"}),
    ("apo_zero", [P1, P2], {"beta": 0.1, "div": "forward_kl"}),
    ("dpo", [P1, P2], {"beta": 0.1, "wpo": True}),
]

for name, batch, q in CASES:
    v, g = case(name, batch, q)
    gs = ", ".join("{Chosen: %s, Rejected: %s}" % (mp.nstr(c, 17), mp.nstr(r, 17)) for c, r in g)
    print('{"%s", %s, %s, []PairGrad{%s}},' % (name, q, mp.nstr(v, 17), gs))
