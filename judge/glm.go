package judge

import (
	"errors"
	"fmt"
	"math"
)

// A glmData is a weighted logistic regression problem with soft labels:
// row i has features X[i*P:(i+1)*P], label Y[i] in [0, 1] and weight W[i].
type glmData struct {
	X    []float64
	P    int
	Y, W []float64
}

func (d glmData) n() int { return len(d.Y) }

func (d glmData) row(i int) []float64 { return d.X[i*d.P : (i+1)*d.P] }

// subset returns the rows for which keep is true.
func (d glmData) subset(keep func(i int) bool) glmData {
	s := glmData{P: d.P}
	for i := range d.n() {
		if keep(i) {
			s.X = append(s.X, d.row(i)...)
			s.Y = append(s.Y, d.Y[i])
			s.W = append(s.W, d.W[i])
		}
	}
	return s
}

// l1Objective is liblinear's L1-regularized logistic regression objective
// (scikit-learn's LogisticRegression(penalty="l1", solver="liblinear",
// fit_intercept=False)) for soft labels:
//
//	‖β‖₁ + C Σ_i w_i [y_i log(1 + e^{−x_i·β}) + (1 − y_i) log(1 + e^{x_i·β})]
//
// which is what AlpacaEval minimizes when it duplicates each row with
// labels 1 and 0 and sample weights w·y and w·(1 − y).
func l1Objective(d glmData, c float64, beta []float64) float64 {
	var loss, pen float64
	for i := range d.n() {
		z := dot(d.row(i), beta)
		loss += d.W[i] * (d.Y[i]*softplus(-z) + (1-d.Y[i])*softplus(z))
	}
	for _, b := range beta {
		pen += math.Abs(b)
	}
	return pen + c*loss
}

// fitL1Logistic minimizes l1Objective by proximal Newton steps (the
// newGLMNET method liblinear uses): at β, a quadratic model of the loss
// plus the L1 norm is minimized by coordinate descent, and a backtracking
// line search on the true objective takes the step. It stops when the
// minimum-norm subgradient is below 1e-10 of its value at β = 0 — far
// tighter than liblinear's default tolerance (1e-4), so the result is the
// optimum that liblinear approximates.
func fitL1Logistic(d glmData, c float64) []float64 {
	p := d.P
	beta := make([]float64, p)
	g := make([]float64, p)
	h := make([]float64, p*p)
	var viol0 float64
	for iter := 0; iter < 200; iter++ {
		clear(g)
		clear(h)
		for i := range d.n() {
			x := d.row(i)
			s := sigmoid(dot(x, beta))
			r := c * d.W[i] * (s - d.Y[i])
			v := c * d.W[i] * s * (1 - s)
			for a := range p {
				g[a] += r * x[a]
				for b := range p {
					h[a*p+b] += v * x[a] * x[b]
				}
			}
		}
		// the minimum-norm subgradient of the objective
		var viol float64
		for a := range p {
			switch {
			case beta[a] > 0:
				viol += math.Abs(g[a] + 1)
			case beta[a] < 0:
				viol += math.Abs(g[a] - 1)
			default:
				viol += math.Max(math.Abs(g[a])-1, 0)
			}
		}
		if iter == 0 {
			viol0 = viol
		}
		if viol <= 1e-10*math.Max(viol0, 1e-300) || viol == 0 {
			break
		}
		// the Newton direction: minimize g·δ + ½δᵀHδ + ‖β+δ‖₁ by cyclic
		// coordinate descent
		delta := make([]float64, p)
		for sweep := 0; sweep < 10000; sweep++ {
			var change float64
			for a := range p {
				ga := g[a]
				for b := range p {
					ga += h[a*p+b] * delta[b]
				}
				haa := h[a*p+a] + 1e-12
				u := beta[a] + delta[a]
				un := softThreshold(u-ga/haa, 1/haa)
				delta[a] += un - u
				change = math.Max(change, math.Abs(un-u))
			}
			if change <= 1e-15*(1+maxAbs(beta)) {
				break
			}

		}
		// backtracking line search (Armijo rule with the L1 term, σ = 0.01)
		var l1Old, l1New, gd float64
		for a := range p {
			l1Old += math.Abs(beta[a])
			l1New += math.Abs(beta[a] + delta[a])
			gd += g[a] * delta[a]
		}
		dec := gd + l1New - l1Old
		f0 := l1Objective(d, c, beta)
		if dec > -1e-13*math.Abs(f0) {
			break // the model promises less than rounding: converged
		}
		next := make([]float64, p)
		step := 1.0
		for ; step > 1e-20; step /= 2 {
			for a := range p {
				next[a] = beta[a] + step*delta[a]
			}
			if l1Objective(d, c, next) <= f0+0.01*step*dec {
				break
			}
		}
		if step <= 1e-20 {
			break // no decrease is possible in floating point
		}
		copy(beta, next)
		if step*maxAbs(delta) <= 1e-15*(1+maxAbs(beta)) {
			break
		}
	}
	return beta
}

