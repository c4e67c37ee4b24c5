package generate

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/relupo/relupo/chat"
	"github.com/relupo/relupo/internal/testutil"
	"github.com/relupo/relupo/tokenizer"
)

func TestReadRecords(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input string
		check func(t *testing.T, recs []Record)
	}{
		{"token ids", `{"prompt_input_ids": [0, 0, 0, 52]}`, func(t *testing.T, r []Record) {
			if !slices.Equal(r[0].InputIDs, []int32{0, 0, 0, 52}) || r[0].Instruction != "" || r[0].Messages != nil {
				t.Errorf("%+v", r[0])
			}
		}},
		{"alpaca_eval", `{"instruction": "Say hi.", "dataset": "koala", "output": "ignored"}`, func(t *testing.T, r []Record) {
			if r[0].Instruction != "Say hi." || r[0].Dataset != "koala" || !slices.Equal(r[0].Messages, []chat.Message{{Role: "user", Content: "Say hi."}}) {
				t.Errorf("%+v", r[0])
			}
		}},
		{"arena-hard v0.1", `{"question_id": "abc", "category": "arena-hard-v0.1", "turns": [{"content": "Q1"}, {"content": "Q2"}]}`, func(t *testing.T, r []Record) {
			if r[0].Instruction != "Q1" || string(r[0].QuestionID) != `"abc"` || r[0].Category != "arena-hard-v0.1" {
				t.Errorf("%+v", r[0])
			}
		}},
		{"mt-bench string turns", `{"question_id": 81, "turns": ["Write a poem."]}`, func(t *testing.T, r []Record) {
			if r[0].Instruction != "Write a poem." || string(r[0].QuestionID) != "81" {
				t.Errorf("%+v", r[0])
			}
		}},
		{"arena-hard uid", `{"uid": "u1", "category": "c", "cluster": "x", "prompt": "P"}`, func(t *testing.T, r []Record) {
			if r[0].Instruction != "P" || r[0].UID != "u1" || r[0].QuestionID != nil {
				t.Errorf("%+v", r[0])
			}
		}},
		{"messages", `{"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U1"}, {"role": "assistant", "content": "A"}, {"role": "user", "content": "U2"}]}`, func(t *testing.T, r []Record) {
			if r[0].Instruction != "U2" || len(r[0].Messages) != 4 {
				t.Errorf("%+v", r[0])
			}
		}},
		{"prompt", `{"prompt": "Hello"}`, func(t *testing.T, r []Record) {
			if r[0].Instruction != "Hello" || r[0].Messages[0].Role != "user" {
				t.Errorf("%+v", r[0])
			}
		}},
		{"json lines with blanks", "\n{\"prompt\": \"a\"}\n\n{\"prompt\": \"b\"}", func(t *testing.T, r []Record) {
			if len(r) != 2 || r[0].Where != "in.jsonl:2" || r[1].Where != "in.jsonl:4" {
				t.Errorf("%+v", r)
			}
		}},
		{"json array", " \n[{\"instruction\": \"a\"}, {\"prompt_input_ids\": [1]}]", func(t *testing.T, r []Record) {
			if len(r) != 2 || r[0].Instruction != "a" || r[1].Where != "in.jsonl: item 2" {
				t.Errorf("%+v", r)
			}
		}},
		{"byte order mark", "\xEF\xBB\xBF{\"prompt\": \"a\"}\n", func(t *testing.T, r []Record) {
			if len(r) != 1 || r[0].Instruction != "a" {
				t.Errorf("%+v", r)
			}
		}},
		{"id and reference", `{"id": "q7", "prompt": "6*7?", "reference": "42", "answer": "ignored"}`, func(t *testing.T, r []Record) {
			if r[0].ID != "q7" || r[0].Reference != "42" {
				t.Errorf("%+v", r[0])
			}
		}},
		{"numeric id and gsm8k answer", `{"id": 12, "question_id": 3, "prompt": "Q", "answer": "so 6*7 = 42\n#### 42"}`, func(t *testing.T, r []Record) {
			if r[0].ID != "12" || r[0].Reference != "so 6*7 = 42\n#### 42" {
				t.Errorf("%+v", r[0])
			}
		}},
		{"id from uid then question_id", "{\"uid\": \"u\", \"prompt\": \"P\"}\n{\"question_id\": 81, \"turns\": [\"T\"]}\n{\"prompt\": \"P\"}", func(t *testing.T, r []Record) {
			if r[0].ID != "u" || r[1].ID != "81" || r[2].ID != "" || r[2].Reference != "" {
				t.Errorf("%+v", r)
			}
		}},
		{"empty", "", func(t *testing.T, r []Record) {
			if len(r) != 0 {
				t.Errorf("%+v", r)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := ReadRecords(strings.NewReader(tc.input), "in.jsonl")
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, recs)
		})
	}
}

