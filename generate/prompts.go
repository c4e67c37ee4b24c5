package generate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/relupo/relupo/chat"
	"github.com/relupo/relupo/tokenizer"
)

// PromptEncoder turns prompt records into the ids a model continues: a
// folder's tokenizer with its chat template (see [Tokenize]).
type PromptEncoder struct {
	// Dir is the tokenizer folder.
	Dir       string
	Tokenizer *tokenizer.Tokenizer
	// Config is the folder's tokenizer_config.json (empty when absent).
	Config *tokenizer.Config
	// Template is the chat template, nil when the folder has none.
	Template *chat.Template
}

// LoadPromptEncoder reads dir's tokenizer.json, tokenizer_config.json and
// chat template.
func LoadPromptEncoder(dir string) (*PromptEncoder, error) {
	e := &PromptEncoder{Dir: dir}
	var err error
	if e.Tokenizer, err = tokenizer.Load(dir); err != nil {
		return nil, err
	}
	e.Config, err = tokenizer.LoadConfig(dir)
	if errors.Is(err, fs.ErrNotExist) {
		e.Config, err = &tokenizer.Config{}, nil
	}
	if err != nil {
		return nil, err
	}
	if e.Config.ChatTemplate != "" {
		if e.Template, err = chat.New(e.Config.ChatTemplate, e.Config.SpecialTokens()); err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
	}
	return e, nil
}

// WithVars makes every later rendering of the chat template also get vars
// as template variables (chat_template_kwargs; see chat.Template.With).
func (e *PromptEncoder) WithVars(vars map[string]any) {
	if e.Template != nil && len(vars) > 0 {
		e.Template = e.Template.With(vars)
	}
}

// EncodeAll tokenizes every record (see [Tokenize]), stopping when ctx is
// done.
func (e *PromptEncoder) EncodeAll(ctx context.Context, recs []Record) ([][]int32, error) {
	out := make([][]int32, len(recs))
	for i, r := range recs {
		// Rendering and tokenizing thousands of prompts takes a while: stop
		// when asked to.
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", r.Where, err)
		}
		var err error
		if out[i], err = Tokenize(r, e.Template, e.Tokenizer); err != nil {
			return nil, err
		}
	}
	return out, nil
}
