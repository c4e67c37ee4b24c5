package bench

import (
	"fmt"
	"io"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/optim"
)

// StepProfile is the time split of a benchmark's timed steps
// (TrainConfig.Profile): per part of the work, its time per step, its share
// of the step, and for the products (GEMM and attention) the rate they
// reached and its fraction of the machine's peak: the in-cache rate of the
// micro-kernel (kernels.PeakGFLOPS) times the cores used, measured in the
// same run, in float32 and, where the CPU runs bfloat16 natively, bf16.
type StepProfile struct {
	Cores          int     `json:"cores"`
	PeakGFlopsF32  float64 `json:"peak_gflops_f32"`
	PeakGFlopsBF16 float64 `json:"peak_gflops_bf16,omitempty"`
	// StepS is the mean wall time of the timed steps.
	StepS float64       `json:"step_s"`
	Parts []ProfilePart `json:"parts"`
}

// ProfilePart is one part of StepProfile: "gemm", "attention",
// "elementwise", "optimizer" or "other" (the rest of the step's time).
type ProfilePart struct {
	Name     string  `json:"name"`
	SPerStep float64 `json:"s_per_step"`
	Share    float64 `json:"share"`
	// GFlops and PeakFraction are set for the products: the operations
	// kernels counts (2·m·n·k a product; attention's over its visible
	// pairs) over the part's time, and that against the peak of the
	// precision the part ran in.
	GFlops       float64 `json:"gflops,omitempty"`
	PeakFraction float64 `json:"peak_fraction,omitempty"`
	Peak         string  `json:"peak,omitempty"` // "f32" or "bf16"
}

// peakTime is how long each peak measurement runs.
const peakTime = 300 * time.Millisecond

// profile attaches a fresh profile to the step's pool and optimizer.
func (s *stepper) profile() *kernels.Profile {
	pr := new(kernels.Profile)
	s.e.Workspace.Pool.SetProfile(pr)
	if s.e.Optimizer == nil {
		s.e.Optimizer = optim.NewAdamW() // as Engine.Step would
	}
	s.e.Optimizer.Profile = pr
	return pr
}

// newStepProfile turns the counts of steps that took times (seconds) into a
// StepProfile, measuring the peak for workers threads.
func newStepProfile(pr *kernels.Profile, times []float64, prec kernels.Precision, workers int) *StepProfile {
	var wall float64
	for _, t := range times {
		wall += t
	}
	steps := float64(len(times))
	cores := max(1, min(workers, runtime.NumCPU()))
	sp := &StepProfile{Cores: cores, StepS: wall / steps,
		PeakGFlopsF32: kernels.PeakGFLOPS(kernels.F32, peakTime) * float64(cores)}
	native := prec == kernels.BF16 && kernels.NativeBF16()
	if native {
		sp.PeakGFlopsBF16 = kernels.PeakGFLOPS(kernels.BF16, peakTime) * float64(cores)
	}
	rest := wall
	for part := kernels.Part(0); part < kernels.NumParts; part++ {
		t := pr.Time(part).Seconds()
		rest -= t
		pp := ProfilePart{Name: part.String(), SPerStep: t / steps, Share: t / wall}
		if f := pr.Flops(part); f > 0 && t > 0 {
			pp.GFlops = f / t / 1e9
			pp.Peak, pp.PeakFraction = "f32", pp.GFlops/sp.PeakGFlopsF32
			if native {
				pp.Peak, pp.PeakFraction = "bf16", pp.GFlops/sp.PeakGFlopsBF16
			}
		}
		sp.Parts = append(sp.Parts, pp)
	}
	sp.Parts = append(sp.Parts, ProfilePart{Name: "other", SPerStep: rest / steps, Share: rest / wall})
	return sp
}

// WriteTable writes the profile as a text table.
func (sp *StepProfile) WriteTable(w io.Writer) error {
	peak := fmt.Sprintf("%.0f GFLOP/s float32", sp.PeakGFlopsF32)
	if sp.PeakGFlopsBF16 > 0 {
		peak += fmt.Sprintf(", %.0f bf16", sp.PeakGFlopsBF16)
	}
	if _, err := fmt.Fprintf(w, "time split of a %.3fs step; peak (in-cache micro-kernel × %d cores): %s\n", sp.StepS, sp.Cores, peak); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "part\ts/step\tshare\tGFLOP/s\tof peak\t")
	for _, p := range sp.Parts {
		rate, frac := "-", "-"
		if p.GFlops > 0 {
			rate, frac = fmt.Sprintf("%.1f", p.GFlops), fmt.Sprintf("%.0f%% (%s)", 100*p.PeakFraction, p.Peak)
		}
		fmt.Fprintf(tw, "%s\t%.4f\t%.1f%%\t%s\t%s\t\n", p.Name, p.SPerStep, 100*p.Share, rate, frac)
	}
	return tw.Flush()
}
