package judge

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// Judgment is one verdict, as cached and reported.
type Judgment struct {
	// Key identifies the question asked: see Key.
	Key        string `json:"key"`
	JudgeModel string `json:"judge_model"`
	// Instruction is kept for people reading the cache.
	Instruction string `json:"instruction"`
	// CandidateFirst is true when the candidate was shown as "m".
	CandidateFirst bool `json:"candidate_first"`
	// Preference follows AlpacaEval: from 1 (the baseline is better) to 2
	// (the candidate is), continuous for a weighted verdict, 1.5 a draw;
	// 0 when the reply could not be read (left out of the statistics).
	// Arena-Hard games leave it 0 and set Verdict.
	Preference float64 `json:"preference"`
	// Method says how Preference was read: MethodLogprobs, MethodLetter or
	// MethodIdentical; empty when it could not be.
	Method string `json:"method,omitempty"`
	// Verdict is an Arena-Hard game's label as the judge wrote it, about
	// the answers as shown (A first): "A>>B", "A>B", "A=B", "B>A" or
	// "B>>A"; empty when the judgment has none.
	Verdict string `json:"verdict,omitempty"`
	// Reply is the judge's reply text.
	Reply string `json:"reply"`
	// Raw is the endpoint's choices[0], kept when it carried
	// log-probabilities: AlpacaEval's raw_completion.
	Raw json.RawMessage `json:"raw,omitempty"`
}

// How a Judgment's preference was read.
const (
	// MethodLogprobs: from the verdict letters' log-probabilities
	// (AlpacaEval's weighted annotator).
	MethodLogprobs = "logprobs"
	// MethodLetter: from the letter replied (the endpoint returned no
	// log-probabilities for "m" or "M"); a tie counts 1.5.
	MethodLetter = "letter"
	// MethodIdentical: the two outputs are the same text, a draw without
	// asking.
	MethodIdentical = "identical"
)

// Cache is an append-only JSON-lines file of judgments, keyed by Key. A
// run that stops part way (killed, out of quota) leaves every finished
// judgment on disk, and the next run asks only for the rest. It is safe
// for concurrent use.
type Cache struct {
	mu   sync.Mutex
	f    *os.File
	path string
	m    map[string]Judgment
}

// OpenCache opens (or creates) the cache file at path and loads it. A last
// line cut short by a crash is ignored (and overwritten by the next
// judgment); any other unreadable line is an error naming it.
func OpenCache(path string) (*Cache, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("judge: cache: %w", err)
	}
	c := &Cache{f: f, path: path, m: map[string]Judgment{}}
	br := bufio.NewReader(f)
	var good int64 // bytes up to the end of the last complete line
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if len(b) > 0 {
			complete := b[len(b)-1] == '\n'
			var j Judgment
			if jerr := json.Unmarshal(bytes.TrimSpace(b), &j); jerr != nil || j.Key == "" {
				if !complete && errors.Is(err, io.EOF) {
					break // a torn last write
				}
				if len(bytes.TrimSpace(b)) > 0 {
					f.Close()
					return nil, fmt.Errorf("judge: cache %s:%d: not a judgment: %v", path, line, jerr)
				}
			} else {
				c.m[j.Key] = j
			}
			if complete {
				good += int64(len(b))
			} else {
				good += int64(len(b))
				// a complete record without its newline: add one
				if _, werr := f.WriteAt([]byte("\n"), good); werr != nil {
					f.Close()
					return nil, fmt.Errorf("judge: cache: %w", werr)
				}
				good++
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("judge: cache %s:%d: %w", path, line, err)
		}
	}
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, fmt.Errorf("judge: cache: %w", err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("judge: cache: %w", err)
	}
	return c, nil
}

// Get returns the cached judgment for key.
func (c *Cache) Get(key string) (Judgment, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	j, ok := c.m[key]
	return j, ok
}

// Len is the number of cached judgments.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// Put records a judgment, appending it to the file in one write.
func (c *Cache) Put(j Judgment) error {
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("judge: cache %s: %w", c.path, err)
	}
	c.m[j.Key] = j
	return nil
}

// Close flushes the file to disk and closes it.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.f.Sync(); err != nil {
		c.f.Close()
		return fmt.Errorf("judge: cache %s: %w", c.path, err)
	}
	return c.f.Close()
}
