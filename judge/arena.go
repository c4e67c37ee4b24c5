package judge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strings"
)

// ArenaPromptVersion names the Arena-Hard question below in cache keys.
const ArenaPromptVersion = "arena-hard-v0.1-pairwise"

// arenaSystem and arenaUser are Arena-Hard v0.1's judge prompt (its
// config/judge_config.yaml, Apache-2.0): the system prompt, and the user
// message filled with the question and the two answers, A shown first.
const arenaSystem = "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants to the user prompt displayed below. You will be given assistant A's answer and assistant B's answer. Your job is to evaluate which assistant's answer is better.\n\n" +
	"Begin your evaluation by generating your own answer to the prompt. You must provide your answers before judging any answers.\n\n" +
	"When evaluating the assistants' answers, compare both assistants' answers with your answer. You must identify and correct any mistakes or inaccurate information.\n\n" +
	"Then consider if the assistant's answers are helpful, relevant, and concise. Helpful means the answer correctly responds to the prompt or follows the instructions. Note when user prompt has any ambiguity or more than one interpretation, it is more helpful and appropriate to ask for clarifications or more information from the user than providing an answer based on assumptions. Relevant means all parts of the response closely connect or are appropriate to what is being asked. Concise means the response is clear and not verbose or excessive.\n\n" +
	"Then consider the creativity and novelty of the assistant's answers when needed. Finally, identify any missing important information in the assistants' answers that would be beneficial to include when responding to the user prompt.\n\n" +
	"After providing your explanation, you must output only one of the following choices as your final verdict with a label:\n\n" +
	"1. Assistant A is significantly better: [[A>>B]]\n2. Assistant A is slightly better: [[A>B]]\n3. Tie, relatively the same: [[A=B]]\n4. Assistant B is slightly better: [[B>A]]\n5. Assistant B is significantly better: [[B>>A]]\n\n" +
	"Example output: \"My final verdict is tie: [[A=B]]\"."

const arenaUser = "<|User Prompt|>\n{question_1}\n\n<|The Start of Assistant A's Answer|>\n{answer_1}\n<|The End of Assistant A's Answer|>\n\n<|The Start of Assistant B's Answer|>\n{answer_2}\n<|The End of Assistant B's Answer|>"

// arenaContinue is Arena-Hard's second request when the first reply had no
// verdict label.
const arenaContinue = "continue your judgment and finish by outputting a final verdict label"

// arenaAttempts is Arena-Hard v0.1's number_of_judgment_attempts.
const arenaAttempts = 2

// ArenaPrompt returns the chat messages of an Arena-Hard game with answer a
// shown as assistant A and b as assistant B.
func ArenaPrompt(question, a, b string) []Message {
	r := strings.NewReplacer("{question_1}", question, "{answer_1}", a, "{answer_2}", b)
	return []Message{{Role: "system", Content: arenaSystem}, {Role: "user", Content: r.Replace(arenaUser)}}
}

var arenaLabel = regexp.MustCompile(`\[\[([AB<>=]+)\]\]`)

// ParseArenaVerdict is Arena-Hard's get_score: the label of the
// "[[…]]" verdicts in a judgment. again is true when there is none (the
// judge is asked to continue); a judgment with two different labels has
// none and is not asked again.
func ParseArenaVerdict(judgment string) (label string, again bool) {
	var seen []string
	for _, m := range arenaLabel.FindAllStringSubmatch(judgment, -1) {
		if m[1] != "" && !slices.Contains(seen, m[1]) {
			seen = append(seen, m[1])
		}
	}
	switch len(seen) {
	case 0:
		return "", true
	case 1:
		return seen[0], false
	}
	return "", false
}

// ArenaOutcome is one game's result for the candidate.
type ArenaOutcome int

// The five outcomes, from the candidate's side, and a game without one.
const (
	ArenaNone ArenaOutcome = iota
	ArenaMuchWorse
	ArenaWorse
	ArenaTie
	ArenaBetter
	ArenaMuchBetter
)

// arenaOutcome maps a game's label to the candidate's outcome; the
// candidate was assistant A when candidateFirst. Labels other than the
// five of the prompt count as no outcome, as in Arena-Hard v0.1's
// show_result.
func arenaOutcome(label string, candidateFirst bool) ArenaOutcome {
	var o ArenaOutcome
	switch label {
	case "A>>B":
		o = ArenaMuchBetter
	case "A>B":
		o = ArenaBetter
	case "A=B":
		o = ArenaTie
	case "B>A":
		o = ArenaWorse
	case "B>>A":
		o = ArenaMuchWorse
	default:
		return ArenaNone
	}
	if !candidateFirst { // the labels speak of A, the baseline
		o = ArenaMuchBetter + ArenaMuchWorse - o
	}
	return o
}

