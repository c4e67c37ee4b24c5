package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/relupo/relupo/train"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// newProgress shows training progress on w: a live line fitted to the
// terminal's width when w is a terminal and live is true, plain lines at
// every logged step otherwise.
func newProgress(w io.Writer, live bool) train.Progress {
	if f, ok := w.(*os.File); ok && live && term.IsTerminal(int(f.Fd())) {
		width, _, err := term.GetSize(int(f.Fd()))
		if err != nil || width <= 0 {
			width = 80
		}
		return &barProgress{w: w, width: width}
	}
	return &lineProgress{w: w}
}

// summaryKeys are the metrics a progress line shows, most important first.
var summaryKeys = []string{"loss", "rewards/accuracies", "repo/active_fraction", "rewards/margins", "grad_norm", "learning_rate", "tokens_per_s",
	"eval_loss", "eval_rewards/accuracies", "eval_repo/active_fraction"}

// summarize formats the headline metrics of a logged row.
func summarize(r train.Row) string { return fitSummary(r, -1) }

// fitSummary is summarize cut to at most max runes (no limit when max < 0):
// it keeps the most important metrics that fit, whole.
func fitSummary(r train.Row, max int) string {
	var out string
	for _, k := range summaryKeys {
		v, ok := r[k]
		if !ok {
			continue
		}
		part := fmt.Sprintf("%s %.4g", strings.TrimPrefix(k, "rewards/"), v)
		if out != "" {
			part = " | " + part
		}
		if max >= 0 && utf8.RuneCountInString(out+part) > max {
			break
		}
		out += part
	}
	return out
}

// barProgress is the live progress line of a terminal width columns wide.
type barProgress struct {
	w     io.Writer
	width int
	total int
	bar   *progressbar.ProgressBar
}

// barWidth is the width of the bar itself: narrower on narrow terminals,
// so that the metrics keep some room.
func (p *barProgress) barWidth() int {
	if p.width >= 120 {
		return 24
	}
	return 10
}

// descWidth is the room the line leaves for the metrics: the terminal's
// width less what progressbar writes around them, "  48% |<bar>| (6/10)
// [1h2m3s:10h20m30s]", and one column so that the cursor never wraps.
func (p *barProgress) descWidth() int {
	digits := len(strconv.Itoa(p.total))
	fixed := len("  100% |") + p.barWidth() + len("| (") + 2*digits + len("/) [") + len("10h20m30s:10h20m30s]")
	return max(p.width-fixed-1, 0)
}

func (p *barProgress) Start(total, done int) {
	p.total = total
	p.bar = progressbar.NewOptions(total,
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetDescription(truncRunes("training", p.descWidth())),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionSetWidth(p.barWidth()),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	p.bar.Set(done)
}

// truncRunes cuts s to at most n runes.
func truncRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

func (p *barProgress) Step(step int, r train.Row) {
	if r != nil {
		p.bar.Describe(fitSummary(r, p.descWidth()))
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
