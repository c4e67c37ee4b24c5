package judge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/relupo/relupo/internal/atomicfile"
)

// The judging formats.
const (
	// FormatAlpacaEval is AlpacaEval 2's weighted_alpaca_eval_gpt4_turbo
	// annotator: one question per instruction, a one-token verdict read
	// from its log-probabilities.
	FormatAlpacaEval = "alpaca-eval"
	// FormatArenaHard is Arena-Hard v0.1's pairwise judge: two games per
	// question with the positions swapped, five-level verdicts.
	FormatArenaHard = "arena-hard"
)

// FormatDefaults are the request settings of each format's suite:
// AlpacaEval asks for one token at temperature 1 with the top 5
// alternatives' log-probabilities; Arena-Hard for up to 4096 tokens at
// temperature 0.
func FormatDefaults(format string) (maxTokens int, temperature float64, topLogprobs int, err error) {
	switch format {
	case FormatAlpacaEval, "":
		return 1, 1, 5, nil
	case FormatArenaHard:
		return 4096, 0, 0, nil
	}
	return 0, 0, 0, fmt.Errorf("judge: unknown format %q (%s or %s)", format, FormatAlpacaEval, FormatArenaHard)
}

// A Job compares two models' answer files with a judge, from end to end: it
// reads both files (see [ReadOutputs]), matches the answers (by
// instruction, see [Match]; by question, see [MatchArena]), judges every
// item through Client (see [Run] and [RunArena]), reading earlier
// judgments from a cache and appending new ones to it (see [Cache]),
// computes the suite's statistics (see [Summarize] and [ArenaScore]) and
// optionally writes every judgment to a file in the suite's own format.
//
// Baseline, Candidate, Client.URL and Client.Model must be set, and
// Questions for FormatArenaHard; every other field's zero value is a
// usable default. Client's MaxTokens, Temperature and TopLogprobs are
// sent as they are: [FormatDefaults] gives the suites' own.
type Job struct {
	// Format is FormatAlpacaEval (the default) or FormatArenaHard.
	Format string
	// Baseline and Candidate name the two models' answer files. Items
	// follow the candidate's order (the questions' for Arena-Hard); its
	// answers without a baseline answer are skipped.
	Baseline, Candidate string
	// Questions is Arena-Hard's question.jsonl (FormatArenaHard only).
	Questions string
	// Difficulty and Gamed are AlpacaEval's instruction_difficulty.csv and
	// df_gamed.csv (see [ReadDifficulty], [ReadGamed]); without both the
	// length-controlled win rate is not the leaderboard's (see
	// [LengthControlled]).
	Difficulty, Gamed string
	// Client asks the judge. Its Model also names the judge in the cache
	// keys and in Output. A zero Backoff means one second, a zero
	// MaxBackoff one minute.
	Client Client
	// Concurrency bounds the requests in flight (default 4).
	Concurrency int
	// Seed picks the order of the two answers per item (AlpacaEval) and
	// the bootstrap resamples (Arena-Hard).
	Seed uint64
	// ArenaWeight is how many battles a significant Arena-Hard verdict
	// counts (default 3); ArenaRounds the bootstrap rounds (default 100).
	ArenaWeight, ArenaRounds int
	// Cache is the judgments cache file; empty means the Candidate file's
	// name + ".judgments.jsonl". It is created if absent.
	Cache string
	// NoCache neither reads nor writes a cache.
	NoCache bool
	// Output, if not empty, receives every judgment, written atomically:
	// AlpacaEval's annotations (a JSON list of [Annotation]) or Arena-Hard's
	// model_judgment lines (see [ArenaJudgment]).
	Output string
	// OnMatch, if not nil, is called once the answers are matched, with
	// the number of items to judge and the candidate's instructions (or
	// question IDs) that are skipped.
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
	// cache or needed no question), Failed those whose request failed.
	Asked, Failed int
	// Elapsed is the time since the first item started.
	Elapsed time.Duration
}

