package judge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Output is one model answer to an instruction.
type Output struct {
	Instruction string `json:"instruction"`
	Output      string `json:"output"`
	Generator   string `json:"generator"`
	Dataset     string `json:"dataset"`
	// ID is an Arena-Hard answer's question_id or uid; empty otherwise.
	ID string `json:"-"`
}

// ReadOutputs reads a model's answers: AlpacaEval's JSON list of
// {"instruction", "output", "generator", "dataset"}, JSON lines with at
// least "instruction" and "output" (relupo generate's jsonl), or an
// Arena-Hard answer file: v0.1's lines {"question_id", "model_id",
// "choices": [{"turns": [{"content"}]}]} or the current {"uid", "model",
// "messages": [..., {"role": "assistant", "content": {"answer"}}]}, which
// carry no instruction (see [MatchArena]). A record without a generator is
// named after the file.
func ReadOutputs(path string) ([]Output, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("judge: %w", err)
	}
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	type raw struct {
		Instruction *string `json:"instruction"`
		Output      *string `json:"output"`
		Generator   string  `json:"generator"`
		Dataset     string  `json:"dataset"`
		// Arena-Hard
		QuestionID json.RawMessage `json:"question_id"`
		UID        string          `json:"uid"`
		ModelID    string          `json:"model_id"`
		Model      string          `json:"model"`
		Choices    []struct {
			Turns []struct {
				Content string `json:"content"`
			} `json:"turns"`
		} `json:"choices"`
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	conv := func(r raw, where string) (Output, error) {
		if id := rawID(r.QuestionID); (id != "" || r.UID != "") && r.Instruction == nil {
			return arenaAnswer(r.QuestionID, r.UID, r.ModelID+r.Model, name, where, func() (string, bool) {
				if len(r.Choices) > 0 && len(r.Choices[0].Turns) > 0 {
					return r.Choices[0].Turns[0].Content, true
				}
				for _, m := range slices.Backward(r.Messages) {
					if m.Role != "assistant" {
						continue
					}
					var c struct {
						Answer *string `json:"answer"`
					}
					if json.Unmarshal(m.Content, &c) == nil && c.Answer != nil {
						return *c.Answer, true
					}
					var t string
					if json.Unmarshal(m.Content, &t) == nil {
						return t, true
					}
				}
				return "", false
			})
		}
		if r.Instruction == nil || r.Output == nil {
			return Output{}, fmt.Errorf(`judge: %s: want "instruction" and "output"`, where)
		}
		o := Output{Instruction: *r.Instruction, Output: *r.Output, Generator: r.Generator, Dataset: r.Dataset}
		if o.Generator == "" {
			o.Generator = name
		}
		return o, nil
	}
	var outs []Output
	trimmed := bytes.TrimLeft(data, " \t\r\n\xef\xbb\xbf")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(trimmed, &items); err != nil {
			return nil, fmt.Errorf("judge: %s: invalid JSON array: %w", path, err)
		}
		for i, it := range items {
			where := fmt.Sprintf("%s: item %d", path, i+1)
			var r raw
			if err := json.Unmarshal(it, &r); err != nil {
				return nil, fmt.Errorf("judge: %s: %w", where, err)
			}
			o, err := conv(r, where)
			if err != nil {
				return nil, err
			}
			outs = append(outs, o)
		}
		return outs, nil
	}
	err = eachJSONLine(path, data, func(where string, b []byte) error {
		var r raw
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("judge: %s: %w", where, err)
		}
		o, err := conv(r, where)
		if err != nil {
			return err
		}
		outs = append(outs, o)
		return nil
	})
	return outs, err
}

// eachJSONLine calls fn with each non-blank line of data (the file path)
// and its place, "PATH:LINE", stopping at the first error.
func eachJSONLine(path string, data []byte, fn func(where string, line []byte) error) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, len(data)+1)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if err := fn(fmt.Sprintf("%s:%d", path, line), b); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("judge: %s: %w", path, err)
	}
	return nil
}

