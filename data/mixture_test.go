package data

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseMixture(t *testing.T) {
	tests := []struct {
		spec string
		want []Source
		err  string
	}{
		{"a.jsonl", []Source{{"a.jsonl", 1}}, ""},
		{"a.jsonl:0.5,b.parquet", []Source{{"a.jsonl", 0.5}, {"b.parquet", 1}}, ""},
		{" a.jsonl : 0.25 , b.json:1 ", []Source{{"a.jsonl", 0.25}, {"b.json", 1}}, ""},
		{"a.jsonl:0", nil, `data: mixture entry "a.jsonl:0": fraction 0 is not in (0, 1]`},
		{"dir:with:colons/a.jsonl:1e-1", []Source{{"dir:with:colons/a.jsonl", 0.1}}, ""},
		{"C:/data/a.jsonl", []Source{{"C:/data/a.jsonl", 1}}, ""},
		{"a.jsonl:", []Source{{"a.jsonl:", 1}}, ""}, // no number after the colon: part of the name
		{"", nil, "data: empty dataset mixture"},
		{"a.jsonl,,b.jsonl", nil, `data: mixture "a.jsonl,,b.jsonl": empty entry`},
		{"a.jsonl:-0.5", nil, `data: mixture entry "a.jsonl:-0.5": fraction -0.5 is not in (0, 1]`},
		{"a.jsonl:1.5", nil, `data: mixture entry "a.jsonl:1.5": fraction 1.5 is not in (0, 1]`},
		{"a.jsonl:NaN", nil, `data: mixture entry "a.jsonl:NaN": fraction NaN is not in (0, 1]`},
		{":0.5", nil, `data: mixture entry ":0.5": no file`},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := ParseMixture(tt.spec)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("got %v, %v; want error %q", got, err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
			// String round-trips.
			var parts []string
			for _, s := range got {
				parts = append(parts, s.String())
			}
			again, err := ParseMixture(strings.Join(parts, ","))
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("round trip: %v, %v", again, err)
			}
		})
	}
}