// Report is the outcome of a [Job].
type Report struct {
	// Format is the job's format.
	Format string
	// Baseline and Candidate name the two models: the generator of each
	// file's first answer.
	Baseline, Candidate string
	// Items are the matched items and, in the same order, Judgments their
	// verdicts (AlpacaEval) or Games their two games (Arena-Hard: the
	// baseline shown first, then the candidate).
	Items     []Item
	Judgments []Judgment
	Games     [][2]Judgment
	// Missing lists the skipped instructions (or question IDs).
	Missing []string
	// Summary holds AlpacaEval's statistics, Arena Arena-Hard's.
	Summary Summary
	Arena   ArenaSummary
}

// Annotation is one judgment in AlpacaEval's annotations format: Output1
// is the baseline's answer, Output2 the candidate's; Preference runs from
// 1 (the baseline is better) to 2 (the candidate is), continuous for a
// weighted verdict, 1.5 a draw, and is null (never a draw) when the
// verdict could not be read. RawCompletion is the endpoint's choice with
// its log-probabilities, null when there was no request or none came back.
type Annotation struct {
	Instruction   string          `json:"instruction"`
	Output1       string          `json:"output_1"`
	Generator1    string          `json:"generator_1"`
	Dataset       string          `json:"dataset,omitempty"`
	Output2       string          `json:"output_2"`
	Generator2    string          `json:"generator_2"`
	Annotator     string          `json:"annotator"`
	Preference    *float64        `json:"preference"`
	RawCompletion json.RawMessage `json:"raw_completion"`
}

// ArenaJudgment is one question's line in Arena-Hard v0.1's model_judgment
// format; Games are the baseline-first and the candidate-first games.
type ArenaJudgment struct {
	QuestionID string       `json:"question_id"`
	Model      string       `json:"model"`
	Judge      string       `json:"judge"`
	Games      [2]ArenaGame `json:"games"`
}

// ArenaGame is one game of an ArenaJudgment: the user message sent, the
// judge's replies and the label read (null when none).
type ArenaGame struct {
	UserPrompt string  `json:"user_prompt"`
	Judgment   string  `json:"judgment"`
	Score      *string `json:"score"`
}

