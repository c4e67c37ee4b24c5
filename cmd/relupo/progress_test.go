package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/relupo/relupo/train"
)

// The live progress line fits the terminal: every line progressbar draws
// (between carriage returns) is narrower than the terminal, and it still
// shows the loss.
func TestProgressFitsTerminal(t *testing.T) {
	row := train.Row{"loss": 0.693147, "rewards/accuracies": 0.5, "repo/active_fraction": 0.875, "rewards/margins": 0.0123456,
		"grad_norm": 12.3456, "learning_rate": 1.23456e-06, "tokens_per_s": 12345.6}
	for _, tc := range []struct{ width, total int }{{80, 100}, {120, 100}, {80, 123456}, {200, 5000}, {40, 10}} {
		var b bytes.Buffer
		p := &barProgress{w: &b, width: tc.width}
		p.Start(tc.total, 0)
		for step := 1; step <= 3; step++ {
			p.Step(step, row)
		}
		time.Sleep(150 * time.Millisecond) // past the bar's throttle, so that it draws
		p.Step(tc.total/2+1, row)
		for _, line := range strings.FieldsFunc(b.String(), func(r rune) bool { return r == '\r' || r == '\n' }) {
			if n := utf8.RuneCountInString(line); n >= tc.width {
				t.Errorf("width %d, %d steps: line of %d columns: %q", tc.width, tc.total, n, line)
			}
		}
		if tc.width >= 80 && !strings.Contains(b.String(), "loss 0.6931") {
			t.Errorf("width %d: the loss is not shown: %q", tc.width, b.String())
		}
	}
}

// fitSummary keeps the most important metrics that fit, whole.
func TestFitSummary(t *testing.T) {
	row := train.Row{"loss": 0.5, "rewards/accuracies": 0.75, "grad_norm": 2}
	for _, tc := range []struct {
		max  int
		want string
	}{
		{-1, "loss 0.5 | accuracies 0.75 | grad_norm 2"},
		{30, "loss 0.5 | accuracies 0.75"},
		{8, "loss 0.5"},
		{5, ""},
	} {
		if got := fitSummary(row, tc.max); got != tc.want {
			t.Errorf("fitSummary(%d) = %q, want %q", tc.max, got, tc.want)
		}
	}
}
