// Package pref implements the preference-optimization losses that relupo
// trains with: RePO (ReLU-based Preference Optimization, arXiv 2503.07426),
// RePO++, SimPO, DPO, IPO, hinge, and the DPO-based RePO variants of the
// paper's Table 7.
//
// Every loss depends on the model only through per-sequence log-probability
// sums S and label counts n of the chosen (y_w) and rejected (y_l) response of
// each pair, plus the frozen reference model's sums S_ref for the
// reference-based losses. [Compute] returns the batch loss (the mean of the
// per-pair losses, zero-loss pairs included in the denominator), the per-pair
// losses, the derivative of the batch loss with respect to every sequence's
// log-prob sum (what the model's backward pass needs), and the metrics that
// TRL-style trainers log.
//
// Notation, following the project's method notes (section B):
//
//	A(y) = S(y)/n(y)                      average log-prob
//	M    = A(y_w) − A(y_l)                implicit margin of SimPO and RePO (reference-free)
//	h    = (S_w − S_ref,w) − (S_l − S_ref,l)   DPO margin (summed log-probs)
//	h̄    = the same as h on average log-probs (IPO, as in TRL)
//
// Per-pair losses (ε is the label smoothing, softplus(x) = log(1+eˣ)):
//
//	repo        max(0, γ − M)
//	repo++      softplus(β·max(0, γ − M))            = −log σ(−ReLU(−β(M − γ)))
//	simpo       (1−ε)·softplus(−βz) + ε·softplus(βz),  z = M − γ
//	simpo-hinge max(0, 1 − β(M − γ))                 (SimPO's own loss_type "hinge")
//	dpo         (1−ε)·softplus(−βh) + ε·softplus(βh)
//	ipo         (h̄ − 1/(2β))²
//	hinge       max(0, 1 − βh)
//	dpo+repo    max(0, γ − h)                        ("DPO w. RePO": no β in the loss)
//	dpo+repo++  softplus(max(0, γ − βh))              ("DPO w. RePO++")
//
// γ is always a margin on the quantity the loss thresholds: for repo, repo++
// and simpo it is measured in average per-token log-prob, which is the
// SimPO/RePO code's gamma_beta_ratio (not the SimPO paper's or TRL's raw γ,
// which equals β times it). All arithmetic is float64 with numerically stable
// softplus and sigmoid, so large |βz| neither overflows nor loses the gradient.
//
// RePO++ keeps its log 2 floor: a filtered pair (M ≥ γ) contributes
// softplus(0) = log 2 ≈ 0.693, not 0. Whether the paper's authors subtracted
// that constant for display is unverified (their code does not include
// RePO++). relupo does not subtract it, so the loss is exactly the paper's
// −log σ(·) form and an active pair's loss equals its SimPO loss; the
// constant has no effect on the gradient.
//
// ReLU kinks follow PyTorch: the derivative of max(0, u) at u = 0 is 0, so a
// pair sitting exactly on the threshold (M = γ for RePO) is filtered and
// receives no gradient.
package pref

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Loss type names accepted in [Config.LossType].
const (
	LossRePO            = "repo"
	LossRePOPlusPlus    = "repo++"
	LossSimPO           = "simpo"
	LossSimPOHinge      = "simpo-hinge"
	LossDPO             = "dpo"
	LossIPO             = "ipo"
	LossHinge           = "hinge"
	LossDPORePO         = "dpo+repo"
	LossDPORePOPlusPlus = "dpo+repo++"

	// LossSigmoid is TRL's name for DPO (DPOConfig's loss_type "sigmoid");
	// it is accepted and means [LossDPO].
	LossSigmoid = "sigmoid"
)

// Metric names set in [Result.Metrics]. The rewards/* and logps/* names are
// TRL's; the margin/* and repo/* names are relupo's RePO diagnostics.
const (
	MetricRewardsChosen     = "rewards/chosen"
	MetricRewardsRejected   = "rewards/rejected"
	MetricRewardsMargins    = "rewards/margins"
	MetricRewardsAccuracies = "rewards/accuracies"
	MetricLogpsChosen       = "logps/chosen"
	MetricLogpsRejected     = "logps/rejected"
	MetricActiveFraction    = "repo/active_fraction"
	MetricMeanWeight        = "repo++/mean_weight"
	MetricMarginMean        = "margin/mean"
	MetricMarginP10         = "margin/p10"
	MetricMarginP50         = "margin/p50"
	MetricMarginP90         = "margin/p90"
	MetricSFTLoss           = "sft_loss"
)

