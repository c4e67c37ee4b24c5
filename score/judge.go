package score

import (
	"context"
	"fmt"
	"math"
	"sync"

	"github.com/relupo/relupo/judge"
)

// Judge scores responses with an LLM judge's pointwise rating (1–10 with
// the default prompt) through an OpenAI-compatible endpoint (see
// judge.Client: retries with backoff, timeouts). A response fails (NaN,
// counted, and said to Report) when its request fails after the client's
// retries or the reply holds no valid rating.
type Judge struct {
	// Client asks the judge; a *judge.Client.
	Client judge.Completer
	// Prompt is the request and the rating scale.
	Prompt judge.PointwisePrompt
	// JudgeModel names the judge in cache keys.
	JudgeModel string
	// Cache, when not nil, supplies earlier ratings and records new ones,
	// so that a rerun asks only for what is missing.
	Cache *judge.Cache
	// Concurrency bounds the requests in flight; 0 means 4.
	Concurrency int
	// Report, when not nil, is told why each failed response failed. It is
	// called from one goroutine at a time.
	Report func(msg string)
}

// Score implements Scorer; progress counts rows whose every response has
// been rated (or has failed).
func (j *Judge) Score(ctx context.Context, rows []Row, progress func(done, total int)) (failed int, err error) {
	type item struct{ row, resp int }
	var items []item
	left := make([]int, len(rows)) // responses not yet rated, per row
	for i := range rows {
		rows[i].Scores = make([]float64, len(rows[i].Responses))
		for k := range rows[i].Scores {
			rows[i].Scores[k] = math.NaN()
			items = append(items, item{i, k})
		}
		left[i] = len(rows[i].Responses)
	}
	conc := j.Concurrency
	if conc <= 0 {
		conc = 4
	}
	var mu sync.Mutex
	rowsDone := 0
	finish := func(it item, v float64, err error) {
		mu.Lock()
		defer mu.Unlock()
		r := &rows[it.row]
		if err != nil {
			failed++
			if j.Report != nil && ctx.Err() == nil {
				j.Report(fmt.Sprintf("%s: response %d: %v", r.name(it.row), it.resp, err))
			}
		} else {
			r.Scores[it.resp] = v
		}
		if left[it.row]--; left[it.row] == 0 {
			rowsDone++
			if progress != nil {
				progress(rowsDone, len(rows))
			}
		}
	}
	next := make(chan item)
	var wg sync.WaitGroup
	for range min(conc, max(len(items), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range next {
				r := &rows[it.row]
				if len(r.Prompt) == 0 {
					finish(it, 0, fmt.Errorf("the prompt has no text (a pre-tokenized prompt?): the judge reads the conversation"))
					continue
				}
				prompt := make([]judge.Message, len(r.Prompt))
				for k, m := range r.Prompt {
					prompt[k] = judge.Message{Role: m.Role, Content: m.Content}
				}
				v, _, err := judge.Rate(ctx, j.Client, j.Prompt, j.JudgeModel, j.Cache, prompt, r.Responses[it.resp])
				finish(it, v, err)
			}
		}()
	}
feed:
	for _, it := range items {
		select {
		case next <- it:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return failed, err
	}
	return failed, nil
}