// arenaAnswer builds the Output of an Arena-Hard answer record.
func arenaAnswer(qid json.RawMessage, uid, model, name, where string, answer func() (string, bool)) (Output, error) {
	id := rawID(qid)
	if id == "" {
		id = uid
	}
	text, ok := answer()
	if !ok {
		return Output{}, fmt.Errorf(`judge: %s: Arena-Hard answer %s has no "choices[0].turns[0].content" or assistant message`, where, id)
	}
	if model == "" {
		model = name
	}
	return Output{Output: text, Generator: model, ID: id}, nil
}

// Item is one instruction with the two answers to compare.
type Item struct {
	Instruction         string
	Baseline, Candidate string
	Dataset             string
	// Index is the position of the baseline's answer in its file: the
	// instruction's index in the evaluation set when the baseline file is
	// the suite's reference outputs (AlpacaEval's 805, in order). It keys
	// the instruction difficulties of the length-controlled win rate.
	Index int
	// ID is an Arena-Hard question's ID; empty otherwise.
	ID string
}

// Match pairs each candidate answer with the baseline's answer to the same
// instruction, in the candidate's order. An instruction that appears k
// times pairs the k-th occurrences. Candidate answers with no baseline
// answer are returned in missing.
func Match(baseline, candidate []Output) (items []Item, missing []string) {
	type indexed struct {
		Output
		index int
	}
	byInstr := map[string][]indexed{}
	for i, o := range baseline {
		byInstr[o.Instruction] = append(byInstr[o.Instruction], indexed{o, i})
	}
	for _, c := range candidate {
		bs := byInstr[c.Instruction]
		if len(bs) == 0 {
			missing = append(missing, c.Instruction)
			continue
		}
		b := bs[0]
		byInstr[c.Instruction] = bs[1:]
		ds := c.Dataset
		if ds == "" {
			ds = b.Dataset
		}
		items = append(items, Item{Instruction: c.Instruction, Baseline: b.Output.Output, Candidate: c.Output, Dataset: ds, Index: b.index})
	}
	return items, missing
}

// Key is the cache key of one question: a SHA-256 over the prompt version,
// the judge model, the instruction and the two outputs in the order shown.
func Key(judgeModel, instruction, first, second string) string {
	return keyWith(PromptVersion, judgeModel, instruction, first, second)
}

// keyWith is Key for the prompt named version.
func keyWith(version, judgeModel, instruction, first, second string) string {
	h := sha256.New()
	for _, s := range []string{version, judgeModel, instruction, first, second} {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		io.WriteString(h, s)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// CandidateFirst decides, from the seed and the item alone, whether the
// candidate is shown first. About half the items are swapped, so a judge's
// preference for a position cancels out; the choice does not depend on the
// items' order, so a resumed run asks the same questions.
func CandidateFirst(seed uint64, it Item) bool {
	h := sha256.New()
	var s [8]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	h.Write(s[:])
	for _, x := range []string{it.Instruction, it.Baseline, it.Candidate} {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(x)))
		h.Write(n[:])
		io.WriteString(h, x)
	}
	return h.Sum(nil)[0]&1 == 1
}

// Completer answers chat messages; *Client is one.
type Completer interface {
	Complete(ctx context.Context, messages []Message) (Completion, error)
}

// Options control a judging run.
type Options struct {
	// JudgeModel names the judge in cache keys.
	JudgeModel string
	// Concurrency bounds the requests in flight (default 4).
	Concurrency int
	// Seed picks the order of the two answers per item.
	Seed uint64
	// Cache, if not nil, supplies earlier judgments and records new ones.
	Cache *Cache
	// OnDone, if not nil, is called after each item, from one goroutine
	// at a time, with the items finished, asked (not from the cache) and
	// failed so far.
	OnDone func(done, asked, failed int)
}

// Run judges every item in AlpacaEval's format and returns the judgments
// in item order. Items whose request failed after its retries have a zero
// Judgment (Key empty) and are reported together in the error; the others
// are returned (and cached) all the same, so a rerun asks only for the
// failed ones.
func Run(ctx context.Context, c Completer, items []Item, opt Options) ([]Judgment, error) {
	out := make([]Judgment, len(items))
	errs := forEach(ctx, len(items), opt.Concurrency, func(i int) (bool, error) {
		j, asked, err := judgeOne(ctx, c, items[i], opt)
		if err == nil {
			out[i] = j
		}
		return asked, err
	}, opt.OnDone)
	return out, itemErrors(ctx, items, errs)
}