// LossTypes returns the accepted loss type names, RePO first.
func LossTypes() []string {
	return []string{LossRePO, LossRePOPlusPlus, LossSimPO, LossSimPOHinge, LossDPO, LossIPO, LossHinge, LossDPORePO, LossDPORePOPlusPlus}
}

// Config selects a loss and its hyperparameters.
type Config struct {
	// LossType is one of [LossTypes]; the empty string means "repo".
	LossType string

	// Beta is β, the inverse temperature. It must be positive. For "repo"
	// and "dpo+repo" it does not enter the loss and only scales the logged
	// rewards (as the official RePO trainer does with its beta).
	Beta float64

	// Gamma is γ, the margin threshold.
	//   - repo, repo++, simpo, simpo-hinge: a margin on M in average per-token log-prob
	//     (the SimPO/RePO code's gamma_beta_ratio; SimPO's loss is
	//     −log σ(β(M − γ)), so TRL's simpo_gamma equals β·Gamma).
	//   - dpo+repo: a margin on h (summed log-probs); the loss is ReLU(γ − h).
	//   - dpo+repo++: a margin on β·h; the loss is softplus(ReLU(γ − βh)), so
	//     the threshold on h is γ/β.
	//   - dpo, ipo, hinge: ignored.
	Gamma float64

	// LabelSmoothing is ε (conservative DPO / SimPO label smoothing), in
	// [0, 0.5]. Only "simpo" and "dpo" accept a non-zero value.
	LabelSmoothing float64

	// SFTWeight w adds the SimPO/RePO code's sft_weight term to any loss:
	// w times the token-mean cross-entropy of the chosen responses over the
	// batch, −ΣS_w / Σn_w (all chosen labels of the batch pooled, as the
	// trainers' CrossEntropyLoss does), logged as sft_loss. It needs the
	// token counts. 0 disables it.
	SFTWeight float64
}

// DefaultBeta is each loss's conventional β: 0.1 for the DPO family (dpo,
// ipo, hinge, dpo+repo, dpo+repo++), as TRL's DPOConfig; 2 for simpo (the
// SimPO paper and recipes), repo and repo++ (where for repo it only scales
// the logged rewards, as the official RePO trainer's default does).
func DefaultBeta(lossType string) float64 {
	if (Config{LossType: lossType}).NeedsReference() {
		return 0.1
	}
	return 2
}

// DefaultConfig returns RePO with γ = 0.5 (the paper's recommended default)
// and β = 2 (the SimPO/RePO config-class default; for RePO it only scales the
// logged rewards).
func DefaultConfig() Config {
	return Config{LossType: LossRePO, Beta: 2, Gamma: 0.5}
}

func (c Config) lossType() string {
	switch c.LossType {
	case "":
		return LossRePO
	case LossSigmoid:
		return LossDPO
	}
	return c.LossType
}

// Type returns the loss's canonical name: "repo" for the empty LossType,
// "dpo" for TRL's "sigmoid".
func (c Config) Type() string { return c.lossType() }

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	lt := c.lossType()
	known := false
	for _, k := range LossTypes() {
		if lt == k {
			known = true
			break
		}
	}
	if !known {
		return fmt.Errorf("pref: unknown loss type %q (valid: %s)", c.LossType, strings.Join(LossTypes(), ", "))
	}
	if !(c.Beta > 0) || math.IsInf(c.Beta, 0) {
		return fmt.Errorf("pref: %s: beta must be positive and finite, got %v", lt, c.Beta)
	}
	if math.IsNaN(c.Gamma) || math.IsInf(c.Gamma, 0) {
		return fmt.Errorf("pref: %s: gamma must be finite, got %v", lt, c.Gamma)
	}
	if !(c.LabelSmoothing >= 0 && c.LabelSmoothing <= 0.5) {
		return fmt.Errorf("pref: %s: label smoothing must be in [0, 0.5], got %v", lt, c.LabelSmoothing)
	}
	if c.LabelSmoothing != 0 && lt != LossSimPO && lt != LossDPO {
		return fmt.Errorf("pref: %s: label smoothing is supported only by %s and %s", lt, LossSimPO, LossDPO)
	}
	if !(c.SFTWeight >= 0) || math.IsInf(c.SFTWeight, 0) {
		return fmt.Errorf("pref: sft_weight must be ≥ 0 and finite, got %v", c.SFTWeight)
	}
	return nil
}

