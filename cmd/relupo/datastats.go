package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/relupo/relupo/data"
	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/train"
	"github.com/spf13/cobra"
)

// gammaGrid is the RePO paper's γ search grid.
var gammaGrid = []float64{0.2, 0.4, 0.5, 0.6, 0.8}

// maxInitialFiltered is the largest fraction of pairs a suggested γ may
// filter before training starts.
const maxInitialFiltered = 0.10

// statsKeys are the training options that decide what data stats sees.
var statsKeys = []string{"model_name_or_path", "data", "data_format", "max_length", "max_prompt_length", "truncation_mode",
	"chat_template", "completion_only_assistant_content", "per_device_eval_batch_size", "threads"}

func newDataCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "data",
		Short: "Inspect preference data as training would tokenize it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usagef("data: give a subcommand (see 'relupo data --help')")
		},
	}
	cmd.AddCommand(newDataStatsCmd(), newDataPreviewCmd())
	return cmd
}

func newDataStatsCmd() *cobra.Command {
	o := train.DefaultOptions()
	var margins bool
	var gamma float64
	cmd := &cobra.Command{
		Use:   "stats --model DIR --data FILE [--margins [--gamma G]]",
		Short: "Token-length, truncation and (with --margins) RePO margin statistics of a data set",
		Long: fmt.Sprintf(`Tokenizes --data exactly as 'relupo train' does (the model's chat template and
tokenizer, the same --data-format, --chat-template and truncation options) and prints
one JSON object:

  count            pairs that training would use
  skipped          records the reader skips (empty or identical responses)
  invalid          records training stops on unless --skip-invalid is given (a text the
                   template or tokenizer cannot encode, or a response that truncation
                   leaves without tokens); skip_reasons and invalid_reasons show the
                   first few of each
  prompt_tokens, chosen_tokens, rejected_tokens
                   length distributions before truncation (min, p50, p90, p99, max,
                   mean); the responses include the end-of-turn and EOS tokens
  truncated        pairs whose prompt (prompt_cut) or responses (responses_cut) the
                   official truncation at --max-length/--max-prompt-length cuts
  turns            user turns per prompt (text records)

With --margins the model scores every pair as training sees it (after truncation) and
"margins" holds the distribution of the RePO margin M = S_w/n_w - S_l/n_l (the
difference of the average response log-probs): p10, p50, p90 and mean, the fraction
of pairs with M >= --gamma (pairs RePO filters out: they get no gradient), the same
fraction at each γ of the paper's grid %v, and a suggested γ range.

The suggestion is the grid values at which at most %g%% of the pairs start out filtered,
that is from the smallest such γ (at least the 90th percentile of M) to %v. Below it a
noticeable share of the data gives no gradient from the first step; the paper's run in
its Fig. 4 has 13%% filtered at step 100, rising to 58%% as training separates the
pairs. The paper's best values were 0.4 to 0.6 (default 0.5); larger γ over-optimizes.
When even γ = %v filters more than %g%%, no range is suggested: the model already
separates much of this data.`, gammaGrid, 100*maxInitialFiltered, gammaGrid[len(gammaGrid)-1], gammaGrid[len(gammaGrid)-1], 100*maxInitialFiltered),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Model == "" {
				return usagef("data stats: --model is required")
			}
			if len(o.Data) == 0 {
				return usagef("data stats: --data is required")
			}
			if math.IsNaN(gamma) || math.IsInf(gamma, 0) {
				return usagef("data stats: --gamma must be a finite number")
			}
			if o.MaxLength < 0 || o.MaxPromptLength < 0 {
				return usagef("data stats: --max-length and --max-prompt-length must be ≥ 0")
			}
			format, err := data.ParseFormat(o.DataFormat)
			if err != nil {
				return usageError{err}
			}
			srcs, err := data.ParseMixture(strings.Join(o.Data, ","))
			if err != nil {
				return usageError{err}
			}
			st, exs, err := loadStats(cmd, o, srcs, format, margins)
			if err != nil {
				return err
			}
			if margins {
				m, _, err := model.Load(o.Model)
				if err != nil {
					return err
				}
				pool := kernels.NewPool(o.Threads)
				defer pool.Close()
				ms, err := marginStats(m, pool, exs, o.PerDeviceEvalBatchSize, gamma)
				if err != nil {
					return fmt.Errorf("data stats: %w", err)
				}
				st.Margins = ms
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&margins, "margins", false, "run the model and report the RePO margin distribution and a γ range")
	f.Float64Var(&gamma, "gamma", 0.5, "with --margins, the γ whose filtered fraction is reported")
	o.BindFlags(f, statsKeys...)
	return cmd
}

// dist summarizes a distribution.
type dist struct {
	Min  float64 `json:"min"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// dataStats is what data stats prints.
type dataStats struct {
	Count           int       `json:"count"`
	Skipped         int       `json:"skipped"`
	Invalid         int       `json:"invalid"`
	SkipReasons     []string  `json:"skip_reasons,omitempty"`
	InvalidReasons  []string  `json:"invalid_reasons,omitempty"`
	MaxLength       int       `json:"max_length"`
	MaxPromptLength int       `json:"max_prompt_length"`
	TruncationMode  string    `json:"truncation_mode"`
	PromptTokens    *dist     `json:"prompt_tokens"`
	ChosenTokens    *dist     `json:"chosen_tokens"`
	RejectedTokens  *dist     `json:"rejected_tokens"`
	Truncated       truncated `json:"truncated"`
	Turns           *dist     `json:"turns,omitempty"`
	Margins         *margins  `json:"margins,omitempty"`
}

// truncated counts the pairs truncation changes.
type truncated struct {
	Pairs        int `json:"pairs"`
	PromptCut    int `json:"prompt_cut"`
	ResponsesCut int `json:"responses_cut"`
}

// margins describes the RePO margins of the data under the model.
type margins struct {
	P10              float64            `json:"p10"`
	P50              float64            `json:"p50"`
	P90              float64            `json:"p90"`
	Mean             float64            `json:"mean"`
	Gamma            float64            `json:"gamma"`
	FilteredFraction float64            `json:"filtered_fraction"`
	FilteredAtGrid   map[string]float64 `json:"filtered_at_grid"`
	SuggestedGamma   []float64          `json:"suggested_gamma"`
}

// maxReasons bounds the skip and invalid reasons printed.
const maxReasons = 5

// loadStats reads and tokenizes the data and computes every statistic but
// the margins. It returns the examples as training would see them.
func loadStats(cmd *cobra.Command, o train.Options, srcs []data.Source, format data.Format, needModel bool) (*dataStats, []train.Example, error) {
	for _, s := range srcs {
		if _, err := os.Stat(s.Path); errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("data: %s: no such file", s.Path)
		}
	}
	var cfg model.Config // without config.json (a tokenizer-only folder), ids are not checked against a vocabulary
	if _, err := os.Stat(filepath.Join(o.Model, "config.json")); err == nil || needModel {
		c, err := model.LoadConfig(o.Model)
		if err != nil {
			return nil, nil, err
		}
		cfg = c
	}
	enc, err := train.NewEncoder(o, cfg)
	if err != nil {
		return nil, nil, err
	}
	st := &dataStats{MaxLength: o.MaxLength, MaxPromptLength: o.MaxPromptLength, TruncationMode: o.TruncationMode}
	reason := func(list *[]string, err error) {
		if len(*list) < maxReasons {
			*list = append(*list, err.Error())
		}
	}
	pairs, err := data.LoadAll(cmd.Context(), srcs, data.Options{Format: format, OnSkip: func(err error) {
		st.Skipped++
		reason(&st.SkipReasons, err)
	}})
	if err != nil {
		return nil, nil, err
	}
	var plen, clen, rlen, turns []float64
	exs := make([]train.Example, 0, len(pairs))
	for _, p := range pairs {
		if !p.Tokenized && enc == nil {
			return nil, nil, fmt.Errorf("%s: text record, but %s has no tokenizer.json to encode it", p.Source, o.Model)
		}
		e, err := train.FromPair(p, enc)
		if err != nil {
			st.Invalid++
			reason(&st.InvalidReasons, err)
			continue
		}
		full := e
		e.Truncate(o.MaxLength, o.MaxPromptLength, o.TruncationMode)
		if err := e.Check(); err != nil {
			st.Invalid++
			reason(&st.InvalidReasons, err)
			continue
		}
		plen = append(plen, float64(len(full.Prompt)))
		clen = append(clen, float64(len(full.Chosen)))
		rlen = append(rlen, float64(len(full.Rejected)))
		promptCut := len(e.Prompt) < len(full.Prompt)
		responsesCut := len(e.Chosen) < len(full.Chosen) || len(e.Rejected) < len(full.Rejected)
		if promptCut {
			st.Truncated.PromptCut++
		}
		if responsesCut {
			st.Truncated.ResponsesCut++
		}
		if promptCut || responsesCut {
			st.Truncated.Pairs++
		}
		if !p.Tokenized {
			n := 0
			for _, m := range p.Prompt {
				if m.Role == "user" {
					n++
				}
			}
			turns = append(turns, float64(n))
		}
		exs = append(exs, e)
	}
	st.Count = len(exs)
	st.PromptTokens, st.ChosenTokens, st.RejectedTokens = distOf(plen), distOf(clen), distOf(rlen)
	if len(turns) > 0 {
		st.Turns = distOf(turns)
	}
	return st, exs, nil
}

// marginStats scores the examples with m and summarizes the RePO margins.
func marginStats(m *model.Model, pool *kernels.Pool, exs []train.Example, batchSize int, gamma float64) (*margins, error) {
	if len(exs) == 0 {
		return nil, errors.New("no pairs to score")
	}
	ms := make([]float64, len(exs))
	ws := &model.Workspace{Pool: pool}
	err := train.Logps(m, ws, exs, batchSize, func(lo int, lp train.PairLogps) {
		for i := range lp.Chosen {
			ms[lo+i] = lp.Chosen[i]/lp.ChosenTokens[i] - lp.Rejected[i]/lp.RejectedTokens[i]
		}
	})
	if err != nil {
		return nil, err
	}
	out := &margins{Gamma: gamma, FilteredFraction: filteredFraction(ms, gamma), FilteredAtGrid: map[string]float64{}}
	d := distOf(ms)
	sorted := slices.Sorted(slices.Values(ms))
	out.P10, out.P50, out.P90, out.Mean = quantile(sorted, 0.10), d.P50, d.P90, d.Mean
	out.SuggestedGamma = suggestGamma(ms)
	for _, g := range gammaGrid {
		out.FilteredAtGrid[strconv.FormatFloat(g, 'f', -1, 64)] = filteredFraction(ms, g)
	}
	return out, nil
}

// suggestGamma returns [lo, hi]: the grid values at which at most
// maxInitialFiltered of the margins are ≥ γ, or nil when there is none.
func suggestGamma(ms []float64) []float64 {
	for _, g := range gammaGrid {
		if filteredFraction(ms, g) <= maxInitialFiltered {
			return []float64{g, gammaGrid[len(gammaGrid)-1]}
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
func distOf(xs []float64) *dist {
	if len(xs) == 0 {
		return nil
	}
	s := slices.Sorted(slices.Values(xs))
	var sum float64
	for _, x := range s {
		sum += x
	}
	return &dist{Min: s[0], P50: quantile(s, 0.5), P90: quantile(s, 0.9), P99: quantile(s, 0.99), Max: s[len(s)-1], Mean: sum / float64(len(s))}
}

// quantile is the q-quantile of sorted values, linearly interpolated
// between the two nearest ranks (NumPy's default).
func quantile(sorted []float64, q float64) float64 {
	pos := q * float64(len(sorted)-1)
	i := int(pos)
	if i+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	frac := pos - float64(i)
	return sorted[i] + frac*(sorted[i+1]-sorted[i])
}
