package generate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/relupo/relupo/internal/atomicfile"
	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/peft"
	"github.com/relupo/relupo/tokenizer"
)

// A Job answers a file of prompts with a model folder, from end to end: it
// reads the records (see [ReadRecords]), loads the folder's tokenizer,
// tokenizer_config.json and chat template, tokenizes every prompt (see
// [Tokenize]), loads the model, finds its stop tokens (see [StopTokens]),
// decodes every prompt (see [Run]) and writes the answers in Format (see
// [Write]).
//
// Model, Input and Options.MaxNewTokens must be set; every other field's
// zero value is a usable default.
type Job struct {
	// Model is the model folder: config.json, safetensors weights and the
	// tokenizer files.
	Model string
	// Adapter is a PEFT LoRA adapter folder to run on top of Model
	// (without merging it); empty runs the model alone.
	Adapter string
	// Tokenizer is the folder of the tokenizer files and chat template;
	// empty means Model.
	Tokenizer string
	// TemplateVars are extra chat template variables for rendering the
	// prompts (chat_template_kwargs), such as {"enable_thinking": false}.
	TemplateVars map[string]any
	// Input is the prompts file, JSON lines or a JSON array; "-" reads In.
	Input string
	// In is what Input "-" reads, named "stdin" in errors; nil means
	// os.Stdin.
	In io.Reader
	// Output is the answers file, written atomically: a failed run leaves
	// no partial file. Empty or "-" writes to Out instead.
	Output string
	// Out receives the answers when Output is empty or "-"; nil means
	// os.Stdout.
	Out io.Writer
	// Format is the output format, FormatJSONL (the default when empty),
	// FormatAlpacaEval or FormatArenaHard.
	Format string
	// Generator names the model in the evaluation formats; empty means the
	// model folder's base name.
	Generator string
	// CountTokens counts Arena-Hard answers' token_len (see
	// Meta.CountTokens); nil counts the model's generated tokens.
	CountTokens func(answer string) (int, error)
	// Options control decoding. Options.StopTokens, if any, are added to
	// the model's own stop tokens. Options.NumReturnSequences ≥ 1 writes
	// the samples layout (see [WriteSamples]; jsonl only) even for one
	// sample; 0 writes one answer per prompt in Format.
	Options Options
	// Threads is the number of worker threads; 0 means all cores.
	Threads int
	// OnStart, if not nil, is called once everything is loaded, just
	// before decoding begins.
	OnStart func(Plan)
	// OnDone, if not nil, is called after each prompt completes, as Run's
	// onDone.
	OnDone func(Progress)
}

// Plan describes a Job about to decode, for [Job.OnStart].
type Plan struct {
	// Prompts is the number of prompts to answer.
	Prompts int
	// Samples is the number of answers per prompt.
	Samples int
	// Sampling is Options.Sampling.
	Sampling Sampling
	// StopTokens are the ids that end an answer, sorted.
	StopTokens []int
	// Threads is the number of worker threads decoding.
	Threads int
}

// Summary describes a finished Job.
type Summary struct {
	// Answers is the number of answers written (K per prompt with
	// Options.NumReturnSequences K).
	Answers int
	// PromptTokens and GeneratedTokens count the tokens prefilled and
	// generated over all prompts.
	PromptTokens, GeneratedTokens int
	// Path is the file written, or empty when the answers went to Out.
	Path string
}

