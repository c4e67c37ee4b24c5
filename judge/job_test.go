package judge

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeAnswers writes items' answers as two files: the baseline as an
// AlpacaEval JSON list (generator "base"), the candidate as JSON lines
// without a generator, plus the candidate's extra instructions.
func writeAnswers(t *testing.T, items []Item, extra ...string) (base, cand string) {
	t.Helper()
	dir := t.TempDir()
	var bl []Output
	var cl strings.Builder
	enc := json.NewEncoder(&cl)
	for _, it := range items {
		bl = append(bl, Output{Instruction: it.Instruction, Output: it.Baseline, Generator: "base", Dataset: "ds"})
		enc.Encode(map[string]string{"instruction": it.Instruction, "output": it.Candidate})
	}
	for _, e := range extra {
		enc.Encode(map[string]string{"instruction": e, "output": "x"})
	}
	b, _ := json.Marshal(bl)
	base, cand = filepath.Join(dir, "base.json"), filepath.Join(dir, "cand.jsonl")
	if err := os.WriteFile(base, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cand, []byte(cl.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return base, cand
}

func TestJobRun(t *testing.T) {
	srv := newJudgeServer(t, preferMarker)
	items := markerItems(20) // 14 candidate wins
	base, cand := writeAnswers(t, items, "not in the baseline")
	ann := filepath.Join(t.TempDir(), "annotations.json")

	var matched, cached int
	var missing []string
	var last Progress
	job := Job{
		Baseline: base, Candidate: cand, Client: *testClient(srv.URL), Concurrency: 3, Output: ann,
		OnMatch: func(n int, m []string) { matched, missing = n, m },
		OnCache: func(_ string, n int) { cached = n },
		OnDone:  func(p Progress) { last = p },
	}
	r, err := job.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if matched != 20 || len(missing) != 1 || missing[0] != "not in the baseline" || cached != 0 {
		t.Errorf("OnMatch(%d, %q), OnCache(_, %d)", matched, missing, cached)
	}
	if last.Done != 20 || last.Total != 20 || last.Asked != 20 || last.Failed != 0 || last.Elapsed <= 0 {
		t.Errorf("last progress %+v", last)
	}
	if r.Summary.N != 20 || r.Summary.Wins != 14 || r.Baseline != "base" || r.Candidate != "cand" || len(r.Judgments) != 20 {
		t.Errorf("report: %+v", r)
	}
	var anns []Annotation
	b, _ := os.ReadFile(ann)
	if err := json.Unmarshal(b, &anns); err != nil || len(anns) != 20 {
		t.Fatalf("annotations: %v, %d of them", err, len(anns))
	}
	if a := anns[0]; a.Preference == nil || *a.Preference != 2 || a.Generator1 != "base" || a.Generator2 != "cand" || a.Annotator != "judge-1" || a.Dataset != "ds" {
		t.Errorf("annotation 0: %+v", a)
	}

	// the rerun reads every judgment from the cache beside the candidate
	requests := srv.requests.Load()
	r2, err := job.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cached != 20 || last.Asked != 0 || srv.requests.Load() != requests || r2.Summary != r.Summary {
		t.Errorf("rerun: cache held %d, asked %d, %d new requests, summary %+v", cached, last.Asked, srv.requests.Load()-requests, r2.Summary)
	}
	if _, err := os.Stat(cand + ".judgments.jsonl"); err != nil {
		t.Error(err)
	}
}

func TestJobRunErrors(t *testing.T) {
	items := markerItems(2)
	base, cand := writeAnswers(t, items)
	other, _ := writeAnswers(t, []Item{{Instruction: "elsewhere", Baseline: "b", Candidate: "c"}})
	down := testClient("http://127.0.0.1:1")
	down.MaxRetries, down.Backoff = 0, time.Millisecond
	for _, tc := range []struct {
		name string
		job  Job
		want string
	}{
		{"missing file", Job{Baseline: filepath.Join(t.TempDir(), "nope.json"), Candidate: cand}, "nope.json"},
		{"no common instruction", Job{Baseline: other, Candidate: cand}, "no instruction of " + cand},
		{"unreachable judge", Job{Baseline: base, Candidate: cand, Client: *down, NoCache: true}, "2 of 2 items failed"},
		{"cache in a missing folder", Job{Baseline: base, Candidate: cand, Cache: filepath.Join(t.TempDir(), "no", "cache.jsonl")}, "judge: cache"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.job.Run(context.Background()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// Tie replies count 1.5, unreadable ones are left out and written as null
// (never a draw), identical outputs are draws without a request, and the
// output file says so.
func TestJobTiesInvalidIdentical(t *testing.T) {
	srv := newJudgeServer(t, func(first, second string) string {
		switch {
		case strings.Contains(first+second, "TIE"):
			return "tie"
		case strings.Contains(first+second, "HUH"):
			return "I cannot decide"
		}
		return preferMarker(first, second)
	})
	items := []Item{
		{Instruction: "q1", Baseline: "b TIE", Candidate: "c TIE"},
		{Instruction: "q2", Baseline: "b HUH", Candidate: "c HUH"},
		{Instruction: "q3", Baseline: "same", Candidate: "same"},
		{Instruction: "q4", Baseline: "b", Candidate: "c GOOD"},
	}
	base, cand := writeAnswers(t, items)
	ann := filepath.Join(t.TempDir(), "annotations.json")
	r, err := Job{Baseline: base, Candidate: cand, Client: *testClient(srv.URL), NoCache: true, Output: ann}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s := r.Summary
	if s.N != 3 || s.Invalid != 1 || s.Draws != 2 || s.Wins != 1 || s.Identical != 1 || s.ByLetter != 2 || math.Abs(s.WinRate-100*2.0/3) > 1e-9 || srv.requests.Load() != 3 {
		t.Errorf("summary %+v, %d requests", s, srv.requests.Load())
	}
	var anns []map[string]any
	b, _ := os.ReadFile(ann)
	if err := json.Unmarshal(b, &anns); err != nil || len(anns) != 4 {
		t.Fatalf("%v: %s", err, b)
	}
	if anns[0]["preference"] != 1.5 || anns[1]["preference"] != nil || anns[2]["preference"] != 1.5 || anns[3]["preference"] != 2.0 || anns[2]["raw_completion"] != nil {
		t.Errorf("annotations %v", anns)
	}
}

func TestLCDataFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	d, err := ReadDifficulty(write("d.csv", "index,instruction_difficulty\n1,0.5\n0,-1.25\n"))
	if err != nil || len(d) != 2 || d[0] != -1.25 || d[1] != 0.5 {
		t.Errorf("%v %v", d, err)
	}
	g, err := ReadGamed(write("g.csv", "model,index,preference,std_delta_len,instruction_difficulty,not_gamed_baseline\nv,0,0.25,-1.5,0.3,False\nc,0,,0.5,0.3,False\n"))
	if err != nil || len(g) != 2 || g[0] != (GamedRow{Index: 0, Preference: 0.25, StdDeltaLen: -1.5, Difficulty: 0.3}) || !math.IsNaN(g[1].Preference) {
		t.Errorf("%+v %v", g, err)
	}
	for _, tc := range []struct {
		read func(string) error
		file string
		want string
	}{
		{func(p string) error { _, err := ReadDifficulty(p); return err }, "index,instruction_difficulty\n0,1\n2,1\n", "no row for index 1"},
		{func(p string) error { _, err := ReadDifficulty(p); return err }, "index,instruction_difficulty\n0,abc\n", "d2.csv:2: difficulty \"abc\""},
		{func(p string) error { _, err := ReadDifficulty(p); return err }, "index,instruction_difficulty\n0,1\n0,2\n", "index 0 appears twice"},
		{func(p string) error { _, err := ReadGamed(p); return err }, "index,preference\n0,1\n", `no "std_delta_len" column`},
		{func(p string) error { _, err := ReadGamed(p); return err }, "index,preference,std_delta_len,instruction_difficulty,not_gamed_baseline\n0,1.5,0,0,False\n", "preference \"1.5\" is not a number in [0, 1]"},
		{func(p string) error { _, err := ReadGamed(p); return err }, "index,preference,std_delta_len,instruction_difficulty,not_gamed_baseline\n0,0.5,0,0,maybe\n", "not_gamed_baseline \"maybe\""},
	} {
		if err := tc.read(write("d2.csv", tc.file)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.file, err, tc.want)
		}
	}
}
