package judge

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// The GLMs of AlpacaEval's glm_winrate.py that LengthControlled fits, by
// the data at hand.
const (
	// GLMv1 is AlpacaEval 2's length-controlled win rate, the
	// leaderboard's: length, instruction difficulty and model terms, with
	// the gamed baselines' rows as a regularizer.
	GLMv1 = "length_controlled_v1"
	// GLMNoReg is GLMv1 without the gamed rows (instruction difficulties
	// known, df_gamed.csv not given).
	GLMNoReg = "length_controlled_noreg"
	// GLMMinimal has the length and model terms only (no instruction
	// difficulties): a simplified estimate, not the leaderboard's.
	GLMMinimal = "length_controlled_minimal"
)

// gamedWeight is each gamed row's sample weight in GLMv1: AlpacaEval's
// regularize_to_baseline_lambda 0.2 shared by its two gamed baselines.
const gamedWeight = 0.2 / 2

// LCData are the two inputs AlpacaEval's length-controlled win rate
// downloads with its dataset. Either may be empty.
type LCData struct {
	// Difficulty[i] is the difficulty of the evaluation set's instruction
	// i (instruction_difficulty.csv); nil when unknown.
	Difficulty []float64
	// Gamed are the rows of AlpacaEval's verbose and concise "gamed"
	// baselines (df_gamed.csv).
	Gamed []GamedRow
}

// GamedRow is one row of df_gamed.csv: a gamed baseline's judged answer to
// instruction Index, with its preference in [0, 1] (NaN when missing),
// its standardized length difference and the instruction's difficulty.
type GamedRow struct {
	Index                               int
	Preference, StdDeltaLen, Difficulty float64
	// NotGamedBaseline is the model-term column: false for the gamed rows
	// AlpacaEval ships.
	NotGamedBaseline bool
}

// difficulties returns the difficulty per instruction index: data's
// Difficulty, else the first gamed row's for each index (as AlpacaEval's
// fit reads them from df_gamed.csv); nil when neither is known.
func (data LCData) difficulties() map[int]float64 {
	if data.Difficulty == nil && len(data.Gamed) == 0 {
		return nil
	}
	m := map[int]float64{}
	if data.Difficulty != nil {
		for i, v := range data.Difficulty {
			m[i] = v
		}
		return m
	}
	for _, g := range data.Gamed {
		if _, ok := m[g.Index]; !ok {
			m[g.Index] = g.Difficulty
		}
	}
	return m
}

// LCRow is one judged item as the length-controlled GLM sees it.
type LCRow struct {
	// Preference is the candidate's preference in [0, 1] (AlpacaEval's
	// preference − 1); NaN when the verdict is missing, which leaves the
	// row out of the fit but not out of the length scale or the average.
	Preference float64
	// BaselineLen and CandidateLen are the outputs' lengths in characters
	// (Unicode code points, as Python's len).
	BaselineLen, CandidateLen int
	// Index is the instruction's index in the evaluation set.
	Index int
}

// LCResult is a length-controlled win rate (a fraction) and its fit.
type LCResult struct {
	// WinRate is the mean over the items of the GLM's preference with the
	// length term at zero; StandardError is the standard error of that
	// mean (AlpacaEval's lc_standard_error).
	WinRate, StandardError float64
	// GLM names the model fitted: GLMv1, GLMNoReg or GLMMinimal.
	GLM string
	// LengthCoef, DifficultyCoef and ModelCoef are the fitted weights of
	// tanh(standardized length difference), instruction difficulty and
	// the model (DifficultyCoef is 0 for GLMMinimal); C is the inverse L1
	// penalty chosen by cross-validation.
	LengthCoef, DifficultyCoef, ModelCoef, C float64
}

