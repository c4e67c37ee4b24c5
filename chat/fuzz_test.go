package chat

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzRender: any template text and message content either fails to
// compile, renders, or returns an error; it never panics. Seeds are the
// templates in testdata plus SimPO's Mistral template.
func FuzzRender(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "templates", "*.jinja"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b), "Hello {{ there }} ü")
	}
	f.Add(SimPOMistralTemplate, "[INST] hi")
	f.Add("{% for m in messages %}{{ m['role'] }}: {{ m['content'] | trim }}\n{% endfor %}", "x")
	f.Add("{{ raise_exception('no') }}", "")
	f.Add("{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}{% endif %}{{ bos_token }}", "s")
	f.Fuzz(func(t *testing.T, template, content string) {
		// Bound the work one input can ask for: Jinja has no unbounded
		// loops, but range() and string repetition can be made huge.
		if len(template) > 2000 || strings.Contains(template, "range") || strings.Contains(template, "*") {
			return
		}
		tmpl, err := New(template, map[string]string{"bos_token": "<s>", "eos_token": "</s>"})
		if err != nil {
			return
		}
		msgs := []Message{{Role: "system", Content: "sys"}, {Role: "user", Content: content}, {Role: "assistant", Content: content}}
		tmpl.Render(msgs, true)
		tmpl.Render(msgs[1:2], false)
	})
}