// Run carries out the job. It stops with ctx's error when ctx is
// cancelled; the output file is then left untouched.
func (j Job) Run(ctx context.Context) (Summary, error) {
	if j.Model == "" || j.Input == "" {
		return Summary{}, errors.New("generate: a job needs a model folder and an input")
	}
	format := j.Format
	if format == "" {
		format = FormatJSONL
	}
	if err := CheckFormat(format, nil); err != nil {
		return Summary{}, fmt.Errorf("generate: %w", err)
	}
	if err := j.Options.Sampling.Validate(); err != nil {
		return Summary{}, fmt.Errorf("generate: %w", err)
	}
	if j.Options.MaxNewTokens < 1 {
		return Summary{}, errors.New("generate: max new tokens must be ≥ 1")
	}
	samples := j.Options.NumReturnSequences > 0
	if j.Options.NumReturnSequences < 0 {
		return Summary{}, fmt.Errorf("generate: num return sequences %d must be ≥ 1", j.Options.NumReturnSequences)
	}
	if samples && format != FormatJSONL {
		return Summary{}, fmt.Errorf("generate: several answers per prompt are written as jsonl rows (id, prompt, responses, reference), not in the %s format", format)
	}
	if limit := kernels.MaxWorkers(); j.Threads < 0 || j.Threads > limit {
		return Summary{}, fmt.Errorf("generate: threads %d is not in [0, %d] (0: all cores; at most %d× the cores here)", j.Threads, limit, kernels.WorkersPerCore)
	}
	generator := j.Generator
	if generator == "" {
		abs, err := filepath.Abs(j.Model)
		if err != nil {
			return Summary{}, fmt.Errorf("generate: %w", err)
		}
		generator = filepath.Base(abs)
	}
	recs, err := j.readRecords()
	if err != nil {
		return Summary{}, err
	}
	if err := CheckFormat(format, recs); err != nil {
		return Summary{}, fmt.Errorf("generate: %w", err)
	}
	in, err := j.load(ctx, recs)
	if err != nil {
		return Summary{}, err
	}

	pool := kernels.NewPool(j.Threads)
	defer pool.Close()
	if j.OnStart != nil {
		j.OnStart(Plan{Prompts: len(recs), Samples: max(j.Options.NumReturnSequences, 1), Sampling: j.Options.Sampling, StopTokens: in.stops, Threads: pool.Workers()})
	}
	opt := j.Options
	opt.StopTokens = in.stops
	res, err := Run(ctx, model.NewDecoder(in.model, pool), in.tok, in.prompts, opt, j.OnDone)
	if err != nil {
		return Summary{}, fmt.Errorf("generate: %w", err)
	}
	sum := Summary{Answers: len(res)}
	for _, r := range res {
		sum.PromptTokens += r.PromptTokens
		sum.GeneratedTokens += len(r.OutputIDs)
	}
	meta := Meta{Generator: generator, CountTokens: j.CountTokens}
	write := func(w io.Writer) error { return Write(w, format, recs, res, meta) }
	if samples {
		write = func(w io.Writer) error { return WriteSamples(w, recs, res, j.Options.NumReturnSequences) }
	}
	if j.Output == "" || j.Output == "-" {
		out := j.Out
		if out == nil {
			out = os.Stdout
		}
		if err := write(out); err != nil {
			return Summary{}, err
		}
		return sum, nil
	}
	if err := atomicfile.Write(j.Output, write); err != nil {
		return Summary{}, fmt.Errorf("generate: %w", err)
	}
	sum.Path = j.Output
	return sum, nil
}

// readRecords reads the job's prompts; there must be at least one.
func (j Job) readRecords() ([]Record, error) {
	in, name := j.In, "stdin"
	if in == nil {
		in = os.Stdin
	}
	if j.Input != "-" {
		f, err := os.Open(j.Input)
		if err != nil {
			return nil, fmt.Errorf("generate: %w", err)
		}
		defer f.Close()
		in, name = f, j.Input
	}
	recs, err := ReadRecords(in, name)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("generate: %s holds no prompts", name)
	}
	return recs, nil
}

// jobInputs is what a Job loads from its model folder, with the prompts
// tokenized.
type jobInputs struct {
	tok     *tokenizer.Tokenizer
	model   *model.Model
	prompts [][]int32
	stops   []int
}

// load reads the tokenizer, chat template and model of the job's folder,
// tokenizes recs (stopping when ctx is done), checks their ids against the vocabulary, and collects the
// stop tokens.
func (j Job) load(ctx context.Context, recs []Record) (jobInputs, error) {
	var in jobInputs
	var err error
	tokDir := j.Tokenizer
	if tokDir == "" {
		tokDir = j.Model
	}
	enc, err := LoadPromptEncoder(tokDir)
	if err != nil {
		return in, fmt.Errorf("generate: %w", err)
	}
	enc.WithVars(j.TemplateVars)
	in.tok = enc.Tokenizer
	tcfg := enc.Config
	if in.prompts, err = enc.EncodeAll(ctx, recs); err != nil {
		return in, fmt.Errorf("generate: %w", err)
	}
	// A bfloat16 checkpoint stays bfloat16 (mapped): half the memory, and
	// decoding reads half the bytes, for the float32 model's logits bit for
	// bit.
	if in.model, _, err = model.LoadWith(j.Model, model.LoadOptions{BaseDType: "exact", Map: true}); err != nil {
		return in, fmt.Errorf("generate: %w", err)
	}
	if j.Adapter != "" {
		if in.model.LoRA, _, err = peft.Load(j.Adapter, in.model.Config); err != nil {
			return in, fmt.Errorf("generate: adapter: %w", err)
		}
	}
	vocab := in.model.Config.VocabSize
	for i, p := range in.prompts {
		for _, id := range p {
			if id < 0 || int(id) >= vocab {
				return in, fmt.Errorf("generate: %s: token id %d outside the model's vocabulary [0, %d)", recs[i].Where, id, vocab)
			}
		}
	}
	if in.stops, err = StopTokens(j.Model, in.model.Config.EOSTokenIDs, tcfg.EOSToken, tcfg.ChatTemplate, in.tok); err != nil {
		return in, err
	}
	if len(j.Options.StopTokens) > 0 {
		in.stops = append(in.stops, j.Options.StopTokens...)
		slices.Sort(in.stops)
		in.stops = slices.Compact(in.stops)
	}
	return in, nil
}
