package data

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
)

// Example is one preference pair as token ids, ready for a model: the
// prompt, then each response. Every response token is a label, scored by
// the log-prob the model gives it after the prompt and the response tokens
// before it.
type Example struct {
	Prompt, Chosen, Rejected []int32
	// RefChosen and RefRejected are the reference model's log-prob sums of
	// the responses: carried by the data (TRL's ref_chosen_logps and
	// ref_rejected_logps columns), or attached later by whoever computes
	// them. Nil when unknown.
	RefChosen, RefRejected *float64
	// Untruncated holds the prompt, chosen and rejected lengths before
	// truncation.
	Untruncated [3]int
	// Turns is the number of user turns of a text record's prompt (0 for a
	// pre-tokenized record).
	Turns int
	// Source names the record ("file:line") for error messages.
	Source string
}

// SetRef attaches reference log-prob sums to e.
func (e *Example) SetRef(chosen, rejected float64) {
	e.RefChosen, e.RefRejected = &chosen, &rejected
}

// HasRef reports whether e carries both reference sums.
func (e *Example) HasRef() bool { return e.RefChosen != nil && e.RefRejected != nil }

// Truncation is the official SimPO/RePO truncation (method.md A.3 step 8).
// The zero Truncation cuts nothing.
type Truncation struct {
	// MaxLength is the longest prompt + response, in tokens; ≤ 0 disables
	// truncation.
	MaxLength int
	// MaxPromptLength is how many prompt tokens a too-long pair keeps.
	MaxPromptLength int
	// Mode is "keep_end" (keep the end of a long prompt; the default) or
	// "keep_start".
	Mode string
}

// Validate reports a truncation that could cut responses to nothing or
// names an unknown mode.
func (t Truncation) Validate() error {
	if t.Mode != "" && t.Mode != "keep_end" && t.Mode != "keep_start" {
		return fmt.Errorf("truncation_mode must be keep_end or keep_start, got %q", t.Mode)
	}
	if t.MaxLength < 0 || t.MaxPromptLength < 0 {
		return errors.New("max_length and max_prompt_length must be ≥ 0")
	}
	if t.MaxLength > 0 && t.MaxPromptLength >= t.MaxLength {
		return fmt.Errorf("max_prompt_length (%d) must be smaller than max_length (%d), or responses can be cut to nothing", t.MaxPromptLength, t.MaxLength)
	}
	return nil
}

// Apply truncates e: when the prompt plus the longer response exceeds
// MaxLength, the prompt is cut to MaxPromptLength tokens (its last ones with
// keep_end, its first with keep_start); when that is still too long, both
// responses are cut to their first MaxLength − MaxPromptLength tokens.
func (t Truncation) Apply(e *Example) {
	if t.MaxLength <= 0 {
		return
	}
	longer := max(len(e.Chosen), len(e.Rejected))
	if len(e.Prompt)+longer > t.MaxLength && len(e.Prompt) > t.MaxPromptLength {
		if t.Mode == "keep_start" {
			e.Prompt = e.Prompt[:t.MaxPromptLength]
		} else {
			e.Prompt = e.Prompt[len(e.Prompt)-t.MaxPromptLength:]
		}
	}
	if len(e.Prompt)+longer > t.MaxLength {
		keep := max(t.MaxLength-t.MaxPromptLength, 0)
		e.Chosen = e.Chosen[:min(keep, len(e.Chosen))]
		e.Rejected = e.Rejected[:min(keep, len(e.Rejected))]
	}
}

// Labels is the number of scored tokens of a response after prompt: all of
// them, but for the first when the prompt is empty (the first token of a
// sequence has no previous position to be scored from).
func Labels(prompt, response []int32) int {
	n := len(response)
	if len(prompt) == 0 && n > 0 {
		n--
	}
	return n
}

// Limits are what a model accepts; the zero Limits accepts everything.
type Limits struct {
	// VocabSize bounds the token ids: each must be in [0, VocabSize).
	VocabSize int
}

