package judge

import (
	"math"
	"unicode/utf8"
)

// Summary is the outcome of a judging run, in AlpacaEval's terms. Rates
// and their standard errors are percentages.
type Summary struct {
	// N is the number of valid judgments; Invalid the replies that could
	// not be parsed and Failed the items that got no reply. Neither counts
	// in the statistics.
	N, Invalid, Failed int
	// Wins, Losses and Draws count the candidate's results (AlpacaEval's
	// n_wins, n_wins_base and n_draws).
	Wins, Losses, Draws int
	// WinRate is the mean of the candidate's preference in [0, 1] (a draw
	// counts one half), StandardError its standard error of the mean.
	WinRate, StandardError float64
	// LCWinRate and LCStandardError are the length-controlled win rate and
	// its delta-method standard error; LengthCoef and ModelCoef the fitted
	// weights of tanh(standardized length difference) and of the model
	// identity. See LengthControlled.
	LCWinRate, LCStandardError float64
	LengthCoef, ModelCoef      float64
}

// Summarize computes the statistics of judgments js of items (same order;
// a judgment with an empty Key failed).
func Summarize(items []Item, js []Judgment) Summary {
	var s Summary
	var prefs []float64
	var base, cand []string
	for i, j := range js {
		switch {
		case j.Key == "":
			s.Failed++
			continue
		case j.Preference == 0:
			s.Invalid++
			continue
		case j.Preference == 2:
			s.Wins++
		case j.Preference == 1:
			s.Losses++
		default:
			s.Draws++
		}
		prefs = append(prefs, j.Preference-1)
		base, cand = append(base, items[i].Baseline), append(cand, items[i].Candidate)
	}
	s.N = len(prefs)
	s.WinRate, s.StandardError = meanSEM(prefs)
	s.WinRate *= 100
	s.StandardError *= 100
	lc := LengthControlled(base, cand, prefs)
	s.LCWinRate, s.LCStandardError = 100*lc.WinRate, 100*lc.StandardError
	s.LengthCoef, s.ModelCoef = lc.LengthCoef, lc.ModelCoef
	return s
}

