package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// markerJudge is an OpenAI-compatible judge on 127.0.0.1 that prefers the
// answer containing "GOOD", recording each request's Authorization header.
func markerJudge(t *testing.T) (*httptest.Server, func() []string) {
	var mu sync.Mutex
	var auth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
		var req struct{ Messages []struct{ Content string } }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Messages) < 2 {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		// the second output shown, in AlpacaEval's prompt
		_, second, _ := strings.Cut(req.Messages[1].Content, `"model_identifier": "M",`)
		second, _, _ = strings.Cut(second, "## Task")
		verdict := "m"
		if strings.Contains(second, "GOOD") {
			verdict = "M"
		}
		fmt.Fprintf(w, `{"choices": [{"index": 0, "message": {"role": "assistant", "content": %q}}]}`, verdict)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), auth...)
	}
}

func TestJudgeCommand(t *testing.T) {
	dir := t.TempDir()
	var base []map[string]string
	var cand strings.Builder
	for i := 0; i < 20; i++ {
		b, c := "plain", "plain"
		if i < 15 {
			c = "GOOD"
		} else {
			b = "GOOD"
		}
		base = append(base, map[string]string{"instruction": fmt.Sprintf("q%d", i), "output": b, "generator": "base-model", "dataset": "vicuna"})
		line, _ := json.Marshal(map[string]any{"instruction": fmt.Sprintf("q%d", i), "output": c, "output_ids": []int{1}})
		cand.Write(append(line, '\n'))
	}
	bb, _ := json.Marshal(base)
	basePath, candPath := filepath.Join(dir, "base.json"), filepath.Join(dir, "cand.jsonl")
	os.WriteFile(basePath, bb, 0o644)
	os.WriteFile(candPath, []byte(cand.String()), 0o644)
	srv, auth := markerJudge(t)
	t.Setenv("RELUPO_TEST_JUDGE_KEY", "sk-test-secret")
	ann := filepath.Join(dir, "annotations.json")
	args := []string{"judge", "--baseline", basePath, "--candidate", candPath, "--judge-url", srv.URL + "/v1",
		"--judge-model", "judge-x", "--api-key-env", "RELUPO_TEST_JUDGE_KEY", "--concurrency", "3", "--json", "--output", ann}
	stdout, stderr, code := relupo(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var sum map[string]any
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
		t.Fatalf("%v: %q", err, stdout)
	}
	if sum["n_wins"] != 15.0 || sum["n_total"] != 20.0 || sum["win_rate"] != 75.0 || sum["candidate"] != "cand" || sum["baseline"] != "base-model" {
		t.Errorf("summary %v", sum)
	}
	if _, ok := sum["length_controlled_winrate"].(float64); !ok || sum["lc_glm"] != "length_controlled_minimal" || sum["n_letter"] != 20.0 || sum["n_logprobs"] != 0.0 {
		t.Errorf("length-controlled win rate or methods missing in %v", sum)
	}
	got := auth()
	if len(got) != 20 || got[0] != "Bearer sk-test-secret" {
		t.Errorf("%d requests, Authorization %q", len(got), got[0])
	}
	if strings.Contains(stdout+stderr, "sk-test-secret") {
		t.Errorf("the API key was printed")
	}
	var anns []map[string]any
	b, _ := os.ReadFile(ann)
	if err := json.Unmarshal(b, &anns); err != nil || len(anns) != 20 || anns[0]["preference"] != 2.0 || anns[19]["preference"] != 1.0 || anns[0]["dataset"] != "vicuna" {
		t.Errorf("annotations %v (%v)", anns, err)
	}

	// the rerun reads every judgment from the cache beside the candidate
	stdout2, stderr2, code := relupo(t, args...)
	if code != 0 || stdout2 != stdout || len(auth()) != 20 || !strings.Contains(stderr2, "(0 asked, 20 cached, 0 failed)") {
		t.Errorf("rerun: exit %d, %d requests in all, stdout %q, stderr %q", code, len(auth()), stdout2, stderr2)
	}
	if _, err := os.Stat(candPath + ".judgments.jsonl"); err != nil {
		t.Error(err)
	}

	// a text summary
	stdout3, _, _ := relupo(t, "judge", "--baseline", basePath, "--candidate", candPath, "--judge-url", srv.URL, "--judge-model", "judge-x")
	if !strings.Contains(stdout3, "win rate                    75.00%") || !strings.Contains(stdout3, "length-controlled win rate") ||
		!strings.Contains(stdout3, "simplified: without --instruction-difficulty and --gamed") || !strings.Contains(stdout3, "0 from log-probabilities, 20 from the letter alone") {
		t.Errorf("text summary %q", stdout3)
	}
}

func TestJudgeErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.json")
	os.WriteFile(p, []byte(`[{"instruction": "q", "output": "o"}]`), 0o644)
	p2 := filepath.Join(dir, "a2.json")
	os.WriteFile(p2, []byte(`[{"instruction": "q", "output": "another answer"}]`), 0o644)
	other := filepath.Join(dir, "b.json")
	os.WriteFile(other, []byte(`[{"instruction": "different", "output": "o"}]`), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing flags", []string{"--baseline", p}, 2, "are required"},
		{"bad concurrency", []string{"--baseline", p, "--candidate", p, "--judge-url", "http://127.0.0.1:1", "--judge-model", "m", "--concurrency", "0"}, 2, "--concurrency"},
		{"bad format", []string{"--baseline", p, "--candidate", p, "--judge-url", "http://127.0.0.1:1", "--judge-model", "m", "--format", "mt-bench"}, 2, `unknown format "mt-bench"`},
		{"arena without questions", []string{"--baseline", p, "--candidate", p, "--judge-url", "http://127.0.0.1:1", "--judge-model", "m", "--format", "arena-hard"}, 2, "needs --questions"},
		{"bad difficulty file", []string{"--baseline", p, "--candidate", p, "--judge-url", "http://127.0.0.1:1", "--judge-model", "m", "--instruction-difficulty", other}, 1, "instruction difficulty: " + other},
		{"no common instruction", []string{"--baseline", p, "--candidate", other, "--judge-url", "http://127.0.0.1:1", "--judge-model", "m", "--no-cache"}, 1, "no instruction"},
		{"unreachable judge", []string{"--baseline", p, "--candidate", p2, "--judge-url", "http://127.0.0.1:1", "--judge-model", "m", "--no-cache", "--max-retries", "0"}, 1, "1 of 1 items failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := relupo(t, append([]string{"judge"}, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr, tc.code, tc.want)
			}
		})
	}
}

// The arena-hard format end to end: a judge that always prefers assistant
// A slightly, so each question gives the candidate one win and one loss:
// a score of 50.
func TestJudgeArenaHardCommand(t *testing.T) {
	dir := t.TempDir()
	var qs, base, cand strings.Builder
	for i := range 5 {
		fmt.Fprintf(&qs, `{"question_id": "q%d", "turns": [{"content": "question %d"}]}`+"\n", i, i)
		fmt.Fprintf(&base, `{"question_id": "q%d", "model_id": "gpt-4-0314", "choices": [{"turns": [{"content": "base %d"}]}]}`+"\n", i, i)
		fmt.Fprintf(&cand, `{"question_id": "q%d", "model_id": "mine", "choices": [{"turns": [{"content": "mine %d"}]}]}`+"\n", i, i)
	}
	paths := map[string]string{}
	for name, s := range map[string]string{"q.jsonl": qs.String(), "b.jsonl": base.String(), "c.jsonl": cand.String()} {
		paths[name] = filepath.Join(dir, name)
		os.WriteFile(paths[name], []byte(s), 0o644)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"choices": [{"index": 0, "message": {"role": "assistant", "content": "A is better. [[A>B]]"}}]}`)
	}))
	t.Cleanup(srv.Close)
	stdout, stderr, code := relupo(t, "judge", "--format", "arena-hard", "--questions", paths["q.jsonl"], "--baseline", paths["b.jsonl"],
		"--candidate", paths["c.jsonl"], "--judge-url", srv.URL, "--judge-model", "j", "--no-cache", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var sum map[string]any
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
		t.Fatalf("%v: %q", err, stdout)
	}
	if sum["score"] != 50.0 || sum["games"] != 10.0 || sum["better"] != 5.0 || sum["worse"] != 5.0 || sum["candidate"] != "mine" || sum["baseline"] != "gpt-4-0314" {
		t.Errorf("summary %v", sum)
	}
}