// NeedsReference reports whether the loss needs the reference model's
// log-prob sums (Inputs.RefChosenLogps and Inputs.RefRejectedLogps).
func (c Config) NeedsReference() bool {
	switch c.lossType() {
	case LossDPO, LossIPO, LossHinge, LossDPORePO, LossDPORePOPlusPlus:
		return true
	}
	return false
}

// NeedsTokenCounts reports whether the loss length-normalizes log-probs and
// therefore needs Inputs.ChosenTokens and Inputs.RejectedTokens.
func (c Config) NeedsTokenCounts() bool {
	if c.SFTWeight != 0 {
		return true
	}
	switch c.lossType() {
	case LossRePO, LossRePOPlusPlus, LossSimPO, LossSimPOHinge, LossIPO:
		return true
	}
	return false
}

// Inputs holds one batch of B preference pairs. Index i of every slice
// describes pair i.
type Inputs struct {
	// ChosenLogps and RejectedLogps are the policy's summed log-probs S over
	// each response's label positions.
	ChosenLogps, RejectedLogps []float64
	// ChosenTokens and RejectedTokens are the label counts n. They must be
	// positive when the loss length-normalizes (see
	// [Config.NeedsTokenCounts]); they may be nil otherwise.
	ChosenTokens, RejectedTokens []float64
	// RefChosenLogps and RefRejectedLogps are the reference model's summed
	// log-probs; required when [Config.NeedsReference], otherwise may be nil.
	RefChosenLogps, RefRejectedLogps []float64
}

// Result is the outcome of [Compute] on one batch.
type Result struct {
	// Loss is the mean of PerPair over all B pairs (pairs with zero loss
	// count in the denominator, as in every reference trainer), plus the
	// sft_weight term when Config.SFTWeight is set.
	Loss float64
	// PerPair holds the loss of each pair.
	PerPair []float64
	// DChosen and DRejected hold dLoss/dS for each sequence's log-prob SUM.
	// They include the 1/B of the batch mean and, for the length-normalized
	// losses, the 1/n of the average.
	DChosen, DRejected []float64
	// Metrics holds the values to log, keyed by the Metric* names:
	//
	//   - rewards/chosen, rewards/rejected: batch means of the implicit
	//     rewards. For repo, repo++, simpo and simpo-hinge they are β·A(y) (average
	//     log-probs, no reference), as the official SimPO/RePO trainer logs
	//     them; for RePO β enters nowhere else. (The project's PyTorch
	//     reference, losses_ref.py, logs RePO rewards β-free; Beta = 1
	//     reproduces those values.) For dpo, hinge, dpo+repo and dpo+repo++ they are
	//     β·(S − S_ref) on sums (TRL DPOTrainer); for ipo they are
	//     β·(A − A_ref) on averages (TRL with loss_type "ipo").
	//   - rewards/margins: mean of chosen minus rejected reward.
	//   - rewards/accuracies: fraction of pairs whose chosen reward is
	//     strictly greater than the rejected one (ties count as wrong).
	//   - logps/chosen, logps/rejected: mean policy log-probs, averages for
	//     repo, repo++, simpo, simpo-hinge and ipo, sums for the other DPO-family losses.
	//   - for repo, repo++, dpo+repo and dpo+repo++ only:
	//     repo/active_fraction, the fraction of pairs that receive gradient
	//     (the ReLU argument is strictly positive); margin/mean, margin/p10,
	//     margin/p50 and margin/p90, the mean and quantiles of the thresholded
	//     margin (M for repo and repo++, h for the DPO-based variants), with
	//     numpy's default "linear" quantile interpolation (see [Quantile]).
	//   - with Config.SFTWeight: sft_loss, the token-mean cross-entropy of
	//     the chosen responses (unweighted).
	//   - for repo++ and dpo+repo++ only: repo++/mean_weight, the batch mean
	//     of the per-pair gradient weight σ(·)·1[active] (σ(β(γ−M)) for
	//     repo++, σ(γ−βh) for dpo+repo++).
	Metrics map[string]float64
}

