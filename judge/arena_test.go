package judge

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func TestParseArenaVerdict(t *testing.T) {
	for _, tc := range []struct {
		in, label string
		again     bool
	}{
		{"My final verdict is tie: [[A=B]]", "A=B", false},
		{"... [[B>>A]]", "B>>A", false},
		{"[[A>B]] and again [[A>B]]", "A>B", false},
		{"[[A>B]] or [[B>A]]", "", false}, // conflicting: no retry
		{"no label yet", "", true},
		{"[[C>A]]", "", true},
		{"\n[[A<<B]]", "A<<B", false}, // read, but no outcome (see below)
	} {
		label, again := ParseArenaVerdict(tc.in)
		if label != tc.label || again != tc.again {
			t.Errorf("%q: %q %v, want %q %v", tc.in, label, again, tc.label, tc.again)
		}
	}
	for _, tc := range []struct {
		label     string
		candFirst bool
		want      ArenaOutcome
	}{
		{"A>>B", false, ArenaMuchWorse}, {"A>B", false, ArenaWorse}, {"A=B", false, ArenaTie},
		{"B>A", false, ArenaBetter}, {"B>>A", false, ArenaMuchBetter},
		{"A>>B", true, ArenaMuchBetter}, {"A>B", true, ArenaBetter}, {"A=B", true, ArenaTie},
		{"B>A", true, ArenaWorse}, {"B>>A", true, ArenaMuchWorse},
		{"A<<B", true, ArenaNone}, {"", false, ArenaNone},
	} {
		if got := arenaOutcome(tc.label, tc.candFirst); got != tc.want {
			t.Errorf("%s (candidate first %v): %d, want %d", tc.label, tc.candFirst, got, tc.want)
		}
	}
}

// btWinRate fits Arena-Hard's compute_mle_elo for one model against the
// baseline independently of ArenaScore: logistic regression without
// intercept or penalty on duplicated battles with features ±ln 10 and ties
// split as one win each, by Newton's method, and returns the model's
// predicted win rate against the baseline.
func btWinRate(pts []float64) float64 {
	// rows: x = ln 10 · (1 for the baseline's column − the model's); only
	// the difference δ = c_base − c_model is identified
	var y []float64
	for _, p := range pts {
		switch p {
		case 1: // the model wins: Y = 0 twice
			y = append(y, 0, 0)
		case 0:
			y = append(y, 1, 1)
		default: // a tie: one of each
			y = append(y, 1, 0)
		}
	}
	x := math.Ln10
	var delta float64
	for range 100 {
		var g, h float64
		for _, yi := range y {
			s := sigmoid(x * delta)
			g += (s - yi) * x
			h += s * (1 - s) * x * x
		}
		delta -= g / h
	}
	elo := 400 * delta // Elo of the baseline minus the model's
	return 1 / (1 + math.Pow(10, elo/400))
}

