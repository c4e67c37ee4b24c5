package train

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/relupo/relupo/data"
)

// Example is one preference pair as token ids: the prompt, then each
// response. Every response token is a label, scored by the log-prob the
// model gives it after the prompt and the response tokens before it.
type Example struct {
	Prompt, Chosen, Rejected []int32
	// RefChosen and RefRejected are reference log-prob sums carried by the
	// data (TRL's ref_chosen_logps and ref_rejected_logps), or nil.
	RefChosen, RefRejected *float64
	// Source names the record ("file:line") for error messages.
	Source string
}

// Encoder turns a text preference pair into token ids, through the model's
// chat template and tokenizer. Pre-tokenized pairs never reach it.
type Encoder interface {
	Encode(p data.Pair) (Example, error)
}

// FromPair converts a data.Pair: pre-tokenized ids are used verbatim, text
// goes through enc. enc may be nil when every pair is pre-tokenized.
func FromPair(p data.Pair, enc Encoder) (Example, error) {
	if !p.Tokenized {
		if enc == nil {
			return Example{}, fmt.Errorf("%s: text record, but no tokenizer to encode it (give a model folder with tokenizer.json, or pre-tokenized data)", p.Source)
		}
		e, err := enc.Encode(p)
		if err != nil {
			return Example{}, err
		}
		e.RefChosen, e.RefRejected, e.Source = p.RefChosenLogps, p.RefRejectedLogps, p.Source
		return e, nil
	}
	return Example{
		Prompt: int32s(p.PromptIDs), Chosen: int32s(p.ChosenIDs), Rejected: int32s(p.RejectedIDs),
		RefChosen: p.RefChosenLogps, RefRejected: p.RefRejectedLogps, Source: p.Source,
	}, nil
}

// int32s converts token ids to the model's int32.
func int32s(ids []int) []int32 {
	out := make([]int32, len(ids))
	for i, id := range ids {
		out[i] = int32(id)
	}
	return out
}

// Truncate applies the official SimPO/RePO truncation (method.md A.3 step 8)
// with maxLength L and maxPromptLength P: when the prompt plus the longer
// response exceeds L, the prompt is cut to P tokens (its last P with
// keep_end, its first P with keep_start); when that is still too long, both
// responses are cut to their first L − P tokens. maxLength ≤ 0 disables it.
func (e *Example) Truncate(maxLength, maxPromptLength int, mode string) {
	if maxLength <= 0 {
		return
	}
	longer := max(len(e.Chosen), len(e.Rejected))
	if len(e.Prompt)+longer > maxLength && len(e.Prompt) > maxPromptLength {
		if mode == "keep_start" {
			e.Prompt = e.Prompt[:maxPromptLength]
		} else {
			e.Prompt = e.Prompt[len(e.Prompt)-maxPromptLength:]
		}
	}
	if len(e.Prompt)+longer > maxLength {
		keep := max(maxLength-maxPromptLength, 0)
		e.Chosen = e.Chosen[:min(keep, len(e.Chosen))]
		e.Rejected = e.Rejected[:min(keep, len(e.Rejected))]
	}
}

// labels is the number of scored tokens of a response after prompt.
func labels(prompt, response []int32) int {
	n := len(response)
	if len(prompt) == 0 && n > 0 {
		n-- // the first token of a sequence has no previous position
	}
	return n
}

// Check reports an example that cannot be trained on: a response with no
// scored token would make its average log-prob 0/0.
func (e *Example) Check() error {
	if labels(e.Prompt, e.Chosen) == 0 {
		return fmt.Errorf("%s: the chosen response has no tokens to score (empty, or cut away by truncation: is max_prompt_length ≥ max_length?)", e.Source)
	}
	if labels(e.Prompt, e.Rejected) == 0 {
		return fmt.Errorf("%s: the rejected response has no tokens to score (empty, or cut away by truncation: is max_prompt_length ≥ max_length?)", e.Source)
	}
	return nil
}

// LoadOptions say how LoadExamples turns records into examples.
type LoadOptions struct {
	// Format is the record format (data.FormatAuto detects it per file).
	Format data.Format
	// Encoder tokenizes text records; nil when every record is
	// pre-tokenized.
	Encoder Encoder
	// MaxLength, MaxPromptLength and TruncationMode are the truncation of
	// Example.Truncate.
	MaxLength, MaxPromptLength int
	TruncationMode             string
	// SkipInvalid skips the records that cannot be trained on (a text that
	// cannot be encoded, a response left without tokens to score) instead
	// of stopping at the first; each is reported to OnSkip.
	SkipInvalid bool
	// Strict makes the records the data reader would skip (an empty
	// response, identical responses) errors, so that every input record
	// yields an example, in order.
	Strict bool
	// OnSkip, when set, receives the error of every skipped record: those
	// the data reader skips (see data.Options.OnSkip) and, with SkipInvalid,
	// the invalid ones.
	OnSkip func(error)
}

// LoadExamples reads every source (with its fraction), converts the
// pairs and truncates them, as lo says.
func LoadExamples(ctx context.Context, sources []data.Source, lo LoadOptions) ([]Example, error) {
	for _, s := range sources {
		st, err := os.Stat(s.Path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("data: %s: no such file (relupo reads local JSON, JSONL and Parquet files; for a Hub dataset, download its files and give their paths)", s.Path)
		case err != nil:
			return nil, fmt.Errorf("data: %w", err)
		case st.IsDir():
			return nil, fmt.Errorf("data: %s is a folder; give the data files inside it", s.Path)
		}
	}
	pairs, err := data.LoadAll(ctx, sources, data.Options{Format: lo.Format, Strict: lo.Strict, OnSkip: lo.OnSkip})
	if err != nil {
		return nil, err
	}
	out := make([]Example, 0, len(pairs))
	for _, p := range pairs {
		e, err := FromPair(p, lo.Encoder)
		if err == nil {
			e.Truncate(lo.MaxLength, lo.MaxPromptLength, lo.TruncationMode)
			err = e.Check()
		}
		if err != nil {
			// A text record without a tokenizer is a setup error, never
			// skipped.
			if !lo.SkipInvalid || !p.Tokenized && lo.Encoder == nil {
				return nil, err
			}
			if lo.OnSkip != nil {
				lo.OnSkip(err)
			}
			continue
		}
		out = append(out, e)
	}
	return out, nil
}
