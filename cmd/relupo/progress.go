package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/relupo/relupo/train"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// newProgress shows training progress on w: a live bar when w is a
// terminal, plain lines at every logged step otherwise.
func newProgress(w io.Writer) train.Progress {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return &barProgress{w: w}
	}
	return &lineProgress{w: w}
}

// summarize formats the headline metrics of a logged row.
func summarize(r train.Row) string {
	var parts []string
	for _, k := range []string{"loss", "rewards/accuracies", "repo/active_fraction", "rewards/margins", "grad_norm", "learning_rate", "tokens_per_s",
		"eval_loss", "eval_rewards/accuracies", "eval_repo/active_fraction"} {
		if v, ok := r[k]; ok {
			name := strings.TrimPrefix(k, "rewards/")
			parts = append(parts, fmt.Sprintf("%s %.4g", name, v))
		}
	}
	return strings.Join(parts, " | ")
}

type barProgress struct {
	w   io.Writer
	bar *progressbar.ProgressBar
}

func (p *barProgress) Start(total, done int) {
	p.bar = progressbar.NewOptions(total,
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetDescription("training"),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionSetWidth(24),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	p.bar.Set(done)
}

func (p *barProgress) Step(step int, r train.Row) {
	if r != nil {
		p.bar.Describe(summarize(r))
	}
	p.bar.Set(step)
}

func (p *barProgress) Log(r train.Row) {
	p.bar.Clear()
	fmt.Fprintf(p.w, "eval: %s\n", summarize(r))
}

func (p *barProgress) Finish() { p.bar.Finish() }

type lineProgress struct {
	w     io.Writer
	total int
	start time.Time
	done0 int
}

func (p *lineProgress) Start(total, done int) {
	p.total, p.start, p.done0 = total, time.Now(), done
	fmt.Fprintf(p.w, "training: %d steps (starting at %d)\n", total, done)
}

func (p *lineProgress) Step(step int, r train.Row) {
	if r == nil {
		return
	}
	eta := ""
	if n := step - p.done0; n > 0 {
		left := time.Duration(float64(time.Since(p.start)) / float64(n) * float64(p.total-step))
		eta = " | eta " + left.Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "step %d/%d | %s%s\n", step, p.total, summarize(r), eta)
}

func (p *lineProgress) Log(r train.Row) {
	fmt.Fprintf(p.w, "eval at step %v | %s\n", r["step"], summarize(r))
}
func (p *lineProgress) Finish() {}
