// Package pairs turns scored samples into preference pairs: for each prompt
// the highest-scoring response is chosen and the lowest-scoring one
// rejected, as in the on-policy data of SimPO and RePO (princeton-nlp's
// llama3-ultrafeedback-armorm and friends), and writes them in that data's
// layout, which `relupo train` reads.
package pairs

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/relupo/relupo/chat"
	"github.com/relupo/relupo/score"
)

// Options configure Build.
type Options struct {
	// MinScoreGap drops a prompt whose chosen and rejected scores differ by
	// less than this (0 keeps every prompt whose scores are not all equal).
	MinScoreGap float64
}

// Stats counts what Build did. Every row ends in exactly one of Pairs,
// Ties, BelowGap and TooFew; Unscored and Empty count responses.
type Stats struct {
	// Rows is the number of rows read.
	Rows int
	// Pairs is the number of pairs built.
	Pairs int
	// Ties counts rows dropped because every candidate scored the same
	// (or the best and the worst candidates have the same text).
	Ties int
	// BelowGap counts rows dropped because the best and worst scores
	// differ by less than Options.MinScoreGap.
	BelowGap int
	// TooFew counts rows dropped because fewer than two responses were
	// candidates (K = 1, or the others were empty or unscored).
	TooFew int
	// Unscored counts responses that were not candidates because their
	// score is NaN or infinite, or missing (a row without scores).
	Unscored int
	// Empty counts responses that were not candidates because they are
	// empty or white space only (`relupo train` would skip such a pair).
	Empty int
}

// Dropped is the number of rows that gave no pair.
func (s Stats) Dropped() int { return s.Ties + s.BelowGap + s.TooFew }

// String summarizes the counts on one line.
func (s Stats) String() string {
	return fmt.Sprintf("%d rows: %d pairs; dropped %d (%d ties, %d below the score gap, %d with fewer than 2 candidates); responses left out: %d unscored, %d empty",
		s.Rows, s.Pairs, s.Dropped(), s.Ties, s.BelowGap, s.TooFew, s.Unscored, s.Empty)
}

// Pair is one preference pair built from a scored row.
type Pair struct {
	// ID is the row's ID.
	ID string
	// Prompt is the row's prompt.
	Prompt []chat.Message
	// Chosen and Rejected are the responses with the highest and the
	// lowest score.
	Chosen, Rejected string
	// ChosenScore and RejectedScore are their scores.
	ChosenScore, RejectedScore float64
	// Row is the index of the row in Build's input, and ChosenIndex and
	// RejectedIndex the indices of the two responses in its Responses, so
	// that a caller holding the responses' token ids finds them exactly.
	Row, ChosenIndex, RejectedIndex int
	// Responses and Scores are all the row's responses and scores (NaN
	// for unscored), in their order.
	Responses []string
	Scores    []float64
}