// LengthControlled computes AlpacaEval 2's length-controlled win rate
// (alpaca_eval/metrics/glm_winrate.py, get_length_controlled_winrate)
// from the judged rows and the downloaded data.
//
// With both inputs of data it fits AlpacaEval's length_controlled_v1, the
// leaderboard's GLM: the preference y_i in [0, 1] of row i is modelled as
//
//	σ(β · tanh(Δ_i / sd(Δ)) + φ · difficulty_i + θ)
//
// with Δ_i = len(baseline_i) − len(candidate_i) in characters, sd(Δ) its
// sample standard deviation (scaled, not centered) and no intercept; the
// gamed baselines' rows (model column 0) are added with weight 0.1 each.
// The fit is AlpacaEval's: L1-penalized logistic regression with the
// preferences as soft labels, C chosen among ten values from 1e-4 to 1e4
// by 5-fold grouped cross-validation (see fitL1LogisticCV). The
// length-controlled win rate is the mean over the rows of σ(φ ·
// difficulty_i + θ), its standard error that of those values.
//
// With the difficulties only it fits the same GLM without the gamed rows
// (AlpacaEval's length_controlled_noreg); with neither, the length and
// model terms only (length_controlled_minimal), whose win rate is σ(θ).
// Those two are not the leaderboard's numbers.
func LengthControlled(rows []LCRow, data LCData) (LCResult, error) {
	n := len(rows)
	if n == 0 {
		return LCResult{}, errors.New("no judged items")
	}
	diff := data.difficulties()
	res := LCResult{GLM: GLMMinimal}
	p := 2 // tanh, model
	if diff != nil {
		res.GLM, p = GLMNoReg, 3
		if len(data.Gamed) > 0 {
			res.GLM = GLMv1
		}
	}
	d := make([]float64, n)
	for i, r := range rows {
		d[i] = float64(r.BaselineLen - r.CandidateLen)
	}
	_, sem := meanSEM(d)
	sd := sem * math.Sqrt(float64(n))
	x := func(i int) float64 {
		if sd == 0 || math.IsNaN(sd) {
			return math.Tanh(d[i]) // all differences equal: their sign
		}
		return math.Tanh(d[i] / sd)
	}
	di := make([]float64, n)
	if diff != nil {
		for i, r := range rows {
			v, ok := diff[r.Index]
			if !ok {
				return LCResult{}, fmt.Errorf("no instruction difficulty for instruction index %d (the baseline file's answer %d)", r.Index, r.Index+1)
			}
			di[i] = v
		}
	}
	var g glmData
	g.P = p
	add := func(tanh, difficulty, model, y, w float64) {
		if math.IsNaN(y) {
			return // AlpacaEval drops rows without a preference
		}
		if p == 3 {
			g.X = append(g.X, tanh, difficulty, model)
		} else {
			g.X = append(g.X, tanh, model)
		}
		g.Y, g.W = append(g.Y, y), append(g.W, w)
	}
	if res.GLM == GLMv1 {
		for _, r := range data.Gamed {
			model, w := 0.0, gamedWeight
			if r.NotGamedBaseline {
				model, w = 1, 1
			}
			add(math.Tanh(r.StdDeltaLen), r.Difficulty, model, r.Preference, w)
		}
	}
	for i, r := range rows {
		add(x(i), di[i], 1, r.Preference, 1)
	}
	beta, c, err := fitL1LogisticCV(g)
	if err != nil {
		return LCResult{GLM: res.GLM}, err
	}
	res.C, res.LengthCoef, res.ModelCoef = c, beta[0], beta[p-1]
	if p == 3 {
		res.DifficultyCoef = beta[1]
	}
	pred := make([]float64, n)
	for i := range rows {
		pred[i] = sigmoid(res.ModelCoef + res.DifficultyCoef*di[i])
	}
	res.WinRate, res.StandardError = meanSEM(pred)
	return res, nil
}

// GLMWeights are a model's fitted length-controlled GLM weights, as
// AlpacaEval publishes them (metrics/weights/…/length_controlled_v1/
// baseline_<model>.csv).
type GLMWeights struct {
	Length, Difficulty, Model float64
}

// PredictLC is AlpacaEval's predict_winrate: the length-controlled win
// rate (a fraction) of a model with weights w against a baseline with
// weights base, over the instructions' difficulties: the mean of
// σ(Δθ + Δφ · difficulty_i).
func PredictLC(w, base GLMWeights, difficulty []float64) float64 {
	var s float64
	for _, v := range difficulty {
		s += sigmoid(w.Model - base.Model + (w.Difficulty-base.Difficulty)*v)
	}
	return s / float64(len(difficulty))
}

// readCSV reads a CSV file with a header line.
func readCSV(path string) (header []string, rows [][]string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))))
	header, err = r.Read()
	if err == io.EOF {
		return nil, nil, fmt.Errorf("%s: empty file", path)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return header, rows, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		rows = append(rows, rec)
	}
}

// column returns the position of name in header.
func column(path string, header []string, name string) (int, error) {
	for i, h := range header {
		if strings.TrimSpace(h) == name {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%s: no %q column (header %q)", path, name, strings.Join(header, ","))
}

// parseFloat reads a CSV number; an empty cell or "nan" is NaN.
func parseFloat(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "nan") {
		return math.NaN(), nil
	}
	return strconv.ParseFloat(s, 64)
}

// ReadDifficulty reads AlpacaEval's instruction_difficulty.csv: a header,
// then one row per instruction, its index (0, 1, …) and its difficulty.
// Every index from 0 to the largest must appear once.
func ReadDifficulty(path string) ([]float64, error) {
	header, rows, err := readCSV(path)
	if err != nil {
		return nil, fmt.Errorf("judge: instruction difficulty: %w", err)
	}
	if len(header) < 2 {
		return nil, fmt.Errorf("judge: instruction difficulty: %s: want two columns, index and instruction_difficulty (header %q)", path, strings.Join(header, ","))
	}
	col := 1
	if c, err := column(path, header, "instruction_difficulty"); err == nil {
		col = c
	}
	vals := map[int]float64{}
	top := -1
	for i, rec := range rows {
		where := fmt.Sprintf("%s:%d", path, i+2)
		if len(rec) <= col {
			return nil, fmt.Errorf("judge: instruction difficulty: %s: %d fields, want %d", where, len(rec), col+1)
		}
		idx, err := strconv.Atoi(strings.TrimSpace(rec[0]))
		if err != nil || idx < 0 {
			return nil, fmt.Errorf("judge: instruction difficulty: %s: index %q is not a non-negative integer", where, rec[0])
		}
		v, err := parseFloat(rec[col])
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("judge: instruction difficulty: %s: difficulty %q is not a number", where, rec[col])
		}
		if _, dup := vals[idx]; dup {
			return nil, fmt.Errorf("judge: instruction difficulty: %s: index %d appears twice", where, idx)
		}
		vals[idx] = v
		top = max(top, idx)
	}
	if top < 0 {
		return nil, fmt.Errorf("judge: instruction difficulty: %s: no rows", path)
	}
	out := make([]float64, top+1)
	for i := range out {
		v, ok := vals[i]
		if !ok {
			return nil, fmt.Errorf("judge: instruction difficulty: %s: no row for index %d (indices run to %d)", path, i, top)
		}
		out[i] = v
	}
	return out, nil
}

