package data

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/relupo/relupo/chat"
	"github.com/relupo/relupo/internal/testutil"
)

// pipelineCase is one case of testdata/pipeline.json, written by
// testdata/gen_pipeline.py with the official algorithm.
type pipelineCase struct {
	Name           string    `json:"name"`
	Tokenizer      string    `json:"tokenizer"` // "../shared/..."
	Template       string    `json:"template"`
	HeaderInPrompt bool      `json:"header_in_prompt"`
	PlainText      bool      `json:"plain_text"`
	Record         *int      `json:"record"` // index in dpo_en_demo.json
	Prompt         []Message `json:"prompt"`
	Chosen         Message   `json:"chosen"`
	Rejected       Message   `json:"rejected"`

	PromptText, ChosenText, RejectedText string

	ChosenPromptIDs   []int `json:"chosen_prompt_ids"`
	ChosenIDs         []int `json:"chosen_ids"`
	RejectedPromptIDs []int `json:"rejected_prompt_ids"`
	RejectedIDs       []int `json:"rejected_ids"`
}

func (c *pipelineCase) UnmarshalJSON(b []byte) error {
	type plain pipelineCase
	var aux struct {
		plain
		PromptText   string `json:"prompt_text"`
		ChosenText   string `json:"chosen_text"`
		RejectedText string `json:"rejected_text"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*c = pipelineCase(aux.plain)
	c.PromptText, c.ChosenText, c.RejectedText = aux.PromptText, aux.ChosenText, aux.RejectedText
	return nil
}

func (c *pipelineCase) pair() Pair {
	f := FormatShareGPT
	if c.PlainText {
		f = FormatStandard
	}
	return Pair{Prompt: c.Prompt, Chosen: c.Chosen, Rejected: c.Rejected, PlainText: c.PlainText, Format: f, Source: c.Name}
}

func loadPipelineCases(t *testing.T) []pipelineCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "pipeline.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []pipelineCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	return cases
}

// encoders caches one Encoder per tokenizer folder and options.
type encoders map[string]*Encoder

func (m encoders) get(t *testing.T, dir string, opts EncodeOptions) *Encoder {
	t.Helper()
	key := fmt.Sprintf("%s|%+v", dir, opts)
	if e, ok := m[key]; ok {
		return e
	}
	e, err := NewEncoder(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	m[key] = e
	return e
}

func sharedFixture(t *testing.T, rel string) string {
	t.Helper()
	rest, ok := strings.CutPrefix(rel, "../shared/")
	if !ok {
		t.Fatalf("fixture path %q is not under ../shared", rel)
	}
	return testutil.SharedPath(t, strings.Split(rest, "/")...)
}

// TestEncodeMatchesOfficial checks Encode against the ids the official
// build_tokenized_answer/tokenize_row give (testdata/gen_pipeline.py).
func TestEncodeMatchesOfficial(t *testing.T) {
	cases := loadPipelineCases(t)
	if !slices.ContainsFunc(cases, func(c pipelineCase) bool { return !slices.Equal(c.ChosenPromptIDs, c.RejectedPromptIDs) }) {
		t.Error("pipeline.json has no case where a boundary merge on one side makes the chosen and rejected prompt ids differ")
	}
	encs := encoders{}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			dir := sharedFixture(t, c.Tokenizer)
			e := encs.get(t, dir, EncodeOptions{ChatTemplate: c.Template, AssistantHeaderInPrompt: c.HeaderInPrompt})
			p := c.pair()

			pt, ct, rt, err := e.Texts(p)
			if err != nil {
				t.Fatal(err)
			}
			if pt != c.PromptText || ct != c.ChosenText || rt != c.RejectedText {
				t.Errorf("texts differ:\n got %q\n     %q\n     %q\nwant %q\n     %q\n     %q", clip(pt), clip(ct), clip(rt), clip(c.PromptText), clip(c.ChosenText), clip(c.RejectedText))
			}

			prompt, chosen, rejected, err := e.Encode(p)
			if err != nil {
				t.Fatal(err)
			}
			// Each full sequence is the official one.
			if got, want := slices.Concat(prompt, chosen), slices.Concat(c.ChosenPromptIDs, c.ChosenIDs); !slices.Equal(got, want) {
				t.Errorf("chosen sequence:\n got %v\nwant %v", got, want)
			}
			if got, want := slices.Concat(prompt, rejected), slices.Concat(c.RejectedPromptIDs, c.RejectedIDs); !slices.Equal(got, want) {
				t.Errorf("rejected sequence:\n got %v\nwant %v", got, want)
			}
			// The prompt is the official one when both sides agree, else
			// their common prefix.
			if slices.Equal(c.ChosenPromptIDs, c.RejectedPromptIDs) {
				if !slices.Equal(prompt, c.ChosenPromptIDs) {
					t.Errorf("prompt:\n got %v\nwant %v", prompt, c.ChosenPromptIDs)
				}
			} else {
				n := min(len(c.ChosenPromptIDs), len(c.RejectedPromptIDs))
				for n > 0 && !slices.Equal(c.ChosenPromptIDs[:n], c.RejectedPromptIDs[:n]) {
					n--
				}
				if !slices.Equal(prompt, c.ChosenPromptIDs[:n]) {
					t.Errorf("prompt: got %v, want the common prefix %v", prompt, c.ChosenPromptIDs[:n])
				}
			}
		})
	}
}

// TestEncodeSharedRecords checks that the cases drawn from dpo_en_demo.json
// hold what the ShareGPT reader makes of those records, so that the expected
// ids are those of real data.
func TestEncodeSharedRecords(t *testing.T) {
	path := testutil.SharedPath(t, "fixtures", "data", "dpo_en_demo.json")
	r, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var pairs []Pair
	for {
		p, err := r.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		pairs = append(pairs, p)
	}
	for _, c := range loadPipelineCases(t) {
		if c.Record == nil {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			p := pairs[*c.Record]
			if !slices.Equal(p.Prompt, c.Prompt) || p.Chosen != c.Chosen || p.Rejected != c.Rejected {
				t.Errorf("record %d reads as %+v, the case holds %+v", *c.Record, p, c.pair())
			}
		})
	}
}

// TestResponseTextIsLoneAssistantRendering checks that, for the templates of
// the paper, the response text (the full rendering minus the prompt's) is
// what the official script renders from the assistant message alone (with a
// leading BOS string removed); and that it still works with Llama-2's
// template, which refuses a lone assistant message.
func TestResponseTextIsLoneAssistantRendering(t *testing.T) {
	readTemplate := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "chat", "testdata", "templates", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	special := map[string]string{"bos_token": "<s>", "eos_token": "</s>"}
	llama3 := map[string]string{"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
	gemma := map[string]string{"bos_token": "<bos>", "eos_token": "<eos>"}
	convs := map[string][]Message{
		"single": {{Role: "user", Content: "Hi"}},
		"multi":  {{Role: "user", Content: "Hi"}, {Role: "assistant", Content: "Hello!"}, {Role: "user", Content: " Tell me more. "}},
		"system": {{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Why?"}},
	}
	reply := Message{Role: "assistant", Content: " Because.\n"}
	tests := []struct {
		name, template string
		special        map[string]string
		loneFails      bool
	}{
		{"chat.SimPOMistralTemplate", chat.SimPOMistralTemplate, special, false},
		{"llama3", readTemplate("llama3.jinja"), llama3, false},
		{"gemma2-simpo", gemma2SimPO, gemma, false},
		// Templates that check that roles alternate refuse a lone
		// assistant message.
		{"llama2", llama2Template, special, true},
	}
	for _, tc := range tests {
		tmpl, err := chat.New(tc.template, tc.special)
		if err != nil {
			t.Fatal(err)
		}
		e := &Encoder{tmpl: tmpl, bos: tc.special["bos_token"]}
		for name, prompt := range convs {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				p := Pair{Prompt: prompt, Chosen: reply, Rejected: Message{Role: "assistant", Content: "No."}, Format: FormatConversational, Source: "t"}
				pt, ct, _, err := e.Texts(p)
				if err != nil {
					t.Fatal(err)
				}
				want, err := tmpl.Render([]chat.Message{{Role: reply.Role, Content: reply.Content}}, false)
				if tc.loneFails {
					if err == nil {
						t.Fatalf("lone assistant rendering succeeded (%q); the test expects the template to refuse it", want)
					}
					if !strings.HasSuffix(ct, "</s>") || strings.HasPrefix(ct, "<s>") || ct == "" {
						t.Errorf("response text %q", ct)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				want = strings.TrimPrefix(want, tc.special["bos_token"])
				if ct != want {
					t.Errorf("response text %q, lone assistant rendering %q (prompt %q)", ct, want, pt)
				}
			})
		}
	}
}

// The official chat templates of the paper's settings, as the SimPO
// repository sets them: MISTRAL_CHAT_TEMPLATE in scripts/run_simpo.py (no
// BOS, no role check) and the chat_template of
// training_configs/gemma-2-9b-it-simpo.yaml.
const (
	gemma2SimPO = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set system_message = messages[0]['content'] | trim + '\\n\\n' %}{% set messages = messages[1:] %}{% else %}{% set system_message = '' %}{% endif %}{% for message in messages %}{% if loop.index0 == 0 %}{% set content = system_message + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\\n' + content | trim + '<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"
	// llama2Template is Llama-2-chat's template (tiny-random-llama's).
	llama2Template = "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% elif USE_DEFAULT_PROMPT == true and not '<<SYS>>' in messages[0]['content'] %}{% set loop_messages = messages %}{% set system_message = 'DEFAULT_SYSTEM_MESSAGE' %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'system' %}{{ '<<SYS>>\\n' + content.strip() + '\\n<</SYS>>\\n\\n' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)

func TestEncodeTextErrors(t *testing.T) {
	dir := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	prefixBreaking := "{% for m in messages %}{{ m['content'] }}{% endfor %}{% if messages|length == 1 %}!{% endif %}"
	tests := []struct {
		name string
		opts EncodeOptions
		pair Pair
		want string
	}{
		{"template refuses", EncodeOptions{}, Pair{Prompt: []Message{{Role: "assistant", Content: "x"}}, Chosen: Message{Role: "assistant", Content: "a"}, Rejected: Message{Role: "assistant", Content: "b"}, Format: FormatConversational, Source: "f.jsonl:3"},
			"data: f.jsonl:3: rendering the prompt: "},
		{"prompt not a prefix", EncodeOptions{ChatTemplate: prefixBreaking}, Pair{Prompt: []Message{{Role: "user", Content: "q"}}, Chosen: Message{Role: "assistant", Content: "a"}, Rejected: Message{Role: "assistant", Content: "b"}, Format: FormatConversational, Source: "f.jsonl:4"},
			"data: f.jsonl:4: the chat template renders the prompt as"},
		{"empty prompt", EncodeOptions{}, Pair{Chosen: Message{Role: "assistant", Content: "a"}, Rejected: Message{Role: "assistant", Content: "b"}, Source: "f.jsonl:5"},
			"data: f.jsonl:5: empty prompt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewEncoder(dir, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			_, _, _, err = e.Encode(tc.pair)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %v, want one starting %q", err, tc.want)
			}
		})
	}
}

func TestNewEncoderTemplates(t *testing.T) {
	dir := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	jinja := filepath.Join(t.TempDir(), "t.jinja")
	if err := os.WriteFile(jinja, []byte("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := Pair{Prompt: []Message{{Role: "user", Content: "q"}}, Chosen: Message{Role: "assistant", Content: "a"}, Rejected: Message{Role: "assistant", Content: "b"}, Format: FormatConversational, Source: "s"}
	tests := []struct {
		template         string
		prompt, response string
	}{
		{"", "<s>[INST] q [/INST]", " a </s>"},
		{TemplateSimPOMistral, "[INST] q [/INST]", " a </s>"},
		{jinja, "<user>q", "<assistant>a"},
		{"{% for m in messages %}[{{ m['content'] }}]{% endfor %}", "[q]", "[a]"},
	}
	for _, tc := range tests {
		t.Run(tc.template, func(t *testing.T) {
			e, err := NewEncoder(dir, EncodeOptions{ChatTemplate: tc.template})
			if err != nil {
				t.Fatal(err)
			}
			pt, ct, _, err := e.Texts(p)
			if err != nil {
				t.Fatal(err)
			}
			if pt != tc.prompt || ct != tc.response {
				t.Errorf("texts %q, %q; want %q, %q", pt, ct, tc.prompt, tc.response)
			}
		})
	}
	if _, err := NewEncoder(dir, EncodeOptions{ChatTemplate: filepath.Join(t.TempDir(), "missing.jinja")}); err == nil {
		t.Error("a missing .jinja file was accepted")
	}
	if _, err := NewEncoder(dir, EncodeOptions{ChatTemplate: "{% if %}"}); err == nil {
		t.Error("a broken template was accepted")
	}
	if _, err := NewEncoder(t.TempDir(), EncodeOptions{}); err == nil {
		t.Error("a folder without tokenizer.json was accepted")
	}
}

// TestTokenizeRow covers the boundary rules with a toy tokenizer whose
// outputs are spelled out.
func TestTokenizeRow(t *testing.T) {
	const bos, eos = 1, 2
	tests := []struct {
		name                string
		vocab               map[string][]int // text -> ids
		bos, eos            int
		wantP, wantC, wantR []int
		wantErr             string
	}{
		{name: "no merge", vocab: map[string][]int{"P": {10}, "PC": {10, 20}, "PR": {10, 30}}, bos: bos, eos: eos,
			wantP: []int{bos, 10}, wantC: []int{20, eos}, wantR: []int{30, eos}},
		{name: "no bos token", vocab: map[string][]int{"P": {10}, "PC": {10, 20}, "PR": {10, 30}}, bos: -1, eos: eos,
			wantP: []int{10}, wantC: []int{20, eos}, wantR: []int{30, eos}},
		{name: "bos and eos already there", vocab: map[string][]int{"P": {bos, 10}, "PC": {bos, 10, 20, eos}, "PR": {bos, 10, 30}}, bos: bos, eos: eos,
			wantP: []int{bos, 10}, wantC: []int{20, eos}, wantR: []int{30, eos}},
		{name: "chosen merges", vocab: map[string][]int{"P": {10, 11}, "PC": {10, 12, 20}, "PR": {10, 11, 30}}, bos: bos, eos: eos,
			wantP: []int{bos, 10}, wantC: []int{12, 20, eos}, wantR: []int{11, 30, eos}},
		{name: "both merge", vocab: map[string][]int{"P": {10, 11}, "PC": {10, 12, 20}, "PR": {10, 13}}, bos: bos, eos: eos,
			wantP: []int{bos, 10}, wantC: []int{12, 20, eos}, wantR: []int{13, eos}},
		{name: "whole prompt merges", vocab: map[string][]int{"P": {11}, "PC": {12}, "PR": {11, 30}}, bos: bos, eos: eos,
			wantP: []int{bos}, wantC: []int{12, eos}, wantR: []int{11, 30, eos}},
		{name: "merge changes an earlier token", vocab: map[string][]int{"P": {10, 11, 12}, "PC": {14, 15, 16}, "PR": {10, 11, 12, 30}}, bos: bos, eos: eos,
			wantErr: "the chosen and rejected prompt ids differ in 2 tokens"},
		{name: "joint is shorter", vocab: map[string][]int{"P": {10, 11}, "PC": {13}, "PR": {10, 11, 30}}, bos: bos, eos: eos,
			wantErr: "chosen: prompt+response tokenizes to fewer ids than the prompt alone"},
		{name: "no eos token", vocab: map[string][]int{"P": {10}, "PC": {10, 20}, "PR": {10, 30}}, bos: bos, eos: -1,
			wantErr: "no eos_token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			encode := func(s string) ([]int, error) {
				ids, ok := tc.vocab[s]
				if !ok {
					return nil, fmt.Errorf("no ids for %q", s)
				}
				return ids, nil
			}
			p, c, r, err := tokenizeRow(encode, "P", "C", "R", tc.bos, tc.eos)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p, tc.wantP) || !slices.Equal(c, tc.wantC) || !slices.Equal(r, tc.wantR) {
				t.Errorf("got %v %v %v, want %v %v %v", p, c, r, tc.wantP, tc.wantC, tc.wantR)
			}
		})
	}
}

// TestEncodeFormats reads the format test files and checks which texts the
// encoder tokenizes: plain text verbatim, message lists through the chat
// template.
func TestEncodeFormats(t *testing.T) {
	dir := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	e, err := NewEncoder(dir, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file                     string
		record                   int
		prompt, chosen, rejected string
	}{
		{"standard.jsonl", 0, "The sky is", " blue.", " green."},
		{"implicit.jsonl", 0, "The sky is", " blue.", " green."},
		{"implicit.jsonl", 1, "<s>[INST] What color is the sky? [/INST]", " It is blue. </s>", " It is green. </s>"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%d", tc.file, tc.record), func(t *testing.T) {
			r, err := Open(filepath.Join("testdata", tc.file), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var p Pair
			for range tc.record + 1 {
				if p, err = r.Next(); err != nil {
					t.Fatal(err)
				}
			}
			pt, ct, rt, err := e.Texts(p)
			if err != nil {
				t.Fatal(err)
			}
			if pt != tc.prompt || ct != tc.chosen || rt != tc.rejected {
				t.Errorf("texts %q %q %q, want %q %q %q", pt, ct, rt, tc.prompt, tc.chosen, tc.rejected)
			}
			prompt, chosen, _, err := e.Encode(p)
			if err != nil {
				t.Fatal(err)
			}
			if prompt[0] != 1 || chosen[len(chosen)-1] != 2 {
				t.Errorf("ids %v %v: want BOS first and EOS last", prompt, chosen)
			}
		})
	}
}
