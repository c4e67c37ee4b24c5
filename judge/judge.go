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
	"strings"
	"sync"
)

// Output is one model answer to an instruction.
type Output struct {
	Instruction string `json:"instruction"`
	Output      string `json:"output"`
	Generator   string `json:"generator"`
	Dataset     string `json:"dataset"`
}

// ReadOutputs reads a model's answers: AlpacaEval's JSON list of
// {"instruction", "output", "generator", "dataset"}, or JSON lines with at
// least "instruction" and "output" (relupo generate's jsonl). A record
// without a generator is named after the file.
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
	}
	conv := func(r raw, where string) (Output, error) {
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
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, len(data)+1)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		where := fmt.Sprintf("%s:%d", path, line)
		var r raw
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("judge: %s: %w", where, err)
		}
		o, err := conv(r, where)
		if err != nil {
			return nil, err
		}
		outs = append(outs, o)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("judge: %s: %w", path, err)
	}
	return outs, nil
}

// Item is one instruction with the two answers to compare.
type Item struct {
	Instruction         string
	Baseline, Candidate string
	Dataset             string
}

// Match pairs each candidate answer with the baseline's answer to the same
// instruction, in the candidate's order. An instruction that appears k
// times pairs the k-th occurrences. Candidate answers with no baseline
// answer are returned in missing.
func Match(baseline, candidate []Output) (items []Item, missing []string) {
	byInstr := map[string][]Output{}
	for _, o := range baseline {
		byInstr[o.Instruction] = append(byInstr[o.Instruction], o)
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
		items = append(items, Item{Instruction: c.Instruction, Baseline: b.Output, Candidate: c.Output, Dataset: ds})
	}
	return items, missing
}

// Key is the cache key of one question: a SHA-256 over the prompt version,
// the judge model, the instruction and the two outputs in the order shown.
func Key(judgeModel, instruction, first, second string) string {
	h := sha256.New()
	for _, s := range []string{PromptVersion, judgeModel, instruction, first, second} {
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
	Complete(ctx context.Context, messages []Message) (string, error)
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

// Run judges every item and returns the judgments in item order. Items
// whose request failed after its retries have a zero Judgment (Key empty)
// and are reported together in the error; the others are returned (and
// cached) all the same, so a rerun asks only for the failed ones.
func Run(ctx context.Context, c Completer, items []Item, opt Options) ([]Judgment, error) {
	conc := opt.Concurrency
	if conc <= 0 {
		conc = 4
	}
	out := make([]Judgment, len(items))
	errs := make([]error, len(items))
	var mu sync.Mutex
	done, asked, failed := 0, 0, 0
	report := func(wasAsked bool, err error) {
		mu.Lock()
		defer mu.Unlock()
		done++
		if wasAsked {
			asked++
		}
		if err != nil {
			failed++
		}
		if opt.OnDone != nil {
			opt.OnDone(done, asked, failed)
		}
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(conc, max(len(items), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				j, wasAsked, err := judgeOne(ctx, c, items[i], opt)
				if err != nil {
					errs[i] = fmt.Errorf("item %d (%q): %w", i+1, short(items[i].Instruction), err)
				} else {
					out[i] = j
				}
				report(wasAsked, err)
			}
		}()
	}
feed:
	for i := range items {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return out, err
	}
	var all []error
	for _, e := range errs {
		if e != nil {
			all = append(all, e)
		}
	}
	if len(all) > 0 {
		shown := all[:min(len(all), 3)]
		msg := errors.Join(shown...).Error()
		if len(all) > len(shown) {
			msg += fmt.Sprintf("\n… and %d more", len(all)-len(shown))
		}
		return out, fmt.Errorf("judge: %d of %d items failed (finished ones are cached; rerun to resume):\n%s", len(all), len(items), msg)
	}
	return out, nil
}

// judgeOne returns the item's judgment from the cache or the judge.
func judgeOne(ctx context.Context, c Completer, it Item, opt Options) (Judgment, bool, error) {
	candFirst := CandidateFirst(opt.Seed, it)
	first, second := it.Baseline, it.Candidate
	if candFirst {
		first, second = second, first
	}
	key := Key(opt.JudgeModel, it.Instruction, first, second)
	if opt.Cache != nil {
		if j, ok := opt.Cache.Get(key); ok {
			return j, false, nil
		}
	}
	reply, err := c.Complete(ctx, Prompt(it.Instruction, first, second))
	if err != nil {
		return Judgment{}, true, err
	}
	j := Judgment{Key: key, JudgeModel: opt.JudgeModel, Instruction: it.Instruction, CandidateFirst: candFirst, Reply: reply}
	switch v := ParseVerdict(reply); {
	case v == 0:
		j.Preference = 0
	case (v == 1) == candFirst:
		j.Preference = 2 // the candidate's position won
	default:
		j.Preference = 1
	}
	if opt.Cache != nil {
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