func TestArenaScoreHandComputed(t *testing.T) {
	outcomes := []ArenaOutcome{ArenaMuchBetter, ArenaMuchBetter, ArenaBetter, ArenaTie, ArenaWorse, ArenaMuchWorse, ArenaNone}
	s := ArenaScore(outcomes, 3, 100, 1)
	// battles: 3+3 wins, 1 win, a tie, a loss, 3 losses = 12; points 7.5
	if s.Games != 6 || s.Invalid != 1 || s.Battles != 12 || math.Abs(s.Score-62.5) > 1e-12 {
		t.Errorf("%+v; want 6 games, 12 battles, score 62.5", s)
	}
	pts := []float64{1, 1, 1, 1, 1, 1, 1, 0.5, 0, 0, 0, 0}
	if bt := 100 * btWinRate(pts); math.Abs(bt-s.Score) > 1e-9 {
		t.Errorf("the Bradley–Terry fit gives %.9f, ArenaScore %.9f", bt, s.Score)
	}
	if !(s.Lower < s.Score && s.Score < s.Upper) || s.Lower < 20 || s.Upper > 100 {
		t.Errorf("interval (%.2f, %.2f) around %.2f", s.Lower, s.Upper, s.Score)
	}
	if again := ArenaScore(outcomes, 3, 100, 1); again != s {
		t.Errorf("the same seed gives %+v, then %+v", s, again)
	}
	// weight 1: 3 wins, a tie, 2 losses of 6 → 58.33
	if s1 := ArenaScore(outcomes, 1, 10, 1); math.Abs(s1.Score-100*3.5/6) > 1e-12 || s1.Battles != 6 {
		t.Errorf("weight 1: %+v", s1)
	}
	if all := ArenaScore([]ArenaOutcome{ArenaBetter, ArenaMuchBetter}, 3, 50, 2); all.Score != 100 || all.Lower != all.Upper || math.Abs(all.Upper-100) > 1e-9 {
		t.Errorf("all wins: %+v", all)
	}
	if none := ArenaScore([]ArenaOutcome{ArenaNone}, 3, 10, 0); !math.IsNaN(none.Score) || none.Invalid != 1 {
		t.Errorf("no verdict: %+v", none)
	}
	// the interval narrows with more of the same battles
	var many []ArenaOutcome
	for range 50 {
		many = append(many, outcomes...)
	}
	if m := ArenaScore(many, 3, 200, 3); m.Upper-m.Lower >= s.Upper-s.Lower || math.Abs(m.Score-62.5) > 1e-9 {
		t.Errorf("50× the battles: (%.2f, %.2f) vs (%.2f, %.2f)", m.Lower, m.Upper, s.Lower, s.Upper)
	}
}

