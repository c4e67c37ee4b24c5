package judge

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func TestParseRating(t *testing.T) {
	p, err := NewPointwisePrompt("")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		reply string
		want  float64 // NaN: unparseable
		err   string
	}{
		{"Good answer.\nRating: [[7]]", 7, ""},
		{"[[ 8 ]]", 8, ""},
		{"Rating: [[7.5]]", 7.5, ""},
		{"The format asks for [[5]]; my rating: [[9]]", 9, ""},
		{"<think>maybe [[2]]</think>Rating: [[6]]", 6, ""},
		{"Rating: 4", 4, ""},
		{"**Rating:** 3", 3, ""},
		{"rating = 10/10", 10, ""},
		{"[[1]]", 1, ""},
		{"Rating: [[0]]", math.NaN(), "outside [1, 10]"},
		{"Rating: [[11]]", math.NaN(), "outside [1, 10]"},
		{"Rating: [[-3]]", math.NaN(), "outside [1, 10]"},
		{"I cannot rate this.", math.NaN(), "no rating"},
		{"", math.NaN(), "no rating"},
		{"<think>Rating: [[6]]</think>no verdict", math.NaN(), "no rating"},
	}
	for _, tc := range tests {
		t.Run(tc.reply, func(t *testing.T) {
			got, err := p.ParseRating(tc.reply)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !math.IsNaN(got) {
					t.Fatalf("ParseRating = %v, %v; want NaN and an error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseRating = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestNewPointwisePrompt(t *testing.T) {
	tests := []struct{ template, err string }{
		{"Q: {question}\nA: {answer}\nRate 1-10 as [[N]].", ""},
		{"{conversation} -> {answer}", ""},
		{"Q: {question}", "no {answer}"},
		{"A: {answer}", "neither a {question} nor a {conversation}"},
	}
	for _, tc := range tests {
		t.Run(tc.template, func(t *testing.T) {
			_, err := NewPointwisePrompt(tc.template)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("NewPointwisePrompt = %v, want error %q", err, tc.err)
			}
		})
	}
}

func TestPointwiseMessages(t *testing.T) {
	p, err := NewPointwisePrompt("Q={question}|C={conversation}|A={answer}")
	if err != nil {
		t.Fatal(err)
	}
	prompt := []Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "hi"}, {Role: "assistant", Content: "hello"}, {Role: "user", Content: "2+2? {answer}"}}
	got := p.Messages(prompt, "4")
	want := "Q=2+2? {answer}|C=System: Be brief.\n\nUser: hi\n\nAssistant: hello\n\nUser: 2+2? {answer}|A=4"
	if len(got) != 1 || got[0].Role != "user" || got[0].Content != want {
		t.Fatalf("Messages = %q, want one user message %q", got, want)
	}
	p.System = "You judge."
	if got := p.Messages(prompt, "4"); len(got) != 2 || got[0] != (Message{Role: "system", Content: "You judge."}) {
		t.Fatalf("Messages with a system message = %q", got)
	}
	if PointwiseKey("m", p.Messages(prompt, "4")) == PointwiseKey("m", p.Messages(prompt, "5")) ||
		PointwiseKey("m", p.Messages(prompt, "4")) == PointwiseKey("n", p.Messages(prompt, "4")) {
		t.Fatal("PointwiseKey does not tell requests apart")
	}
}

// ratingServer answers every request with reply(user message).
func ratingServer(t *testing.T, reply func(user string) (string, int)) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		var req struct{ Messages []Message }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Messages) == 0 {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		text, code := reply(req.Messages[len(req.Messages)-1].Content)
		if code != http.StatusOK {
			http.Error(w, text, code)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"message": map[string]any{"role": "assistant", "content": text}}}})
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestRate(t *testing.T) {
	srv, n := ratingServer(t, func(user string) (string, int) {
		switch {
		case strings.Contains(user, "GOOD"):
			return "Fine.\nRating: [[9]]", http.StatusOK
		case strings.Contains(user, "DOWN"):
			return "no", http.StatusInternalServerError
		}
		return "I refuse to rate.", http.StatusOK
	})
	c := &Client{URL: srv.URL, Model: "judge-1", MaxRetries: 1}
	p, _ := NewPointwisePrompt("")
	cache, err := OpenCache(filepath.Join(t.TempDir(), "cache.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	prompt := []Message{{Role: "user", Content: "q"}}
	ctx := context.Background()

	v, asked, err := Rate(ctx, c, p, "judge-1", cache, prompt, "GOOD")
	if err != nil || v != 9 || !asked {
		t.Fatalf("Rate = %v, %v, %v", v, asked, err)
	}
	v, asked, err = Rate(ctx, c, p, "judge-1", cache, prompt, "GOOD")
	if err != nil || v != 9 || asked || n.Load() != 1 {
		t.Fatalf("cached Rate = %v, %v, %v after %d requests", v, asked, err, n.Load())
	}
	v, _, err = Rate(ctx, c, p, "judge-1", cache, prompt, "meh")
	if err == nil || !math.IsNaN(v) || !strings.Contains(err.Error(), "no rating") {
		t.Fatalf("unparseable reply: %v, %v", v, err)
	}
	if cache.Len() != 1 {
		t.Fatalf("cache holds %d ratings, want 1 (an unparseable reply is not cached)", cache.Len())
	}
	before := n.Load()
	v, _, err = Rate(ctx, c, p, "judge-1", cache, prompt, "DOWN")
	if err == nil || !math.IsNaN(v) || !strings.Contains(err.Error(), "500") || n.Load()-before != 2 {
		t.Fatalf("failing endpoint: %v, %v after %d requests (want 2: one retry)", v, err, n.Load()-before)
	}
}