func TestReadRecordsErrors(t *testing.T) {
	for _, tc := range []struct {
		name, input, want string
	}{
		{"bad json", "{\"prompt\": \"a\"}\n{\"prompt\": ", "in.jsonl:2:"},
		{"no prompt", "{\"prompt\": \"a\"}\n\n{\"text\": \"x\"}", `in.jsonl:3: no prompt`},
		{"empty ids", `{"prompt_input_ids": []}`, "prompt_input_ids is empty"},
		{"ids not numbers", `{"prompt_input_ids": ["a"]}`, "in.jsonl:1:"},
		{"empty messages", `{"messages": []}`, "messages is empty"},
		{"bad turn", `{"turns": [3]}`, "turns[0]"},
		{"bad id", "{\"prompt\": \"a\"}\n{\"id\": [1], \"prompt\": \"b\"}", "in.jsonl:2: id must be a string or a number, got [1]"},
		{"empty turns", `{"turns": []}`, "turns is empty"},
		{"bad array", `[{"prompt": "a"},`, "invalid JSON array"},
		{"bad array item", `[{"prompt": "a"}, {"x": 1}]`, "in.jsonl: item 2: no prompt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadRecords(strings.NewReader(tc.input), "in.jsonl")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// The shared AlpacaEval and Arena-Hard files read as prompts.
func TestReadSharedEvalFiles(t *testing.T) {
	for _, tc := range []struct {
		path  []string
		n     int
		check func(r Record) bool
	}{
		{[]string{"fixtures", "eval", "alpaca_eval", "gpt4_1106_preview_outputs.json"}, 805,
			func(r Record) bool { return r.Instruction != "" && r.Dataset != "" }},
		{[]string{"fixtures", "eval", "arena-hard-v0.1", "question.jsonl"}, 500,
			func(r Record) bool { return r.Instruction != "" && r.UID != "" && r.Category == "arena-hard-v0.1" }},
	} {
		t.Run(tc.path[len(tc.path)-1], func(t *testing.T) {
			f, err := os.Open(testutil.SharedPath(t, tc.path...))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			recs, err := ReadRecords(f, tc.path[len(tc.path)-1])
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != tc.n {
				t.Fatalf("%d records, want %d", len(recs), tc.n)
			}
			for _, r := range recs {
				if !tc.check(r) {
					t.Fatalf("%s: %+v", r.Where, r)
				}
			}
		})
	}
}

type fakeEncoder struct{ special []bool }

func (f *fakeEncoder) Encode(text string, add bool) ([]int, error) {
	f.special = append(f.special, add)
	ids := []int{}
	if add {
		ids = append(ids, 1)
	}
	for _, r := range text {
		ids = append(ids, int(r))
	}
	return ids, nil
}

func TestTokenize(t *testing.T) {
	tmpl, err := chat.New("{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}", nil)
	if err != nil {
		t.Fatal(err)
	}
	user := Record{Where: "f:1", Messages: []chat.Message{{Role: "user", Content: "hi"}}}
	conv := Record{Where: "f:2", Messages: []chat.Message{{Role: "system", Content: "s"}, {Role: "user", Content: "hi"}}}
	ids := Record{Where: "f:3", InputIDs: []int32{5, 6}}
	for _, tc := range []struct {
		name    string
		rec     Record
		tmpl    *chat.Template
		want    string // the encoded text, or the ids as runes
		special bool
		err     string
	}{
		{"template", user, tmpl, "<user>hi<assistant>", false, ""},
		{"no template", user, nil, "\x01hi", true, ""},
		{"no template, conversation", conv, nil, "", false, "f:2: the tokenizer has no chat template"},
		{"ids verbatim", ids, tmpl, "\x05\x06", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc := &fakeEncoder{}
			got, err := Tokenize(tc.rec, tc.tmpl, enc)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []rune
			for _, id := range got {
				s = append(s, rune(id))
			}
			if string(s) != tc.want {
				t.Errorf("encoded %q, want %q", string(s), tc.want)
			}
			if len(enc.special) > 0 && enc.special[0] != tc.special {
				t.Errorf("addSpecialTokens %v, want %v", enc.special[0], tc.special)
			}
		})
	}
}

// With the real Llama-2 tokenizer and template of tiny-random-llama, an
// instruction renders as "<s>[INST] … [/INST]" and encodes to one BOS.
func TestTokenizeLlama2Template(t *testing.T) {
	dir := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := tokenizer.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := chat.New(cfg.ChatTemplate, cfg.SpecialTokens())
	if err != nil {
		t.Fatal(err)
	}
	ids, err := Tokenize(Record{Where: "x", Messages: []chat.Message{{Role: "user", Content: "Hello"}}}, tmpl, tok)
	if err != nil {
		t.Fatal(err)
	}
	bos, _ := tok.TokenID("<s>")
	if ids[0] != int32(bos) || slices.Contains(ids[1:], int32(bos)) {
		t.Errorf("ids %v: want exactly one leading BOS %d", ids, bos)
	}
	back := make([]int, len(ids))
	for i, id := range ids {
		back[i] = int(id)
	}
	// (SentencePiece's prefix space after <s> shows up in the decoding, as in transformers)
	if got := tok.Decode(back, false); got != "<s> [INST] Hello [/INST]" {
		t.Errorf("decoded %q", got)
	}

	stops, err := StopTokens(dir, []int{1}, cfg.EOSToken, cfg.ChatTemplate, tok)
	if err != nil {
		t.Fatal(err)
	}
	eos, _ := tok.TokenID("</s>")
	if !slices.Equal(stops, []int{1, eos}) {
		t.Errorf("stop tokens %v, want [1 %d]", stops, eos)
	}
}