// writeStandard writes n standard records; the ones listed in empty have an
// empty chosen response (skipped records).
func writeStandard(t *testing.T, path string, n int, empty ...int) {
	t.Helper()
	var b strings.Builder
	for i := range n {
		chosen := fmt.Sprintf("c%d", i)
		for _, e := range empty {
			if e == i {
				chosen = ""
			}
		}
		fmt.Fprintf(&b, `{"prompt":"p%d","chosen":%q,"rejected":"r%d"}`+"\n", i, chosen, i)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func prompts(pairs []Pair) []string {
	var out []string
	for _, p := range pairs {
		out = append(out, p.Prompt[0].Content)
	}
	return out
}

func TestLoadAllFractions(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.jsonl")
	b := filepath.Join(dir, "b.jsonl")
	writeStandard(t, a, 7, 1, 5) // records 1 and 5 are skipped
	writeStandard(t, b, 3)
	tests := []struct {
		sources []Source
		want    []string
		skipped int
	}{
		// floor(0.5·7) = 3 records: 0, 1 (skipped), 2. The count includes
		// skipped records, as the mixer counts rows before any filtering.
		{[]Source{{a, 0.5}}, []string{"p0", "p2"}, 1},
		{[]Source{{a, 1}}, []string{"p0", "p2", "p3", "p4", "p6"}, 2},
		{[]Source{{a, 0.99}}, []string{"p0", "p2", "p3", "p4"}, 2},    // floor(6.93) = 6
		{[]Source{{Path: b}}, []string{"p0", "p1", "p2"}, 0},          // zero Fraction: whole file
		{[]Source{{b, 0.7}, {a, 0.3}}, []string{"p0", "p1", "p0"}, 1}, // floor(2.1) = 2, floor(2.1) = 2
		{[]Source{{b, 1}, {b, 1}}, []string{"p0", "p1", "p2", "p0", "p1", "p2"}, 0},
		{nil, nil, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.sources), func(t *testing.T) {
			skipped := 0
			got, err := LoadAll(context.Background(), tt.sources, Options{OnSkip: func(error) { skipped++ }})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(prompts(got), tt.want) || skipped != tt.skipped {
				t.Fatalf("got %v (%d skipped), want %v (%d skipped)", prompts(got), skipped, tt.want, tt.skipped)
			}
		})
	}

	t.Run("errors", func(t *testing.T) {
		if _, err := LoadAll(context.Background(), []Source{{a, 2}}, Options{}); err == nil || !strings.Contains(err.Error(), "fraction 2 is not in (0, 1]") {
			t.Errorf("fraction 2: %v", err)
		}
		if _, err := LoadAll(context.Background(), []Source{{a, 1}}, Options{Strict: true}); err == nil || err.Error() != "data: "+a+":2: trl-standard: chosen: empty response" {
			t.Errorf("strict: %v", err)
		}
		if _, err := LoadAll(context.Background(), []Source{{filepath.Join(dir, "none.jsonl"), 1}}, Options{}); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("missing file: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := LoadAll(ctx, []Source{{a, 1}}, Options{}); !errors.Is(err, context.Canceled) {
			t.Errorf("canceled: %v", err)
		}
	})
}

func TestSplitEval(t *testing.T) {
	pairs := make([]Pair, 101)
	for i := range pairs {
		pairs[i].Source = fmt.Sprint(i)
	}
	train, eval := SplitEval(pairs, 0.1, 42)
	if len(eval) != 11 || len(train) != 90 { // ceil(10.1) = 11
		t.Fatalf("sizes %d/%d, want 90/11", len(train), len(eval))
	}
	// Deterministic for a seed, different across seeds.
	train2, eval2 := SplitEval(pairs, 0.1, 42)
	if !reflect.DeepEqual(train, train2) || !reflect.DeepEqual(eval, eval2) {
		t.Fatal("same seed, different split")
	}
	_, eval3 := SplitEval(pairs, 0.1, 43)
	if reflect.DeepEqual(eval, eval3) {
		t.Fatal("different seeds, same split")
	}
	// A partition of the input, each half in input order.
	seen := map[string]bool{}
	for _, half := range [][]Pair{train, eval} {
		for i, p := range half {
			if seen[p.Source] {
				t.Fatalf("pair %s twice", p.Source)
			}
			seen[p.Source] = true
			if i > 0 {
				var a, b int
				fmt.Sscan(half[i-1].Source, &a)
				fmt.Sscan(p.Source, &b)
				if a >= b {
					t.Fatalf("order not kept: %d before %d", a, b)
				}
			}
		}
	}
	if len(seen) != len(pairs) {
		t.Fatalf("%d distinct pairs, want %d", len(seen), len(pairs))
	}
	// The held-out indexes for a seed are pinned, so that a change to the
	// split (which would change every evaluation) is noticed.
	var got []string
	for _, p := range eval {
		got = append(got, p.Source)
	}
	if want := strings.Fields("0 11 14 21 23 27 34 65 66 78 86"); !reflect.DeepEqual(got, want) {
		t.Errorf("eval for seed 42: %v, want %v", got, want)
	}

	for _, tt := range []struct {
		n     int
		ratio float64
		eval  int
	}{{0, 0.5, 0}, {10, 0, 0}, {10, -1, 0}, {10, 0.01, 1}, {10, 0.5, 5}, {10, 1, 9}, {1, 0.5, 0}, {2, 0.5, 1}} {
		tr, ev := SplitEval(make([]Pair, tt.n), tt.ratio, 1)
		if len(ev) != tt.eval || len(tr)+len(ev) != tt.n {
			t.Errorf("n=%d ratio=%v: %d/%d, want %d eval", tt.n, tt.ratio, len(tr), len(ev), tt.eval)
		}
	}
}
