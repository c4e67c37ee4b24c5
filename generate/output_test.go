package generate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/relupo/relupo/chat"
	"github.com/relupo/relupo/internal/testutil"
)

// fakeResults answers record i with a text naming it, padded with spaces
// that the evaluation formats trim.
func fakeResults(n int) []Result {
	res := make([]Result, n)
	for i := range res {
		res[i] = Result{OutputIDs: []int{i, i + 1, 2}, Text: fmt.Sprintf(" answer %d <b>\n", i), FinishReason: "stop", TextTokens: 2}
	}
	return res
}

func readShared(t *testing.T, elem ...string) []Record {
	t.Helper()
	f, err := os.Open(testutil.SharedPath(t, elem...))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := ReadRecords(f, elem[len(elem)-1])
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// AlpacaEval's reference outputs → prompts → answers in the alpaca_eval
// format: the same instructions and datasets in the same order, with the
// generator set, readable again as prompts.
func TestAlpacaEvalRoundTrip(t *testing.T) {
	path := []string{"fixtures", "eval", "alpaca_eval", "llama3_8b_instruct_simpo_outputs.json"}
	recs := readShared(t, path...)
	res := fakeResults(len(recs))
	var buf bytes.Buffer
	if err := Write(&buf, FormatAlpacaEval, recs, res, Meta{Generator: "my-model"}); err != nil {
		t.Fatal(err)
	}
	var got []AlpacaEvalRecord
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	var orig []map[string]string
	b, err := os.ReadFile(testutil.SharedPath(t, path...))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &orig); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(orig) {
		t.Fatalf("%d records, want %d", len(got), len(orig))
	}
	for i, g := range got {
		o := orig[i]
		if g.Instruction != o["instruction"] || g.Dataset != o["dataset"] || g.Generator != "my-model" || g.Output != fmt.Sprintf("answer %d <b>", i) {
			t.Fatalf("record %d: %+v, from %v", i, g, o)
		}
	}
	// the same keys as AlpacaEval's own file
	var keys []map[string]any
	json.Unmarshal(buf.Bytes(), &keys)
	for k := range keys[0] {
		if _, ok := orig[0][k]; !ok {
			t.Errorf("key %q is not in AlpacaEval's file", k)
		}
	}
	if len(keys[0]) != len(orig[0]) {
		t.Errorf("keys %v, AlpacaEval has %v", keys[0], orig[0])
	}
	again, err := ReadRecords(&buf, "out.json")
	if err != nil {
		t.Fatal(err)
	}
	for i := range again {
		if again[i].Instruction != recs[i].Instruction || again[i].Dataset != recs[i].Dataset {
			t.Fatalf("record %d does not read back", i)
		}
	}
}

// Arena-Hard's questions (the current uid/prompt layout) → answers.
func TestArenaHardRoundTrip(t *testing.T) {
	recs := readShared(t, "fixtures", "eval", "arena-hard-v0.1", "question.jsonl")
	res := fakeResults(len(recs))
	when := time.Unix(1700000000, 500_000_000)
	var buf bytes.Buffer
	if err := Write(&buf, FormatArenaHard, recs, res, Meta{Generator: "m", Time: when}); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<24)
	ids := map[string]bool{}
	i := 0
	for ; sc.Scan(); i++ {
		var a struct {
			UID      string `json:"uid"`
			AnsID    string `json:"ans_id"`
			Model    string `json:"model"`
			Messages []struct {
				Role    string          `json:"role"`
				Content json.RawMessage `json:"content"`
			} `json:"messages"`
			Tstamp   float64        `json:"tstamp"`
			Metadata map[string]any `json:"metadata"`
		}
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatal(err)
		}
		var user string
		var asst struct{ Answer string }
		json.Unmarshal(a.Messages[0].Content, &user)
		json.Unmarshal(a.Messages[1].Content, &asst)
		if a.UID != recs[i].UID || a.Model != "m" || len(a.AnsID) != 22 || a.Tstamp != 1700000000.5 ||
			a.Messages[0].Role != "user" || user != recs[i].Instruction || a.Messages[1].Role != "assistant" ||
			asst.Answer != fmt.Sprintf("answer %d <b>", i) || a.Metadata["token_len"] != 2.0 || a.Metadata["header_count"] == nil {
			t.Fatalf("line %d: %s", i+1, sc.Bytes())
		}
		if ids[a.AnsID] {
			t.Errorf("line %d: answer id %s repeats", i+1, a.AnsID)
		}
		ids[a.AnsID] = true
	}
	if i != len(recs) {
		t.Errorf("%d answers for %d questions", i, len(recs))
	}
}