// ArenaSummary is the outcome of an Arena-Hard-format run. Scores are
// percentages.
type ArenaSummary struct {
	// Games counts the games with a verdict (two per question); Invalid
	// those without one (no label, or conflicting labels, after the
	// retry), which count in no battle.
	Games, Invalid int
	// Outcomes counts the games by the candidate's outcome, indexed by
	// ArenaOutcome (index 0 unused).
	Outcomes [6]int
	// Battles is the number of weighted battles: a significant verdict
	// counts Weight times, the others once.
	Battles, Weight int
	// Score is the candidate's Bradley–Terry win rate against the
	// baseline; Lower and Upper bound its bootstrapped 95% interval
	// (percentiles 2.5 and 97.5 of Rounds resamples of the battles).
	Score, Lower, Upper float64
	Rounds              int
}

// ArenaScore computes Arena-Hard v0.1's score (its show_result.py) of the
// candidate from game outcomes: each game is a battle against the
// baseline, a significant verdict (A>>B, B>>A) counting weight times (3 in
// Arena-Hard), a tie half a win. The Bradley–Terry model is fitted by
// maximum likelihood with ties counted as one win for each side of a
// duplicated battle (compute_mle_elo). Against a single baseline that fit
// has a closed form: the candidate's win probability is its weighted
// share of wins, (wins + ties/2) / battles, which is the score. The 95%
// interval takes percentiles 2.5 and 97.5 of the score over rounds
// resamples of the weighted battles with replacement (get_bootstrap_result),
// interpolated linearly on the Elo scale as numpy.percentile does; the
// resamples come from a PCG stream seeded with seed, so they are not
// Python's but follow the same law.
func ArenaScore(outcomes []ArenaOutcome, weight, rounds int, seed uint64) ArenaSummary {
	s := ArenaSummary{Weight: weight, Rounds: rounds}
	// battles as the candidate's points: 1 win, 0.5 tie, 0 loss
	var pts []float64
	for _, o := range outcomes {
		s.Outcomes[o]++
		switch o {
		case ArenaNone:
			continue
		case ArenaMuchBetter:
			pts = appendN(pts, 1, weight)
		case ArenaBetter:
			pts = append(pts, 1)
		case ArenaTie:
			pts = append(pts, 0.5)
		case ArenaWorse:
			pts = append(pts, 0)
		case ArenaMuchWorse:
			pts = appendN(pts, 0, weight)
		}
		s.Games++
	}
	s.Invalid = s.Outcomes[ArenaNone]
	s.Battles = len(pts)
	if len(pts) == 0 {
		s.Score, s.Lower, s.Upper = math.NaN(), math.NaN(), math.NaN()
		return s
	}
	s.Score = 100 * mean(pts)
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	elo := make([]float64, rounds)
	for r := range elo {
		var sum float64
		for range pts {
			sum += pts[rng.IntN(len(pts))]
		}
		elo[r] = logit(sum / float64(len(pts)))
	}
	slices.Sort(elo)
	s.Lower = 100 * sigmoid(percentile(elo, 2.5))
	s.Upper = 100 * sigmoid(percentile(elo, 97.5))
	return s
}

func appendN(x []float64, v float64, n int) []float64 {
	for range n {
		x = append(x, v)
	}
	return x
}

