package judge

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// Summary is the outcome of an AlpacaEval-format run, in AlpacaEval's
// terms (its get_winrate and get_length_controlled_winrate). Rates and
// their standard errors are percentages.
type Summary struct {
	// N is the number of valid judgments (AlpacaEval's n_total); Invalid
	// the replies that could not be read and Failed the items that got no
	// reply. Neither counts in the win rates.
	N, Invalid, Failed int
	// Wins, Losses and Draws count the candidate's results: a preference
	// above, below or at 1.5 (AlpacaEval's n_wins, n_wins_base and
	// n_draws).
	Wins, Losses, Draws int
	// ByLogprobs, ByLetter and Identical count how the valid preferences
	// were read: from the verdict letters' log-probabilities (AlpacaEval's
	// weighted annotator), from the letter alone (the endpoint returned no
	// log-probabilities; a tie counts 1.5), or without asking because the
	// two outputs are the same (a draw).
	ByLogprobs, ByLetter, Identical int
	// WinRate is the mean of the candidate's preference − 1 (AlpacaEval's
	// win_rate), StandardError its standard error of the mean.
	WinRate, StandardError float64
	// DiscreteWinRate counts each preference as a win, loss or draw
	// (AlpacaEval's discrete_win_rate).
	DiscreteWinRate float64
	// LC is the length-controlled win rate's fit (fractions); LCWinRate
	// and LCStandardError are its rate and standard error in percent.
	LC                         LCResult
	LCWinRate, LCStandardError float64
}

// Summarize computes the statistics of judgments js of items (same order;
// a judgment with an empty Key failed), the length-controlled win rate
// with the downloaded data (see [LengthControlled]); that rate is NaN with
// fewer than five verdicts.
func Summarize(items []Item, js []Judgment, data LCData) (Summary, error) {
	var s Summary
	var prefs []float64
	rows := make([]LCRow, len(items))
	for i, j := range js {
		it := items[i]
		rows[i] = LCRow{Preference: math.NaN(), Index: it.Index,
			BaselineLen: utf8.RuneCountInString(it.Baseline), CandidateLen: utf8.RuneCountInString(it.Candidate)}
		switch {
		case j.Key == "":
			s.Failed++
			continue
		case j.Method == "" || j.Preference < 1 || j.Preference > 2:
			s.Invalid++
			continue
		case j.Preference > 1.5:
			s.Wins++
		case j.Preference < 1.5:
			s.Losses++
		default:
			s.Draws++
		}
		switch j.Method {
		case MethodLogprobs:
			s.ByLogprobs++
		case MethodLetter:
			s.ByLetter++
		case MethodIdentical:
			s.Identical++
		}
		prefs = append(prefs, j.Preference-1)
		rows[i].Preference = j.Preference - 1
	}
	s.N = len(prefs)
	if s.N == 0 {
		quote := ""
		for _, j := range js {
			if j.Key != "" && j.Reply != "" {
				quote = fmt.Sprintf("; one reply: %q", short(j.Reply))
				break
			}
		}
		return s, fmt.Errorf("judge: no valid verdict among %d items (%d unreadable, %d failed)%s", len(items), s.Invalid, s.Failed, quote)
	}
	s.WinRate, s.StandardError = meanSEM(prefs)
	s.WinRate *= 100
	s.StandardError *= 100
	s.DiscreteWinRate = 100 * (float64(s.Wins) + float64(s.Draws)/2) / float64(s.N)
	lc, err := LengthControlled(rows, data)
	if errors.Is(err, ErrTooFewForLC) {
		nan := math.NaN()
		lc = LCResult{WinRate: nan, StandardError: nan, LengthCoef: nan, DifficultyCoef: nan, ModelCoef: nan, C: nan, GLM: lc.GLM}
	} else if err != nil {
		return s, fmt.Errorf("judge: length-controlled win rate: %w", err)
	}
	s.LC, s.LCWinRate, s.LCStandardError = lc, 100*lc.WinRate, 100*lc.StandardError
	return s, nil
}

// meanSEM is the mean and its standard error (sample standard deviation
// over √n, as pandas' sem); the error is NaN below two values, as pandas'.
func meanSEM(x []float64) (mean, sem float64) {
	if len(x) == 0 {
		return math.NaN(), math.NaN()
	}
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	if len(x) < 2 {
		return mean, math.NaN()
	}
	var ss float64
	for _, v := range x {
		ss += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(ss/float64(len(x)-1)) / math.Sqrt(float64(len(x)))
}

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// softplus is log(1 + e^z).
func softplus(z float64) float64 {
	if z > 30 {
		return z + math.Exp(-z)
	}
	return math.Log1p(math.Exp(z))
}