// Run carries out the job. When some items fail after their retries, the
// others are still cached and Run returns the error of [Run] (the
// function), with no Report.
func (j Job) Run(ctx context.Context) (Report, error) {
	format := j.Format
	if format == "" {
		format = FormatAlpacaEval
	}
	if _, _, _, err := FormatDefaults(format); err != nil {
		return Report{}, err
	}
	in, err := j.inputs(format)
	if err != nil {
		return Report{}, err
	}
	items := in.items
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
	opt := Options{
		JudgeModel: client.Model, Concurrency: j.Concurrency, Seed: j.Seed, Cache: cache,
		OnDone: func(done, asked, failed int) {
			if j.OnDone != nil {
				j.OnDone(Progress{Done: done, Total: len(items), Asked: asked, Failed: failed, Elapsed: time.Since(start)})
			}
		},
	}
	r := Report{Format: format, Baseline: in.baseline, Candidate: in.candidate, Items: items, Missing: in.missing}
	if format == FormatArenaHard {
		r.Games, err = RunArena(ctx, &client, items, opt)
	} else {
		r.Judgments, err = Run(ctx, &client, items, opt)
	}
	if cache != nil {
		if cerr := cache.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if err != nil {
		return Report{}, err
	}
	var write func(io.Writer) error
	if format == FormatArenaHard {
		weight, rounds := j.ArenaWeight, j.ArenaRounds
		if weight <= 0 {
			weight = 3
		}
		if rounds <= 0 {
			rounds = 100
		}
		r.Arena = ArenaScore(ArenaOutcomes(r.Games), weight, rounds, j.Seed)
		write = func(w io.Writer) error { return r.writeArena(w, client.Model) }
	} else {
		if r.Summary, err = Summarize(items, r.Judgments, in.data); err != nil {
			return Report{}, err
		}
		write = func(w io.Writer) error { return r.writeAnnotations(w, client.Model) }
	}
	if j.Output != "" {
		if err := atomicfile.Write(j.Output, write); err != nil {
			return Report{}, fmt.Errorf("judge: %w", err)
		}
	}
	return r, nil
}

// jobInputs are what a Job reads before judging.
type jobInputs struct {
	items               []Item
	missing             []string // the baseline's instructions the candidate lacks
	baseline, candidate string   // the generators' names
	data                LCData   // AlpacaEval's difficulties and gamed rows
}

// inputs reads the job's answers (and for AlpacaEval its length-control
// data, for Arena-Hard its questions) and matches the candidate's to the
// baseline's.
func (j Job) inputs(format string) (in jobInputs, err error) {
	if format == FormatAlpacaEval {
		if j.Difficulty != "" {
			if in.data.Difficulty, err = ReadDifficulty(j.Difficulty); err != nil {
				return in, err
			}
		}
		if j.Gamed != "" {
			if in.data.Gamed, err = ReadGamed(j.Gamed); err != nil {
				return in, err
			}
		}
	} else if j.Difficulty != "" || j.Gamed != "" {
		return in, fmt.Errorf("judge: instruction difficulties and gamed rows are AlpacaEval inputs, not %s ones", format)
	}
	base, err := ReadOutputs(j.Baseline)
	if err != nil {
		return in, err
	}
	cand, err := ReadOutputs(j.Candidate)
	if err != nil {
		return in, err
	}
	if len(base) == 0 || len(cand) == 0 {
		return in, fmt.Errorf("judge: no answers in %s", map[bool]string{true: j.Baseline, false: j.Candidate}[len(base) == 0])
	}
	if format == FormatArenaHard {
		if j.Questions == "" {
			return in, fmt.Errorf("judge: the %s format needs the questions file", format)
		}
		qs, err := ReadQuestions(j.Questions)
		if err != nil {
			return in, err
		}
		if in.items, in.missing, err = MatchArena(qs, base, cand); err != nil {
			return in, err
		}
	} else {
		in.items, in.missing = Match(base, cand)
	}
	if j.OnMatch != nil {
		j.OnMatch(len(in.items), in.missing)
	}
	if len(in.items) == 0 {
		return in, fmt.Errorf("judge: no instruction of %s appears in %s", j.Candidate, j.Baseline)
	}
	in.baseline, in.candidate = base[0].Generator, cand[0].Generator
	return in, nil
}

// writeAnnotations writes r's judgments as AlpacaEval's annotations,
// annotated by judgeModel.
func (r Report) writeAnnotations(w io.Writer, judgeModel string) error {
	ann := make([]Annotation, len(r.Items))
	for i, it := range r.Items {
		js := r.Judgments[i]
		a := Annotation{Instruction: it.Instruction, Dataset: it.Dataset, Output1: it.Baseline, Output2: it.Candidate,
			Generator1: r.Baseline, Generator2: r.Candidate, Annotator: judgeModel, RawCompletion: js.Raw}
		if js.Key != "" && js.Method != "" && !math.IsNaN(js.Preference) {
			p := js.Preference
			a.Preference = &p
		}
		if a.RawCompletion == nil {
			a.RawCompletion = json.RawMessage("null")
		}
		ann[i] = a
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(ann)
}

// writeArena writes r's games as Arena-Hard's model_judgment lines.
func (r Report) writeArena(w io.Writer, judgeModel string) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i, it := range r.Items {
		line := ArenaJudgment{QuestionID: it.ID, Model: r.Candidate, Judge: judgeModel}
		for g, j := range r.Games[i] {
			a, b := it.Baseline, it.Candidate
			if j.CandidateFirst {
				a, b = b, a
			}
			line.Games[g] = ArenaGame{UserPrompt: ArenaPrompt(it.Instruction, a, b)[1].Content, Judgment: j.Reply}
			if j.Verdict != "" {
				v := j.Verdict
				line.Games[g].Score = &v
			}
		}
		if err := enc.Encode(line); err != nil {
			return err
		}
	}
	return nil
}