// Check reports an example that a model with the given limits cannot train
// on: a token id outside the vocabulary, a response with no scored token
// (its average log-prob would be 0/0), or non-finite reference log-probs.
// Errors name e.Source.
func (e *Example) Check(lim Limits) error {
	if lim.VocabSize > 0 {
		for _, part := range []struct {
			name string
			ids  []int32
		}{{"prompt", e.Prompt}, {"chosen", e.Chosen}, {"rejected", e.Rejected}} {
			for i, id := range part.ids {
				if id < 0 || int(id) >= lim.VocabSize {
					return fmt.Errorf("%s: %s token %d: id %d is outside the model's vocabulary [0, %d): does the tokenizer belong to this model?", e.Source, part.name, i, id, lim.VocabSize)
				}
			}
		}
	}
	if e.RefChosen != nil && !finite(*e.RefChosen) || e.RefRejected != nil && !finite(*e.RefRejected) {
		return fmt.Errorf("%s: the reference log-probs are not finite", e.Source)
	}
	for _, r := range []struct {
		name string
		ids  []int32
	}{{"chosen", e.Chosen}, {"rejected", e.Rejected}} {
		if Labels(e.Prompt, r.ids) == 0 {
			return fmt.Errorf("%s: the %s response has no tokens to score (empty, or cut away by truncation: is max_prompt_length ≥ max_length?)", e.Source, r.name)
		}
	}
	return nil
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// Example converts a Pair into token ids: pre-tokenized ids are used
// verbatim, text goes through the chat template and tokenizer. A nil
// Encoder converts only pre-tokenized pairs. Nothing is truncated or
// checked (see [Truncation.Apply] and [Example.Check]).
func (e *Encoder) Example(p Pair) (Example, error) {
	ex := Example{RefChosen: p.RefChosenLogps, RefRejected: p.RefRejectedLogps, Source: p.Source}
	if p.Tokenized {
		ex.Prompt, ex.Chosen, ex.Rejected = int32s(p.PromptIDs), int32s(p.ChosenIDs), int32s(p.RejectedIDs)
	} else {
		if e == nil {
			return Example{}, fmt.Errorf("%s: text record, but no tokenizer to encode it (give a model folder with tokenizer.json, or pre-tokenized data)", p.Source)
		}
		if n := textBytes(p); n > MaxTextBytes {
			return Example{}, fmt.Errorf("data: %s: the record's text is %.1f MiB, more than relupo renders and tokenizes per record (%d MiB, about %d million tokens, beyond any model's context); shorten it, or skip such records with --skip-invalid", p.Source, float64(n)/(1<<20), MaxTextBytes>>20, MaxTextBytes/4/1000000)
		}
		prompt, chosen, rejected, err := e.Encode(p)
		if err != nil {
			return Example{}, err
		}
		ex.Prompt, ex.Chosen, ex.Rejected = int32s(prompt), int32s(chosen), int32s(rejected)
		for _, m := range p.Prompt {
			if m.Role == "user" {
				ex.Turns++
			}
		}
	}
	ex.Untruncated = [3]int{len(ex.Prompt), len(ex.Chosen), len(ex.Rejected)}
	return ex, nil
}

// MaxTextBytes bounds the text of one record (its messages' contents
// together) that Encoder.Example renders and tokenizes: the tokenizer's
// working memory grows to some 40 times its input, so a single 200 MB
// record would need gigabytes, while 16 MiB is about 4 million tokens,
// more than any model's context. A longer record is an invalid record.
const MaxTextBytes = 16 << 20

// textBytes is the length of p's message contents, with their roles.
func textBytes(p Pair) int {
	n := len(p.Chosen.Content) + len(p.Chosen.Role) + len(p.Rejected.Content) + len(p.Rejected.Role)
	for _, m := range p.Prompt {
		n += len(m.Content) + len(m.Role)
	}
	return n
}

// int32s converts token ids to the model's int32 (the reader bounds them).
func int32s(ids []int) []int32 {
	out := make([]int32, len(ids))
	for i, id := range ids {
		out[i] = int32(id)
	}
	return out
}

// LoadConfig says how [Load] turns data files into examples.
type LoadConfig struct {
	// Sources are the files, each with its fraction.
	Sources []Source
	// Format is the record format ([FormatAuto] detects it per file).
	Format Format
	// Tokenizer is the folder whose tokenizer.json and chat template encode
	// text records. Empty, or a folder without tokenizer.json, allows only
	// pre-tokenized records.
	Tokenizer string
	// Encode configures the text pipeline.
	Encode EncodeOptions
	// Truncation is applied to every example.
	Truncation Truncation
	// Limits are the model's: every example is checked against them.
	Limits Limits
	// SkipInvalid skips the records that cannot be trained on (a text that
	// cannot be encoded, an id outside the vocabulary, a response left
	// without tokens to score) instead of stopping at the first; each is
	// reported to OnInvalid.
	SkipInvalid bool
	// Strict makes the records the reader would skip (an empty response,
	// identical responses) errors, so that every input record yields an
	// example, in order.
	Strict bool
	// OnSkip receives the records the reader skips (see [Options.OnSkip]).
	OnSkip func(error)
	// OnInvalid receives, with SkipInvalid, every invalid record skipped.
	OnInvalid func(error)
}

// NewEncoder returns the text pipeline of c: nil (pre-tokenized data only)
// when c.Tokenizer is empty or has no tokenizer.json.
func (c LoadConfig) NewEncoder() (*Encoder, error) {
	if c.Tokenizer == "" {
		return nil, nil
	}
	if _, err := os.Stat(filepath.Join(c.Tokenizer, "tokenizer.json")); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("data: tokenizer: %w", err)
	}
	return NewEncoder(c.Tokenizer, c.Encode)
}

