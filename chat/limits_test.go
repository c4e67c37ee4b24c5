package chat

import (
	"strings"
	"testing"

	"github.com/ardanlabs/jinja"
)

// TestHostileTemplates runs templates that crashed relupo (a recursive
// macro overflowed the Go stack) or grew without bound (range(10**9),
// 'x' * 100000000, a string doubled in a loop): each must end in an
// error naming the limit, promptly and without a crash.
func TestHostileTemplates(t *testing.T) {
	for _, c := range []struct {
		name, src string
		want      string // in the error of New or Render
	}{
		{"recursive macro", `{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}`, "macros nested more than 64 deep"},
		{"mutually recursive macros", "{%- macro a() -%}{{ b() }}{%- endmacro -%}\n{%- macro b() -%}{{ a() }}{%- endmacro -%}{{ a() }}", "macros nested more than 64 deep"},
		{"power", `{% for i in range(10**9) %}x{% endfor %}`, "the power operator (**) is not allowed"},
		{"huge literal range", `{% for i in range(1000000000) %}x{% endfor %}`, "the integer 1000000000 is larger than 1000000"},
		{"huge literal repetition", `{{ 'x' * 100000000 }}`, "the integer 100000000 is larger than 1000000"},
		{"computed range", `{% set n = 1000 %}{% for i in range(n * n * n) %}x{% endfor %}`, "range of 1000000000 items"},
		{"doubling string", `{% set ns = namespace(s='x') %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}`, "a string of"},
		{"nested loops", `{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}{% endfor %}{% endfor %}{% endfor %}`, "more than 1000000 steps"},
		{"negative repetition", `{% set n = 0 - 1 %}{{ 'x' * n }}`, "the template failed"},
		{"raise with escapes", `{{ raise_exception("\x1b[2J\x1b[1;32mtraining finished\nok") }}`, "training finished ok"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tmpl, err := New(c.src, nil)
			if err == nil {
				_, err = tmpl.Render([]Message{{Role: "user", Content: "hi"}}, false)
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
			if strings.ContainsAny(err.Error(), "\x1b\n\r") {
				t.Fatalf("the error carries control characters: %q", err)
			}
		})
	}
}

// TestInstrumentKeepsOutput checks that the guard calls render nothing
// and keep the whitespace control of the tags they follow, on templates
// that exercise loops, macros, sets, raw blocks and comments.
func TestInstrumentKeepsOutput(t *testing.T) {
	msgs := []Message{{Role: "system", Content: " sys "}, {Role: "user", Content: "a\nb"}, {Role: "assistant", Content: "c"}}
	for _, src := range []string{
		"{% for m in messages %}\n  {{ m.role }}: {{ m.content }}\n{% endfor %}",
		"{%- for m in messages -%}\n  {{- m.role }}\n{%- endfor %}\n",
		"{% macro r(m) -%}\n  [{{ m.content|trim }}]\n{%- endmacro %}\n{% for m in messages %}{{ r(m) }}{% endfor %}",
		"{% set x = 1 %}\n{% set ns = namespace(n=0) %}\n{%- for m in messages %}{% set ns.n = ns.n + x %}{% endfor -%}\n{{ ns.n }}",
		"{% set block %}\n  body {{ messages|length }}\n{% endset %}[{{ block }}]",
		"{# {% for m in messages %} #}{% raw %}{% for x in y %}{{ z }}{% endraw %}\n{{ '{% for %}' }}",
		"    {% if true %}\n    {% for m in messages %}\n        x\n    {% endfor %}\n    {% endif %}\n",
	} {
		raw, err := compileRaw(src)
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		want, err := raw.Render(map[string]any{"messages": toAny(msgs)})
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		tmpl, err := New(src, nil)
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		got, err := tmpl.Render(msgs, false)
		if err != nil || got != want {
			t.Errorf("%q: guarded rendering %q (%v), the engine's own %q", src, got, err, want)
		}
	}
}

func compileRaw(src string) (*jinja.Template, error) { return jinja.Compile(src) }

func toAny(msgs []Message) []any {
	out := make([]any, len(msgs))
	for i, m := range msgs {
		out[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	return out
}