func mean(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

// logit is the log-odds, clamped to ±30 for a certain outcome (a resample
// the candidate wins or loses entirely).
func logit(p float64) float64 {
	return math.Max(-30, math.Min(30, math.Log(p)-math.Log1p(-p)))
}

// percentile is numpy.percentile's default (linear interpolation between
// order statistics) of sorted x.
func percentile(x []float64, q float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	pos := q / 100 * float64(len(x)-1)
	lo := int(math.Floor(pos))
	if lo >= len(x)-1 {
		return x[len(x)-1]
	}
	return x[lo] + (pos-float64(lo))*(x[lo+1]-x[lo])
}

// A Question is one Arena-Hard prompt.
type Question struct {
	ID, Prompt, Category string
}

// ReadQuestions reads Arena-Hard's question.jsonl: v0.1's {"question_id",
// "category", "turns": [{"content"}]} (the first turn is the prompt) or
// the current {"uid", "category", "prompt"}.
func ReadQuestions(path string) ([]Question, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("judge: %w", err)
	}
	var out []Question
	seen := map[string]bool{}
	err = eachJSONLine(path, data, func(where string, b []byte) error {
		var r struct {
			QuestionID json.RawMessage `json:"question_id"`
			UID        string          `json:"uid"`
			Category   string          `json:"category"`
			Prompt     *string         `json:"prompt"`
			Turns      []struct {
				Content string `json:"content"`
			} `json:"turns"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("judge: %s: %w", where, err)
		}
		q := Question{ID: rawID(r.QuestionID), Category: r.Category}
		if q.ID == "" {
			q.ID = r.UID
		}
		switch {
		case q.ID == "":
			return fmt.Errorf(`judge: %s: a question needs a "question_id" or "uid"`, where)
		case len(r.Turns) > 0:
			q.Prompt = r.Turns[0].Content
		case r.Prompt != nil:
			q.Prompt = *r.Prompt
		default:
			return fmt.Errorf(`judge: %s: question %s has no "turns" or "prompt"`, where, q.ID)
		}
		if seen[q.ID] {
			return fmt.Errorf("judge: %s: question %s appears twice", where, q.ID)
		}
		seen[q.ID] = true
		out = append(out, q)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("judge: %s: no questions", path)
	}
	return out, nil
}

// rawID is a JSON string's value or a number's text; "" for none.
func rawID(b json.RawMessage) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		return s
	}
	return string(b)
}

// MatchArena pairs the candidate's answers with the baseline's by question
// ID, in the questions' order, with each question's prompt as the item's
// instruction. Questions either file lacks are returned in missing (their
// IDs).
func MatchArena(questions []Question, baseline, candidate []Output) (items []Item, missing []string, err error) {
	byID := func(outs []Output, which string) (map[string]int, error) {
		m := map[string]int{}
		for i, o := range outs {
			if o.ID == "" {
				return nil, fmt.Errorf(`judge: the %s's answer %d has no "question_id" or "uid" (an Arena-Hard answer file is needed)`, which, i+1)
			}
			m[o.ID] = i
		}
		return m, nil
	}
	bm, err := byID(baseline, "baseline")
	if err != nil {
		return nil, nil, err
	}
	cm, err := byID(candidate, "candidate")
	if err != nil {
		return nil, nil, err
	}
	for _, q := range questions {
		bi, okb := bm[q.ID]
		ci, okc := cm[q.ID]
		if !okb || !okc {
			missing = append(missing, q.ID)
			continue
		}
		items = append(items, Item{Instruction: q.Prompt, Baseline: baseline[bi].Output, Candidate: candidate[ci].Output, Dataset: q.Category, Index: bi, ID: q.ID})
	}
	return items, missing, nil
}

// RunArena plays Arena-Hard's two games per item: the baseline as
// assistant A and the candidate as B, then the positions swapped. Each
// game is asked once more, with the conversation continued, when the first
// reply has no verdict label. It returns the games per item (game 0 with
// the baseline first) and, as Run, the items that failed in the error.
func RunArena(ctx context.Context, c Completer, items []Item, opt Options) ([][2]Judgment, error) {
	out := make([][2]Judgment, len(items))
	errs := forEach(ctx, len(items), opt.Concurrency, func(i int) (bool, error) {
		var asked bool
		for g := range 2 {
			j, a, err := arenaGame(ctx, c, items[i], g == 1, opt)
			asked = asked || a
			if err != nil {
				return asked, err
			}
			out[i][g] = j
		}
		return asked, nil
	}, opt.OnDone)
	return out, itemErrors(ctx, items, errs)
}

// arenaGame plays one game, from the cache when it has it.
func arenaGame(ctx context.Context, c Completer, it Item, candFirst bool, opt Options) (Judgment, bool, error) {
	a, b := it.Baseline, it.Candidate
	if candFirst {
		a, b = b, a
	}
	key := keyWith(ArenaPromptVersion, opt.JudgeModel, it.Instruction, a, b)
	if opt.Cache != nil {
		if j, ok := opt.Cache.Get(key); ok {
			return j, false, nil
		}
	}
	conv := ArenaPrompt(it.Instruction, a, b)
	var judgment, label string
	for range arenaAttempts {
		comp, err := c.Complete(ctx, conv)
		if err != nil {
			return Judgment{}, true, err
		}
		judgment += "\n" + comp.Text
		var again bool
		label, again = ParseArenaVerdict(judgment)
		if !again {
			break
		}
		conv = append(conv, Message{Role: "assistant", Content: comp.Text}, Message{Role: "user", Content: arenaContinue})
	}
	j := Judgment{Key: key, JudgeModel: opt.JudgeModel, Instruction: it.Instruction, CandidateFirst: candFirst,
		Verdict: label, Reply: judgment}
	if opt.Cache != nil && label != "" { // an unreadable reply is asked again next time, never cached
		if err := opt.Cache.Put(j); err != nil {
			return Judgment{}, true, err
		}
	}
	return j, true, nil
}

// ArenaOutcomes lists the candidate's outcome of every game.
func ArenaOutcomes(games [][2]Judgment) []ArenaOutcome {
	var out []ArenaOutcome
	for _, g := range games {
		for _, j := range g {
			if j.Key != "" {
				out = append(out, arenaOutcome(j.Verdict, j.CandidateFirst))
			}
		}
	}
	return out
}
