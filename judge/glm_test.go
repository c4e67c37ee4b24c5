package judge

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

// glmGolden is testdata/glm_golden.json (see testdata/README.md).
type glmGolden struct {
	X    []float64 `json:"x"`
	P    int       `json:"p"`
	Y, W []float64
	Fits []struct {
		C    float64   `json:"C"`
		Coef []float64 `json:"coef"`
	} `json:"fits"`
	CVScores   []float64 `json:"cv_scores"`
	CVC        float64   `json:"cv_C"`
	CVCoef     []float64 `json:"cv_coef"`
	Difficulty []float64 `json:"difficulty"`
	LC         float64   `json:"lc_model_rows"`
}

// The fit at every C of the grid, the cross-validation scores and the
// chosen fit equal scikit-learn's liblinear (run to tolerance 1e-8) on a
// small problem with soft labels (some exactly 0, 1 and 0.5) and weights.
func TestL1LogisticMatchesScikitLearn(t *testing.T) {
	b, err := os.ReadFile("testdata/glm_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g glmGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	d := glmData{X: g.X, P: g.P, Y: g.Y, W: g.W}
	for k, c := range glmCs() {
		want := g.Fits[k]
		if math.Abs(c-want.C) > 1e-12*want.C {
			t.Fatalf("C grid %d: %g, scikit-learn %g", k, c, want.C)
		}
		got := fitL1Logistic(d, c)
		for a := range got {
			// liblinear stops at its tolerance; our optimum is tighter. 2e-5
			// absolute covers the difference seen (≤ 3e-6) with margin; a
			// wrong penalty or weight is off by 1e-2 or more.
			if math.Abs(got[a]-want.Coef[a]) > 2e-5 {
				t.Errorf("C %.3g: coefficients %v, scikit-learn %v", c, got, want.Coef)
				break
			}
		}
	}
	coef, c, err := fitL1LogisticCV(d)
	if err != nil {
		t.Fatal(err)
	}
	if c != g.CVC {
		t.Errorf("cross-validation chose C %g, scikit-learn %g (scores %v)", c, g.CVC, g.CVScores)
	}
	for a := range coef {
		if math.Abs(coef[a]-g.CVCoef[a]) > 2e-5 {
			t.Errorf("refit %v, scikit-learn %v", coef, g.CVCoef)
		}
	}
	var lc float64
	var n int
	for i := range g.Y {
		if d.row(i)[2] == 1 {
			lc += sigmoid(coef[2] + coef[1]*g.Difficulty[i])
			n++
		}
	}
	if lc /= float64(n); math.Abs(lc-g.LC) > 1e-5 {
		t.Errorf("LC %.6f, scikit-learn %.6f", lc, g.LC)
	}
}

// One feature constant 1, labels p, total weight W: the optimum of
// |β| + C W [p softplus(−β) + (1−p) softplus(β)] solves
// C W (σ(β) − p) + sign(β) = 0, i.e. σ(β) = p − 1/(C W), or is 0 when
// C W |p − ½| ≤ 1.
func TestL1LogisticClosedForm(t *testing.T) {
	for _, tc := range []struct {
		name    string
		p, w, c float64
		want    float64
	}{
		{"shrunk", 0.8, 10, 2, logit(0.8 - 1.0/20)},
		{"shrunk below", 0.3, 10, 2, logit(0.3 + 1.0/20)},
		{"zeroed", 0.55, 10, 1, 0},
		{"light penalty", 0.9, 100, 1e4, logit(0.9 - 1e-6)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// the weight spread over 4 rows, two of them with hard labels
			// whose mean is p
			d := glmData{P: 1, X: []float64{1, 1, 1, 1}, Y: []float64{tc.p, tc.p, 1, 0}, W: []float64{tc.w / 2, tc.w / 2, 0, 0}}
			got := fitL1Logistic(d, tc.c)[0]
			if math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("β %.12f, want %.12f", got, tc.want)
			}
		})
	}
}

func TestWeightedPreference(t *testing.T) {
	pm := math.Exp(-0.1) / (math.Exp(-0.1) + math.Exp(-2.4))
	for _, tc := range []struct {
		name string
		top  []TokenLogprob
		want float64
		ok   bool
	}{
		{"both letters", []TokenLogprob{{"m", -0.1}, {"M", -2.4}, {"Both", -9}}, 2 - pm, true},
		{"M first", []TokenLogprob{{"M", -2.4}, {"The", -3}, {"m", -0.1}}, 2 - pm, true},
		{"only M", []TokenLogprob{{"M", -0.01}, {" m", -5}}, 2, true},
		{"only m", []TokenLogprob{{"m", -3}}, 1, true},
		{"even", []TokenLogprob{{"m", math.Log(0.5)}, {"M", math.Log(0.5)}}, 1.5, true},
		{"no letters", []TokenLogprob{{"Output", -0.1}, {" M", -1}}, 0, false},
		{"none", nil, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := WeightedPreference(tc.top)
			if ok != tc.ok || math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("%v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestParseVerdict(t *testing.T) {
	for in, want := range map[string]int{
		"m": VerdictFirst, "M": VerdictSecond, " M\n": VerdictSecond, "1": VerdictFirst, "2": VerdictSecond,
		"**m**": VerdictFirst, "(M)": VerdictSecond, "Output (m)": VerdictFirst, "`M`.": VerdictSecond,
		"<think>hmm, m or M</think>\nM": VerdictSecond, "tie": VerdictTie, "Tie.": VerdictTie, "draw": VerdictTie,
		"m=M": VerdictTie, "": VerdictNone, "both": VerdictNone, "mM": VerdictNone, "Model M": VerdictNone,
	} {
		if got := ParseVerdict(in); got != want {
			t.Errorf("ParseVerdict(%q) = %d, want %d", in, got, want)
		}
	}
}

// AlpacaEval's win rate and counts on a hand-computed case: a weighted
// win, a letter loss, a tie reply, identical outputs, an unreadable reply
// and a failed request.
func TestSummarizeHandComputed(t *testing.T) {
	items := make([]Item, 6)
	for i := range items {
		items[i] = Item{Instruction: string(rune('a' + i)), Baseline: "bbbb", Candidate: "cc", Index: i}
	}
	js := []Judgment{
		{Key: "1", Preference: 1.8, Method: MethodLogprobs},
		{Key: "2", Preference: 1, Method: MethodLetter},
		{Key: "3", Preference: 1.5, Method: MethodLetter},
		{Key: "4", Preference: 1.5, Method: MethodIdentical},
		{Key: "5", Preference: 0},
		{},
	}
	s, err := Summarize(items, js, LCData{})
	if err != nil {
		t.Fatal(err)
	}
	// preferences − 1: 0.8, 0, 0.5, 0.5 → mean 0.45, sample sd
	// sqrt(((0.35)² + (0.45)² + 2·(0.05)²)/3) = sqrt(0.3300/3)
	wantSE := math.Sqrt(0.33/3) / 2
	if s.N != 4 || s.Wins != 1 || s.Losses != 1 || s.Draws != 2 || s.Invalid != 1 || s.Failed != 1 ||
		s.ByLogprobs != 1 || s.ByLetter != 2 || s.Identical != 1 ||
		math.Abs(s.WinRate-45) > 1e-9 || math.Abs(s.StandardError-100*wantSE) > 1e-9 || math.Abs(s.DiscreteWinRate-50) > 1e-9 {
		t.Errorf("summary %+v; want win rate 45 ± %.4f, discrete 50", s, 100*wantSE)
	}
}