// Compute evaluates the configured loss, its derivatives and its metrics on
// one batch. It returns an error when the configuration is invalid, the
// slices have different lengths, the batch is empty, a value is not finite,
// a needed reference is missing, or a needed token count is not positive
// (a response with zero label tokens would make the average log-prob 0/0;
// see SimPO issue #35).
func Compute(c Config, in Inputs) (Result, error) {
	if err := c.Validate(); err != nil {
		return Result{}, err
	}
	lt := c.lossType()
	b, err := checkInputs(c, in)
	if err != nil {
		return Result{}, fmt.Errorf("pref: %s: %w", lt, err)
	}

	res := Result{
		PerPair:   make([]float64, b),
		DChosen:   make([]float64, b),
		DRejected: make([]float64, b),
		Metrics:   make(map[string]float64),
	}
	beta, gamma, eps := c.Beta, c.Gamma, c.LabelSmoothing
	invB := 1 / float64(b)

	// Per-pair quantities: x is the scalar the loss is a function of,
	// (dxW, dxL) its derivatives with respect to S_w and S_l,
	// (rw, rl) the logged rewards, (lw, ll) the logged log-probs.
	margins := make([]float64, b) // thresholded margin for the RePO family
	var active, weightSum float64
	var sumRW, sumRL, sumMargin, sumAcc, sumLW, sumLL float64

	for i := 0; i < b; i++ {
		sw, sl := in.ChosenLogps[i], in.RejectedLogps[i]
		var x, dxW, dxL, rw, rl, lw, ll float64
		switch lt {
		case LossRePO, LossRePOPlusPlus, LossSimPO, LossSimPOHinge:
			nw, nl := in.ChosenTokens[i], in.RejectedTokens[i]
			aw, al := sw/nw, sl/nl
			x, dxW, dxL = aw-al, 1/nw, -1/nl
			rw, rl, lw, ll = beta*aw, beta*al, aw, al
		case LossIPO:
			nw, nl := in.ChosenTokens[i], in.RejectedTokens[i]
			aw, al := sw/nw, sl/nl
			raw, ral := in.RefChosenLogps[i]/nw, in.RefRejectedLogps[i]/nl
			x, dxW, dxL = (aw-al)-(raw-ral), 1/nw, -1/nl
			rw, rl, lw, ll = beta*(aw-raw), beta*(al-ral), aw, al
		default: // dpo, hinge, dpo+repo, dpo+repo++: summed log-probs
			dw, dl := sw-in.RefChosenLogps[i], sl-in.RefRejectedLogps[i]
			x, dxW, dxL = dw-dl, 1, -1
			rw, rl, lw, ll = beta*dw, beta*dl, sw, sl
		}

		var loss, dx float64 // per-pair loss and dloss/dx
		switch lt {
		case LossRePO, LossDPORePO:
			u := gamma - x
			if u > 0 {
				loss, dx = u, -1
				active++
			}
			margins[i] = x
		case LossRePOPlusPlus:
			u := gamma - x
			a := math.Max(u, 0)
			loss = softplus(beta * a)
			if u > 0 {
				w := sigmoid(beta * a)
				dx = -beta * w
				weightSum += w
				active++
			}
			margins[i] = x
		case LossDPORePOPlusPlus:
			u := gamma - beta*x
			a := math.Max(u, 0)
			loss = softplus(a)
			if u > 0 {
				w := sigmoid(a)
				dx = -beta * w
				weightSum += w
				active++
			}
			margins[i] = x
		case LossSimPO, LossDPO:
			t := x
			if lt == LossSimPO {
				t = x - gamma
			}
			t *= beta
			loss = (1-eps)*softplus(-t) + eps*softplus(t)
			dx = beta * (-(1-eps)*sigmoid(-t) + eps*sigmoid(t))
		case LossSimPOHinge:
			if u := 1 - beta*(x-gamma); u > 0 {
				loss, dx = u, -beta
			}
		case LossIPO:
			d := x - 1/(2*beta)
			loss, dx = d*d, 2*d
		case LossHinge:
			u := 1 - beta*x
			if u > 0 {
				loss, dx = u, -beta
			}
		}

		res.PerPair[i] = loss
		res.Loss += loss
		res.DChosen[i] = dx * dxW * invB
		res.DRejected[i] = dx * dxL * invB

		sumRW += rw
		sumRL += rl
		sumMargin += rw - rl
		if rw > rl {
			sumAcc++
		}
		sumLW += lw
		sumLL += ll
	}
	res.Loss *= invB

	m := res.Metrics
	if c.SFTWeight != 0 {
		addSFT(&res, c.SFTWeight, in)
	}
	m[MetricRewardsChosen] = sumRW * invB
	m[MetricRewardsRejected] = sumRL * invB
	m[MetricRewardsMargins] = sumMargin * invB
	m[MetricRewardsAccuracies] = sumAcc * invB
	m[MetricLogpsChosen] = sumLW * invB
	m[MetricLogpsRejected] = sumLL * invB
	switch lt {
	case LossRePO, LossRePOPlusPlus, LossDPORePO, LossDPORePOPlusPlus:
		m[MetricActiveFraction] = active * invB
		var s float64
		for _, v := range margins {
			s += v
		}
		m[MetricMarginMean] = s * invB
		sorted := append([]float64(nil), margins...)
		sort.Float64s(sorted)
		m[MetricMarginP10] = quantileSorted(sorted, 0.1)
		m[MetricMarginP50] = quantileSorted(sorted, 0.5)
		m[MetricMarginP90] = quantileSorted(sorted, 0.9)
		if lt == LossRePOPlusPlus || lt == LossDPORePOPlusPlus {
			m[MetricMeanWeight] = weightSum * invB
		}
	}
	return res, nil
}

