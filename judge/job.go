package judge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/relupo/relupo/internal/atomicfile"
)

// A Job compares two models' answer files with a judge, from end to end: it
// reads both files (see [ReadOutputs]), matches the answers by instruction
// (see [Match]), judges every item through Client with the answers of each
// item in a seeded order (see [Run]), reading earlier judgments from a cache
// and appending new ones to it (see [Cache]), summarizes the verdicts (see
// [Summarize]) and optionally writes every judgment to a file.
//
// Baseline, Candidate, Client.URL and Client.Model must be set; every other
// field's zero value is a usable default.
type Job struct {
	// Baseline and Candidate name the two models' answer files. Items
	// follow the candidate's order; its answers without a baseline answer to
	// the same instruction are skipped.
	Baseline, Candidate string
	// Client asks the judge. Its Model also names the judge in the cache
	// keys and in Output. A zero Backoff means one second, a zero
	// MaxBackoff one minute.
	Client Client
	// Concurrency bounds the requests in flight (default 4).
	Concurrency int
	// Seed picks the order of the two answers per item.
	Seed uint64
	// Cache is the judgments cache file; empty means the Candidate file's
	// name + ".judgments.jsonl". It is created if absent.
	Cache string
	// NoCache neither reads nor writes a cache.
	NoCache bool
	// Output, if not empty, receives every judgment as a JSON list of
	// [Annotation], written atomically.
	Output string
	// OnMatch, if not nil, is called once the answers are matched, with
	// the number of items to judge and the candidate's instructions that
	// have no baseline answer (skipped).
	OnMatch func(items int, missing []string)
	// OnCache, if not nil, is called once the cache is open, with its path
	// and the number of judgments it holds.
	OnCache func(path string, judgments int)
	// OnDone, if not nil, is called after each item, from one goroutine at
	// a time.
	OnDone func(Progress)
}

// Progress is reported to [Job.OnDone] after each item.
type Progress struct {
	// Done is the number of items finished, of Total.
	Done, Total int
	// Asked counts the items sent to the judge (the others came from the
	// cache), Failed those whose request failed.
	Asked, Failed int
	// Elapsed is the time since the first item started.
	Elapsed time.Duration
}

// Report is the outcome of a [Job].
type Report struct {
	// Baseline and Candidate name the two models: the generator of each
	// file's first answer.
	Baseline, Candidate string
	// Items are the matched instructions, in the candidate's order, and
	// Judgments their verdicts (same order).
	Items     []Item
	Judgments []Judgment
	// Missing lists the candidate's instructions without a baseline answer.
	Missing []string
	// Summary holds the statistics of Judgments.
	Summary Summary
}

// Annotation is one judgment as [Job.Output] writes it, in the spirit of
// AlpacaEval's annotations: Output1 is the baseline's answer, Output2 the
// candidate's, and Preference 1 or 2 names the winner (0: an unparseable
// verdict or a failed request).
type Annotation struct {
	Instruction    string  `json:"instruction"`
	Dataset        string  `json:"dataset,omitempty"`
	Output1        string  `json:"output_1"`
	Output2        string  `json:"output_2"`
	Generator1     string  `json:"generator_1"`
	Generator2     string  `json:"generator_2"`
	Annotator      string  `json:"annotator"`
	Preference     float64 `json:"preference"`
	CandidateFirst bool    `json:"candidate_first"`
	RawCompletion  string  `json:"raw_completion"`
}

// Run carries out the job. When some items fail after their retries, the
// others are still cached and Run returns the error of [Run] (the
// function), with no Report.
func (j Job) Run(ctx context.Context) (Report, error) {
	base, err := ReadOutputs(j.Baseline)
	if err != nil {
		return Report{}, err
	}
	cand, err := ReadOutputs(j.Candidate)
	if err != nil {
		return Report{}, err
	}
	items, missing := Match(base, cand)
	if j.OnMatch != nil {
		j.OnMatch(len(items), missing)
	}
	if len(items) == 0 {
		return Report{}, fmt.Errorf("judge: no instruction of %s appears in %s", j.Candidate, j.Baseline)
	}
	client := j.Client
	if client.Backoff == 0 {
		client.Backoff = time.Second
	}
	if client.MaxBackoff == 0 {
		client.MaxBackoff = time.Minute
	}
	var cache *Cache
	if !j.NoCache {
		path := j.Cache
		if path == "" {
			path = j.Candidate + ".judgments.jsonl"
		}
		if cache, err = OpenCache(path); err != nil {
			return Report{}, err
		}
		if j.OnCache != nil {
			j.OnCache(path, cache.Len())
		}
	}
	start := time.Now()
	js, err := Run(ctx, &client, items, Options{
		JudgeModel: client.Model, Concurrency: j.Concurrency, Seed: j.Seed, Cache: cache,
		OnDone: func(done, asked, failed int) {
			if j.OnDone != nil {
				j.OnDone(Progress{Done: done, Total: len(items), Asked: asked, Failed: failed, Elapsed: time.Since(start)})
			}
		},
	})
	if cache != nil {
		if cerr := cache.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if err != nil {
		return Report{}, err
	}
	r := Report{Baseline: base[0].Generator, Candidate: cand[0].Generator,
		Items: items, Judgments: js, Missing: missing, Summary: Summarize(items, js)}
	if j.Output != "" {
		if err := atomicfile.Write(j.Output, func(w io.Writer) error { return r.writeAnnotations(w, client.Model) }); err != nil {
			return Report{}, fmt.Errorf("judge: %w", err)
		}
	}
	return r, nil
}

// writeAnnotations writes r's judgments as an indented JSON list of
// Annotation, annotated by judgeModel.
func (r Report) writeAnnotations(w io.Writer, judgeModel string) error {
	ann := make([]Annotation, len(r.Items))
	for i, it := range r.Items {
		js := r.Judgments[i]
		ann[i] = Annotation{Instruction: it.Instruction, Dataset: it.Dataset, Output1: it.Baseline, Output2: it.Candidate,
			Generator1: r.Baseline, Generator2: r.Candidate, Annotator: judgeModel, Preference: js.Preference,
			CandidateFirst: js.CandidateFirst, RawCompletion: js.Reply}
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(ann)
}
