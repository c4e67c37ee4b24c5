package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relupo/relupo/safetensors"
)

func writeTemp(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const samplesGSM8K = `{"id": "q1", "prompt": "What is 6*7?", "responses": ["6*7 = 42\n#### 42", "#### 41", "", "It is #### 42.0"], "reference": "Multiply.\n#### 42"}
{"id": "q2", "prompt": [{"role": "user", "content": "1000+234?"}], "responses": ["#### 1,234", "#### 1234"], "answer": "#### 1234"}
{"id": "q3", "prompt": "Say 5.", "responses": ["#### 5"], "reference": "5"}
`

// TestScoreVerifierThenPairs runs the verifier and the pair builder, and
// checks what they write and print.
func TestScoreVerifierThenPairs(t *testing.T) {
	in := writeTemp(t, "samples.jsonl", samplesGSM8K)
	dir := t.TempDir()
	scored, pairsOut := filepath.Join(dir, "scored.jsonl"), filepath.Join(dir, "pairs.jsonl")
	_, stderr, code := relupo(t, "score", "--input", in, "--output", scored, "--verifier", "gsm8k")
	if code != 0 {
		t.Fatalf("score exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "3 rows, 7 responses") || !strings.Contains(stderr, "wrote 3 rows") || !strings.Contains(stderr, "score: 3/3 rows") {
		t.Errorf("score stderr:\n%s", stderr)
	}
	b, err := os.ReadFile(scored)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	wantScores := []string{`"scores":[1,0,0,1]`, `"scores":[1,1]`, `"scores":[1]`}
	for i, w := range wantScores {
		if !strings.Contains(lines[i], w) {
			t.Errorf("scored line %d lacks %s: %s", i+1, w, lines[i])
		}
	}

	_, stderr, code = relupo(t, "pairs", "--input", scored, "--output", pairsOut)
	if code != 0 {
		t.Fatalf("pairs exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "3 rows: 1 pairs; dropped 2 (1 ties, 0 below the score gap, 1 with fewer than 2 candidates); responses left out: 0 unscored, 1 empty") {
		t.Errorf("pairs stderr:\n%s", stderr)
	}
	b, err = os.ReadFile(pairsOut)
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		PromptID string `json:"prompt_id"`
		Chosen   []struct{ Role, Content string }
		Rejected []struct{ Role, Content string }
		Scores   []*float64 `json:"all_rm_scores"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatalf("pairs output %q: %v", b, err)
	}
	if rec.PromptID != "q1" || len(rec.Chosen) != 2 || rec.Chosen[1].Content != "6*7 = 42\n#### 42" || rec.Rejected[1].Content != "#### 41" || len(rec.Scores) != 4 {
		t.Errorf("pair %+v", rec)
	}

}

func TestScoreJudge(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Messages []struct{ Role, Content string }
		}
		json.NewDecoder(r.Body).Decode(&req)
		user := req.Messages[len(req.Messages)-1].Content
		reply := "Rating: [[3]]"
		switch {
		case strings.Contains(user, "ANSWER=great"):
			reply = "Nice.\nRating: [[9]]"
		case strings.Contains(user, "ANSWER=weird"):
			reply = "I cannot say."
		}
		json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"message": map[string]any{"content": reply}}}})
	}))
	defer srv.Close()
	in := writeTemp(t, "samples.jsonl", `{"id": "a", "prompt": "Q", "responses": ["great", "bad", "weird"]}`+"\n")
	prompt := writeTemp(t, "judge.txt", "Q: {question}\nANSWER={answer}\nRate it as [[N]].")
	out := filepath.Join(t.TempDir(), "scored.jsonl")
	_, stderr, code := relupo(t, "score", "--input", in, "--output", out, "--judge-model", "j", "--judge-base-url", srv.URL, "--judge-prompt", prompt, "--max-retries", "0")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "1 of 3 responses could not be scored") || !strings.Contains(stderr, ":1: response 2: no rating in the judge's reply") {
		t.Errorf("stderr:\n%s", stderr)
	}
	b, _ := os.ReadFile(out)
	if !strings.Contains(string(b), `"scores":[9,3,null]`) {
		t.Errorf("output %s", b)
	}
	if _, err := os.Stat(out + ".judgments.jsonl"); err != nil {
		t.Errorf("no judge cache: %v", err)
	}
}

func TestScoreAndPairsErrors(t *testing.T) {
	good := writeTemp(t, "samples.jsonl", samplesGSM8K)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")

	// A reward model whose head has two labels.
	rm := t.TempDir()
	src := "../../score/testdata/reward"
	cfg, err := os.ReadFile(filepath.Join(src, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(rm, "config.json"), cfg, 0o644)
	ck, err := safetensors.OpenCheckpoint(src)
	if err != nil {
		t.Fatal(err)
	}
	var ts []safetensors.Tensor
	for _, name := range ck.Names() {
		info, _ := ck.Info(name)
		data, _ := ck.Float32(name)
		if name == "score.weight" {
			info.Shape, data = []int{2, 16}, append(data, data...)
		}
		ts = append(ts, safetensors.Tensor{Name: name, DType: safetensors.F32, Shape: info.Shape, Data: data})
	}
	ck.Close()
	if err := safetensors.Write(filepath.Join(rm, "model.safetensors"), ts, nil); err != nil {
		t.Fatal(err)
	}

	noResponses := writeTemp(t, "bad.jsonl", `{"prompt": "a", "responses": ["x"]}`+"\n"+`{"prompt": "b"}`+"\n")
	empty := writeTemp(t, "empty.jsonl", "\n")
	unscored := writeTemp(t, "unscored.jsonl", `{"prompt": "a", "responses": ["x", "y"]}`+"\n")
	ties := writeTemp(t, "ties.jsonl", `{"prompt": "a", "responses": ["x", "y"], "scores": [1, 1]}`+"\n")
	tests := []struct {
		name string
		args []string
		want string
		code int
	}{
		{"no scorer", []string{"score", "--input", good, "--output", out}, "give exactly one scorer", 2},
		{"two scorers", []string{"score", "--input", good, "--output", out, "--verifier", "gsm8k", "--judge-model", "j", "--judge-base-url", "http://127.0.0.1:1"}, "give exactly one scorer", 2},
		{"judge without url", []string{"score", "--input", good, "--output", out, "--judge-model", "j"}, "needs --judge-base-url", 2},
		{"pattern without group", []string{"score", "--input", good, "--output", out, "--verifier", "#### [0-9]+"}, "has no capture group", 2},
		{"row without responses", []string{"score", "--input", noResponses, "--output", out, "--verifier", "gsm8k"}, `bad.jsonl:2: the row has no "responses"`, 1},
		{"file without prompts", []string{"score", "--input", empty, "--output", out, "--verifier", "gsm8k"}, "empty.jsonl: no rows", 1},
		{"no reference", []string{"score", "--input", unscored, "--output", out, "--verifier", "gsm8k"}, "unscored.jsonl:1: the row has no reference answer", 1},
		{"head with two labels", []string{"score", "--input", good, "--output", out, "--reward-model", rm}, "score.weight has shape [2 16], want [1, 16]", 1},
		{"missing input", []string{"score", "--input", filepath.Join(dir, "nope.jsonl"), "--output", out, "--verifier", "gsm8k"}, "nope.jsonl", 1},
		{"empty judge prompt", []string{"score", "--input", good, "--output", out, "--judge-model", "j", "--judge-base-url", "http://127.0.0.1:1", "--judge-prompt", empty}, "is empty", 1},
		{"pairs of unscored rows", []string{"pairs", "--input", unscored, "--output", out}, "no row has \"scores\"", 1},
		{"pairs all ties", []string{"pairs", "--input", ties, "--output", out}, "no pair could be made", 1},
		{"negative gap", []string{"pairs", "--input", ties, "--output", out, "--min-score-gap", "-1"}, "--min-score-gap must be", 2},
		{"pairs without output", []string{"pairs", "--input", ties}, "--input and --output are required", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := relupo(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "goroutine") {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d and %q", code, stderr, tc.code, tc.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("%s was written", out)
				os.Remove(out)
			}
		})
	}
}

func TestScorePairsHelp(t *testing.T) {
	for _, cmd := range []string{"score", "pairs"} {
		stdout, _, code := relupo(t, cmd, "--help")
		if code != 0 || !strings.Contains(stdout, "--input") || !strings.Contains(stdout, "--output") {
			t.Errorf("%s --help: exit %d\n%s", cmd, code, stdout)
		}
	}
}
