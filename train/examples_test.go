package train

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func seq(n int, base int32) []int32 {
	s := make([]int32, n)
	for i := range s {
		s[i] = base + int32(i)
	}
	return s
}

// Truncation at and around the limits, following the official rule: with
// L = 10 and P = 6, a pair is cut only when prompt + longer response > L;
// then the prompt keeps P tokens (its end, or its start with keep_start),
// and if it is still too long both responses keep their first L − P = 4.
func TestTruncate(t *testing.T) {
	const L, P = 10, 6
	for _, tc := range []struct {
		prompt, chosen, rejected int
		mode                     string
		wantP, wantC, wantR      int
		promptFromEnd            bool
	}{
		{4, 6, 3, "keep_end", 4, 6, 3, true},    // exactly L: untouched
		{5, 6, 3, "keep_end", 5, 4, 3, true},    // L+1, prompt ≤ P: responses cut to L−P
		{8, 2, 1, "keep_end", 8, 2, 1, true},    // prompt > P but fits: untouched
		{9, 2, 1, "keep_end", 6, 2, 1, true},    // L+1 with a long prompt: prompt cut to P, now fits
		{9, 2, 1, "keep_start", 6, 2, 1, false}, // the same, keeping the start
		{12, 7, 5, "keep_end", 6, 4, 4, true},   // both cuts
		{12, 3, 5, "keep_end", 6, 3, 4, true},   // both cuts, the shorter response kept whole
		{6, 4, 4, "keep_end", 6, 4, 4, true},    // exactly L after nothing
		{7, 4, 0, "keep_end", 6, 4, 0, true},    // L+1 via the chosen side only
	} {
		t.Run(fmt.Sprintf("%d+%d/%d %s", tc.prompt, tc.chosen, tc.rejected, tc.mode), func(t *testing.T) {
			e := Example{Prompt: seq(tc.prompt, 100), Chosen: seq(tc.chosen, 200), Rejected: seq(tc.rejected, 300)}
			e.Truncate(L, P, tc.mode)
			if len(e.Prompt) != tc.wantP || len(e.Chosen) != tc.wantC || len(e.Rejected) != tc.wantR {
				t.Fatalf("lengths %d/%d/%d, want %d/%d/%d", len(e.Prompt), len(e.Chosen), len(e.Rejected), tc.wantP, tc.wantC, tc.wantR)
			}
			full := seq(tc.prompt, 100)
			want := full[:tc.wantP]
			if tc.promptFromEnd {
				want = full[len(full)-tc.wantP:]
			}
			if !slices.Equal(e.Prompt, want) || !slices.Equal(e.Chosen, seq(tc.chosen, 200)[:tc.wantC]) {
				t.Fatalf("kept the wrong tokens: prompt %v chosen %v", e.Prompt, e.Chosen)
			}
		})
	}
	t.Run("disabled", func(t *testing.T) {
		e := Example{Prompt: seq(50, 0), Chosen: seq(50, 0), Rejected: seq(50, 0)}
		e.Truncate(0, 0, "keep_end")
		if len(e.Prompt)+len(e.Chosen)+len(e.Rejected) != 150 {
			t.Fatal("max_length 0 must not truncate")
		}
	})
}

// A response with nothing left to score is refused with the record named.
func TestCheckEmptyResponse(t *testing.T) {
	for _, e := range []Example{
		{Prompt: seq(3, 1), Chosen: nil, Rejected: seq(2, 1), Source: "f.jsonl:7"},
		{Prompt: nil, Chosen: seq(1, 1), Rejected: seq(2, 1), Source: "f.jsonl:7"}, // the first token of a sequence is never scored
	} {
		err := e.Check()
		if err == nil || !strings.Contains(err.Error(), "f.jsonl:7") || !strings.Contains(err.Error(), "no tokens to score") {
			t.Errorf("got %v", err)
		}
	}
	ok := Example{Prompt: nil, Chosen: seq(2, 1), Rejected: seq(2, 1)}
	if err := ok.Check(); err != nil {
		t.Error(err)
	}
}