// forEach calls work(i) for i in [0, n), conc at a time (default 4), and
// returns each call's error. onDone, if not nil, is called after each call
// from one goroutine at a time with the calls finished, those that asked
// the judge and those that failed so far.
func forEach(ctx context.Context, n, conc int, work func(i int) (asked bool, err error), onDone func(done, asked, failed int)) []error {
	if conc <= 0 {
		conc = 4
	}
	errs := make([]error, n)
	var mu sync.Mutex
	done, asked, failed := 0, 0, 0
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(conc, max(n, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				wasAsked, err := work(i)
				errs[i] = err
				mu.Lock()
				done++
				if wasAsked {
					asked++
				}
				if err != nil {
					failed++
				}
				if onDone != nil {
					onDone(done, asked, failed)
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return errs
}

// itemErrors joins the failed items' errors into one (showing the first
// three), or returns ctx's error.
func itemErrors(ctx context.Context, items []Item, errs []error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var all []error
	for i, e := range errs {
		if e != nil {
			all = append(all, fmt.Errorf("item %d (%q): %w", i+1, short(items[i].Instruction), e))
		}
	}
	if len(all) == 0 {
		return nil
	}
	shown := all[:min(len(all), 3)]
	msg := errors.Join(shown...).Error()
	if len(all) > len(shown) {
		msg += fmt.Sprintf("\n… and %d more", len(all)-len(shown))
	}
	return fmt.Errorf("judge: %d of %d items failed (finished ones are cached; rerun to resume):\n%s", len(all), len(items), msg)
}

// judgeOne returns the item's judgment: a draw without asking when the two
// outputs are identical (as AlpacaEval does), else from the cache or the
// judge. The preference is the weighted one when the reply carries the
// verdict letters' log-probabilities, else the letter's (a tie 1.5).
func judgeOne(ctx context.Context, c Completer, it Item, opt Options) (Judgment, bool, error) {
	candFirst := CandidateFirst(opt.Seed, it)
	first, second := it.Baseline, it.Candidate
	if candFirst {
		first, second = second, first
	}
	key := Key(opt.JudgeModel, it.Instruction, first, second)
	j := Judgment{Key: key, JudgeModel: opt.JudgeModel, Instruction: it.Instruction, CandidateFirst: candFirst}
	if it.Baseline == it.Candidate {
		j.Preference, j.Method = 1.5, MethodIdentical
		return j, false, nil
	}
	if opt.Cache != nil {
		if j, ok := opt.Cache.Get(key); ok {
			return j, false, nil
		}
	}
	comp, err := c.Complete(ctx, Prompt(it.Instruction, first, second))
	if err != nil {
		return Judgment{}, true, err
	}
	j.Reply = comp.Text
	if comp.TopLogprobs != nil {
		j.Raw = comp.Raw
	}
	// shown is the preference between the outputs as shown: 1 the first, 2
	// the second
	var shown float64
	if p, ok := WeightedPreference(comp.TopLogprobs); ok {
		shown, j.Method = p, MethodLogprobs
	} else {
		switch ParseVerdict(comp.Text) {
		case VerdictFirst:
			shown, j.Method = 1, MethodLetter
		case VerdictSecond:
			shown, j.Method = 2, MethodLetter
		case VerdictTie:
			shown, j.Method = 1.5, MethodLetter
		}
	}
	switch {
	case j.Method == "":
		j.Preference = 0
	case candFirst: // AlpacaEval's 3 − x for a swapped pair
		j.Preference = 3 - shown
	default:
		j.Preference = shown
	}
	if opt.Cache != nil && j.Method != "" { // an unreadable reply is asked again next time, never cached
		if err := opt.Cache.Put(j); err != nil {
			return Judgment{}, true, err
		}
	}
	return j, true, nil
}

func short(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 60 {
		return string(r[:60]) + "…"
	}
	return s
}
