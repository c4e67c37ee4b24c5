package data

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/relupo/relupo/chat"
	"github.com/relupo/relupo/tokenizer"
)

// Chat template keywords accepted by [EncodeOptions.ChatTemplate].
const (
	// TemplateSimPOMistral selects [chat.SimPOMistralTemplate], the template
	// the official script installs for Mistral models.
	TemplateSimPOMistral = "simpo-mistral"
)

// EncodeOptions configure an [Encoder].
type EncodeOptions struct {
	// ChatTemplate overrides the model's chat template: the template text
	// itself, a path to a file ending in ".jinja", or the keyword
	// "simpo-mistral". Empty means the tokenizer's own template
	// (chat_template.jinja or tokenizer_config.json's chat_template).
	ChatTemplate string
	// AssistantHeaderInPrompt selects TRL's convention: the prompt is
	// rendered with the generation prompt (the assistant header), so the
	// header is context and only the assistant's content is scored.
	AssistantHeaderInPrompt bool
	// TemplateVars are extra chat template variables for every rendering
	// (chat_template_kwargs; see chat.Template.With), such as
	// {"enable_thinking": false}.
	TemplateVars map[string]any
}

// Encoder turns text preference pairs into token ids with a model's
// tokenizer and chat template. It is safe for concurrent use.
type Encoder struct {
	tok            *tokenizer.Tokenizer
	tmpl           *chat.Template // nil when there is no template
	bos            string         // BOS string; "" when there is none
	bosID, eosID   int            // -1 when absent
	headerInPrompt bool
}

// NewEncoder builds an Encoder from a model folder holding tokenizer.json
// and (normally) tokenizer_config.json, which gives the special tokens and
// the chat template.
func NewEncoder(modelDir string, opts EncodeOptions) (*Encoder, error) {
	tok, err := tokenizer.Load(modelDir)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	cfg, err := tokenizer.LoadConfig(modelDir)
	if errors.Is(err, fs.ErrNotExist) {
		cfg = &tokenizer.Config{} // a bare tokenizer.json: no special tokens, no template
	} else if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	e := &Encoder{tok: tok, bos: cfg.BOSToken, bosID: -1, eosID: -1, headerInPrompt: opts.AssistantHeaderInPrompt}
	if cfg.BOSToken != "" {
		id, ok := tok.TokenID(cfg.BOSToken)
		if !ok {
			return nil, fmt.Errorf("data: %s: bos_token %q is not in the tokenizer's vocabulary", modelDir, cfg.BOSToken)
		}
		e.bosID = id
	}
	if cfg.EOSToken != "" {
		id, ok := tok.TokenID(cfg.EOSToken)
		if !ok {
			return nil, fmt.Errorf("data: %s: eos_token %q is not in the tokenizer's vocabulary", modelDir, cfg.EOSToken)
		}
		e.eosID = id
	}
	src, err := templateText(opts.ChatTemplate, cfg.ChatTemplate)
	if err != nil {
		return nil, err
	}
	if src != "" {
		if e.tmpl, err = chat.New(src, cfg.SpecialTokens()); err == nil && len(opts.TemplateVars) > 0 {
			e.tmpl = e.tmpl.With(opts.TemplateVars)
		}
		if err != nil {
			return nil, fmt.Errorf("data: chat template: %w", err)
		}
	}
	return e, nil
}

// templateText resolves EncodeOptions.ChatTemplate against the model's own
// template: a keyword, template text (it has {{ or {%), or a path (see
// ReadTemplate). A value that is none of these is an error, never used as
// template text.
func templateText(opt, own string) (string, error) {
	switch {
	case opt == "":
		return own, nil
	case opt == TemplateSimPOMistral:
		return chat.SimPOMistralTemplate, nil
	case strings.Contains(opt, "{{") || strings.Contains(opt, "{%"):
		return opt, nil
	}
	return ReadTemplate(opt)
}

// TemplateOverride returns the text of an EncodeOptions.ChatTemplate
// value (a keyword, template text or a path; see ReadTemplate), or "" when
// opt is empty (the model's own template applies).
func TemplateOverride(opt string) (string, error) { return templateText(opt, "") }