// Load reads every source (with its fraction), converts each pair into an
// Example, truncates and checks it, so that every example it returns can be
// trained on: nothing it returns is refused later. It is the one loader of
// relupo's commands.
func Load(ctx context.Context, c LoadConfig) ([]Example, error) {
	if err := c.Truncation.Validate(); err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	for _, s := range c.Sources {
		st, err := os.Stat(s.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("data: %s: no such file (relupo reads local JSON, JSONL, Parquet and Arrow files; for a Hub dataset, download its files and give their paths)", s.Path)
		case err != nil:
			return nil, fmt.Errorf("data: %w", err)
		case st.IsDir():
			if _, err := savedDatasetFiles(s.Path); err != nil {
				return nil, err
			}
		}
	}
	enc, err := c.NewEncoder()
	if err != nil {
		return nil, err
	}
	pairs, err := LoadAll(ctx, c.Sources, Options{Format: c.Format, Strict: c.Strict, OnSkip: c.OnSkip})
	if err != nil {
		if c.Strict && !c.SkipInvalid && Skippable(err) {
			return nil, skipHint(err)
		}
		return nil, err
	}
	out := make([]Example, 0, len(pairs))
	for _, p := range pairs {
		// Rendering and tokenizing thousands of records takes a while:
		// stop when asked to.
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("data: %s: %w", p.Source, err)
		}
		if !p.Tokenized && enc == nil && c.Tokenizer != "" {
			return nil, fmt.Errorf("%s: text record, but %s has no tokenizer.json to encode it (give the model folder with its tokenizer, or pre-tokenized data)", p.Source, c.Tokenizer)
		}
		e, err := enc.Example(p)
		if err == nil {
			c.Truncation.Apply(&e)
			err = e.Check(c.Limits)
		}
		if err != nil {
			// A text record without a tokenizer is a setup error, never
			// skipped.
			if !p.Tokenized && enc == nil {
				return nil, err
			}
			if !c.SkipInvalid {
				return nil, skipHint(err)
			}
			if c.OnInvalid != nil {
				c.OnInvalid(err)
			}
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// skipHint adds to an error about one record that --skip-invalid would
// skip it, so that a user whose data holds a few such records (HH-RLHF's
// empty responses) learns the remedy from the error itself.
func skipHint(err error) error {
	return fmt.Errorf("%w (--skip-invalid, or skip_invalid: true in a recipe, skips such records and counts them)", err)
}