// Build makes one pair per row: among the candidates, the responses that
// are not empty (or white space only) and have a finite score, chosen is the
// one with the highest score and rejected the one with the lowest (the
// first of equal scores, in the row's order, as numpy's argmax and argmin
// pick). A row is dropped, and counted in Stats, when it has fewer than two
// candidates, when the highest and lowest scores are equal (a tie, also
// when the two responses' texts are equal), or when they differ by less
// than o.MinScoreGap. A row whose Scores do not hold one value per response
// counts all its responses as unscored.
func Build(rows []score.Row, o Options) ([]Pair, Stats) {
	st := Stats{Rows: len(rows)}
	var out []Pair
	for i := range rows {
		r := &rows[i]
		scores := r.Scores
		if len(scores) != len(r.Responses) {
			scores = nil
		}
		best, worst, n := -1, -1, 0
		for j, resp := range r.Responses {
			if strings.TrimSpace(resp) == "" {
				st.Empty++
				continue
			}
			if scores == nil || math.IsNaN(scores[j]) || math.IsInf(scores[j], 0) {
				st.Unscored++
				continue
			}
			n++
			if best < 0 || scores[j] > scores[best] {
				best = j
			}
			if worst < 0 || scores[j] < scores[worst] {
				worst = j
			}
		}
		switch {
		case n < 2:
			st.TooFew++
			continue
		case scores[best] == scores[worst] || r.Responses[best] == r.Responses[worst]:
			st.Ties++
			continue
		case scores[best]-scores[worst] < o.MinScoreGap:
			st.BelowGap++
			continue
		}
		all := make([]float64, len(r.Responses))
		for j := range all {
			all[j] = math.NaN()
			if scores != nil {
				all[j] = scores[j]
			}
		}
		out = append(out, Pair{
			ID: r.ID, Prompt: r.Prompt,
			Chosen: r.Responses[best], Rejected: r.Responses[worst],
			ChosenScore: scores[best], RejectedScore: scores[worst],
			Row: i, ChosenIndex: best, RejectedIndex: worst,
			Responses: r.Responses, Scores: all,
		})
		st.Pairs++
	}
	return out, st
}

// record is one line of the princeton-nlp layout.
type record struct {
	PromptID      string         `json:"prompt_id"`
	Prompt        string         `json:"prompt"`
	Chosen        []chat.Message `json:"chosen"`
	Rejected      []chat.Message `json:"rejected"`
	ScoreChosen   float64        `json:"score_chosen"`
	ScoreRejected float64        `json:"score_rejected"`
	Responses     []string       `json:"all_generated_responses"`
	Scores        []*float64     `json:"all_rm_scores"`
}

// Write writes pairs as JSON Lines in the layout of princeton-nlp's
// on-policy data sets (llama3-ultrafeedback-armorm): "prompt_id",
// "prompt" (the text of the prompt's last user message), "chosen" and
// "rejected" (the whole prompt conversation followed by the assistant's
// response, so that `relupo train` takes chosen[:-1] as the prompt, system
// message and earlier turns included), "all_generated_responses" and
// "all_rm_scores" (null for an unscored response), plus "score_chosen" and
// "score_rejected" as in ultrafeedback_binarized.
func Write(w io.Writer, ps []Pair) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for i, p := range ps {
		if len(p.Prompt) == 0 {
			return fmt.Errorf("pairs: pair %d (id %q) has no prompt", i+1, p.ID)
		}
		rec := record{
			PromptID: p.ID, Prompt: promptText(p.Prompt),
			Chosen:      conversation(p.Prompt, p.Chosen),
			Rejected:    conversation(p.Prompt, p.Rejected),
			ScoreChosen: p.ChosenScore, ScoreRejected: p.RejectedScore,
			Responses: p.Responses, Scores: score.Nullable(p.Scores),
		}
		if rec.Responses == nil {
			rec.Responses = []string{}
		}
		if math.IsNaN(p.ChosenScore) || math.IsInf(p.ChosenScore, 0) || math.IsNaN(p.RejectedScore) || math.IsInf(p.RejectedScore, 0) {
			return fmt.Errorf("pairs: pair %d (id %q) has a score that is not a finite number", i+1, p.ID)
		}
		if err := enc.Encode(rec); err != nil {
			return fmt.Errorf("pairs: pair %d (id %q): %w", i+1, p.ID, err)
		}
	}
	return bw.Flush()
}

// promptText is the content of the last user message (princeton-nlp's
// "prompt" column is the instruction), or of the last message when none is
// the user's.
func promptText(ms []chat.Message) string {
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].Role == "user" {
			return ms[i].Content
		}
	}
	return ms[len(ms)-1].Content
}

// conversation is the prompt followed by the assistant's response.
func conversation(prompt []chat.Message, response string) []chat.Message {
	out := make([]chat.Message, 0, len(prompt)+1)
	out = append(out, prompt...)
	return append(out, chat.Message{Role: "assistant", Content: response})
}