// ReadTemplate reads a chat template from a path: a model or tokenizer
// folder (its chat_template.jinja, else tokenizer_config.json's
// chat_template), a tokenizer_config.json, or a template file (.jinja or
// any text holding {{ or {%).
func ReadTemplate(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("data: chat template %q is neither template text (it has no {{ or {%%}) nor a readable file or folder: %w", path, err)
	}
	var src string
	switch {
	case st.IsDir():
		cfg, err := tokenizer.LoadConfig(path)
		if errors.Is(err, fs.ErrNotExist) {
			b, jerr := os.ReadFile(filepath.Join(path, "chat_template.jinja"))
			if jerr != nil {
				return "", fmt.Errorf("data: chat template folder %s has neither chat_template.jinja nor tokenizer_config.json", path)
			}
			src = string(b)
		} else if err != nil {
			return "", fmt.Errorf("data: chat template: %w", err)
		} else {
			src = cfg.ChatTemplate
		}
	case filepath.Base(path) == "tokenizer_config.json":
		cfg, err := tokenizer.LoadConfig(path)
		if err != nil {
			return "", fmt.Errorf("data: chat template: %w", err)
		}
		src = cfg.ChatTemplate
	default:
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("data: chat template: %w", err)
		}
		src = string(b)
		if !strings.Contains(src, "{{") && !strings.Contains(src, "{%") {
			return "", fmt.Errorf("data: chat template file %s holds no Jinja ({{ or {%%}): give a .jinja file, a tokenizer_config.json or a model folder", path)
		}
	}
	if strings.TrimSpace(src) == "" {
		return "", fmt.Errorf("data: %s has no chat template", path)
	}
	return src, nil
}

// Encode tokenizes a pair: the prompt ids (starting with BOS when the
// tokenizer has one) and the chosen and rejected response ids (each ending
// with EOS). Pre-tokenized pairs are returned as they are. Errors name
// p.Source.
func (e *Encoder) Encode(p Pair) (prompt, chosen, rejected []int, err error) {
	if p.Tokenized {
		return slices.Clone(p.PromptIDs), slices.Clone(p.ChosenIDs), slices.Clone(p.RejectedIDs), nil
	}
	promptText, chosenText, rejectedText, err := e.texts(p)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("data: %s: %w", p.Source, err)
	}
	prompt, chosen, rejected, err = tokenizeRow(e.encodeText, promptText, chosenText, rejectedText, e.bosID, e.eosID)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("data: %s: %w", p.Source, err)
	}
	if slices.Equal(chosen, rejected) {
		return nil, nil, nil, fmt.Errorf("data: %s: the chosen and rejected responses are identical after the chat template (%q): does the template drop assistant messages?", p.Source, clip(chosenText))
	}
	return prompt, chosen, rejected, nil
}

// Texts returns the strings Encode tokenizes for p: the prompt text and the
// chosen and rejected response texts.
func (e *Encoder) Texts(p Pair) (prompt, chosen, rejected string, err error) {
	prompt, chosen, rejected, err = e.texts(p)
	if err != nil {
		err = fmt.Errorf("data: %s: %w", p.Source, err)
	}
	return prompt, chosen, rejected, err
}

func (e *Encoder) texts(p Pair) (prompt, chosen, rejected string, err error) {
	if p.Tokenized {
		return "", "", "", errors.New("pre-tokenized record has no text")
	}
	if len(p.Prompt) == 0 {
		return "", "", "", errors.New("empty prompt")
	}
	if p.PlainText {
		if len(p.Prompt) != 1 {
			return "", "", "", fmt.Errorf("plain-text record with %d prompt messages, want 1", len(p.Prompt))
		}
		return p.Prompt[0].Content, p.Chosen.Content, p.Rejected.Content, nil
	}
	if e.tmpl == nil {
		return "", "", "", errors.New("the tokenizer has no chat template to render the messages (give a chat template, for example --chat-template simpo-mistral or a .jinja file)")
	}
	msgs := make([]chat.Message, len(p.Prompt), len(p.Prompt)+1)
	for i, m := range p.Prompt {
		msgs[i] = chat.Message{Role: m.Role, Content: m.Content}
	}
	if prompt, err = e.tmpl.Render(msgs, e.headerInPrompt); err != nil {
		return "", "", "", fmt.Errorf("rendering the prompt: %w", err)
	}
	response := func(m Message, which string) (string, error) {
		full, err := e.tmpl.Render(append(msgs, chat.Message{Role: m.Role, Content: m.Content}), false)
		if err != nil {
			return "", fmt.Errorf("rendering the %s conversation: %w", which, err)
		}
		rest, ok := strings.CutPrefix(full, prompt)
		if !ok {
			return "", fmt.Errorf("the chat template renders the prompt as %q, which does not begin the rendering of the %s conversation %q, so the response cannot be told apart", clip(prompt), which, clip(full))
		}
		if e.bos != "" {
			rest = strings.TrimPrefix(rest, e.bos)
		}
		return rest, nil
	}
	if chosen, err = response(p.Chosen, "chosen"); err != nil {
		return "", "", "", err
	}
	if rejected, err = response(p.Rejected, "rejected"); err != nil {
		return "", "", "", err
	}
	return prompt, chosen, rejected, nil
}