// addSFT adds the sft_weight term w·(−ΣS_w/Σn_w) to res: the loss, its
// derivative −w/Σn_w with respect to every chosen sum, and the sft_loss
// metric.
func addSFT(res *Result, w float64, in Inputs) {
	var s, n float64
	for i := range in.ChosenLogps {
		s += in.ChosenLogps[i]
		n += in.ChosenTokens[i]
	}
	sft := -s / n
	res.Loss += w * sft
	for i := range res.DChosen {
		res.DChosen[i] -= w / n
	}
	res.Metrics[MetricSFTLoss] = sft
}

// checkInputs validates the batch against the configuration and returns the
// number of pairs.
func checkInputs(c Config, in Inputs) (int, error) {
	b := len(in.ChosenLogps)
	if b == 0 {
		return 0, errors.New("empty batch")
	}
	type field struct {
		name   string
		v      []float64
		needed bool
		count  bool
	}
	fields := []field{
		{"ChosenLogps", in.ChosenLogps, true, false},
		{"RejectedLogps", in.RejectedLogps, true, false},
		{"ChosenTokens", in.ChosenTokens, c.NeedsTokenCounts(), true},
		{"RejectedTokens", in.RejectedTokens, c.NeedsTokenCounts(), true},
		{"RefChosenLogps", in.RefChosenLogps, c.NeedsReference(), false},
		{"RefRejectedLogps", in.RefRejectedLogps, c.NeedsReference(), false},
	}
	for _, f := range fields {
		if f.v == nil && !f.needed {
			continue
		}
		if f.v == nil {
			if !f.count {
				return 0, fmt.Errorf("%s is required (the loss needs the reference model's log-probs)", f.name)
			}
			return 0, fmt.Errorf("%s is required (the loss length-normalizes log-probs)", f.name)
		}
		if len(f.v) != b {
			return 0, fmt.Errorf("%s has %d entries, ChosenLogps has %d", f.name, len(f.v), b)
		}
		if !f.needed {
			continue
		}
		for i, v := range f.v {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return 0, fmt.Errorf("%s[%d] is not finite (%v)", f.name, i, v)
			}
			if f.count && !(v > 0) {
				return 0, fmt.Errorf("%s[%d] = %v: every response needs at least one label token "+
					"(a zero count makes the average log-prob 0/0; check max_prompt_length < max_length)", f.name, i, v)
			}
		}
	}
	return b, nil
}

// Quantile returns the q-quantile (0 ≤ q ≤ 1) of xs with numpy's default
// "linear" interpolation: with the values sorted ascending as x[0..n-1], the
// position is p = q·(n−1), and the result interpolates x[⌊p⌋] and x[⌈p⌉]
// linearly (evaluated as numpy does, from the nearer end). It returns NaN
// for an empty slice or q outside [0, 1]. xs is not modified.
func Quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 || !(q >= 0 && q <= 1) {
		return math.NaN()
	}
	sorted := append([]float64(nil), xs...)
	sort.Float64s(sorted)
	return quantileSorted(sorted, q)
}

func quantileSorted(x []float64, q float64) float64 {
	n := len(x)
	pos := q * float64(n-1)
	lo := math.Floor(pos)
	i := int(lo)
	if i >= n-1 {
		return x[n-1]
	}
	t := pos - lo
	a, b := x[i], x[i+1]
	d := b - a
	if t >= 0.5 {
		return b - d*(1-t)
	}
	return a + d*t
}

// softplus returns log(1 + eˣ) without overflow: max(x, 0) + log1p(e^{−|x|}).
// It equals −log σ(−x).
func softplus(x float64) float64 {
	return math.Max(x, 0) + math.Log1p(math.Exp(-math.Abs(x)))
}

// sigmoid returns 1/(1 + e^{−x}) without overflow.
func sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}
