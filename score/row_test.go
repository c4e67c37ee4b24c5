package score

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/relupo/relupo/chat"
)

func TestReadRows(t *testing.T) {
	in := "\ufeff" + `{"id": "q1", "prompt": "What is 6*7?", "responses": ["#### 42", "#### 41"], "reference": "42", "finish_reasons": ["stop", "length"]}

{"id": 7, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], "responses": ["Hello"], "answer": "#### 3", "scores": [null]}
{"prompt": [{"role": "user", "content": "<a&b>"}], "responses": ["x", "y"], "scores": [1.5, -2]}
`
	rows, err := ReadRows(strings.NewReader(in), "s.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3", len(rows))
	}
	r := rows[0]
	if r.ID != "q1" || r.Where != "s.jsonl:1" || len(r.Prompt) != 1 || r.Prompt[0] != (chat.Message{Role: "user", Content: "What is 6*7?"}) ||
		len(r.Responses) != 2 || r.Reference != "42" || r.Scores != nil || string(r.Extra["finish_reasons"]) != `["stop", "length"]` {
		t.Errorf("row 1 = %+v", r)
	}
	r = rows[1]
	if r.ID != "7" || r.Where != "s.jsonl:3" || len(r.Prompt) != 2 || r.Prompt[0].Role != "system" || r.Reference != "#### 3" ||
		len(r.Scores) != 1 || !math.IsNaN(r.Scores[0]) {
		t.Errorf("row 2 = %+v", r)
	}
	if s := rows[2].Scores; len(s) != 2 || s[0] != 1.5 || s[1] != -2 {
		t.Errorf("row 3 scores %v", s)
	}

	// Written and read back: the same rows, NaN as null, extra fields kept.
	var buf bytes.Buffer
	if err := WriteRows(&buf, rows); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"scores":[null]`) || !strings.Contains(buf.String(), `"finish_reasons":["stop","length"]`) ||
		!strings.Contains(buf.String(), `"content":"<a&b>"`) {
		t.Errorf("written rows:\n%s", buf.String())
	}
	back, err := ReadRows(&buf, "back.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		a, _ := json.Marshal(rows[i])
		b, _ := json.Marshal(back[i])
		if !bytes.Equal(a, b) {
			t.Errorf("row %d round trip:\n%s\n%s", i, a, b)
		}
	}
}

func TestReadRowsErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"no rows", "\n\n", "s.jsonl: no rows"},
		{"not json", `{"prompt": "x", "responses": ["a"]}` + "\n{oops\n", "s.jsonl:2: not a JSON object"},
		{"not an object", `[1]`, "s.jsonl:1:"},
		{"no prompt", `{"responses": ["a"]}`, "s.jsonl:1: the row has no prompt"},
		{"empty prompt", `{"prompt": [], "responses": ["a"]}`, `"prompt" is an empty list`},
		{"prompt of numbers", `{"prompt": 3, "responses": ["a"]}`, `"prompt" must be a string or a list`},
		{"message without role", `{"prompt": [{"content": "x"}], "responses": ["a"]}`, "message 0 has no role"},
		{"no responses", `{"prompt": "x"}`, `s.jsonl:1: the row has no "responses"`},
		{"empty responses", `{"prompt": "x", "responses": []}`, `"responses" is an empty list`},
		{"responses not strings", `{"prompt": "x", "responses": [1]}`, `"responses" must be a list of strings`},
		{"scores length", `{"prompt": "x", "responses": ["a", "b"], "scores": [1]}`, `"scores" has 1 values for 2 responses`},
		{"scores not numbers", `{"prompt": "x", "responses": ["a"], "scores": ["high"]}`, `"scores" must be a list of numbers`},
		{"bad id", `{"id": [1], "prompt": "x", "responses": ["a"]}`, `"id" must be a string or a number`},
		{"bad reference", `{"prompt": "x", "responses": ["a"], "reference": {}}`, `"reference" must be a string or a number`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadRows(strings.NewReader(tc.in), "s.jsonl")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ReadRows = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestReadRowsTokenizedPrompt(t *testing.T) {
	rows, err := ReadRows(strings.NewReader(`{"id": "1", "prompt": [], "prompt_input_ids": [1, 2], "responses": ["a"]}`), "s.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows[0].Prompt) != 0 || string(rows[0].Extra["prompt_input_ids"]) != "[1, 2]" {
		t.Fatalf("row %+v", rows[0])
	}
}