// Arena-Hard v0.1's question_id/turns layout → its model_answer layout.
func TestArenaHardV01(t *testing.T) {
	in := `{"question_id": "q1", "category": "arena-hard-v0.1", "cluster": "c", "turns": [{"content": "Why?"}]}
{"question_id": 7, "turns": [{"content": "How?"}]}`
	recs, err := ReadRecords(strings.NewReader(in), "question.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, FormatArenaHard, recs, fakeResults(2), Meta{Generator: "m"}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	for i, want := range []string{`"q1"`, `7`} {
		var a ArenaHardV01Answer
		if err := json.Unmarshal([]byte(lines[i]), &a); err != nil {
			t.Fatal(err)
		}
		if string(a.QuestionID) != want || a.ModelID != "m" || len(a.Choices) != 1 || a.Choices[0].Index != 0 ||
			a.Choices[0].Turns[0].Content != fmt.Sprintf("answer %d <b>", i) || a.Choices[0].Turns[0].TokenLen != 2 || a.Tstamp == 0 {
			t.Errorf("line %d: %s", i+1, lines[i])
		}
	}
}

func TestWriteJSONL(t *testing.T) {
	recs := []Record{{Where: "a:1", InputIDs: []int32{1}}, {Where: "a:2", Instruction: "Hi"}}
	var buf bytes.Buffer
	if err := Write(&buf, FormatJSONL, recs, []Result{{OutputIDs: nil, Text: "", FinishReason: "length"}, fakeResults(2)[1]}, Meta{}); err != nil {
		t.Fatal(err)
	}
	want := `{"output_ids":[],"output":"","finish_reason":"length"}
{"output_ids":[1,2,2],"output":" answer 1 <b>\n","finish_reason":"stop","instruction":"Hi"}
`
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestCheckFormat(t *testing.T) {
	ids := []Record{{Where: "f:3", InputIDs: []int32{1}}}
	text := []Record{{Where: "f:4", Instruction: "x"}}
	for _, tc := range []struct {
		format string
		recs   []Record
		want   string
	}{
		{"jsonl", ids, ""},
		{"alpaca_eval", text, ""},
		{"alpaca_eval", ids, "f:3: the alpaca_eval format needs an instruction"},
		{"arena_hard", text, `f:4: the arena_hard format needs a "question_id"`},
		{"csv", text, `unknown format "csv"`},
	} {
		err := CheckFormat(tc.format, tc.recs)
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.format, err, tc.want)
		}
	}
}

func TestWriteSamples(t *testing.T) {
	recs := []Record{
		{Where: "a:1", InputIDs: []int32{1, 5}},
		{Where: "a:2", ID: "q2", Instruction: "6*7?", Messages: []chat.Message{{Role: "user", Content: "6*7?"}}, Reference: "#### 42"},
	}
	res := []Result{
		{OutputIDs: []int{3, 2}, Text: "x", FinishReason: "stop"}, {OutputIDs: nil, Text: "", FinishReason: "length"},
		{OutputIDs: []int{4}, Text: "42 <b>", FinishReason: "length"}, {OutputIDs: []int{9, 2}, Text: "41", FinishReason: "stop"},
	}
	var buf bytes.Buffer
	if err := WriteSamples(&buf, recs, res, 2); err != nil {
		t.Fatal(err)
	}
	want := `{"id":"1","prompt":[],"prompt_input_ids":[1,5],"responses":["x",""],"output_ids":[[3,2],[]],"finish_reasons":["stop","length"]}
{"id":"q2","prompt":[{"role":"user","content":"6*7?"}],"responses":["42 <b>","41"],"reference":"#### 42","output_ids":[[4],[9,2]],"finish_reasons":["length","stop"]}
`
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
	if err := WriteSamples(&buf, recs, res[:3], 2); err == nil || !strings.Contains(err.Error(), "3 results for 2 records × 2 samples") {
		t.Errorf("short results: error %v", err)
	}
}