func softThreshold(x, t float64) float64 {
	switch {
	case x > t:
		return x - t
	case x < -t:
		return x + t
	}
	return 0
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func maxAbs(a []float64) float64 {
	var m float64
	for _, v := range a {
		m = math.Max(m, math.Abs(v))
	}
	return m
}

// ErrTooFewForLC reports too few verdicts for the length-controlled fit's
// cross-validation.
var ErrTooFewForLC = errors.New("too few verdicts for the length-controlled win rate")

// glmCs are LogisticRegressionCV's default grid, Cs=10: ten values
// log-spaced from 1e-4 to 1e4.
func glmCs() []float64 {
	cs := make([]float64, 10)
	for i := range cs {
		cs[i] = math.Pow(10, -4+8*float64(i)/9)
	}
	return cs
}

// groupFold is the fold (of k) of row i of n under scikit-learn's
// GroupKFold when every group has the same size (here: each row and its
// duplicate with the other label). GroupKFold deals the groups, in the
// reverse of their argsort by size, to the lightest fold in turn; with equal
// sizes the order is the sort's tie order, taken here as that of a stable
// sort: row n−1 to fold 0, row n−2 to fold 1, and so on. (NumPy's default
// sort breaks ties in a version- and CPU-dependent order, which can tip the
// choice between two neighbouring C values whose cross-validated losses
// differ in the fifth digit; the length-controlled win rate moves by a few
// hundredths of a point when it does.)
func groupFold(i, n, k int) int { return (n - 1 - i) % k }

// cvScore is AlpacaEval's cross-validation score of β on d: minus the
// weighted log loss with the predictions clipped to [1e-15, 1 − 1e-15],
// averaged over the rows (its logloss_continuous).
func cvScore(d glmData, beta []float64) float64 {
	var s float64
	for i := range d.n() {
		q := math.Min(math.Max(sigmoid(dot(d.row(i), beta)), 1e-15), 1-1e-15)
		s += d.W[i] * (d.Y[i]*math.Log(q) + (1-d.Y[i])*math.Log(1-q))
	}
	return s / float64(d.n())
}

// fitL1LogisticCV is AlpacaEval's fit_LogisticRegressionCV with
// probabilities as labels: LogisticRegressionCV(Cs=10, cv=GroupKFold(5),
// penalty="l1", solver="liblinear", fit_intercept=False) scored by
// logloss_continuous. Each C of glmCs is fitted on four folds and scored
// on the fifth; the C with the best score summed over the folds (the
// smallest on a tie) is refitted on all rows. It returns the coefficients
// and the chosen C.
func fitL1LogisticCV(d glmData) ([]float64, float64, error) {
	const k = 5
	n := d.n()
	if n < k {
		return nil, 0, fmt.Errorf("%w: %d rows to fit, 5-fold cross-validation needs %d", ErrTooFewForLC, n, k)
	}
	cs := glmCs()
	scores := make([]float64, len(cs))
	for f := range k {
		train := d.subset(func(i int) bool { return groupFold(i, n, k) != f })
		test := d.subset(func(i int) bool { return groupFold(i, n, k) == f })
		for ci, c := range cs {
			scores[ci] += cvScore(test, fitL1Logistic(train, c))
		}
	}
	best := 0
	for ci := range cs {
		if scores[ci] > scores[best] {
			best = ci
		}
	}
	return fitL1Logistic(d, cs[best]), cs[best], nil
}
