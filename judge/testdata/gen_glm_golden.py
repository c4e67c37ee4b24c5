"""Golden values for judge's L1 logistic regression (glm.go), from scikit-learn.

AlpacaEval's length-controlled win rate fits
LogisticRegression(penalty="l1", solver="liblinear", fit_intercept=False) on
each row duplicated with labels 1 and 0 and sample weights w*y and w*(1-y),
inside LogisticRegressionCV(Cs=10, cv=GroupKFold(5)) scored by a weighted
log loss. This script fits a small synthetic problem (no AlpacaEval data) the
same way, with liblinear run to a tight tolerance, and writes
glm_golden.json. Run from the repository root:

    python3 judge/testdata/gen_glm_golden.py

(Debian: apt-get install python3-sklearn; checked with scikit-learn 1.2.1.)
"""
import json

import numpy as np
from sklearn.linear_model import LogisticRegression

rng = np.random.default_rng(7)
n = 120
tanh = np.tanh(rng.normal(size=n) * 1.3)
diff = rng.normal(size=n)
X = np.c_[tanh, diff, np.ones(n)]
true = np.array([-1.1, 0.7, 0.4])
y = 1 / (1 + np.exp(-(X @ true + rng.normal(size=n) * 0.8)))
y[:3] = [0.0, 1.0, 0.5]  # a certain loss, a certain win, a draw
w = np.where(np.arange(n) < 40, 0.1, 1.0)  # "gamed" rows first, weight 0.1
X[:40, 2] = 0.0


def fit(Xs, ys, ws, C):
    Xd = np.r_[Xs, Xs]
    yd = np.r_[np.ones(len(ys)), np.zeros(len(ys))]
    sw = np.r_[ys * ws, (1 - ys) * ws]
    m = LogisticRegression(C=C, penalty="l1", solver="liblinear", fit_intercept=False,
                           tol=1e-8, max_iter=10000, random_state=123)
    return m.fit(Xd, yd, sample_weight=sw).coef_[0]


def score(Xs, ys, ws, coef):
    q = np.clip(1 / (1 + np.exp(-(Xs @ coef))), 1e-15, 1 - 1e-15)
    return np.mean(ws * (ys * np.log(q) + (1 - ys) * np.log(1 - q)))


Cs = np.logspace(-4, 4, 10)
fits = [{"C": float(C), "coef": fit(X, y, w, C).tolist()} for C in Cs]
# GroupKFold(5) with every group of the same size, ties in stable order:
# row n-1 to fold 0, row n-2 to fold 1, ...
fold = (n - 1 - np.arange(n)) % 5
scores = np.zeros(len(Cs))
for f in range(5):
    tr, te = fold != f, fold == f
    for i, C in enumerate(Cs):
        scores[i] += score(X[te], y[te], w[te], fit(X[tr], y[tr], w[tr], C))
best = int(np.argmax(scores))
coef = fit(X, y, w, Cs[best])
model_rows = X[:, 2] == 1
lc = 1 / (1 + np.exp(-(coef[2] + coef[1] * diff[model_rows])))
out = {
    "x": X.ravel().tolist(), "p": 3, "y": y.tolist(), "w": w.tolist(),
    "fits": fits, "cv_scores": scores.tolist(), "cv_C": float(Cs[best]), "cv_coef": coef.tolist(),
    "difficulty": diff.tolist(), "lc_model_rows": float(lc.mean()),
}
with open("judge/testdata/glm_golden.json", "w") as f:
    json.dump(out, f, indent=1)
print("C", Cs[best], "coef", coef, "LC", lc.mean())
