package optim

import (
	"fmt"
	"math"
	"strings"
)

// Learning-rate schedule names accepted by [Schedule], as in transformers'
// SchedulerType.
const (
	ScheduleConstant           = "constant"
	ScheduleConstantWithWarmup = "constant_with_warmup"
	ScheduleLinear             = "linear"
	ScheduleCosine             = "cosine"
)

// Schedules returns the accepted schedule names.
func Schedules() []string {
	return []string{ScheduleConstant, ScheduleConstantWithWarmup, ScheduleLinear, ScheduleCosine}
}

// Schedule returns the learning rate of every optimizer step as
// transformers' get_scheduler builds it: a LambdaLR with multiplier λ, so the
// rate used for optimizer step k (0-based) is baseLR·λ(k). LambdaLR is
// evaluated at the step index before it is incremented, so the first update
// of a warmup schedule uses λ(0) = 0. With W = warmupSteps and
// T = totalSteps (all divisions in float64):
//
//	constant              λ(k) = 1  (warmupSteps is ignored, as in get_scheduler)
//	constant_with_warmup  λ(k) = k/max(1, W) for k < W, else 1
//	linear                λ(k) = k/max(1, W) for k < W,
//	                      else max(0, (T − k)/max(1, T − W))
//	cosine                λ(k) = k/max(1, W) for k < W, else with
//	                      p = (k − W)/max(1, T − W):
//	                      max(0, ½·(1 + cos(π·2·0.5·p)))   (num_cycles 0.5)
//
// linear and cosine need totalSteps > 0. Negative steps are treated as 0.
// See [WarmupSteps] for deriving W from a warmup ratio.
func Schedule(kind string, baseLR float64, warmupSteps, totalSteps int) (func(step int) float64, error) {
	if !(baseLR >= 0) || math.IsInf(baseLR, 0) {
		return nil, fmt.Errorf("optim: schedule %q: learning rate must be non-negative and finite, got %v", kind, baseLR)
	}
	if warmupSteps < 0 || totalSteps < 0 {
		return nil, fmt.Errorf("optim: schedule %q: warmup steps (%d) and total steps (%d) must not be negative", kind, warmupSteps, totalSteps)
	}
	w, n := float64(warmupSteps), float64(totalSteps)
	warm := func(k float64) float64 { return k / math.Max(1, w) }
	var lambda func(k float64) float64
	switch kind {
	case ScheduleConstant:
		lambda = func(float64) float64 { return 1 }
	case ScheduleConstantWithWarmup:
		lambda = func(k float64) float64 {
			if k < w {
				return warm(k)
			}
			return 1
		}
	case ScheduleLinear, ScheduleCosine:
		if totalSteps == 0 {
			return nil, fmt.Errorf("optim: schedule %q needs the total number of training steps", kind)
		}
		const numCycles = 0.5
		lambda = func(k float64) float64 {
			if k < w {
				return warm(k)
			}
			if kind == ScheduleLinear {
				return math.Max(0, (n-k)/math.Max(1, n-w))
			}
			p := (k - w) / math.Max(1, n-w)
			return math.Max(0, 0.5*(1+math.Cos(math.Pi*numCycles*2*p)))
		}
	default:
		return nil, fmt.Errorf("optim: unknown learning-rate schedule %q (valid: %s)", kind, strings.Join(Schedules(), ", "))
	}
	return func(step int) float64 {
		return baseLR * lambda(float64(max(step, 0)))
	}, nil
}

// WarmupSteps returns the number of warmup steps as
// TrainingArguments.get_warmup_steps computes it: warmupSteps when it is
// positive, otherwise ⌈totalSteps·warmupRatio⌉ computed in float64 exactly
// as Python does, rounding included: 100 steps at ratio 0.07 give
// ⌈7.000000000000001⌉ = 8.
// warmupRatio must be in [0, 1].
func WarmupSteps(warmupSteps int, warmupRatio float64, totalSteps int) (int, error) {
	if warmupSteps < 0 || totalSteps < 0 {
		return 0, fmt.Errorf("optim: warmup steps (%d) and total steps (%d) must not be negative", warmupSteps, totalSteps)
	}
	if !(warmupRatio >= 0 && warmupRatio <= 1) {
		return 0, fmt.Errorf("optim: warmup ratio must be in [0, 1], got %v", warmupRatio)
	}
	if warmupSteps > 0 {
		return warmupSteps, nil
	}
	return int(math.Ceil(float64(totalSteps) * warmupRatio)), nil
}