// meanSEM is the mean and its standard error (sample standard deviation
// over √n, as pandas' sem); the error is 0 below two values.
func meanSEM(x []float64) (mean, sem float64) {
	if len(x) == 0 {
		return 0, 0
	}
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	if len(x) < 2 {
		return mean, 0
	}
	var ss float64
	for _, v := range x {
		ss += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(ss/float64(len(x)-1)) / math.Sqrt(float64(len(x)))
}

// LCResult is a length-controlled win rate (a fraction) and its fit.
type LCResult struct {
	WinRate, StandardError float64
	LengthCoef, ModelCoef  float64
}

// lcRidge is the L2 penalty on the two weights. It keeps the fit finite
// when the preferences are separable (say, the candidate wins every item)
// and is otherwise negligible next to hundreds of judgments.
const lcRidge = 1e-3

// LengthControlled computes AlpacaEval 2's length-controlled win rate of
// the candidate over the baseline from their outputs and the candidate's
// preferences y in [0, 1] (1 a win, 0.5 a draw).
//
// AlpacaEval 2 (Dubois et al., 2024, "Length-Controlled AlpacaEval";
// alpaca_eval/metrics/glm_winrate.py, "length_controlled_v1") fits a
// logistic regression of the judge's preference on
//
//	θ_model + φ_model · instruction_difficulty_i + β_model · tanh(Δ_i / sd(Δ))
//
// where Δ_i = len(baseline_i) − len(candidate_i) in characters and sd(Δ)
// its sample standard deviation over the instructions (the difference is
// scaled, not centered), with the preferences as soft labels. The
// length-controlled win rate is the mean predicted preference with the
// length term set to zero: mean_i σ(θ + φ · difficulty_i).
//
// The instruction difficulties are fitted once across the whole AlpacaEval
// leaderboard and downloaded by AlpacaEval, which also adds the answers of
// two deliberately verbose and terse "gamed" baselines to every fit with
// weight 0.1 each as a regularizer, and selects an L1 penalty by 5-fold
// cross-validation. Here, with only the two files at hand, the
// per-instruction term is left out, so the model is
//
//	y_i ~ σ(θ + β · tanh(Δ_i / sd(Δ)))
//
// fitted by Newton's method with a small L2 penalty (lcRidge), and the
// length-controlled win rate is σ(θ). Its standard error comes from the
// delta method: σ'(θ) times the standard error of θ from the inverse
// Hessian. Without difficulties the estimate keeps AlpacaEval's intent
// (the win rate had both outputs been the same length) but can differ from
// the leaderboard's number by a point or two.
func LengthControlled(baseline, candidate []string, y []float64) LCResult {
	n := len(y)
	if n == 0 {
		return LCResult{}
	}
	delta := make([]float64, n)
	for i := range y {
		delta[i] = float64(utf8.RuneCountInString(baseline[i]) - utf8.RuneCountInString(candidate[i]))
	}
	_, sem := meanSEM(delta)
	sd := sem * math.Sqrt(float64(n))
	x := make([]float64, n)
	for i, d := range delta {
		if sd > 0 {
			x[i] = math.Tanh(d / sd)
		}
	}
	theta, beta, varTheta := fitLogistic(x, y)
	p := sigmoid(theta)
	return LCResult{WinRate: p, StandardError: p * (1 - p) * math.Sqrt(varTheta), LengthCoef: beta, ModelCoef: theta}
}

// fitLogistic maximizes Σ y log σ(z) + (1−y) log(1−σ(z)) − λ/2 (θ² + β²)
// with z = θ + β x, and returns θ, β and the variance of θ from the
// inverse Hessian.
func fitLogistic(x, y []float64) (theta, beta, varTheta float64) {
	loss := func(t, b float64) float64 {
		var l float64
		for i := range x {
			z := t + b*x[i]
			// −[y log σ(z) + (1−y) log σ(−z)], stably
			l += y[i]*softplus(-z) + (1-y[i])*softplus(z)
		}
		return l + lcRidge/2*(t*t+b*b)
	}
	var h00, h01, h11 float64
	for iter := 0; iter < 100; iter++ {
		var g0, g1 float64
		h00, h01, h11 = lcRidge, 0, lcRidge
		for i := range x {
			p := sigmoid(theta + beta*x[i])
			r := p - y[i]
			g0 += r
			g1 += r * x[i]
			w := p * (1 - p)
			h00 += w
			h01 += w * x[i]
			h11 += w * x[i] * x[i]
		}
		g0 += lcRidge * theta
		g1 += lcRidge * beta
		det := h00*h11 - h01*h01
		if det <= 0 {
			break
		}
		d0 := (h11*g0 - h01*g1) / det
		d1 := (h00*g1 - h01*g0) / det
		// damped Newton: halve the step until the loss does not rise
		old, step := loss(theta, beta), 1.0
		for ; step > 1e-8; step /= 2 {
			if loss(theta-step*d0, beta-step*d1) <= old+1e-12 {
				break
			}
		}
		theta -= step * d0
		beta -= step * d1
		if math.Abs(step*d0)+math.Abs(step*d1) < 1e-10 {
			break
		}
	}
	// the Hessian at the optimum
	h00, h01, h11 = lcRidge, 0, lcRidge
	for i := range x {
		p := sigmoid(theta + beta*x[i])
		w := p * (1 - p)
		h00 += w
		h01 += w * x[i]
		h11 += w * x[i] * x[i]
	}
	if det := h00*h11 - h01*h01; det > 0 {
		varTheta = h11 / det
	}
	return theta, beta, varTheta
}

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// softplus is log(1 + e^z).
func softplus(z float64) float64 {
	if z > 30 {
		return z
	}
	return math.Log1p(math.Exp(z))
}