// clip shortens s for an error message.
func clip(s string) string {
	const n = 120
	if r := []rune(s); len(r) > n {
		return string(r[:n/2]) + "…" + string(r[len(r)-n/2:])
	}
	return s
}

func (e *Encoder) encodeText(s string) ([]int, error) {
	return e.tok.Encode(s, false)
}

// tokenizeRow is the official tokenize_row for a decoder-only model, with one
// prompt for both responses (see the package documentation). bos < 0 means
// the tokenizer has no BOS token; eos must be a token id.
func tokenizeRow(encode func(string) ([]int, error), promptText, chosenText, rejectedText string, bos, eos int) (prompt, chosen, rejected []int, err error) {
	if eos < 0 {
		return nil, nil, nil, errors.New("the tokenizer has no eos_token (tokenizer_config.json), which ends every response")
	}
	promptIDs, err := encode(promptText)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("tokenizing the prompt: %w", err)
	}
	cp, ca, err := buildTokenizedAnswer(encode, promptText, chosenText, promptIDs)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("chosen: %w", err)
	}
	rp, ra, err := buildTokenizedAnswer(encode, promptText, rejectedText, promptIDs)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("rejected: %w", err)
	}
	diff := 0
	for i := range min(len(cp), len(rp)) {
		if cp[i] != rp[i] {
			diff++
		}
	}
	if diff > 1 || abs(len(cp)-len(rp)) > 1 {
		return nil, nil, nil, fmt.Errorf("the chosen and rejected prompt ids differ in %d tokens and by %d in length, more than the last token a tokenizer merge can change", diff, abs(len(cp)-len(rp)))
	}
	if bos >= 0 {
		if len(cp) == 0 || cp[0] != bos {
			cp = append([]int{bos}, cp...)
		}
		if len(rp) == 0 || rp[0] != bos {
			rp = append([]int{bos}, rp...)
		}
	}
	if len(ca) == 0 || ca[len(ca)-1] != eos {
		ca = append(ca, eos)
	}
	if len(ra) == 0 || ra[len(ra)-1] != eos {
		ra = append(ra, eos)
	}
	n := 0
	for n < len(cp) && n < len(rp) && cp[n] == rp[n] {
		n++
	}
	prompt = cp[:n:n]
	chosen = append(slices.Clip(cp[n:]), ca...)
	rejected = append(slices.Clip(rp[n:]), ra...)
	return prompt, chosen, rejected, nil
}

// buildTokenizedAnswer is the official build_tokenized_answer: it returns
// the prompt ids and the answer ids of prompt+answer tokenized jointly, the
// boundary moved back by one token when the joint tokenization changed the
// prompt's ids.
func buildTokenizedAnswer(encode func(string) ([]int, error), promptText, answerText string, promptIDs []int) (prompt, answer []int, err error) {
	full, err := encode(promptText + answerText)
	if err != nil {
		return nil, nil, fmt.Errorf("tokenizing prompt and response: %w", err)
	}
	start := len(promptIDs)
	if len(full) < start {
		return nil, nil, errors.New("prompt+response tokenizes to fewer ids than the prompt alone")
	}
	if !slices.Equal(promptIDs, full[:start]) {
		start--
	}
	return slices.Clone(full[:start]), slices.Clone(full[start:]), nil
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
