package train

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/relupo/relupo/data"
	"github.com/relupo/relupo/model"
)

// NewEncoder returns the text pipeline for a model folder, or nil when the
// folder has no tokenizer (then only pre-tokenized data can be used). Text
// pairs are tokenized as the official SimPO/RePO script does (see
// data.Encoder), with o.ChatTemplate overriding the model's chat template and
// o.CompletionOnlyAssistantContent selecting TRL's convention. Token ids the
// model c has no embedding for are errors.
func NewEncoder(o Options, c model.Config) (Encoder, error) {
	if _, err := os.Stat(filepath.Join(o.Model, "tokenizer.json")); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	enc, err := data.NewEncoder(o.Model, data.EncodeOptions{
		ChatTemplate:            o.ChatTemplate,
		AssistantHeaderInPrompt: o.CompletionOnlyAssistantContent,
	})
	if err != nil {
		return nil, err
	}
	return textEncoder{enc: enc, vocab: c.VocabSize}, nil
}

// textEncoder adapts a data.Encoder to Encoder.
type textEncoder struct {
	enc   *data.Encoder
	vocab int // ids must be below it; 0: unchecked
}

// Encode tokenizes p into an Example.
func (t textEncoder) Encode(p data.Pair) (Example, error) {
	prompt, chosen, rejected, err := t.enc.Encode(p)
	if err != nil {
		return Example{}, err
	}
	e := Example{Source: p.Source}
	for _, f := range []struct {
		ids []int
		dst *[]int32
	}{{prompt, &e.Prompt}, {chosen, &e.Chosen}, {rejected, &e.Rejected}} {
		for _, id := range f.ids {
			if t.vocab > 0 && id >= t.vocab {
				return Example{}, fmt.Errorf("%s: token id %d is outside the model's vocabulary (vocab_size %d): does the tokenizer belong to this model?", p.Source, id, t.vocab)
			}
		}
		*f.dst = int32s(f.ids)
	}
	return e, nil
}