// arenaServer judges Arena-Hard games: the answer containing "GOOD" is
// significantly better ([[A>>B]] or [[B>>A]]), neither: a tie; for
// questions containing "SHY" the first reply has no label and the
// continuation gives it.
func arenaServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		var req struct {
			Messages    []Message `json:"messages"`
			MaxTokens   int       `json:"max_tokens"`
			Temperature float64   `json:"temperature"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Messages) < 2 || req.MaxTokens != 4096 || req.Temperature != 0 {
			http.Error(w, "want Arena-Hard's request", http.StatusBadRequest)
			return
		}
		user := req.Messages[1].Content
		_, a, _ := strings.Cut(user, "<|The Start of Assistant A's Answer|>\n")
		a, _, _ = strings.Cut(a, "\n<|The End of Assistant A's Answer|>")
		_, b, _ := strings.Cut(user, "<|The Start of Assistant B's Answer|>\n")
		b, _, _ = strings.Cut(b, "\n<|The End of Assistant B's Answer|>")
		reply := "My final verdict is tie: [[A=B]]"
		switch {
		case strings.Contains(user, "SHY") && len(req.Messages) == 2:
			reply = "Let me think about it."
		case strings.Contains(a, "GOOD"):
			reply = "Assistant A is significantly better: [[A>>B]]"
		case strings.Contains(b, "GOOD"):
			reply = "Assistant B is significantly better: [[B>>A]]"
		}
		if len(req.Messages) == 4 && req.Messages[3].Content != arenaContinue {
			http.Error(w, "unexpected continuation", http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"choices": []map[string]any{{"message": map[string]string{"role": "assistant", "content": reply}}}})
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestJobArenaHard(t *testing.T) {
	dir := t.TempDir()
	// question 1: the candidate is GOOD; 2: the baseline; 3: neither, and the
	// judge needs a nudge; 4: the candidate has no answer
	var qs, base, cand strings.Builder
	for i, tc := range []struct{ q, b, c string }{
		{"q1", "plain", "GOOD answer"}, {"q2", "GOOD answer", "plain"}, {"q3 SHY", "plain", "plain too"}, {"q4", "x", ""},
	} {
		id := fmt.Sprintf("id%d", i+1)
		fmt.Fprintf(&qs, `{"question_id": %q, "category": "arena-hard-v0.1", "cluster": "c", "turns": [{"content": %q}]}`+"\n", id, tc.q)
		fmt.Fprintf(&base, `{"question_id": %q, "answer_id": "a", "model_id": "gpt-4-0314", "choices": [{"index": 0, "turns": [{"content": %q, "token_len": 3}]}], "tstamp": 1}`+"\n", id, tc.b)
		if tc.c != "" {
			fmt.Fprintf(&cand, `{"uid": %q, "ans_id": "a", "model": "mine", "messages": [{"role": "user", "content": %q}, {"role": "assistant", "content": {"answer": %q}}], "tstamp": 1}`+"\n", id, tc.q, tc.c)
		}
	}
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	qp, bp, cp := write("question.jsonl", qs.String()), write("base.jsonl", base.String()), write("cand.jsonl", cand.String())
	srv, requests := arenaServer(t)
	maxTokens, temp, top, _ := FormatDefaults(FormatArenaHard)
	out := filepath.Join(dir, "judgment.jsonl")
	job := Job{Format: FormatArenaHard, Questions: qp, Baseline: bp, Candidate: cp, Output: out,
		Client: Client{URL: srv.URL, Model: "gpt-4-1106-preview", MaxTokens: maxTokens, Temperature: temp, TopLogprobs: top}}
	r, err := job.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// games: q1 candidate much better twice, q2 much worse twice, q3 two
	// ties: battles 3+3 wins, 3+3 losses, 2 ties → 50
	a := r.Arena
	if len(r.Items) != 3 || len(r.Missing) != 1 || r.Missing[0] != "id4" || a.Games != 6 || a.Battles != 14 ||
		a.Outcomes[ArenaMuchBetter] != 2 || a.Outcomes[ArenaMuchWorse] != 2 || a.Outcomes[ArenaTie] != 2 || math.Abs(a.Score-50) > 1e-12 {
		t.Errorf("report: %d items, missing %v, %+v", len(r.Items), r.Missing, a)
	}
	if got := requests.Load(); got != 8 { // 6 games, 2 of them continued
		t.Errorf("%d requests, want 8", got)
	}
	if r.Games[0][0].CandidateFirst || !r.Games[0][1].CandidateFirst || r.Games[0][0].Verdict != "B>>A" || r.Games[0][1].Verdict != "A>>B" {
		t.Errorf("question 1's games: %+v", r.Games[0])
	}
	b, _ := os.ReadFile(out)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var j ArenaJudgment
	if len(lines) != 3 || json.Unmarshal([]byte(lines[2]), &j) != nil || j.QuestionID != "id3" || j.Model != "mine" ||
		j.Games[0].Score == nil || *j.Games[0].Score != "A=B" || !strings.Contains(j.Games[0].Judgment, "Let me think") ||
		!strings.Contains(j.Games[1].UserPrompt, "A's Answer|>\nplain too\n") {
		t.Errorf("judgment file: %s", b)
	}
	// a rerun is answered from the cache
	if _, err := job.Run(context.Background()); err != nil || requests.Load() != 8 {
		t.Errorf("rerun: %v, %d requests", err, requests.Load())
	}
	// errors
	for _, tc := range []struct {
		job  Job
		want string
	}{
		{Job{Format: FormatArenaHard, Baseline: bp, Candidate: cp}, "needs the questions file"},
		{Job{Format: FormatArenaHard, Questions: qp, Baseline: bp, Candidate: write("alpaca.json", `[{"instruction": "q1", "output": "o"}]`)}, `has no "question_id" or "uid"`},
		{Job{Format: FormatArenaHard, Questions: write("bad.jsonl", `{"question_id": "x"}`), Baseline: bp, Candidate: cp}, `bad.jsonl:1: question x has no "turns"`},
		{Job{Format: FormatArenaHard, Questions: qp, Baseline: bp, Candidate: cp, Gamed: "g.csv"}, "AlpacaEval inputs"},
		{Job{Format: "mt-bench", Baseline: bp, Candidate: cp}, `unknown format "mt-bench"`},
	} {
		if _, err := tc.job.Run(context.Background()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
}
