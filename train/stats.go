package train

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/relupo/relupo/data"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/pref"
)

// GammaGrid is the RePO paper's γ search grid, at which data stats reports
// the filtered fraction.
var GammaGrid = []float64{0.2, 0.4, 0.5, 0.6, 0.8}

// MaxInitialFiltered is the largest fraction of pairs a suggested γ may
// filter before training starts.
const MaxInitialFiltered = 0.10

// Dist summarizes a distribution.
type Dist struct {
	Min  float64 `json:"min"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// DataStats is what `relupo data stats` prints: the data as training
// would see it.
type DataStats struct {
	Count           int       `json:"count"`
	Skipped         int       `json:"skipped"`
	Invalid         int       `json:"invalid"`
	SkipReasons     []string  `json:"skip_reasons,omitempty"`
	InvalidReasons  []string  `json:"invalid_reasons,omitempty"`
	MaxLength       int       `json:"max_length"`
	MaxPromptLength int       `json:"max_prompt_length"`
	TruncationMode  string    `json:"truncation_mode"`
	PromptTokens    *Dist     `json:"prompt_tokens"`
	ChosenTokens    *Dist     `json:"chosen_tokens"`
	RejectedTokens  *Dist     `json:"rejected_tokens"`
	Truncated       Truncated `json:"truncated"`
	Turns           *Dist     `json:"turns,omitempty"`
	Margins         *Margins  `json:"margins,omitempty"`
}

// Truncated counts the pairs truncation changes.
type Truncated struct {
	Pairs        int `json:"pairs"`
	PromptCut    int `json:"prompt_cut"`
	ResponsesCut int `json:"responses_cut"`
}

// Margins describes the RePO margins of the data under the model.
type Margins struct {
	P10              float64            `json:"p10"`
	P50              float64            `json:"p50"`
	P90              float64            `json:"p90"`
	Mean             float64            `json:"mean"`
	Gamma            float64            `json:"gamma"`
	FilteredFraction float64            `json:"filtered_fraction"`
	FilteredAtGrid   map[string]float64 `json:"filtered_at_grid"`
	SuggestedGamma   []float64          `json:"suggested_gamma"`
}

// maxReasons bounds the skip and invalid reasons reported.
const maxReasons = 5

// StatsOptions say what DataStats adds to the length statistics.
type StatsOptions struct {
	// Margins scores every pair with the model and reports the RePO margin
	// distribution at Gamma.
	Margins bool
	Gamma   float64
}

// Stats reads and tokenizes --data exactly as training would (the model
// folder's tokenizer and chat template, the same format and truncation)
// and returns its statistics (`relupo data stats`). Records training would
// stop on are counted as invalid instead. Without Margins, --model may be a
// tokenizer-only folder (then ids are not checked against a vocabulary).
func Stats(ctx context.Context, o Options, so StatsOptions) (*DataStats, error) {
	var bad problems
	if o.Model == "" {
		bad.add("--model is required")
	}
	if len(o.Data) == 0 {
		bad.add("--data is required")
	}
	dc, err := o.DataConfig()
	if err != nil {
		bad.add("%v", err)
	}
	comp, err := o.Compute()
	if err != nil {
		bad.add("%v", err)
	}
	if err := bad.err(); err != nil {
		return nil, &UsageError{err}
	}
	var mc model.Config // without config.json (a tokenizer-only folder), ids are not checked against a vocabulary
	if _, err := os.Stat(filepath.Join(o.Model, "config.json")); err == nil || so.Margins {
		if mc, err = model.LoadConfig(o.Model); err != nil {
			return nil, err
		}
	}
	st := &DataStats{MaxLength: dc.Truncation.MaxLength, MaxPromptLength: dc.Truncation.MaxPromptLength, TruncationMode: dc.Truncation.Mode}
	reason := func(list *[]string, err error) {
		if len(*list) < maxReasons {
			*list = append(*list, err.Error())
		}
	}
	lc := dc.load(dc.Train, o.Model, limits(mc))
	lc.SkipInvalid, lc.Strict = true, false
	lc.OnSkip = func(err error) { st.Skipped++; reason(&st.SkipReasons, err) }
	lc.OnInvalid = func(err error) { st.Invalid++; reason(&st.InvalidReasons, err) }
	exs, err := data.Load(ctx, lc)
	if err != nil {
		return nil, err
	}
	st.lengths(exs)
	if so.Margins {
		m, _, err := model.Load(o.Model)
		if err != nil {
			return nil, err
		}
		e := NewEngine(m, comp)
		defer e.Close()
		if st.Margins, err = marginStats(e, exs, max(o.PerDeviceEvalBatchSize, 1), so.Gamma); err != nil {
			return nil, fmt.Errorf("data stats: %w", err)
		}
	}
	return st, nil
}

// lengths fills in the count, the length distributions before truncation,
// what truncation cut and the turns per prompt of exs.
func (st *DataStats) lengths(exs []data.Example) {
	var plen, clen, rlen, turns []float64
	for _, e := range exs {
		full := e.Untruncated
		plen = append(plen, float64(full[0]))
		clen = append(clen, float64(full[1]))
		rlen = append(rlen, float64(full[2]))
		promptCut := len(e.Prompt) < full[0]
		responsesCut := len(e.Chosen) < full[1] || len(e.Rejected) < full[2]
		if promptCut {
			st.Truncated.PromptCut++
		}
		if responsesCut {
			st.Truncated.ResponsesCut++
		}
		if promptCut || responsesCut {
			st.Truncated.Pairs++
		}
		if e.Turns > 0 {
			turns = append(turns, float64(e.Turns))
		}
	}
	st.Count = len(exs)
	st.PromptTokens, st.ChosenTokens, st.RejectedTokens = distOf(plen), distOf(clen), distOf(rlen)
	if len(turns) > 0 {
		st.Turns = distOf(turns)
	}
}

// marginStats scores the examples with m and summarizes the RePO margins.
func marginStats(e *Engine, exs []data.Example, batchSize int, gamma float64) (*Margins, error) {
	if len(exs) == 0 {
		return nil, errors.New("no pairs to score")
	}
	ms := make([]float64, len(exs))
	err := e.Logps(exs, batchSize, func(lo int, lp PairLogps) error {
		for i := range lp.Chosen {
			ms[lo+i] = lp.Chosen[i]/lp.ChosenTokens[i] - lp.Rejected[i]/lp.RejectedTokens[i]
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := &Margins{Gamma: gamma, FilteredFraction: filteredFraction(ms, gamma), FilteredAtGrid: map[string]float64{}}
	d := distOf(ms)
	sorted := slices.Sorted(slices.Values(ms))
	out.P10, out.P50, out.P90, out.Mean = pref.Quantile(sorted, 0.10), d.P50, d.P90, d.Mean
	out.SuggestedGamma = suggestGamma(ms)
	for _, g := range GammaGrid {
		out.FilteredAtGrid[strconv.FormatFloat(g, 'f', -1, 64)] = filteredFraction(ms, g)
	}
	return out, nil
}

// suggestGamma returns [lo, hi]: the grid values at which at most
// MaxInitialFiltered of the margins are ≥ γ, or nil when there is none.
func suggestGamma(ms []float64) []float64 {
	for _, g := range GammaGrid {
		if filteredFraction(ms, g) <= MaxInitialFiltered {
			return []float64{g, GammaGrid[len(GammaGrid)-1]}
		}
	}
	return nil
}

// filteredFraction is the fraction of margins at or above gamma: the pairs
// RePO gives no gradient (ReLU's derivative is 0 at 0).
func filteredFraction(ms []float64, gamma float64) float64 {
	if len(ms) == 0 {
		return 0
	}
	n := 0
	for _, m := range ms {
		if m >= gamma {
			n++
		}
	}
	return float64(n) / float64(len(ms))
}

// distOf returns the distribution of xs, or nil when it is empty.
func distOf(xs []float64) *Dist {
	if len(xs) == 0 {
		return nil
	}
	s := slices.Sorted(slices.Values(xs))
	var sum float64
	for _, x := range s {
		sum += x
	}
	return &Dist{Min: s[0], P50: pref.Quantile(s, 0.5), P90: pref.Quantile(s, 0.9), P99: pref.Quantile(s, 0.99), Max: s[len(s)-1], Mean: sum / float64(len(s))}
}
