// Package chat renders Hugging Face chat templates (the Jinja templates in
// tokenizer_config.json) the way transformers' apply_chat_template does:
// Jinja2 semantics with trim_blocks and lstrip_blocks, the raise_exception
// and strftime_now functions, the tojson filter, and the variables messages,
// add_generation_prompt and the special tokens (bos_token, eos_token, …).
//
// Templates run in a sandbox: the engine has no include, import or extends
// from files and no access to the file system or the network, and every
// rendering is bounded in recursion, steps, time, memory and output (see
// MaxDepth and the limits beside it). A template's error text (such as a
// raise_exception message) is returned on one line, with terminal control
// characters removed.
package chat

import (
	"errors"
	"fmt"
	"maps"

	"github.com/ardanlabs/jinja"
	"github.com/relupo/relupo/internal/textsafe"
)

// SimPOMistralTemplate is the chat template that the SimPO and RePO training
// scripts (princeton-nlp/SimPO scripts/run_simpo.py, junkangwu/RePO
// scripts/run_repo.py) install in place of the tokenizer's own when the
// model path contains "mistral". A system message is stripped and prepended
// to the first user turn; a user turn renders as "[INST] content [/INST]"
// (content stripped) and an assistant turn as a space, the stripped content,
// a space, then the EOS token. Unlike Mistral's own template it writes no BOS
// (the tokenization pipeline prepends the BOS id) and does not check that
// roles alternate; other roles render nothing.
const SimPOMistralTemplate = "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'].strip() + '\\n\\n' %}{% else %}{% set loop_messages = messages %}{% set system_message = '' %}{% endif %}{% for message in loop_messages %}{% if loop.index0 == 0 %}{% set content = system_message + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"

// Message is one turn of a conversation.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Template is a compiled chat template. It is safe for concurrent use.
type Template struct {
	tmpl    *jinja.Template
	special map[string]string
	vars    map[string]any // With's variables
}

// New compiles a chat template. special holds the special tokens the
// template may refer to, by variable name: "bos_token", "eos_token", ….
func New(template string, special map[string]string) (*Template, error) {
	if template == "" {
		return nil, errors.New("chat: empty template")
	}
	guarded, err := instrument(template)
	if err != nil {
		return nil, fmt.Errorf("chat: %w", err)
	}
	tmpl, err := jinja.Compile(guarded)
	if err != nil {
		return nil, fmt.Errorf("chat: compiling template: %w", err)
	}
	return &Template{tmpl: tmpl, special: maps.Clone(special)}, nil
}

// With returns a copy of t whose renderings also get vars as template
// variables, as apply_chat_template's keyword arguments (chat_template_kwargs)
// do: for example Qwen3's and SmolLM3's enable_thinking. They override the
// special tokens; RenderWith's extra overrides them.
func (t *Template) With(vars map[string]any) *Template {
	c := *t
	c.vars = maps.Clone(vars)
	return &c
}

// Render renders a conversation. With addGenerationPrompt the template
// appends the header that starts an assistant turn. An error raised by the
// template (raise_exception) is returned with the template's message.
func (t *Template) Render(messages []Message, addGenerationPrompt bool) (string, error) {
	return t.RenderWith(messages, addGenerationPrompt, nil)
}

// RenderWith is Render with extra template variables, such as Qwen3's
// enable_thinking; they override the special tokens but not messages or
// add_generation_prompt.
func (t *Template) RenderWith(messages []Message, addGenerationPrompt bool, extra map[string]any) (string, error) {
	msgs := make([]any, len(messages))
	for i, m := range messages {
		msgs[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	data := map[string]any{"tools": nil, "documents": nil}
	for k, v := range t.special {
		data[k] = v
	}
	maps.Copy(data, t.vars)
	maps.Copy(data, extra)
	data["messages"] = msgs
	data["add_generation_prompt"] = addGenerationPrompt
	out, err := t.render(data)
	if err != nil {
		return "", fmt.Errorf("chat: rendering template: %w", err)
	}
	return out, nil
}

// render runs the template under the limits of limits.go.
func (t *Template) render(data map[string]any) (out string, err error) {
	vals := make(map[string]jinja.Value, len(data)+8)
	for k, v := range data {
		vals[k] = jinja.FromGoValue(v)
	}
	maps.Copy(vals, newGuard().values())
	defer func() {
		if r := recover(); r != nil {
			out, err = "", fmt.Errorf("the template failed: %v", r)
		}
	}()
	out, err = t.tmpl.RenderValues(vals)
	if err == nil && len(out) > MaxValueBytes {
		return "", fmt.Errorf("%w: %d bytes of output (the limit is %d MiB)", errLimit, len(out), MaxValueBytes>>20)
	}
	if err != nil {
		err = errors.New(textsafe.Limit(err.Error(), 500))
	}
	return out, err
}
