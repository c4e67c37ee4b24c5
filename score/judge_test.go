package score

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/relupo/relupo/chat"
	"github.com/relupo/relupo/judge"
)

// TestJudgeScore rates responses through a local OpenAI-compatible server
// that gives each answer the rating written in it ("R=7"), refuses to rate
// some and fails on others.
func TestJudgeScore(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Messages []judge.Message }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		user := req.Messages[len(req.Messages)-1].Content
		_, ans, _ := strings.Cut(user, "[The Start of the Assistant's Answer]\n")
		ans, _, _ = strings.Cut(ans, "\n[The End")
		var reply string
		switch {
		case strings.HasPrefix(ans, "R="):
			reply = "Explanation.\nRating: [[" + strings.TrimPrefix(ans, "R=") + "]]"
		case ans == "FAIL":
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return
		default:
			reply = "I will not rate that."
		}
		json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"message": map[string]any{"content": reply}}}})
	}))
	defer srv.Close()
	p, err := judge.NewPointwisePrompt("")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var reports []string
	j := &Judge{
		Client: &judge.Client{URL: srv.URL, Model: "j"}, Prompt: p, JudgeModel: "j", Concurrency: 3,
		Report: func(s string) { mu.Lock(); reports = append(reports, s); mu.Unlock() },
	}
	q := []chat.Message{{Role: "user", Content: "question"}}
	rows := []Row{
		{ID: "a", Prompt: q, Responses: []string{"R=7", "R=2", "R=10"}},
		{ID: "b", Prompt: q, Responses: []string{"R=5", "nonsense", "FAIL", "R=11"}, Where: "s.jsonl:2"},
		{ID: "c", Responses: []string{"R=1"}, Where: "s.jsonl:3"},
	}
	var last, calls int
	failed, err := j.Score(context.Background(), rows, func(done, total int) {
		calls++
		if total != 3 || done < last {
			t.Errorf("progress %d/%d after %d", done, total, last)
		}
		last = done
	})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]float64{{7, 2, 10}, {5, math.NaN(), math.NaN(), math.NaN()}, {math.NaN()}}
	for i, r := range rows {
		for k, w := range want[i] {
			if g := r.Scores[k]; !(g == w || math.IsNaN(g) && math.IsNaN(w)) {
				t.Errorf("row %s response %d: score %v, want %v", r.ID, k, g, w)
			}
		}
	}
	if failed != 4 || len(reports) != 4 {
		t.Fatalf("failed %d, reports %q; want 4", failed, reports)
	}
	all := strings.Join(reports, "\n")
	for _, w := range []string{"s.jsonl:2: response 1: no rating", "s.jsonl:2: response 2: judge endpoint answered 503", "s.jsonl:2: response 3: the judge's rating 11 is outside [1, 10]", "s.jsonl:3: response 0: the prompt has no text"} {
		if !strings.Contains(all, w) {
			t.Errorf("reports lack %q:\n%s", w, all)
		}
	}
	if calls != 3 || last != 3 {
		t.Errorf("progress called %d times, last %d; want 3 and 3", calls, last)
	}
}