// ReadGamed reads AlpacaEval's df_gamed.csv: a header naming at least
// index, preference, std_delta_len, instruction_difficulty and
// not_gamed_baseline (True/False), in any order; other columns (model)
// are ignored. Preferences are in [0, 1]; an empty one is missing.
func ReadGamed(path string) ([]GamedRow, error) {
	header, rows, err := readCSV(path)
	if err != nil {
		return nil, fmt.Errorf("judge: gamed rows: %w", err)
	}
	var cols [5]int
	for k, name := range []string{"index", "preference", "std_delta_len", "instruction_difficulty", "not_gamed_baseline"} {
		if cols[k], err = column(path, header, name); err != nil {
			return nil, fmt.Errorf("judge: gamed rows: %w", err)
		}
	}
	out := make([]GamedRow, 0, len(rows))
	for i, rec := range rows {
		where := fmt.Sprintf("%s:%d", path, i+2)
		if len(rec) != len(header) {
			return nil, fmt.Errorf("judge: gamed rows: %s: %d fields, want %d", where, len(rec), len(header))
		}
		var g GamedRow
		if g.Index, err = strconv.Atoi(strings.TrimSpace(rec[cols[0]])); err != nil || g.Index < 0 {
			return nil, fmt.Errorf("judge: gamed rows: %s: index %q is not a non-negative integer", where, rec[cols[0]])
		}
		for k, dst := range []*float64{&g.Preference, &g.StdDeltaLen, &g.Difficulty} {
			v, err := parseFloat(rec[cols[k+1]])
			if err != nil || (k > 0 && (math.IsNaN(v) || math.IsInf(v, 0))) || (k == 0 && (v < 0 || v > 1)) {
				return nil, fmt.Errorf("judge: gamed rows: %s: %s %q is not a number%s", where, header[cols[k+1]], rec[cols[k+1]], map[bool]string{true: " in [0, 1]"}[k == 0])
			}
			*dst = v
		}
		switch strings.ToLower(strings.TrimSpace(rec[cols[4]])) {
		case "true", "1", "1.0":
			g.NotGamedBaseline = true
		case "false", "0", "0.0":
		default:
			return nil, fmt.Errorf("judge: gamed rows: %s: not_gamed_baseline %q is not True or False", where, rec[cols[4]])
		}
		out = append(out, g)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("judge: gamed rows: %s: no rows", path)
	}
	return out, nil
}

// ReadGLMWeights reads AlpacaEval's published GLM weights: a header
// (an empty first name, then np.tanh(std_delta_len), instruction_difficulty
// and not_gamed_baseline.astype(float)) and one row per model.
func ReadGLMWeights(path string) (map[string]GLMWeights, error) {
	header, rows, err := readCSV(path)
	if err != nil {
		return nil, fmt.Errorf("judge: GLM weights: %w", err)
	}
	var cols [3]int
	for k, name := range []string{"np.tanh(std_delta_len)", "instruction_difficulty", "not_gamed_baseline.astype(float)"} {
		if cols[k], err = column(path, header, name); err != nil {
			return nil, fmt.Errorf("judge: GLM weights: %w", err)
		}
	}
	out := map[string]GLMWeights{}
	for i, rec := range rows {
		where := fmt.Sprintf("%s:%d", path, i+2)
		if len(rec) != len(header) {
			return nil, fmt.Errorf("judge: GLM weights: %s: %d fields, want %d", where, len(rec), len(header))
		}
		var v [3]float64
		for k := range v {
			if v[k], err = strconv.ParseFloat(strings.TrimSpace(rec[cols[k]]), 64); err != nil {
				return nil, fmt.Errorf("judge: GLM weights: %s: %q is not a number", where, rec[cols[k]])
			}
		}
		out[rec[0]] = GLMWeights{Length: v[0], Difficulty: v[1], Model: v[2]}
	}
	return out, nil
}
