package chat

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relupo/relupo/internal/testutil"
	"github.com/relupo/relupo/tokenizer"
)

// expectedCase is one rendering produced by testdata/gen_expected.py with
// Jinja2 configured as transformers configures it.
type expectedCase struct {
	Template            string            `json:"template"`
	Conversation        string            `json:"conversation"`
	Messages            []Message         `json:"messages"`
	AddGenerationPrompt bool              `json:"add_generation_prompt"`
	Special             map[string]string `json:"special"`
	Output              *string           `json:"output"`
	Error               string            `json:"error"`
}

// templateSource returns the Jinja source of a named test template.
func templateSource(t *testing.T, name string) string {
	t.Helper()
	switch name {
	case "simpo_mistral":
		return SimPOMistralTemplate
	case "llama2", "qwen3":
		dir := map[string][]string{
			"llama2": {"fixtures", "models", "tiny-random-llama"},
			"qwen3":  {"fixtures", "tokenizers", "qwen3"},
		}[name]
		cfg, err := tokenizer.LoadConfig(testutil.SharedPath(t, dir...))
		if err != nil {
			t.Fatal(err)
		}
		return cfg.ChatTemplate
	}
	src, err := os.ReadFile(filepath.Join("testdata", "templates", name+".jinja"))
	if err != nil {
		t.Fatal(err)
	}
	return string(src)
}

func TestRenderMatchesJinja2(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exp struct {
		Cases []expectedCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &exp); err != nil {
		t.Fatal(err)
	}
	if len(exp.Cases) == 0 {
		t.Fatal("no cases")
	}
	compiled := map[string]*Template{}
	for _, c := range exp.Cases {
		name := c.Template + "/" + c.Conversation
		if c.AddGenerationPrompt {
			name += "/gen"
		}
		t.Run(name, func(t *testing.T) {
			tmpl := compiled[c.Template]
			if tmpl == nil {
				var err error
				if tmpl, err = New(templateSource(t, c.Template), c.Special); err != nil {
					t.Fatal(err)
				}
				compiled[c.Template] = tmpl
			}
			got, err := tmpl.Render(c.Messages, c.AddGenerationPrompt)
			if c.Output == nil {
				if err == nil || !strings.Contains(err.Error(), c.Error) {
					t.Fatalf("err = %v, want one containing %q", err, c.Error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != *c.Output {
				t.Errorf("got  %q\nwant %q", got, *c.Output)
			}
		})
	}
}

func TestEngineFeatures(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"tojson keeps unicode", `{{ {"a": "é", "b": [1, 2]} | tojson }}`, `{"a": "é", "b": [1, 2]}`},
		{"namespace and loop controls", `{% set ns = namespace(n=0) %}{% for m in messages %}{% if m.role == 'user' %}{% continue %}{% endif %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}`, "1"},
		{"string methods", `{{ messages[0].content.split('l')[0] }}|{{ '  x '.strip() }}|{{ 'abc'.startswith('ab') }}`, "he|x|True"},
		{"slicing and length", `{{ messages[1:] | length }}{{ messages[::-1][0].role }}`, "1assistant"},
		{"is defined", `{{ foo is defined }}{{ bos_token is defined }}`, "FalseTrue"},
		{"trim_blocks and lstrip_blocks", "{% for m in messages %}\n  {% if true %}\n[{{ m.role }}]\n  {% endif %}\n{% endfor %}\n", "[user]\n[assistant]\n"},
		{"strftime_now", `{{ strftime_now('%Y') | length }}`, "4"},
	}
	msgs := []Message{{Role: "user", Content: "hello"}, {Role: "assistant", Content: "hi"}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := New(tt.src, map[string]string{"bos_token": "<s>"})
			if err != nil {
				t.Fatal(err)
			}
			got, err := tmpl.Render(msgs, false)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	if _, err := New("", nil); err == nil {
		t.Error("empty template accepted")
	}
	if _, err := New("{% if %}", nil); err == nil {
		t.Error("syntax error accepted")
	}
	for _, src := range []string{`{% include "/etc/passwd" %}`, `{% import "x.jinja" as x %}`, `{% extends "base.jinja" %}`} {
		tmpl, err := New(src, nil)
		if err != nil {
			continue
		}
		if out, err := tmpl.Render(nil, false); err == nil {
			t.Errorf("%s rendered %q; want an error", src, out)
		}
	}
	tmpl, err := New(`{{ raise_exception('bad ' + messages[0].role) }}`, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmpl.Render([]Message{{Role: "tool"}}, false); err == nil || !strings.Contains(err.Error(), "bad tool") {
		t.Errorf("err = %v, want the template's message", err)
	}
}

// With's variables reach every rendering, over the special tokens and
// under RenderWith's; the template it came from is unchanged.
func TestWith(t *testing.T) {
	src := `{{ bos_token }}{% if enable_thinking is defined and not enable_thinking %}<no_think>{% endif %}{{ messages[0].content }}`
	base, err := New(src, map[string]string{"bos_token": "<s>"})
	if err != nil {
		t.Fatal(err)
	}
	msgs := []Message{{Role: "user", Content: "hi"}}
	off := base.With(map[string]any{"enable_thinking": false})
	for _, tc := range []struct {
		name  string
		tmpl  *Template
		extra map[string]any
		want  string
	}{
		{"base", base, nil, "<s>hi"},
		{"with", off, nil, "<s><no_think>hi"},
		{"extra wins", off, map[string]any{"enable_thinking": true}, "<s>hi"},
		{"over special tokens", base.With(map[string]any{"bos_token": "<B>"}), nil, "<B>hi"},
	} {
		got, err := tc.tmpl.RenderWith(msgs, false, tc.extra)
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}
